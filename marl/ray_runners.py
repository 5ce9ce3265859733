"""Env runners as Ray actors: ``marl-learn ... --ray [--ray-address auto|HOST:PORT]``.

Shape (RLlib's ``EnvRunner``/``Learner`` split, Sample Factory's rollout workers): the learner stays
in the driver on ``--torch-device``; each of the ``--num-envs`` runners is a Ray actor holding
``--num-areas`` env copies (or one Unity player, ports ``--base-port + runner index``) and a copy of
the run's trainer (:mod:`marl.algos.registry`) on the CPU. Once per rollout the driver puts the
acting weights in the object store once (``Trainer.weights``); every runner loads them, collects
``buffer_size / num_envs`` experiences with the algorithm's own collector (``Trainer.collect``) and
returns a numpy fragment; the driver merges the fragments (``Trainer.merge``) and updates
(``Trainer.learn``). The algorithm, YAML, results layout, TensorBoard tags, checkpoints, ``--resume``,
self-play and curricula are those of a local run (one learner code path; the runners replace the local
collector).

Self-play (:mod:`marl.selfplay`; the driver's :class:`~marl.selfplay.GhostTrainer` owns it, as locally):
before a rollout the driver's ghosts do what a local rollout starts with (first snapshot, a due team
change) and draw, with their own sampler, the opponent of every swap that can fall inside the rollout
(:meth:`~marl.selfplay.BehaviorGhost.plan_rollout`). A swap is due after vector step ``t`` when
``step + (t + 1) * num_envs * num_areas`` is ``swap_steps`` past the last swap: the local rule for one
process holding all the copies, so every runner swaps at the same vector step and all copies play the
same opponent at the same step index. Each distinct opponent actor travels once, in the rollout's one
object-store put beside the learner's weights. Each runner's own ghost wrapper (``wrap_self_play(...,
runner=i)``: no files, no league) plays the plan: learning team, opponents through
:class:`marl.policy.Policy` (``set_opponents``), swaps, and scores each finished game as locally
(:meth:`~marl.selfplay.BehaviorGhost.episode_result`), returning ``(t, copy, score, plan entry)`` per game.
The driver then updates Elo from every game in (step, runner, copy) order against the opponent it was
played against, commits the swaps the runners reached (draws past them are discarded), and after the
update saves due snapshots and logs ``Self-play/ELO``; checkpoints, ``training_status.json`` and
``--resume`` are the local ones. Differences from a local run: the runners are not in lockstep, so at a
given moment of wall time two runners may be at different steps (but at the same step index they play
the same opponent), and in turn-based games one runner may stop its rollout a few vector steps before
another (local copies all stop together).

Curricula (``environment_parameters`` with lessons): the driver owns the curriculum
(``marl.run._CurriculumLink``, fed with the runners' finished episodes) and drives this object as it drives
a local VecEnv: :meth:`RayRunners.set_environment_parameters` / :meth:`RayRunners.reset` version the
current values, every collect carries them, and a runner applies them to its env copies (Unity side
channel, or the env's ``set_environment_parameters``) only when the version changed, before collecting;
a runner Ray replaced starts from the current lesson.

Unity players: runner ``i`` holds worker ``i`` (port ``--base-port + i``); player logs go to
``results/<run-id>/run_logs/Player-<i>.log`` as locally (``Player-0.log`` also holds the spec probe's
player), written by the runner's node: on a local instance the driver's own folder (a relative
``--results-dir`` resolves as for the driver), on a cluster that node's disk.

Agent slots that grow (``marl.grow``): the driver learns from the episodes the runners return that a player
had more agents than slots; it then :meth:`RayRunners.pause` s the runners (players closed, actors killed and
waited for, Ray stays up), probes a player with more slots, and :meth:`RayRunners.restart` s runners for the
new spec with the widened trainer, as a local run restarts its ``VecEnv``.

Faults: runners are created with ``max_restarts`` (``--max-lifetime-restarts``); a runner that dies
mid-rollout (node lost, Unity player crashed past its restarts) loses its fragment (and its games, for
Elo), Ray replaces it, training goes on with the other fragments and a warning line; losing every runner
of a rollout stops the run with one line (the run loop saves a resumable checkpoint first).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Callable

RUNNER_TIMEOUT_S = 900.0  # one rollout of one runner; a longer one is treated as lost


class RunnersLost(RuntimeError):
    """Every env runner of a rollout was lost (past Ray's restarts); the run stops with a checkpoint."""


def _offset_factory(factory: Callable, offset: int, index: int, out):
    """Copy ``index`` of runner ``r`` is global copy ``r * areas + index`` (seeds, Unity worker ports)."""
    return factory(offset + index, out)


def runner_config(cfg_data: dict, n_runners: int) -> dict:
    """The run config each runner collects with: ``buffer_size`` split over the runners (rounded up),
    ``batch_size`` capped to it (runners never update)."""
    import copy

    data = copy.deepcopy(cfg_data)
    for b in list((data.get("behaviors") or {}).values()) + ([data["default_settings"]] if data.get("default_settings") else []):
        hp = b.get("hyperparameters") or {}
        if "buffer_size" in hp and b.get("trainer_type") in ("mappo", "ippo", "poca"):
            hp["buffer_size"] = max(1, math.ceil(int(hp["buffer_size"]) / n_runners))
            hp["batch_size"] = min(int(hp.get("batch_size", hp["buffer_size"])), hp["buffer_size"])
    data.pop("league", None)
    return data


def _runner_class():
    import ray

    @ray.remote(num_cpus=1)
    class EnvRunner:
        """One env runner: env copies plus a CPU copy of the trainer that only collects (with self-play,
        wrapped in its own :class:`marl.selfplay.GhostTrainer` that plays the driver's plans)."""

        def __init__(self, cfg_data: dict, spec, factory, index: int, areas: int, seed: int | None):
            import torch

            from envs.vector import VecEnv
            from marl.algos.factory import trainer_class
            from marl.config import parse_config
            from marl.selfplay import wrap_self_play

            torch.set_num_threads(1)
            cfg = parse_config(cfg_data, "<env runner>")
            types = {cfg.behavior_settings(b.name).trainer_type for b in spec.behaviors}
            bare = trainer_class(next(iter(types)))(spec, cfg, areas, torch.device("cpu"))
            self.trainer = wrap_self_play(bare, spec, cfg, runner=index)
            offset = index * areas
            self.params_version = -1  # environment parameters last applied (-1: the factory's own)
            self.venv = VecEnv(functools.partial(_offset_factory, factory, offset), spec, 1, areas,
                               seed=None if seed is None else seed + offset)

        def horizon(self) -> int:
            """The most vector steps one collect takes (the trainer's buffer rows)."""
            return max(int(getattr(L, "capacity", 0)) for L in self.trainer.learners.values())

        def collect(self, job: tuple, step: int):
            """``job = (weights, self-play plans or None, (version, environment parameters, reset) or None)``."""
            weights, plans, params = job
            if params is not None and params[0] != self.params_version:
                self.venv.set_environment_parameters(params[1])
                if params[2]:
                    self.venv.reset()
                self.params_version = params[0]
            stats = []
            self.trainer.load_weights(weights)
            on_episode = lambda e, s: stats.append(s)  # noqa: E731
            if plans is None:
                steps, batch, t_env = self.trainer.collect(self.venv, step, on_episode=on_episode)
                report = None
            else:
                steps, batch, t_env, report = self.trainer.collect_planned(self.venv, step, plans, on_episode)
            return steps, self.trainer.compact(batch), t_env, stats, report

        def close(self) -> None:
            self.venv.close()

    return EnvRunner


class RayRunners:
    """``n`` env runners on Ray (see the module docstring).

    Args:
        cfg: the run config (``env_settings.ray_address``, ``max_lifetime_restarts``).
        spec: the env's spec.
        factory: the picklable env factory (``marl.run.env_factory``).
        n: runners (``--num-envs``); areas: env copies per runner; seed: copy ``i`` resets with ``seed + i``.
        trainer: the run's trainer; when it is a :class:`marl.selfplay.GhostTrainer`, every :meth:`collect`
            plans the rollout's opponents with it and settles Elo after (see the module docstring).

    Raises:
        ConfigError: Ray cannot start or the address cannot be reached (one line).
    """

    def __init__(self, cfg, spec, factory, n: int, areas: int, seed: int | None, trainer=None):
        import ray

        from marl.selfplay import GhostTrainer

        from marl.raytools import start_or_connect

        self.n, self.areas = n, areas
        self.max_restarts = max(0, int(cfg.env_settings.max_lifetime_restarts))
        self.replaced = 0
        self.selfplay = trainer if isinstance(trainer, GhostTrainer) else None
        self._horizon: int | None = None
        self._params: tuple[int, dict, bool] | None = None  # (version, environment parameters, reset) for the runners
        from marl.config import ConfigError
        from marl.raytools import RayError, project_runtime_env

        try:
            self._owns_ray = start_or_connect(cfg.env_settings.ray_address, runtime_env=project_runtime_env())
        except RayError as exc:
            raise ConfigError(f"env_settings.ray_address: {exc}") from None
        self._data, self._seed = runner_config(cfg.model_dump(mode="json"), n), seed
        self._ray = ray
        self.runners = self._start(spec, factory)

    def _start(self, spec, factory) -> list:
        cls = _runner_class()
        self._generation = getattr(self, "_generation", -1) + 1  # respawned runners get names of their own
        tag = "" if self._generation == 0 else f"-g{self._generation}"
        return [cls.options(name=f"env-runner-{i}{tag}", max_restarts=self.max_restarts, max_task_retries=0)
                .remote(self._data, spec, factory, i, self.areas, self._seed) for i in range(self.n)]

    def _stop_runners(self) -> None:
        """Close the runners' envs (30 s at most) and kill the actors."""
        ray = self._ray
        try:
            ray.get([r.close.remote() for r in self.runners], timeout=30)
        except Exception:  # noqa: BLE001 - a dead runner has nothing left to close
            pass
        for r in self.runners:
            try:
                ray.kill(r)
            except Exception:  # noqa: BLE001
                pass
        self.runners = []

    def _wait_gone(self, runners: list, timeout: float = 30.0) -> None:
        """Wait (``timeout`` seconds at most) until killed runners are dead, so that their player ports are free
        for the runners that replace them."""
        ray = self._ray
        deadline = time.monotonic() + timeout
        for r in runners:
            while time.monotonic() < deadline:
                try:
                    ray.get(r.horizon.remote(), timeout=1.0)
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
                    break
                except ray.exceptions.GetTimeoutError:
                    pass
                time.sleep(0.2)

    def pause(self) -> None:
        """Close every runner's envs (Unity players) and kill the runners, waiting (30 s at most) until they are
        gone so that their player ports are free; Ray stays up. :meth:`restart` starts new ones (agent slots that
        grew, ``marl.grow``: the driver probes a player with more slots in between)."""
        old = list(self.runners)
        self._stop_runners()
        self._wait_gone(old)

    def restart(self, spec, factory, trainer=None) -> None:
        """Start new runners for a new ``spec`` and ``factory`` after :meth:`pause` (each builds a copy of
        ``trainer``'s algorithm for the new spec); the current environment parameters go with the next collect."""
        from marl.selfplay import GhostTrainer

        self.selfplay = trainer if isinstance(trainer, GhostTrainer) else None
        self._horizon = None
        if self._params is not None:  # new players: apply the current lesson's values again
            self._params = (self._params[0] + 1, self._params[1], False)
        self.runners = self._start(spec, factory)

    # --- the curriculum link (marl.run._CurriculumLink) drives the runners as it drives a local VecEnv ---
    def set_environment_parameters(self, values: dict) -> None:
        """Send ``environment_parameters`` values with the next collect; each runner applies them to its env
        copies once (Unity side channel / the env's ``set_environment_parameters``) before collecting."""
        version = 0 if self._params is None else self._params[0] + 1
        self._params = (version, dict(values), False)

    def reset(self) -> None:
        """Ask the runners to reset their env copies after applying the current parameters (a lesson's
        ``require_reset``)."""
        if self._params is not None:
            self._params = (self._params[0], self._params[1], True)

    def horizon(self) -> int:
        """The most vector steps one runner takes in a rollout (asked once, from the first runner that answers).

        Raises:
            RunnersLost: no runner answered.
        """
        if self._horizon is None:
            ray = self._ray
            for r in self.runners:
                try:
                    self._horizon = int(ray.get(r.horizon.remote(), timeout=RUNNER_TIMEOUT_S))
                    break
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.RayTaskError,
                        getattr(ray.exceptions, "ActorUnavailableError", ray.exceptions.RayActorError)):
                    continue
            else:
                raise RunnersLost(f"no env runner of {self.n} came up; check the players' logs in "
                                  "results/<run-id>/run_logs/, then --resume")
        return self._horizon

    def collect(self, weights: dict, step: int, merge: Callable[[list], object]):
        """One rollout from every runner: ``(env steps, merged batch, seconds waiting, [EpisodeStats])``.

        With self-play (``trainer`` given at construction was a :class:`marl.selfplay.GhostTrainer`) the
        driver's ghosts plan the rollout's opponents first and update Elo from the runners' games after
        it (see the module docstring). The job sent to the runners, ``(weights, plans, parameters)``, is
        put in the object store once.

        Raises:
            RunnersLost: no runner returned a fragment.
        """
        ray = self._ray
        plans = None
        if self.selfplay is not None:
            plans = self.selfplay.plan_rollout(step, self.n * self.areas, self.horizon())
        ref = ray.put((weights, plans, self._params))
        t0 = time.perf_counter()
        futures = [r.collect.remote(ref, step) for r in self.runners]
        deadline = time.monotonic() + RUNNER_TIMEOUT_S
        results, lost = [], 0
        unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())
        for i, (runner, f) in enumerate(zip(self.runners, futures)):
            warned = False
            while True:
                try:
                    results.append(ray.get(f, timeout=max(1.0, deadline - time.monotonic())))
                    break
                except unavailable as exc:  # died and restarting: its fragment is gone; collect again from the new one
                    if not warned:
                        warned = True
                        self.replaced += 1
                        warnings.warn(f"env runner {i} lost mid-rollout ({type(exc).__name__}); its fragment is dropped "
                                      f"and Ray replaces it ({self.replaced} replacement(s) so far, at most "
                                      f"{self.max_restarts} per runner)", stacklevel=2)
                    if time.monotonic() > deadline:
                        lost += 1
                        break
                    time.sleep(0.5)
                    f = runner.collect.remote(ref, step)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.RayTaskError) as exc:
                    lost += 1
                    self.replaced += 1
                    warnings.warn(f"env runner {i} lost mid-rollout ({type(exc).__name__}); its fragment is dropped and Ray "
                                  f"replaces it ({self.replaced} replacement(s) so far, at most "
                                  f"{self.max_restarts} per runner)", stacklevel=2)
                    break
        if not results:
            raise RunnersLost(f"every env runner was lost in this rollout ({lost} of {self.n}); the run stops with a "
                              "checkpoint: check the players' logs in results/<run-id>/run_logs/, then --resume")
        t_wait = time.perf_counter() - t0
        if plans is not None:
            self.selfplay.settle_rollout([r[4] for r in results])
        steps = sum(r[0] for r in results)
        batch = merge([r[1] for r in results])
        stats = [s for r in results for s in r[3]]
        return steps, batch, t_wait, stats

    def close(self) -> None:
        """Close the runners' envs (Unity players) and tear down a Ray instance this run started."""
        self._stop_runners()
        if self._owns_ray:
            from marl.raytools import shutdown

            shutdown()

