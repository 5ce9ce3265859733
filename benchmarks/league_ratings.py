"""Synthetic check of the rating systems: players with known Bradley-Terry strengths play 20,000 games.

Prints, per system, the Spearman correlation between ratings and true strengths, and the empirical coverage
of the Bradley-Terry 95% bootstrap intervals over several independent leagues.

    .venv/bin/python benchmarks/league_ratings.py [--players 8] [--games 20000] [--replicates 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from league.ratings import RatingSettings, compute_ratings
from league.ratings.bradley_terry import ELO_PER_NAT, bradley_terry_ratings
from league.synthetic import simulate_bt_games


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=8)
    ap.add_argument("--games", type=int, default=20_000)
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--spread", type=float, default=2.0, help="strengths are linspace(-spread, spread) in nats")
    a = ap.parse_args()
    s = np.linspace(-a.spread, a.spread, a.players)
    print(f"players={a.players} games={a.games} adjacent gap={ELO_PER_NAT * (s[1] - s[0]):.0f} Elo")
    games = simulate_bt_games(s, a.games, np.random.default_rng(0))
    for system in ("elo", "openskill", "bt"):
        t = time.perf_counter()
        r = compute_ratings(system, games, RatingSettings(bootstrap=200))
        rho = spearmanr([r[f"p{i}"].rating for i in range(a.players)], s).statistic
        print(f"spearman {system:9s} = {rho:.3f}   ({time.perf_counter() - t:.2f} s)")
    hits, width = [], []
    for rep in range(a.replicates):
        g = simulate_bt_games(s, a.games, np.random.default_rng(1000 + rep))
        r = bradley_terry_ratings(g, RatingSettings(bootstrap=200, seed=rep))
        for i in range(a.players):
            true = 1200 + ELO_PER_NAT * (s[i] - s.mean())
            hits.append(r[f"p{i}"].lower <= true <= r[f"p{i}"].upper)
            width.append(r[f"p{i}"].upper - r[f"p{i}"].lower)
    print(f"bt 95% interval coverage = {np.mean(hits):.3f} over {len(hits)} intervals "
          f"({a.replicates} leagues), mean width {np.mean(width):.1f} Elo")


if __name__ == "__main__":
    main()
