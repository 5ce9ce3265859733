"""Figures of a finished self-play run: training budget, Self-play/ELO over training, W/D/L vs opponents.

``python benchmarks/selfplay_report.py results/c4 --opponent random=1000 --opponent mcts:25=400 --opponent mcts:100=200``

Prints the env steps and wall time from ``run_logs/timers.json``, the ``Self-play/ELO`` curve from the
run's TensorBoard events (and the final Elo in ``training_status.json``), then plays the final policy
(``checkpoint.pt``, greedy) against each opponent over ``N`` games split evenly over both seats
(:func:`marl.evaluate_vs.play_games`) and prints win/draw/loss with 95% Wilson intervals.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def elo_curve(run_dir: Path, behavior: str) -> list[tuple[int, float]]:
    """``[(env step, Self-play/ELO)]`` from the behavior's TensorBoard events (empty if none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / behavior))
    acc.Reload()
    if "Self-play/ELO" not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.value) for e in acc.Scalars("Self-play/ELO")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--behavior", default="player")
    p.add_argument("--opponent", action="append", default=[], help="NAME=GAMES, e.g. random=1000 or mcts:25=400")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    from envs.adapter import ArrayEnv
    from marl.evaluate_vs import _env_for, format_report, load_player, make_opponent, play_games

    run = Path(args.run_dir)
    timers = json.loads((run / "run_logs" / "timers.json").read_text())
    status = json.loads((run / "run_logs" / "training_status.json").read_text())
    print(f"run {run}: {timers['metadata']['end_step']} env steps in {timers['total']:.0f} s wall time "
          f"(env {timers['children']['env_step']['total']:.0f} s, update {timers['children']['trainer_update']['total']:.0f} s)")
    curve = elo_curve(run, args.behavior)
    if curve:
        picks = curve[:: max(1, len(curve) // 8)] + ([curve[-1]] if (len(curve) - 1) % max(1, len(curve) // 8) else [])
        print("Self-play/ELO: " + ", ".join(f"{s}: {v:.0f}" for s, v in picks))
    print(f"final Elo (training_status.json): {status[args.behavior].get('elo')}")
    env_id, kwargs = _env_for(run, None)
    env = ArrayEnv(env_id, kwargs)
    player = load_player(run)
    for i, spec in enumerate(args.opponent):
        name, _, games = spec.rpartition("=")
        opp = make_opponent(name, args.seed + 1000 * (i + 1))
        rep = play_games(env, args.behavior, player, opp, int(games), seed=args.seed)
        print("\n".join(format_report(run.name, rep)), flush=True)


if __name__ == "__main__":
    main()
