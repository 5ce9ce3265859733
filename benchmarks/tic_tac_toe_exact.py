"""Exact outcome of a trained tic-tac-toe policy against a uniform-random opponent, both seats.

Sampling 1,000 games can miss a rare losing line; tic-tac-toe is small enough to walk every game
a uniform-random opponent can produce against the (greedy) policy, so this prints the exact
win/draw/loss probabilities per seat and the number of distinct losing lines (0 = the policy
never loses to random play).

    python benchmarks/tic_tac_toe_exact.py results/ttt                  # the run's latest checkpoint
    python benchmarks/tic_tac_toe_exact.py results/ttt/player/player-1601664.pt

Observations and masks are built as ``openspiel:tic_tac_toe`` through shimmy gives them to the
trainer (``state.observation_tensor(seat)``, legal-move mask), the agent index is the seat.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyspiel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl.checkpoint import CheckpointError  # noqa: E402
from marl.inference import load_policy  # noqa: E402


def exact_vs_random(policy, seat: int) -> dict:
    """``{"win", "draw", "loss"}`` probabilities and ``losing_lines`` for ``policy`` in ``seat``."""
    game = pyspiel.load_game("tic_tac_toe")
    shape = game.observation_tensor_shape()
    out = {"win": 0.0, "draw": 0.0, "loss": 0.0, "losing_lines": 0}
    cache: dict[str, int] = {}

    def greedy(state) -> int:
        key = str(state)
        if key not in cache:
            obs = np.asarray(state.observation_tensor(seat), np.float32).reshape(1, *shape)
            mask = np.zeros((1, game.num_distinct_actions()), np.float32)
            mask[0, state.legal_actions(seat)] = 1.0
            d, _, _ = policy.act(obs, np.array([seat]), mask, deterministic=True)
            cache[key] = int(np.asarray(d).reshape(-1)[0])
        return cache[key]

    def walk(state, p: float) -> None:
        if state.is_terminal():
            r = state.returns()[seat]
            out["win" if r > 0 else "loss" if r < 0 else "draw"] += p
            out["losing_lines"] += r < 0
            return
        if state.current_player() == seat:
            walk(state.child(greedy(state)), p)
        else:
            moves = state.legal_actions()
            for a in moves:
                walk(state.child(a), p / len(moves))

    walk(game.new_initial_state(), 1.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="results/<run-id>, a .pt checkpoint/snapshot or an .onnx file")
    args = ap.parse_args()
    try:
        policy = load_policy(args.policy)
    except (CheckpointError, OSError) as exc:
        sys.exit(f"error: {exc}")
    for seat in (0, 1):
        r = exact_vs_random(policy, seat)
        print(f"{args.policy} seat {seat} vs uniform random (exact): win {r['win']:.4f}, draw {r['draw']:.4f}, "
              f"loss {r['loss']:.6f}, losing lines {r['losing_lines']}", flush=True)


if __name__ == "__main__":
    main()
