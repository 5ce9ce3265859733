"""The trainer interface every algorithm implements (typed, with defaults: no ``hasattr`` probes).

:func:`marl.run.train` drives a trainer like this, one rollout per call::

    steps, logs = trainer.collect_and_train(venv, step, on_episode)   # env steps, {behavior: scalars}
    trainer.state_dict(behavior) / trainer.load_state_dict(behavior, state, weights_only=False)
    trainer.extra_state(behavior) / trainer.load_extra(behavior, extra)  # e.g. self-play's Elo and window
    trainer.actor(behavior)                                           # the acting network (tests, export)
    trainer.timing                                                    # (s waiting on env steps, s in updates)

The self-play (ghost) wrapper (:mod:`marl.selfplay`) wraps any trainer whose registry entry says
``self_play=True`` and implements the same interface. See ``docs/trainer_plugins.md``.
"""
from __future__ import annotations

from typing import Callable

from envs.spec import EnvSpec


class Trainer:
    """Base class of the trainers in :mod:`marl.algos.registry`.

    Args (of subclasses): ``spec`` (the env), ``cfg`` (the run config), ``n_envs`` (env copies ``E``
    of the vector env), ``device`` (torch device).
    """

    spec: EnvSpec
    timing: tuple[float, float] = (0.0, 0.0)

    def collect_and_train(self, venv, step: int, on_episode: Callable | None = None,
                          on_step: Callable | None = None) -> tuple[int, dict[str, dict[str, float]]]:
        """Collect from ``venv`` (a :class:`envs.vector.VecEnv`) and update; returns
        ``(env steps taken, {behavior: TensorBoard scalars})``. ``on_episode(copy, EpisodeStats)``
        is called for each finished episode, ``on_step(arrays, finished, env_step)`` after every
        vector step (the self-play wrapper's hook)."""
        raise NotImplementedError

    # --- acting apart from learning (env runners on Ray call collect on their own copy of the trainer) ---
    def collect(self, venv, step: int, on_episode: Callable | None = None, on_step: Callable | None = None):
        """Collect one batch from ``venv`` with the current weights: ``(env steps, batch, seconds on env steps)``.
        ``batch`` is picklable (numpy) and algorithm-specific."""
        raise NotImplementedError(f"{type(self).__name__} cannot collect apart from learning")

    def learn(self, step: int, steps: int, batch) -> dict[str, dict[str, float]]:
        """Update from a batch of :meth:`collect` (or :meth:`merge` of several); ``step`` = env steps before it."""
        raise NotImplementedError(f"{type(self).__name__} cannot learn from a recorded batch")

    def merge(self, batches: list):
        """One batch from the batches of several env runners (their env copies side by side)."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge batches")

    def compact(self, batch):
        """The batch as a runner ships it back (only filled rows)."""
        return batch

    def weights(self) -> dict:
        """CPU copies of what acting needs, per behavior (sent to env runners once per rollout)."""
        raise NotImplementedError(f"{type(self).__name__} has no acting weights to broadcast")

    def load_weights(self, weights: dict) -> None:
        """Load :meth:`weights` (an env runner, before collecting)."""
        raise NotImplementedError(f"{type(self).__name__} cannot load acting weights")

    def state_dict(self, behavior: str) -> dict:
        """Everything ``--resume`` needs for ``behavior`` (networks, optimisers, normalisers)."""
        raise NotImplementedError

    def load_state_dict(self, behavior: str, state: dict, weights_only: bool = False) -> None:
        """Restore :meth:`state_dict`; ``weights_only`` (``--initialize-from``) skips optimisers."""
        raise NotImplementedError

    def extra_state(self, behavior: str) -> dict:
        """JSON-able extras stored in the checkpoint's ``extra`` (default: none)."""
        return {}

    def load_extra(self, behavior: str, extra: dict) -> None:
        """Restore :meth:`extra_state` on ``--resume`` (default: nothing)."""

    def actor(self, behavior: str):
        """The network that acts for ``behavior``."""
        raise NotImplementedError

    def policy_state(self, behavior: str) -> dict:
        """The part of :meth:`state_dict` the algorithm's policy loader needs (self-play snapshots
        store it as the checkpoint's ``trainer``). Default: the whole state."""
        return self.state_dict(behavior)

    def set_opponents(self, behavior: str, slots, policy) -> None:
        """Make slots ``slots`` (bool ``[n_agents]``) act with ``policy`` (a :class:`marl.policy.Policy`,
        sampled) inside the batched rollout and keep them out of training. Trainers whose registry
        entry says ``self_play=True`` implement it.

        Raises:
            NotImplementedError: this trainer cannot host opponents.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot host self-play opponents")


class ActorCriticTrainer(Trainer):
    """A trainer with one learner per behavior (``self.learners[behavior]``: ``state_dict``,
    ``load_state_dict``, ``actor``) and a collector that hosts opponents (``self.collector.set_opponents``):
    the checkpoint, policy and self-play parts every actor-critic trainer (MAPPO/IPPO, MA-POCA) shares."""

    learners: dict
    collector: object

    def state_dict(self, behavior: str) -> dict:
        return self.learners[behavior].state_dict()

    def load_state_dict(self, behavior: str, state: dict, weights_only: bool = False) -> None:
        self.learners[behavior].load_state_dict(state, weights_only)

    def actor(self, behavior: str):
        return self.learners[behavior].actor

    def widen_state(self, behavior: str, state: dict, old_env, new_env) -> dict:
        """``behavior``'s trainer state saved for the env spec ``old_env`` widened to this trainer's slots
        (``new_env``: more agents per team; ``marl.grow``), by the learner's ``widened_state``.

        Raises:
            marl.grow.GrowError: slots that shrank, or a shape the learner cannot widen.
        """
        return self.learners[behavior].widened_state(state, old_env, new_env)

    def policy_state(self, behavior: str) -> dict:
        """What the shared actor's loader (:func:`marl.algos.mappo.load_policy`) needs: ``{"actor": state_dict}``."""
        return {"actor": self.learners[behavior].actor.state_dict()}

    def set_opponents(self, behavior: str, slots, policy) -> None:
        """Slots ``slots`` (bool ``[A]``) of ``behavior`` act with ``policy`` (sampled) and are not trained on."""
        self.collector.set_opponents(behavior, slots, policy)
