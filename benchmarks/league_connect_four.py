"""The connect_four league (configs/league/connect_four.yaml): baselines plus trained snapshots, round robin.

Registers the config's players (random, MCTS at 10/50/200/800 simulations, and every snapshot of
results/connect_four_selfplay/ once that run exists) in a temporary store, plays a round robin and prints
the Bradley-Terry table, then checks that MCTS bots rank by simulation count and snapshots by training step.

    .venv/bin/python benchmarks/league_connect_four.py [--games-per-pair 4] [--workers 2] [--db sqlite:///...]
        [--run results/c4 --snapshots 5]    # another self-play run; 5 evenly spaced snapshots of it
"""
from __future__ import annotations

import argparse
import os
import tempfile

from rich.console import Console
from scipy.stats import spearmanr

from league.config import load_config
from league.leaderboard import leaderboard, rich_table
from league.league import League, find_snapshots
from league.runners import LocalRunner
from league.store import LeagueStore, sqlite_url
from league.tournaments import run_round_robin

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "league", "connect_four.yaml")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--games-per-pair", type=int, default=4, help="games per pair and seat order")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--run", help="self-play results folder (default: the config's snapshots: source)")
    ap.add_argument("--snapshots", type=int, default=0, help="keep N evenly spaced snapshots (0: all)")
    a = ap.parse_args()
    if a.snapshots < 0:
        ap.error("--snapshots must be >= 0")
    cfg = load_config(CONFIG)
    if a.run:
        cfg.snapshots = []
    with tempfile.TemporaryDirectory() as d:
        league = League(cfg, LeagueStore(a.db or sqlite_url(os.path.join(d, "league.db"))))
        league.register_config_players()
        if a.run:
            snaps = find_snapshots(a.run)
            if a.snapshots == 1:
                snaps = snaps[-1:]
            elif a.snapshots > 1 and len(snaps) > a.snapshots:
                last = len(snaps) - 1
                snaps = [snaps[round(i * last / (a.snapshots - 1))] for i in range(a.snapshots)]
            for s in snaps:
                league.add_snapshot(s.path, s.run_id, s.behavior, s.step)
        with LocalRunner(a.workers) as runner:
            stats = run_round_robin(league, runner, games_per_pair=a.games_per_pair)
        print(f"{stats.completed} matches in {stats.seconds:.0f} s ({stats.matches_per_second:.2f}/s)")
        rows = leaderboard(league, "bt")
        Console(width=140).print(rich_table(rows, "bt", "connect_four league (Bradley-Terry)"))
        info = {p.name: p for p in league.store.players()}
        for tag, title in (("baseline", "MCTS by simulations"), ("snapshot", "snapshots by training step")):
            ranked = [r for r in rows if tag in info[r.player].tags and info[r.player].version > 0]
            if len(ranked) < 2:
                print(f"{title}: not enough players ({len(ranked)})")
                continue
            rho = spearmanr([r.rating for r in ranked], [info[r.player].version for r in ranked]).statistic
            order = [r.player for r in ranked]
            print(f"{title}: rating order {order}; spearman(rating, version) = {rho:.3f}")


if __name__ == "__main__":
    main()
