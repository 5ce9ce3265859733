"""Play a trained policy against named opponents and report win/draw/loss with 95% intervals.

``python -m marl.evaluate_vs POLICY --opponent random --opponent mcts:25 --games 1000``

* ``POLICY``: ``results/<run-id>`` (its behavior's ``checkpoint.pt``), a checkpoint or snapshot
  ``.pt``, or an ``.onnx`` file (then ``--env`` is required). Anything :func:`marl.inference.load_policy` reads.
* opponents: ``random`` (uniform over legal actions), ``mcts:N`` (OpenSpiel's ``MCTSBot``, UCT
  c=2, N simulations, one random rollout per leaf, as in OpenSpiel's ``examples/mcts.py``; only
  for ``openspiel:<game>`` envs), or a path to a policy file / run folder (a snapshot, a checkpoint,
  an ONNX file).
* seats: the games are split evenly over the learner's seats/teams (``--seat`` picks one); the
  report gives W/D/L per seat and overall, with Wilson score 95% intervals (Wilson 1927).

Games run in-process through :class:`envs.adapter.ArrayEnv`, the same observation path as
training (for OpenSpiel games the observation is ``state.observation_tensor(player)``, what shimmy
gives; MCTS plays on the env's underlying ``pyspiel`` state). A game's outcome compares the two
sides' episode returns (the game's returns for OpenSpiel games).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from envs.adapter import ArrayEnv
from envs.registry import EnvError
from envs.spec import BehaviorSpec
from marl.checkpoint import CheckpointError
from marl.inference import Policy, load_policy
from marl.selfplay import team_slots


class EvaluationError(ValueError):
    """A bad opponent name, policy file or env for an evaluation (one line for the user)."""


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95% for the default ``z``) of a proportion ``successes / n``; NaNs when ``n == 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ------------------------------------------------------------------------------------------ players
class Player:
    """Chooses actions for some slots of one behavior.

    ``act(env, spec, slots)`` returns ``(discrete int64 [n, n_branches] | None, continuous float32
    [n, n_cont] in [-1, 1] | None)`` for the slot indices ``slots`` (int64 ``[n]``), reading
    observations/masks from ``env.out``.
    """

    name = "player"

    def reset(self, seed: int) -> None:
        """Called before each game."""

    def act(self, env: ArrayEnv, spec: BehaviorSpec, slots: np.ndarray):
        raise NotImplementedError


class RandomPlayer(Player):
    """Uniform over the legal actions of each branch (uniform in [-1, 1] for continuous actions)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, env, spec, slots):
        a = spec.action
        d = c = None
        if a.is_discrete:
            mask = env.out[f"{spec.name}/mask"][slots]
            d = np.zeros((len(slots), len(a.discrete_branches)), np.int64)
            for i in range(len(slots)):
                start = 0
                for k, n in enumerate(a.discrete_branches):
                    legal = np.flatnonzero(mask[i, start:start + n] > 0.5)
                    d[i, k] = self.rng.choice(legal) if legal.size else 0
                    start += n
        if a.continuous_size:
            c = self.rng.uniform(-1, 1, (len(slots), a.continuous_size)).astype(np.float32)
        return d, c


class MCTSPlayer(Player):
    """OpenSpiel ``MCTSBot(game, uct_c, max_simulations, RandomRolloutEvaluator(n_rollouts))`` on the env's pyspiel state.

    Raises:
        EvaluationError: the env is not an OpenSpiel game, or ``simulations < 1``.
    """

    def __init__(self, simulations: int, uct_c: float = 2.0, rollouts: int = 1, seed: int = 0):
        if simulations < 1:
            raise EvaluationError(f"opponent mcts:{simulations}: the number of simulations must be >= 1")
        self.simulations, self.uct_c, self.rollouts = simulations, uct_c, rollouts
        self.name = f"mcts:{simulations}"
        self.rs = np.random.RandomState(seed)
        self.bot = None

    def act(self, env, spec, slots):
        state = getattr(env.env, "game_state", None)
        if state is None:
            raise EvaluationError(f"opponent {self.name}: MCTS needs an OpenSpiel env ('openspiel:<game>'), "
                                  f"got '{env.spec.env_id}'")
        if self.bot is None:
            from open_spiel.python.algorithms import mcts

            self.bot = mcts.MCTSBot(state.get_game(), self.uct_c, self.simulations,
                                    mcts.RandomRolloutEvaluator(self.rollouts, self.rs), random_state=self.rs)
        if len(slots) != 1 or state.current_player() != int(slots[0]):
            raise EvaluationError(f"opponent {self.name}: expected one OpenSpiel player to move, got slots {slots.tolist()}")
        return np.array([[self.bot.step(state)]], np.int64), None


class PolicyPlayer(Player):
    """A saved policy (:class:`marl.inference.Policy`): greedy unless ``stochastic``."""

    def __init__(self, policy: Policy, name: str, stochastic: bool = False):
        self.policy, self.name, self.stochastic = policy, name, stochastic
        self.hidden = None

    def reset(self, seed):
        self.hidden = None

    def act(self, env, spec, slots):
        obs = env.out[f"{spec.name}/obs"][slots]
        mask = env.out.get(f"{spec.name}/mask")
        mask = None if mask is None else mask[slots]
        d, c, _ = self.policy.act(obs, slots.astype(np.int64), mask, None, deterministic=not self.stochastic)
        return d, c


def load_player(path: str | Path, stochastic: bool = False) -> PolicyPlayer:
    """A :class:`PolicyPlayer` from a run folder, ``.pt`` or ``.onnx`` file.

    Raises:
        EvaluationError: missing or unreadable file.
    """
    try:
        return PolicyPlayer(load_policy(path), str(path), stochastic)
    except CheckpointError as exc:
        raise EvaluationError(str(exc)) from None


def make_opponent(name: str, seed: int = 0, stochastic: bool = False) -> Player:
    """``random``, ``mcts:N`` or a policy path (see the module docstring).

    Raises:
        EvaluationError: unknown name / missing file.
    """
    if name == "random":
        return RandomPlayer(seed)
    if name.startswith("mcts:"):
        n = name.split(":", 1)[1]
        if not n.isdigit():
            raise EvaluationError(f"opponent '{name}': expected mcts:<simulations>, e.g. mcts:25")
        return MCTSPlayer(int(n), seed=seed)
    if not Path(name).exists():
        raise EvaluationError(f"opponent '{name}': not 'random', 'mcts:N' or an existing policy file/run folder")
    return load_player(name, stochastic)


# ------------------------------------------------------------------------------------------ games
@dataclass
class Score:
    """Win/draw/loss counts of the evaluated policy."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def add(self, result: float) -> None:
        if result > 0.5:
            self.wins += 1
        elif result < 0.5:
            self.losses += 1
        else:
            self.draws += 1

    def as_dict(self) -> dict:
        n = self.games
        out = {"games": n, "wins": self.wins, "draws": self.draws, "losses": self.losses}
        for k in ("wins", "draws", "losses"):
            lo, hi = wilson_interval(getattr(self, k), n)
            out[f"{k}_rate"] = getattr(self, k) / n if n else float("nan")
            out[f"{k}_ci95"] = [lo, hi]
        out["score"] = (self.wins + 0.5 * self.draws) / n if n else float("nan")
        return out


@dataclass
class Report:
    opponent: str
    per_seat: dict[int, Score] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> Score:
        t = Score()
        for s in self.per_seat.values():
            t.wins, t.draws, t.losses = t.wins + s.wins, t.draws + s.draws, t.losses + s.losses
        return t

    def as_dict(self) -> dict:
        return {"opponent": self.opponent, "total": self.total.as_dict(), "seconds": self.seconds,
                "per_seat": {str(k): v.as_dict() for k, v in self.per_seat.items()}}


def play_games(env: ArrayEnv, behavior: str, player: Player, opponent: Player, games: int,
               seats: list[int] | None = None, seed: int = 0, max_steps: int = 100000) -> Report:
    """Play ``games`` games of ``player`` (on one team/seat) against ``opponent`` (all other slots).

    Args:
        env: the game (turn-based or simultaneous); its behavior ``behavior`` must span 2+ teams/seats.
        player, opponent: see :class:`Player`.
        games: games in total, split evenly over ``seats`` (team indices as :func:`marl.selfplay.team_slots`).
        seats: which of the player's teams to play (default all).
        seed: game ``g`` resets the env with ``seed + g``.
        max_steps: a game longer than this raises (a stuck env).

    Returns:
        a :class:`Report` (outcome = comparison of the two sides' mean episode returns).

    Raises:
        EvaluationError: bad seats, or a game that does not end.
    """
    spec = env.spec.behavior(behavior)
    teams = team_slots(spec, env.turn_based)
    seats = list(range(len(teams))) if seats is None else seats
    if not seats or any(not 0 <= s < len(teams) for s in seats):
        raise EvaluationError(f"--seat: expected seats in 0..{len(teams) - 1}, got {seats}")
    report = Report(opponent.name, {s: Score() for s in seats})
    t0 = time.time()
    o = env.out
    for g in range(games):
        seat = seats[g % len(seats)]
        mine = np.zeros(spec.n_agents, np.bool_)
        mine[teams[seat]] = True
        env.reset(seed + g)
        player.reset(seed + g)
        opponent.reset(seed + g)
        for _ in range(max_steps):
            active = o[f"{behavior}/active"]
            for who, sel in ((player, active & mine), (opponent, active & ~mine)):
                slots = np.flatnonzero(sel)
                if slots.size == 0:
                    continue
                d, c = who.act(env, spec, slots)
                if d is not None:
                    o[f"{behavior}/act_d"][slots] = d
                if c is not None:
                    o[f"{behavior}/act_c"][slots] = c
            stats = env.step()
            if stats is not None:
                r = stats.returns[behavior].astype(np.float64)
                a, b = r[mine], r[~mine]
                a, b = a[~np.isnan(a)], b[~np.isnan(b)]
                diff = (a.mean() if a.size else 0.0) - (b.mean() if b.size else 0.0)
                report.per_seat[seat].add(1.0 if diff > 0 else 0.0 if diff < 0 else 0.5)
                break
        else:
            raise EvaluationError(f"game {g} did not end within {max_steps} env steps")
    report.seconds = time.time() - t0
    return report


def format_report(name: str, rep: Report) -> list[str]:
    """Lines ``<policy> vs <opponent> [seat s]: W/D/L = ... (win rate x [lo, hi] 95%)``."""
    lines = []
    rows = [(f"seat {s}", sc) for s, sc in rep.per_seat.items()] + [("all seats", rep.total)]
    for label, sc in rows:
        d = sc.as_dict()
        lines.append(f"{name} vs {rep.opponent} [{label}]: {sc.games} games, W/D/L {sc.wins}/{sc.draws}/{sc.losses}; "
                     f"win {d['wins_rate']:.3f} [{d['wins_ci95'][0]:.3f}, {d['wins_ci95'][1]:.3f}], "
                     f"draw {d['draws_rate']:.3f} [{d['draws_ci95'][0]:.3f}, {d['draws_ci95'][1]:.3f}], "
                     f"loss {d['losses_rate']:.3f} [{d['losses_ci95'][0]:.3f}, {d['losses_ci95'][1]:.3f}] (95% Wilson)")
    lines.append(f"  ({rep.seconds:.1f} s)")
    return lines


def _env_for(policy_path: Path, env_id: str | None) -> tuple[str, dict]:
    """The env id (and kwargs) to play on: ``--env``, the run's configuration, or the checkpoint's ``env_id``."""
    run = policy_path if policy_path.is_dir() else None
    if run is None and policy_path.suffix == ".pt":
        for parent in policy_path.parents:
            if (parent / "configuration.yaml").is_file():
                run = parent
                break
    kwargs: dict = {}
    if run is not None and (run / "configuration.yaml").is_file():
        import yaml

        es = (yaml.safe_load((run / "configuration.yaml").read_text()) or {}).get("env_settings", {})
        env_id = env_id or es.get("env_path")
        kwargs = es.get("env_kwargs") or {}
    if env_id is None and policy_path.suffix == ".pt":
        import torch as _t

        env_id = _t.load(policy_path, map_location="cpu", weights_only=False).get("env_id")
    if not env_id:
        raise EvaluationError(f"{policy_path}: cannot tell which env it plays; pass --env (e.g. --env openspiel:connect_four)")
    return env_id, kwargs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m marl.evaluate_vs",
                                description="Play a trained policy against named opponents; W/D/L with 95% intervals.")
    p.add_argument("policy", help="results/<run-id>, a .pt checkpoint/snapshot, or an .onnx file")
    p.add_argument("--opponent", action="append", required=True,
                   help="random | mcts:N | path to a snapshot/checkpoint/ONNX/run folder (repeatable)")
    p.add_argument("--games", type=int, default=1000, help="games per opponent, split evenly over seats (default 1000)")
    p.add_argument("--seat", type=int, action="append", default=None, help="only this seat/team index (repeatable)")
    p.add_argument("--env", default=None, help="env id (default: the run's / checkpoint's)")
    p.add_argument("--behavior", default=None, help="behavior to evaluate (default: the env's only one)")
    p.add_argument("--stochastic", action="store_true", help="sample the policies' actions instead of the greedy ones")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object per opponent")
    args = p.parse_args(argv)
    if args.games < 1:
        p.error("--games must be >= 1")
    try:
        path = Path(args.policy)
        if not path.exists():
            raise EvaluationError(f"{path}: no such policy file or run folder")
        env_id, kwargs = _env_for(path, args.env)
        torch.manual_seed(args.seed)
        env = ArrayEnv(env_id, kwargs)
        behavior = args.behavior or env.spec.behaviors[0].name
        if args.behavior is None and len(env.spec.behaviors) > 1:
            raise EvaluationError(f"env '{env_id}' has behaviors {env.spec.names}; pick one with --behavior")
        player = load_player(path if not path.is_dir() else path, args.stochastic)
        bspec = env.spec.behavior(behavior)
        if tuple(player.policy.spec.obs_shape) != tuple(bspec.obs_shape) or player.policy.spec.n_agents != bspec.n_agents:
            raise EvaluationError(f"{path}: policy for {player.policy.spec.n_agents} agents with observations "
                                  f"{player.policy.spec.obs_shape} does not fit '{env_id}' behavior '{behavior}'")
        for i, name in enumerate(args.opponent):
            opp = make_opponent(name, args.seed + 1000 * (i + 1), args.stochastic)
            rep = play_games(env, behavior, player, opp, args.games, args.seat, args.seed)
            if args.json:
                print(json.dumps({"policy": str(path), **rep.as_dict()}), flush=True)
            else:
                print("\n".join(format_report(path.name, rep)), flush=True)
    except (EvaluationError, EnvError, CheckpointError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
