"""Players that can act in an env: built-in bots, ONNX policies (onnxruntime) and trainer checkpoints.

A registered player's ``policy`` is either a file path or a bot spec:

* ``bot:random``: uniform over the legal actions (the action mask when the env gives one);
* ``bot:mcts?simulations=100&uct_c=2&rollouts=1``: OpenSpiel's ``MCTSBot`` with a
  ``RandomRolloutEvaluator`` (Kocsis & Szepesvari 2006 UCT; OpenSpiel ``open_spiel/python/algorithms/mcts.py``);
  needs an ``openspiel:`` env (it searches the underlying ``pyspiel`` state);
* ``*.onnx``: a brain in the ML-Agents contract (docs/unity_contract.md, "The ONNX brain"): inputs ``obs_0..obs_{n-1}`` float32
  ``[batch, ...]`` and ``action_masks`` float32 ``[batch, n_actions]`` (1 = allowed); output
  ``deterministic_discrete_actions`` int64 ``[batch, n_branches]`` (or ``deterministic_continuous_actions``);
* ``*.pt``: a trainer checkpoint, loaded lazily through ``marl.inference.load_policy`` (the trainer's module;
  see :class:`CheckpointPlayer`).

Every player implements :class:`PolicyPlayer`: ``reset(seed)`` before a match, ``act(turn)`` per decision.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import numpy as np

from league.errors import IncompatibleEnvError, PolicyFileError

POLICY_SUFFIXES = (".onnx", ".pt")


@dataclass
class Turn:
    """What a player sees when it must act.

    Attributes:
        env: the live env (AEC or parallel); bots that search (MCTS) read its game state.
        agent: the env agent name to act for.
        observation: the agent's raw observation (array, tuple of arrays, or PettingZoo ``{"observation", "action_mask"}`` dict).
        mask: int/bool ``[n_actions]`` legal-action mask (1 = allowed) or None.
        action_space: the agent's gymnasium action space.
    """

    env: Any
    agent: str
    observation: Any
    mask: np.ndarray | None
    action_space: Any


class PolicyPlayer(Protocol):
    """Anything that can play: ``reset(seed)`` then ``act(turn)`` returns an env action (int or array)."""

    def reset(self, seed: int) -> None: ...

    def act(self, turn: Turn) -> Any: ...


def file_sha256(path: str) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB chunks). Raises PolicyFileError when unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise PolicyFileError(f"policy file '{path}': cannot read ({exc.strerror})") from None
    return h.hexdigest()


def split_observation(obs: Any, mask: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Normalise an observation to a list of float32 arrays and pick up an embedded action mask."""
    if isinstance(obs, dict):
        if "action_mask" in obs and mask is None:
            mask = np.asarray(obs["action_mask"])
        if "observation" in obs:
            obs = obs["observation"]
        else:
            obs = [obs[k] for k in sorted(obs) if k != "action_mask"]
    parts = list(obs) if isinstance(obs, (tuple, list)) else [obs]
    return [np.asarray(p, dtype=np.float32) for p in parts], mask


def legal_actions(turn: Turn) -> np.ndarray | None:
    """Indices of legal actions from the mask, or None when there is no mask."""
    _, mask = split_observation(turn.observation, turn.mask)
    if mask is None:
        return None
    return np.flatnonzero(np.asarray(mask).reshape(-1) > 0)


class RandomBot:
    """Uniformly random legal action (seeded by :meth:`reset`); works in any env."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        """Reseed the action RNG."""
        self.rng = np.random.default_rng(seed)

    def act(self, turn: Turn) -> Any:
        """A random legal action: int for ``Discrete``; otherwise a seeded ``action_space.sample()``."""
        legal = legal_actions(turn)
        if legal is not None and len(legal):
            return int(self.rng.choice(legal))
        space = turn.action_space
        if hasattr(space, "n"):
            return int(self.rng.integers(space.n))
        space.seed(int(self.rng.integers(2**31)))
        return space.sample()


class MCTSBot:
    """OpenSpiel MCTS (UCT with random rollouts) over the env's ``pyspiel`` state.

    Args:
        simulations: MCTS simulations per move (strength grows with it).
        uct_c: UCT exploration constant (OpenSpiel's example uses 2).
        rollouts: random rollouts per leaf evaluation.
    """

    def __init__(self, simulations: int = 100, uct_c: float = 2.0, rollouts: int = 1) -> None:
        if simulations < 1 or rollouts < 1:
            raise PolicyFileError(f"bot:mcts: simulations and rollouts must be >= 1, got {simulations}, {rollouts}")
        self.simulations, self.uct_c, self.rollouts = int(simulations), float(uct_c), int(rollouts)
        self.seed = 0
        self._bots: dict[str, Any] = {}

    def reset(self, seed: int) -> None:
        """Reseed: the next move builds a fresh bot with ``RandomState(seed)``."""
        self.seed = seed
        self._bots.clear()

    def act(self, turn: Turn) -> int:
        """MCTS move for the current pyspiel state. Raises IncompatibleEnvError outside OpenSpiel envs."""
        from open_spiel.python.algorithms import mcts

        state = getattr(getattr(turn.env, "unwrapped", turn.env), "game_state", None)
        if state is None or not hasattr(state, "legal_actions"):
            raise IncompatibleEnvError("bot:mcts needs an OpenSpiel env ('openspiel:<game>'); this env has no pyspiel state")
        game = state.get_game()
        key = str(game)
        bot = self._bots.get(key)
        if bot is None:
            rs = np.random.RandomState(self.seed % (2**32))
            bot = mcts.MCTSBot(game, self.uct_c, self.simulations, mcts.RandomRolloutEvaluator(self.rollouts, rs),
                               random_state=rs, solve=True)
            self._bots[key] = bot
        return int(bot.step(state))


class OnnxPlayer:
    """An ONNX brain (ML-Agents contract) run with onnxruntime on one CPU thread.

    Observations are cast to float32 and reshaped to each ``obs_i`` input's shape when the element counts
    match (e.g. a ``[3, 6, 7]`` board into ``[126]``). Deterministic: uses ``deterministic_*_actions``.

    Raises:
        PolicyFileError: the file is missing, not ONNX, or lacks ``obs_0`` / an action output.
    """

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        if not os.path.isfile(path):
            raise PolicyFileError(f"policy file '{path}' does not exist")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise PolicyFileError(f"policy file '{path}': not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.path = path
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.obs_inputs = sorted((n for n in inputs if n.startswith("obs_")), key=lambda n: int(n[4:]))
        if not self.obs_inputs:
            raise PolicyFileError(f"policy file '{path}': no 'obs_0' input (expected the ML-Agents ONNX contract)")
        self.obs_shapes = [tuple(d if isinstance(d, int) else -1 for d in inputs[n].shape[1:]) for n in self.obs_inputs]
        self.mask_size = None
        if "action_masks" in inputs:
            dim = inputs["action_masks"].shape[-1]
            self.mask_size = dim if isinstance(dim, int) else None
        self.has_mask = "action_masks" in inputs
        outputs = [o.name for o in self.session.get_outputs()]
        if "deterministic_discrete_actions" in outputs:
            self.output, self.discrete = "deterministic_discrete_actions", True
        elif "deterministic_continuous_actions" in outputs:
            self.output, self.discrete = "deterministic_continuous_actions", False
        elif "discrete_actions" in outputs:
            self.output, self.discrete = "discrete_actions", True
        else:
            raise PolicyFileError(f"policy file '{path}': no 'deterministic_discrete_actions' or "
                                  "'deterministic_continuous_actions' output")

    def reset(self, seed: int) -> None:
        """Nothing to reseed: the policy is deterministic."""

    def feed(self, turn: Turn) -> dict[str, np.ndarray]:
        """The onnxruntime input dict for one turn. Raises IncompatibleEnvError on shape/size mismatch."""
        parts, mask = split_observation(turn.observation, turn.mask)
        if len(parts) != len(self.obs_inputs):
            raise IncompatibleEnvError(f"policy '{self.path}' expects {len(self.obs_inputs)} observation(s), "
                                       f"env agent '{turn.agent}' gives {len(parts)}")
        feed = {}
        for name, shape, x in zip(self.obs_inputs, self.obs_shapes, parts):
            if -1 not in shape and int(np.prod(shape)) != x.size:
                raise IncompatibleEnvError(f"policy '{self.path}' input {name} has shape {list(shape)}, env agent "
                                           f"'{turn.agent}' observation has shape {list(x.shape)}")
            feed[name] = x.reshape((1, *shape)) if -1 not in shape else x[None]
        if self.has_mask:
            n = self.mask_size or (int(turn.action_space.n) if hasattr(turn.action_space, "n") else None)
            if mask is None:
                if n is None:
                    raise IncompatibleEnvError(f"policy '{self.path}' needs action_masks of unknown size")
                m = np.ones((1, n), np.float32)
            else:
                m = np.asarray(mask, np.float32).reshape(1, -1)
                if n is not None and m.shape[1] != n:
                    raise IncompatibleEnvError(f"policy '{self.path}' has {n} actions, env agent '{turn.agent}' has "
                                               f"{m.shape[1]}")
            feed["action_masks"] = m
        return feed

    def act(self, turn: Turn) -> Any:
        """Run the model on one observation; returns an int (one discrete branch), an int64 array, or floats."""
        out = self.session.run([self.output], self.feed(turn))[0][0]
        if not self.discrete:
            return np.asarray(out, np.float32)
        out = np.asarray(out, np.int64).reshape(-1)
        return int(out[0]) if out.size == 1 else out


class CheckpointPlayer:
    """A trainer checkpoint (``.pt``) through ``marl.inference.load_policy`` (imported on first use).

    The trainer's contract (``marl/inference.py``): ``policy.act(obs float32 [B, ...], agent_index int64 [B],
    mask float32 [B, n] | None, hidden, deterministic=True) -> (discrete int64 [B, branches] | None,
    continuous float32 [B, n] | None, hidden)``. ``agent_index`` is the agent's slot among the env agents of
    its behavior (``player_1`` -> 1), modulo the policy's ``spec.n_agents``; recurrent state is kept per agent
    for the match and cleared by :meth:`reset`.

    Raises:
        PolicyFileError: the trainer's inference module is not available or cannot load the file.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise PolicyFileError(f"policy file '{path}' does not exist")
        try:
            from marl.inference import load_policy  # the trainer's loader (lazy: league does not import marl otherwise)
        except ImportError as exc:
            raise PolicyFileError(f"policy file '{path}': loading .pt checkpoints needs marl.inference.load_policy "
                                  f"({exc}); add the .onnx export instead") from None
        try:
            self.policy = load_policy(path)
        except Exception as exc:  # noqa: BLE001 - any loader failure is a bad file for the user
            raise PolicyFileError(f"policy file '{path}': cannot load checkpoint ({str(exc).splitlines()[0][:200]})") from None
        self.path = path
        self.hidden: dict[str, Any] = {}

    def reset(self, seed: int) -> None:
        """Forget recurrent state (actions are deterministic, nothing to reseed)."""
        self.hidden.clear()

    def _slot(self, turn: Turn) -> int:
        from envs.registry import behavior_of

        agents = list(getattr(turn.env, "possible_agents", [turn.agent]))
        same = [a for a in agents if behavior_of(a) == behavior_of(turn.agent)]
        slot = same.index(turn.agent) if turn.agent in same else 0
        n = int(getattr(getattr(self.policy, "spec", None), "n_agents", 0) or 0)
        return slot % n if n > 0 else slot

    def act(self, turn: Turn) -> Any:
        """One deterministic action for ``turn.agent`` (int for one discrete branch, else an array)."""
        parts, mask = split_observation(turn.observation, turn.mask)
        obs = parts[0][None] if len(parts) == 1 else np.concatenate([p.reshape(-1) for p in parts])[None]
        m = None if mask is None else np.asarray(mask, np.float32).reshape(1, -1)
        try:
            d, c, h = self.policy.act(obs, np.array([self._slot(turn)], np.int64), m, self.hidden.get(turn.agent),
                                      deterministic=True)
        except (RuntimeError, ValueError) as exc:
            raise IncompatibleEnvError(f"policy '{self.path}' cannot act for env agent '{turn.agent}' "
                                       f"(observation {list(parts[0].shape)}): {str(exc).splitlines()[0][:160]}") from None
        self.hidden[turn.agent] = h
        if d is not None:
            out = np.asarray(d, np.int64).reshape(-1)
            return int(out[0]) if out.size == 1 else out
        return np.asarray(c, np.float32).reshape(-1)


def parse_bot(spec: str) -> tuple[str, dict[str, str]]:
    """``"bot:mcts?simulations=100"`` -> ``("mcts", {"simulations": "100"})``."""
    body = spec.split(":", 1)[1]
    kind, _, query = body.partition("?")
    return kind, dict(parse_qsl(query, keep_blank_values=True))


BOTS = ("random", "mcts")


def validate_policy(policy: str) -> None:
    """Check a policy spec before registration (bot spec syntax, file exists with a known suffix).

    Raises:
        PolicyFileError: unknown bot, bad bot argument, missing file or unsupported suffix.
    """
    if policy.startswith("bot:"):
        make_player(policy, None, verify=False)
        return
    if not os.path.isfile(policy):
        raise PolicyFileError(f"policy file '{policy}' does not exist")
    if not policy.endswith(POLICY_SUFFIXES):
        raise PolicyFileError(f"policy file '{policy}': expected a .onnx or .pt file, or a bot spec (bot:random, "
                              "bot:mcts?simulations=N)")


def make_player(policy: str, policy_hash: str | None, *, verify: bool = True) -> PolicyPlayer:
    """Build a player from its stored policy spec.

    Args:
        policy: bot spec or file path (see module docstring).
        policy_hash: sha256 recorded at registration; checked when ``verify`` (a changed file is an error).

    Raises:
        PolicyFileError: unknown bot / bad arguments, missing or changed file, unloadable model.
    """
    if policy.startswith("bot:"):
        kind, args = parse_bot(policy)
        if kind == "random":
            if args:
                raise PolicyFileError(f"bot spec '{policy}': bot:random takes no arguments")
            return RandomBot()
        if kind == "mcts":
            allowed = {"simulations": int, "uct_c": float, "rollouts": int}
            bad = sorted(set(args) - allowed.keys())
            if bad:
                raise PolicyFileError(f"bot spec '{policy}': unknown argument(s) {', '.join(bad)}; "
                                      f"expected {', '.join(allowed)}")
            try:
                kw = {k: allowed[k](v) for k, v in args.items()}
            except ValueError:
                raise PolicyFileError(f"bot spec '{policy}': arguments must be numbers") from None
            return MCTSBot(**kw)
        raise PolicyFileError(f"bot spec '{policy}': unknown bot '{kind}'; expected one of {', '.join(BOTS)}")
    if not os.path.isfile(policy):
        raise PolicyFileError(f"policy file '{policy}' does not exist")
    if verify and policy_hash is not None and file_sha256(policy) != policy_hash:
        raise PolicyFileError(f"policy file '{policy}' changed since it was registered (sha256 differs); "
                              "register it again under a new name")
    if policy.endswith(".onnx"):
        return OnnxPlayer(policy)
    if policy.endswith(".pt"):
        return CheckpointPlayer(policy)
    raise PolicyFileError(f"policy file '{policy}': expected a .onnx or .pt file")


@dataclass(frozen=True)
class PlayerSpec:
    """What a match worker needs to build a player (picklable): registered name, policy spec and hash."""

    name: str
    policy: str
    policy_hash: str | None = None


@dataclass
class PlayerCache:
    """Per-process cache of loaded players (ONNX sessions are reused across matches)."""

    players: dict[tuple[str, str | None], PolicyPlayer] = field(default_factory=dict)

    def get(self, spec: PlayerSpec) -> PolicyPlayer:
        """The loaded player for ``spec`` (loads on first use; bots are fresh per spec)."""
        key = (spec.policy, spec.policy_hash)
        p = self.players.get(key)
        if p is None:
            p = make_player(spec.policy, spec.policy_hash)
            self.players[key] = p
        return p
