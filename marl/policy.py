"""The one policy interface: how evaluation, self-play opponents and league matches act.

A :class:`Policy` acts for a batch of agents of ONE behavior; every source of actions implements
it: a torch checkpoint of any trainer (the algorithm's plugin loads it, see
:func:`marl.inference.load_policy`), an ONNX brain (:class:`marl.export.onnx_policy.OnnxPolicy`),
a uniform-random player (:class:`RandomPolicy`) and OpenSpiel's MCTS (:class:`MCTSPolicy`)::

    d, c, hidden = policy.act(obs, agent_index, mask=None, hidden=None, deterministic=True,
                              game_states=None)

* ``obs`` float32, or uint8 for a behavior whose ``spec.obs_dtype`` is ``"uint8"`` (raw 0-255 frames: multiply
  by ``spec.obs_scale`` to get the [0, 1] values the networks see), ``[B, *obs_shape]`` (or ``[B, obs_size]``);
  ``agent_index`` int64 ``[B]``: each
  row's slot within its behavior (a shared policy that takes an agent id uses it; others only
  take the batch size from it);
* ``mask`` float32 ``[B, sum(branches)]`` (1 = allowed) or None (all allowed);
* ``hidden``: the recurrent state the previous call returned for the same rows (None, or rows of
  zeros, = start of an episode);
* ``game_states``: for policies with ``needs_game_state`` (search bots), one game state per row
  (the OpenSpiel ``pyspiel.State`` the env plays on); ignored by the others;
* returns ``d`` int64 ``[B, n_branches]`` or None, ``c`` float32 ``[B, n_cont]`` in ``[-1, 1]``
  (already scaled by :func:`scale_continuous`) or None, and the new ``hidden`` (None if
  stateless).

The play loop (:mod:`marl.play`) and the trainers' collectors write ``d`` and ``c`` unchanged into
the env layer's ``act_d`` / ``act_c`` arrays; the env layer maps ``[-1, 1]`` to the env's bounds.
This module imports no algorithm.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.spec import ActionSpec, BehaviorSpec


class PolicyError(ValueError):
    """A policy that cannot be built or cannot act in the env it was given (one line for the user)."""


def scale_continuous(raw):
    """ML-Agents' continuous action clipping ``clamp(a, -3, 3) / 3``: raw Gaussian samples -> ``[-1, 1]``.

    Works on numpy arrays and torch tensors alike (``clip`` is both an ndarray and a Tensor method).
    Reference: ML-Agents ``mlagents/trainers/torch_entities/action_model.py`` (``_clip_action``
    via ``clip_action=True``) and the exported ``deterministic_continuous_actions`` output.
    """
    return raw.clip(-3.0, 3.0) / 3.0


class Policy:
    """Base class of every policy (see the module docstring for the contract).

    Attributes:
        spec: the behavior the policy was made for (observation shape, agents, actions).
        name: a label for reports.
        needs_game_state: True when :meth:`act` needs ``game_states`` (search bots).
    """

    spec: BehaviorSpec
    name: str = "policy"
    path: Path | None = None
    needs_game_state: bool = False

    def act(self, obs: np.ndarray, agent_index: np.ndarray, mask: np.ndarray | None = None, hidden: Any = None,
            deterministic: bool = True, game_states: list | None = None):
        raise NotImplementedError

    def reset_hidden(self, hidden, rows: np.ndarray):
        """Zero the recurrent state of ``rows`` (bool ``[B]``); stateless policies return ``hidden``."""
        if hidden is None:
            return None
        hidden = np.array(hidden, copy=True)
        hidden[np.asarray(rows, bool)] = 0.0
        return hidden

    def reset(self, seed: int) -> None:
        """Reseed any sampling this policy does (called before each match / evaluation)."""

    def check_fits(self, spec: BehaviorSpec, where: str = "") -> None:
        """Raise :class:`PolicyError` unless this policy can act for behavior ``spec``.

        Checks the observation size, the action branches / continuous size, and (for a policy that
        takes an agent id) the number of slots.
        """
        mine = getattr(self, "spec", None)
        if mine is None:
            return
        label = where or str(self.path or self.name)
        if int(np.prod(mine.obs_shape)) != int(np.prod(spec.obs_shape)):
            raise PolicyError(f"{label}: policy takes observations {list(mine.obs_shape)}, behavior '{spec.name}' "
                              f"gives {list(spec.obs_shape)}")
        a, b = mine.action, spec.action
        if tuple(a.discrete_branches) != tuple(b.discrete_branches) or a.continuous_size != b.continuous_size:
            raise PolicyError(f"{label}: policy acts with branches {list(a.discrete_branches)} + {a.continuous_size} "
                              f"continuous, behavior '{spec.name}' needs {list(b.discrete_branches)} + "
                              f"{b.continuous_size} continuous")
        if self.takes_agent_id and mine.n_agents != spec.n_agents:
            raise PolicyError(f"{label}: policy was trained for {mine.n_agents} agents of its behavior (it takes an "
                              f"agent id), behavior '{spec.name}' has {spec.n_agents}")

    @property
    def takes_agent_id(self) -> bool:
        """True when the policy's actions depend on ``agent_index`` (a shared policy with an id input)."""
        return False


def uniform_actions(rng: np.random.Generator, action: ActionSpec, n: int, mask: np.ndarray | None):
    """``n`` uniform-random actions: each discrete branch uniform over its allowed actions (all actions
    when a branch allows none), continuous uniform in ``[-1, 1]``.

    Returns:
        ``(d int64 [n, n_branches] | None, c float32 [n, n_cont] | None)``.
    """
    d = c = None
    if action.discrete_branches:
        d = np.zeros((n, len(action.discrete_branches)), np.int64)
        m = np.ones((n, action.mask_size), np.float32) if mask is None else np.asarray(mask, np.float32).reshape(n, -1)
        start = 0
        for k, size in enumerate(action.discrete_branches):
            w = m[:, start:start + size] > 0.5
            w[~w.any(1)] = True
            # one uniform draw per row, mapped onto that row's allowed actions
            counts = w.sum(1)
            pick = (rng.random(n) * counts).astype(np.int64)
            order = np.cumsum(w, 1) - 1
            d[:, k] = np.argmax(w & (order == pick[:, None]), 1)
            start += size
    if action.continuous_size:
        c = rng.uniform(-1.0, 1.0, (n, action.continuous_size)).astype(np.float32)
    return d, c


class RandomPolicy(Policy):
    """Uniform over the legal actions of each discrete branch, uniform in ``[-1, 1]`` for continuous ones.

    Args:
        spec: the behavior it acts for (only ``spec.action`` matters; ``None`` = fitted on first use
            by :meth:`for_spec`).
        seed: RNG seed (:meth:`reset` reseeds).
    """

    name = "random"

    def __init__(self, spec: BehaviorSpec | None = None, seed: int = 0):
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def check_fits(self, spec: BehaviorSpec, where: str = "") -> None:
        """A random player fits any behavior."""

    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        if self.spec is None:
            raise PolicyError("random policy: no behavior given (use RandomPolicy(spec))")
        d, c = uniform_actions(self.rng, self.spec.action, len(agent_index), mask)
        return d, c, None


class MCTSPolicy(Policy):
    """OpenSpiel's ``MCTSBot`` (UCT, ``RandomRolloutEvaluator``) searching the env's ``pyspiel`` state.

    Reference: Kocsis & Szepesvari 2006 (UCT); OpenSpiel ``open_spiel/python/algorithms/mcts.py``
    and ``examples/mcts.py`` (uct_c 2, one random rollout per leaf).

    Args:
        simulations: simulations per move (>= 1).
        uct_c: UCT exploration constant.
        rollouts: random rollouts per leaf evaluation (>= 1).
        seed: the bot's ``RandomState`` seed (:meth:`reset` reseeds).
        solve: MCTS-Solver backups of proven wins/losses (OpenSpiel's ``solve``).

    Raises:
        PolicyError: ``simulations`` or ``rollouts`` < 1; at :meth:`act`, no game state given (the
            env is not an OpenSpiel game).
    """

    needs_game_state = True

    def __init__(self, simulations: int = 100, uct_c: float = 2.0, rollouts: int = 1, seed: int = 0,
                 solve: bool = True):
        if simulations < 1 or rollouts < 1:
            raise PolicyError(f"mcts: simulations and rollouts must be >= 1, got {simulations}, {rollouts}")
        self.simulations, self.uct_c, self.rollouts, self.solve = int(simulations), float(uct_c), int(rollouts), solve
        self.name = f"mcts:{self.simulations}"
        self.spec = None
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.seed = int(seed)
        self._bots: dict[str, Any] = {}

    def check_fits(self, spec: BehaviorSpec, where: str = "") -> None:
        """Checked at :meth:`act` (needs an OpenSpiel game state)."""

    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        if not game_states or any(s is None or not hasattr(s, "legal_actions") for s in game_states):
            raise PolicyError(f"{self.name}: MCTS needs an OpenSpiel env ('openspiel:<game>'); this env has no "
                              "pyspiel state")
        from open_spiel.python.algorithms import mcts

        out = np.zeros((len(game_states), 1), np.int64)
        for i, state in enumerate(game_states):
            game = state.get_game()
            bot = self._bots.get(str(game))
            if bot is None:
                rs = np.random.RandomState(self.seed % (2**32))
                try:
                    bot = mcts.MCTSBot(game, self.uct_c, self.simulations,
                                       mcts.RandomRolloutEvaluator(self.rollouts, rs), random_state=rs, solve=self.solve)
                except ValueError as exc:  # OpenSpiel's MCTS takes sequential-move games only
                    raise PolicyError(f"{self.name}: OpenSpiel's MCTS cannot play '{game.get_type().short_name}' "
                                      f"({exc}); use a trained policy or random") from None
                self._bots[str(game)] = bot
            out[i, 0] = int(bot.step(state))
        return out, None, None


BOTS = ("random", "mcts")


def parse_bot(text: str) -> tuple[str, dict[str, str]]:
    """``"bot:mcts?simulations=100"`` or ``"mcts:100"`` -> ``("mcts", {"simulations": "100"})``;
    ``"random"`` / ``"bot:random"`` -> ``("random", {})``.

    Raises:
        PolicyError: not a bot spec.
    """
    from urllib.parse import parse_qsl

    body = text[4:] if text.startswith("bot:") else text
    if body.startswith("mcts:"):
        return "mcts", {"simulations": body[5:]}
    kind, _, query = body.partition("?")
    if kind not in BOTS:
        raise PolicyError(f"bot spec '{text}': unknown bot '{kind}'; expected one of {', '.join(BOTS)} "
                          "(e.g. bot:random, bot:mcts?simulations=100)")
    return kind, dict(parse_qsl(query, keep_blank_values=True))


def is_bot(text: str) -> bool:
    """True for ``random``, ``mcts:N`` and ``bot:...`` specs."""
    return text.startswith("bot:") or text == "random" or text.startswith("mcts:")


def make_bot(text: str, seed: int = 0) -> Policy:
    """A bot from its spec: ``bot:random``, ``bot:mcts?simulations=100&uct_c=2&rollouts=1``, ``random``, ``mcts:N``.

    Raises:
        PolicyError: unknown bot, unknown or non-numeric argument.
    """
    kind, args = parse_bot(text)
    if kind == "random":
        if args:
            raise PolicyError(f"bot spec '{text}': bot:random takes no arguments")
        return RandomPolicy(None, seed)
    allowed = {"simulations": int, "uct_c": float, "rollouts": int}
    bad = sorted(set(args) - allowed.keys())
    if bad:
        raise PolicyError(f"bot spec '{text}': unknown argument(s) {', '.join(bad)}; expected {', '.join(allowed)}")
    try:
        kw = {k: allowed[k](v) for k, v in args.items()}
    except ValueError:
        raise PolicyError(f"bot spec '{text}': arguments must be numbers (e.g. mcts:25)") from None
    return MCTSPolicy(**kw, seed=seed)
