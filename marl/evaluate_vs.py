"""Play a trained policy against named opponents and report win/draw/loss with 95% intervals.

``marl-evaluate-vs POLICY --opponent random --opponent mcts:25 --games 1000``

* ``POLICY``: ``results/<run-id>`` (its behavior's ``checkpoint.pt``), a checkpoint or snapshot
  ``.pt``, or an ``.onnx`` file (then ``--env`` is required unless the file is inside a run folder).
  Anything :func:`marl.inference.load_policy` reads.
* opponents: ``random`` (uniform over legal actions), ``mcts:N`` (OpenSpiel's ``MCTSBot``, UCT
  c=2, N simulations, one random rollout per leaf, as in OpenSpiel's ``examples/mcts.py``; only
  for ``openspiel:<game>`` envs), or a path to a policy file / run folder (a snapshot, a checkpoint,
  an ONNX file).
* seats: the games are split evenly over the learner's seats/teams (``--seat`` picks one); the
  report gives W/D/L per seat and overall, with Wilson score 95% intervals (Wilson 1927). A shared
  policy acts in each seat with that seat's agent id, as in training (an ONNX brain uses the file
  exported for that slot, ``<name>_agent<i>.onnx``).

Games run through the one play loop (:func:`marl.play.play_episodes`) on the run's own env
settings (``env_kwargs``, ``behavior_map``, ``supersuit`` from its ``configuration.yaml``). A game's
outcome compares the two sides' mean episode returns (the game's returns for OpenSpiel games).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from envs.adapter import ArrayEnv
from envs.registry import EnvError
from marl.checkpoint import CheckpointError
from marl.inference import load_policy, make_policy
from marl.play import play_episodes
from marl.policy import Policy, PolicyError
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


def make_opponent(name: str, seed: int = 0) -> Policy:
    """``random``, ``mcts:N`` or a policy path (see the module docstring).

    Raises:
        EvaluationError: unknown name / missing or unreadable file.
    """
    if name.startswith("mcts:") and not name[5:].isdigit():
        raise EvaluationError(f"opponent '{name}': expected mcts:<simulations>, e.g. mcts:25")
    try:
        return make_policy(name, seed)
    except (PolicyError, CheckpointError) as exc:
        raise EvaluationError(f"opponent {exc}" if str(exc).startswith("'") else str(exc)) from None


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


def play_games(make_env: Callable[[int], ArrayEnv], behavior: str, policy: Policy, opponent: Policy, games: int,
               seats: list[int] | None = None, seed: int = 0, max_steps: int = 100000, stochastic: bool = False,
               opponent_name: str | None = None) -> Report:
    """Play ``games`` games of ``policy`` (on one team/seat) against ``opponent`` (all other slots).

    Args:
        make_env: ``make_env(copy) -> ArrayEnv`` for the game (turn-based or simultaneous); its behavior
            ``behavior`` must span 2+ teams/seats and be the env's only behavior.
        policy, opponent: :class:`marl.policy.Policy` objects.
        games: games in total, split evenly over ``seats`` (team indices as :func:`marl.selfplay.team_slots`).
        seats: which of the policy's teams to play (default all).
        seed: seat ``k``'s games use the play loop's seed ``seed + 100003 * k``.
        max_steps: a game longer than this many env steps raises (a stuck env).
        stochastic: sample both sides' actions instead of the greedy ones.

    Returns:
        a :class:`Report` (outcome = comparison of the two sides' mean episode returns).

    Raises:
        EvaluationError: bad seats, a policy that does not fit, or a game that does not end.
    """
    probe = make_env(0)
    try:
        spec = probe.spec
        turn_based = probe.turn_based
    finally:
        probe.close()
    if spec.names != [behavior]:
        raise EvaluationError(f"env '{spec.env_id}' has behaviors {spec.names}; evaluate-vs plays the seats of one "
                              "behavior against each other")
    bspec = spec.behavior(behavior)
    teams = team_slots(bspec, turn_based)
    seats = list(range(len(teams))) if seats is None else seats
    if not seats or any(not 0 <= s < len(teams) for s in seats):
        raise EvaluationError(f"--seat: expected seats in 0..{len(teams) - 1}, got {seats}")
    report = Report(opponent_name or opponent.name, {s: Score() for s in seats})
    t0 = time.time()
    for k, seat in enumerate(seats):
        n = games // len(seats) + (k < games % len(seats))
        if n == 0:
            continue
        mine = np.zeros(bspec.n_agents, np.bool_)
        mine[teams[seat]] = True
        seating = {behavior: [policy if m else opponent for m in mine]}
        try:
            results = play_episodes(make_env, seating, n, seed=seed + 100003 * k, deterministic=not stochastic,
                                    max_steps=max_steps)
        except PolicyError as exc:
            raise EvaluationError(str(exc)) from None
        for res in results:
            if res.cut:
                raise EvaluationError(f"a game did not end within {max_steps} env steps")
            r = res.returns[behavior].astype(np.float64)
            a, b = r[mine], r[~mine]
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            diff = (a.mean() if a.size else 0.0) - (b.mean() if b.size else 0.0)
            report.per_seat[seat].add(1.0 if diff > 0 else 0.0 if diff < 0 else 0.5)
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


def _env_for(policy_path: Path, env_id: str | None) -> tuple[str, dict, dict]:
    """The env to play on: ``--env``, the run's configuration, or the checkpoint's ``env_id``.

    Returns:
        ``(env id, env kwargs, {"behavior_map": ..., "supersuit": ...})``: the run's env settings
        apply (an ONNX file or checkpoint inside ``results/<run-id>/`` finds its run).
    """
    run = policy_path if policy_path.is_dir() else None
    if run is None:
        for parent in policy_path.resolve().parents:
            if (parent / "configuration.yaml").is_file():
                run = parent
                break
    kwargs: dict = {}
    extra: dict = {}
    if run is not None and (run / "configuration.yaml").is_file():
        import yaml

        es = (yaml.safe_load((run / "configuration.yaml").read_text()) or {}).get("env_settings", {}) or {}
        run_env = es.get("env_path")
        if env_id is None or env_id == run_env:
            env_id = run_env
            kwargs = es.get("env_kwargs") or {}
            extra = {"behavior_map": es.get("behavior_map") or {}, "supersuit": es.get("supersuit") or [],
                     "image_layout": es.get("image_layout") or "auto"}
    if env_id is None and policy_path.suffix == ".pt":
        try:
            env_id = load_checkpoint_env(policy_path)
        except CheckpointError as exc:
            raise EvaluationError(str(exc)) from None
    if not env_id:
        raise EvaluationError(f"{policy_path}: cannot tell which env it plays; pass --env (e.g. --env openspiel:connect_four)")
    return env_id, kwargs, extra


def env_maker(policy_path: Path, env_id: str | None = None, overrides: dict | None = None
              ) -> tuple[str, Callable[[int], ArrayEnv]]:
    """``(env id, make_env(copy) -> ArrayEnv)`` for playing ``policy_path`` with its run's env settings
    (:func:`_env_for`); ``overrides`` replaces some ``env_kwargs`` (e.g. ``{"ball_touch": 0.0}``).

    Raises:
        EvaluationError: the env cannot be told (see :func:`_env_for`).
    """
    env_id, kwargs, extra = _env_for(Path(policy_path), env_id)
    kwargs = {**kwargs, **(overrides or {})}

    def make_env(copy: int) -> ArrayEnv:
        return ArrayEnv(env_id, kwargs, behavior_map=extra.get("behavior_map"), supersuit=extra.get("supersuit"),
                        image_layout=extra.get("image_layout", "auto"))

    return env_id, make_env


def load_checkpoint_env(path: Path) -> str | None:
    """The ``env_id`` recorded in a checkpoint."""
    from marl.checkpoint import load_checkpoint

    return load_checkpoint(path).get("env_id")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="marl-evaluate-vs",
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
    p.add_argument("--debug", action="store_true", help="full tracebacks")
    args = p.parse_args(argv)
    if args.games < 1:
        p.error("--games must be >= 1")
    try:
        path = Path(args.policy)
        if not path.exists():
            raise EvaluationError(f"{path}: no such policy file or run folder")
        env_id, make_env = env_maker(path, args.env)
        torch.manual_seed(args.seed)

        probe = make_env(0)
        names = probe.spec.names
        probe.close()
        behavior = args.behavior or names[0]
        if args.behavior is None and len(names) > 1:
            raise EvaluationError(f"env '{env_id}' has behaviors {names}; pick one with --behavior")
        try:
            policy = load_policy(path, behavior if path.is_dir() else None)
        except CheckpointError as exc:
            raise EvaluationError(str(exc)) from None
        for i, name in enumerate(args.opponent):
            opp = make_opponent(name, args.seed + 1000 * (i + 1))
            rep = play_games(make_env, behavior, policy, opp, args.games, args.seat, args.seed,
                             stochastic=args.stochastic, opponent_name=name)
            if args.json:
                print(json.dumps({"policy": str(path), **rep.as_dict()}), flush=True)
            else:
                print("\n".join(format_report(path.name, rep)), flush=True)
    except (EvaluationError, EnvError, CheckpointError, PolicyError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}; run with --debug for the traceback", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
