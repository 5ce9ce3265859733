"""The connect_four league (configs/league/connect_four.yaml): baselines plus trained snapshots, round robin.

Registers the config's players (random, MCTS at 10/50/200/800 simulations, and every snapshot of
results/connect_four_selfplay/ once that run exists) in a temporary store, plays a round robin and prints
the Bradley-Terry table, then checks that MCTS bots rank by simulation count and snapshots by training step.

    .venv/bin/python benchmarks/league_connect_four.py [--games-per-pair 4] [--workers 2] [--db sqlite:///...]
        [--run results/c4 --snapshots 5]    # another self-play run; 5 evenly spaced snapshots of it
        [--max-simulations 50]              # leave out the slower MCTS bots
        [--compare-defaults --tournaments 2]

``--compare-defaults`` plays the same league twice, each time as ``--tournaments`` successive round robins
(a league re-run as people do): "before" with the old defaults (``match.opening_moves: 0`` as ``league init
--env`` wrote it, ``tournament.seed: 0`` so every re-run reuses the seeds) and "after" with the new ones
(opening moves per env kind, a fresh recorded seed per tournament). It prints the distinct games (from the
action hashes), the replays, and each player's Bradley-Terry rating and interval under both.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from rich.console import Console
from rich.table import Table
from scipy.stats import spearmanr

from league.config import load_config
from league.leaderboard import leaderboard, rich_table
from league.league import League, find_snapshots
from league.records import diversity
from league.runners import LocalRunner
from league.store import LeagueStore, sqlite_url
from league.tournaments import run_round_robin

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "league", "connect_four.yaml")


def build(a, folder: str, opening_moves: int | None, seed: int | None) -> League:
    """A fresh league in ``folder`` with the config's players (and ``--run``'s snapshots)."""
    cfg = load_config(CONFIG)
    cfg.path = os.path.join(folder, "connect_four.yaml")  # copies and the store go to the temporary folder
    cfg.players = [p for p in cfg.players if not p.policy.startswith("bot:mcts") or p.version <= a.max_simulations]
    cfg.match.opening_moves = opening_moves
    cfg.tournament.seed = seed
    if a.run:
        cfg.snapshots = []
    league = League(cfg, LeagueStore(a.db or sqlite_url(os.path.join(folder, "league.db"))))
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
    return league


def play(a, league: League, tournaments: int) -> float:
    """``tournaments`` round robins; returns the seconds spent playing."""
    seconds = 0.0
    with LocalRunner(a.workers) as runner:
        for _ in range(tournaments):
            seconds += run_round_robin(league, runner, games_per_pair=a.games_per_pair).seconds
    return seconds


def compare_defaults(a) -> None:
    """The before/after table of ``--compare-defaults``."""
    out = {}
    for label, opening, seed in (("before", 0, 0), ("after", None, None)):
        with tempfile.TemporaryDirectory() as d:
            league = build(a, d, opening, seed)
            secs = play(a, league, a.tournaments)
            games = league.games()
            out[label] = (diversity(games), {r.player: r for r in leaderboard(league, "bt", games=games)},
                          league.config.match.opening_moves_for(league.config.env.id), secs)
    console = Console(width=160)
    t = Table(title=f"connect_four league, {a.tournaments} round robins of {a.games_per_pair} games per pair and "
                    "seat order: old defaults (opening_moves 0, seed 0) vs new (per env kind, fresh seeds)")
    for col in ("", "before", "after"):
        t.add_column(col, justify="right")
    (db, rb, ob, sb), (da, ra, oa, sa) = out["before"], out["after"]
    t.add_row("opening moves", str(ob), str(oa))
    t.add_row("games", str(db.games), str(da.games))
    t.add_row("distinct games", f"{db.distinct} ({100 * db.distinct / max(db.known, 1):.0f}%)",
              f"{da.distinct} ({100 * da.distinct / max(da.known, 1):.0f}%)")
    t.add_row("replays", str(db.replays), str(da.replays))
    t.add_row("replay warning", "yes" if db.mostly_replays else "no", "yes" if da.mostly_replays else "no")
    t.add_row("seconds playing", f"{sb:.0f}", f"{sa:.0f}")
    widths = {k: [r.upper - r.lower for r in rows.values() if r.lower is not None and r.upper is not None]
              for k, rows in (("b", rb), ("a", ra))}
    t.add_row("mean BT interval width", f"{sum(widths['b']) / max(len(widths['b']), 1):.0f}",
              f"{sum(widths['a']) / max(len(widths['a']), 1):.0f}")
    for name in sorted(ra, key=lambda n: -ra[n].rating):
        def cell(r):
            if r is None:
                return "-"
            iv = f" [{r.lower:.0f}, {r.upper:.0f}]" if r.lower is not None and r.upper is not None else ""
            return f"{r.rating:.0f}{iv}"
        t.add_row(name, cell(rb.get(name)), cell(ra.get(name)))
    console.print(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--games-per-pair", type=int, default=4, help="games per pair and seat order")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--run", help="self-play results folder (default: the config's snapshots: source)")
    ap.add_argument("--snapshots", type=int, default=0, help="keep N evenly spaced snapshots (0: all)")
    ap.add_argument("--max-simulations", type=int, default=10**9, help="leave out MCTS bots with more simulations")
    ap.add_argument("--compare-defaults", action="store_true", help="old vs new match/tournament defaults (table)")
    ap.add_argument("--tournaments", type=int, default=2, help="round robins per side of --compare-defaults")
    a = ap.parse_args()
    if a.snapshots < 0:
        ap.error("--snapshots must be >= 0")
    if a.compare_defaults:
        if a.db:
            ap.error("--compare-defaults uses two temporary stores; drop --db")
        compare_defaults(a)
        return
    with tempfile.TemporaryDirectory() as d:
        league = build(a, d, load_config(CONFIG).match.opening_moves, load_config(CONFIG).tournament.seed)
        secs = play(a, league, 1)
        n = league.store.match_count()
        print(f"{n} matches in {secs:.0f} s ({n / max(secs, 1e-9):.2f}/s)")
        rows = leaderboard(league, "bt")
        Console(width=140).print(rich_table(rows, "bt", "connect_four league (Bradley-Terry)"))
        print(diversity(league.games()).line())
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
