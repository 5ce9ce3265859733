"""Matches per second of the local and Ray runners (2 workers): random vs MCTS(10) on connect_four.

    .venv/bin/python benchmarks/league_runners.py [--matches 100] [--workers 2]

Worker start-up is included in the first batch; the steady-state figure is a second batch on warm workers.
"""
from __future__ import annotations

import argparse

from league.match import MatchTask
from league.policies import PlayerSpec
from league.runners import LocalRunner, RayRunner


def tasks(n: int, tag: str) -> list[MatchTask]:
    seats = (PlayerSpec("random", "bot:random"), PlayerSpec("mcts-10", "bot:mcts?simulations=10"))
    return [MatchTask(f"{tag}{i}", "openspiel:connect_four", i, seats if i % 2 else seats[::-1]) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--matches", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    for name, cls in (("local", LocalRunner), ("ray", RayRunner)):
        with cls(a.workers) as runner:
            cold = runner.run(tasks(a.matches, "c"), lambda r: None)
            warm = runner.run(tasks(a.matches, "w"), lambda r: None)
        print(f"{name:5s} runner, {a.workers} workers: {warm.matches_per_second:.1f} matches/s warm "
              f"({cold.matches_per_second:.1f} incl. start-up), {warm.completed + cold.completed} matches, "
              f"{len(warm.failed) + len(cold.failed)} failed")


if __name__ == "__main__":
    main()
