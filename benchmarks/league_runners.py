"""Matches per second of the local and Ray runners on the same cores: random vs MCTS(10) on connect_four.

    .venv/bin/python benchmarks/league_runners.py [--matches 300] [--workers 2] [--runs 3] [--ray-ports 20000-20099]
        [--matches-per-task N]

Each run starts a fresh runner, warms it up with ``--warmup`` matches (worker start-up, imports, player
loading), then times ``--matches`` matches on the warm workers. Runs alternate local / Ray so both see the same
machine load. A match lasts about 10 ms of play on an idle core (``--simulations`` sets the MCTS budget).
Prints each run, the means, and Ray's mean as a fraction of the local mean (the target is >= 95%).
"""
from __future__ import annotations

import argparse
import statistics

from league.match import MatchTask
from league.policies import PlayerSpec
from league.runners import LocalRunner, RayRunner


def tasks(n: int, tag: str, simulations: int = 10) -> list[MatchTask]:
    """``n`` connect_four matches random vs MCTS(``simulations``), seats alternating, seeds 0..n-1."""
    seats = (PlayerSpec("random", "bot:random"), PlayerSpec(f"mcts-{simulations}", f"bot:mcts?simulations={simulations}"))
    return [MatchTask(f"{tag}{i}", "openspiel:connect_four", i, seats if i % 2 else seats[::-1]) for i in range(n)]


def measure(kind: str, a) -> float:
    """Warm matches/s of one fresh runner of ``kind``."""
    runner = LocalRunner(a.workers) if kind == "local" else RayRunner(a.workers, a.address,
                                                                       matches_per_task=a.matches_per_task,
                                                                       ray_ports=a.ray_ports)
    with runner:
        runner.run(tasks(a.warmup, "c", a.simulations), lambda r: None)
        warm = runner.run(tasks(a.matches, "w", a.simulations), lambda r: None)
    if warm.failed:
        raise SystemExit(f"{kind}: {len(warm.failed)} matches failed: {next(iter(warm.failed.values()))}")
    return warm.matches_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matches", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--simulations", type=int, default=10)
    ap.add_argument("--matches-per-task", type=int, help="Ray matches per task (default: adaptive)")
    ap.add_argument("--address", help="Ray head to use (HOST:PORT); default: a local Ray started per run")
    ap.add_argument("--ray-ports", help="LOW-HIGH: the local Ray's ports all inside this range")
    a = ap.parse_args()
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    for run in range(a.runs):
        for kind in ("local", "ray"):
            rates[kind].append(measure(kind, a))
            print(f"run {run + 1}: {kind:5s} {rates[kind][-1]:.1f} matches/s", flush=True)
    loc, ray = statistics.mean(rates["local"]), statistics.mean(rates["ray"])
    print(f"{a.workers} workers, {a.matches} warm matches per run: local {loc:.1f}, ray {ray:.1f} matches/s "
          f"(means of {a.runs} runs); ray / local = {100 * ray / loc:.1f}%")


if __name__ == "__main__":
    main()
