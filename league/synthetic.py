"""Synthetic data for checking the league: Bradley-Terry game simulation and store load generation.

Used by the tests and ``benchmarks/league_*.py``; nothing here is needed to run a league.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid

import numpy as np

from league.records import Game, MatchResult, SeatResult


def simulate_bt_games(strengths: np.ndarray, n_games: int, rng: np.random.Generator,
                      draw_margin: float = 0.0) -> list[Game]:
    """Random pairings (uniform over ordered pairs of distinct players) decided by Bradley-Terry.

    Args:
        strengths: float ``[n_players]`` natural-log strengths; player i is named ``p{i}``.
        n_games: number of games.
        draw_margin: probability mass around 0.5 turned into draws: a game is a draw when
            ``|u - 0.5| < draw_margin / 2`` for the uniform draw u (0 = no draws).

    Returns:
        ``n_games`` :class:`Game` 1-v-1 records with ``seq`` 0..n-1.
    """
    n = len(strengths)
    i = rng.integers(0, n, n_games)
    j = (i + rng.integers(1, n, n_games)) % n
    p = 1.0 / (1.0 + np.exp(strengths[j] - strengths[i]))
    u = rng.random(n_games)
    out = []
    for k in range(n_games):
        if draw_margin and abs(u[k] - 0.5) < draw_margin / 2:
            s = 0.5
        else:
            s = 1.0 if u[k] < p[k] else 0.0
        out.append(Game.duel(f"p{i[k]}", f"p{j[k]}", s, k))
    return out


def fake_result(uid: str, a: str, b: str, score_a: float, seed: int = 0, worker: str = "") -> MatchResult:
    """A 1-v-1 connect-four-like :class:`MatchResult` (for store tests and load benchmarks)."""
    now = dt.datetime.now(dt.timezone.utc)
    sb = -score_a
    ra, rb = (0, 1) if score_a > sb else (1, 0) if score_a < sb else (0, 0)
    return MatchResult(uid=uid, env_id="openspiel:connect_four", seed=seed,
                       seats=(SeatResult(a, 0, ("player_0",), score_a, ra), SeatResult(b, 1, ("player_1",), sb, rb)),
                       episode_length=20, started_at=now, ended_at=now, worker=worker)


def write_load(url: str, uids: list[str], players: list[str], seed: int, repeat_every: int = 0) -> tuple[int, int]:
    """Worker body of the store load test: record one match per uid (re-sending every ``repeat_every``-th one).

    Returns:
        ``(written, duplicates_refused)``.
    """
    from league.store import LeagueStore

    store = LeagueStore(url, migrate=False)
    rng = np.random.default_rng(seed)
    written = refused = 0
    label = f"load:{os.getpid()}"
    try:
        for k, uid in enumerate(uids):
            a, b = rng.choice(len(players), 2, replace=False)
            r = fake_result(uid, players[a], players[b], float(rng.choice([-1.0, 0.0, 1.0])), k, label)
            for _ in range(2 if repeat_every and k % repeat_every == 0 else 1):
                if store.record_match(r):
                    written += 1
                else:
                    refused += 1
    finally:
        store.close()
    return written, refused


def new_uids(n: int) -> list[str]:
    """``n`` fresh random match uids."""
    return [uuid.uuid4().hex for _ in range(n)]
