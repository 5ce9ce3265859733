"""Matches per second of the local and Ray runners on the same cores: random vs MCTS(10) on connect_four.

    .venv/bin/python benchmarks/league_runners.py [--matches 300] [--workers 2] [--runs 3] [--ray-ports 20000-20099]
        [--matches-per-task N]

Each run starts a fresh runner, warms it up with ``--warmup`` matches (worker start-up, imports, player
loading), then times ``--matches`` matches on the warm workers. Runs alternate local / Ray so both see the same
machine load. A match lasts about 10 ms of play on an idle core (``--simulations`` sets the MCTS budget).
Prints each run, the means, and Ray's mean as a fraction of the local mean (the target is >= 95%). On a shared,
loaded machine wall-clock rates swing by 2x between runs, so it also prints matches per CPU-second of the whole
process tree (runner, workers, Ray's own processes): the rate each runner would reach on cores of its own.
"""
from __future__ import annotations

import argparse
import os
import statistics

from league.match import MatchTask
from league.policies import PlayerSpec
from league.runners import LocalRunner, RayRunner


def tasks(n: int, tag: str, simulations: int = 10) -> list[MatchTask]:
    """``n`` connect_four matches random vs MCTS(``simulations``), seats alternating, seeds 0..n-1."""
    seats = (PlayerSpec("random", "bot:random"), PlayerSpec(f"mcts-{simulations}", f"bot:mcts?simulations={simulations}"))
    return [MatchTask(f"{tag}{i}", "openspiel:connect_four", i, seats if i % 2 else seats[::-1]) for i in range(n)]


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its live descendants (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                stats[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
            except (OSError, IndexError, ValueError):
                pass
    mine, todo = {os.getpid()}, [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in mine:
                mine.add(pid)
                todo.append(pid)
    return sum(stats[p][1] for p in mine if p in stats)


def measure(kind: str, a) -> tuple[float, float]:
    """``(warm matches/s, warm matches per CPU-second of the whole process tree)`` of one fresh runner."""
    runner = LocalRunner(a.workers) if kind == "local" else RayRunner(a.workers, a.address,
                                                                       matches_per_task=a.matches_per_task,
                                                                       ray_ports=a.ray_ports)
    with runner:
        runner.run(tasks(a.warmup, "c", a.simulations), lambda r: None)
        cpu0 = tree_cpu_seconds()
        warm = runner.run(tasks(a.matches, "w", a.simulations), lambda r: None)
        cpu = tree_cpu_seconds() - cpu0
    if warm.failed:
        raise SystemExit(f"{kind}: {len(warm.failed)} matches failed: {next(iter(warm.failed.values()))}")
    return warm.matches_per_second, warm.completed / max(cpu, 1e-9)


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
    per_cpu: dict[str, list[float]] = {"local": [], "ray": []}
    for run in range(a.runs):
        for kind in ("local", "ray"):
            wall, cpu = measure(kind, a)
            rates[kind].append(wall)
            per_cpu[kind].append(cpu)
            print(f"run {run + 1}: {kind:5s} {wall:.1f} matches/s, {cpu:.1f} matches per CPU-second", flush=True)
    loc, ray = statistics.mean(rates["local"]), statistics.mean(rates["ray"])
    cloc, cray = statistics.mean(per_cpu["local"]), statistics.mean(per_cpu["ray"])
    print(f"{a.workers} workers, {a.matches} warm matches per run (means of {a.runs} runs): local {loc:.1f}, "
          f"ray {ray:.1f} matches/s, ray / local = {100 * ray / loc:.1f}%; per CPU-second of all their processes: "
          f"local {cloc:.1f}, ray {cray:.1f}, ray / local = {100 * cray / cloc:.1f}%")


if __name__ == "__main__":
    main()
