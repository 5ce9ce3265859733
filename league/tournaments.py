"""Tournament drivers: turn a schedule into match tasks, run them, record results, snapshot ratings.

Modes: round robin (every pair, both seats, N games), Swiss (``rounds`` rounds paired by points), gauntlet
(one challenger against the field), and matchmade games (``n`` games whose opponent is chosen by rating
proximity, PFSP on the empirical payoff matrix, or uniformly; anchors are the players with fewest games).
Schedules and seeds come from ``numpy.random.default_rng(seed)``, so a tournament is reproducible.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Callable, Sequence

import numpy as np

from league.errors import LeagueError
from league.league import League
from league.match import MatchTask
from league.matchmaking import (Pairing, Payoff, gauntlet, pfsp_opponent, proximity_opponent, round_robin,
                                swiss_round)
from league.ratings import elo_ratings
from league.records import MatchResult
from league.runners import RunStats

Progress = Callable[[MatchResult, bool], None]


def make_tasks(league: League, pairings: Sequence[Pairing], label: str, rng: np.random.Generator) -> list[MatchTask]:
    """One :class:`MatchTask` per pairing with a fresh uid and a seed drawn from ``rng``.

    Raises:
        UnknownPlayerError / IncompatibleEnvError: a player is not registered or belongs to another env.
    """
    specs = {n: league.spec(n) for n in {p for pair in pairings for p in pair}}
    m = league.config.match
    replay = league.config.resolve(m.replay_dir) if m.replay_dir else None
    seeds = rng.integers(0, 2**31 - 1, size=len(pairings))
    env = league.config.env
    return [MatchTask(uid=uuid.uuid4().hex, env_id=env.id, env_kwargs=dict(env.kwargs),
                      seed=int(s), seats=tuple(specs[p] for p in pair), tournament=label, max_steps=m.max_steps,
                      opening_moves=m.opening_moves, replay_dir=replay, behavior_map=dict(env.behavior_map),
                      supersuit=tuple(env.supersuit))
            for pair, s in zip(pairings, seeds)]


def play(league: League, runner, tasks: list[MatchTask], progress: Progress | None = None) -> tuple[RunStats, list[MatchResult]]:
    """Run ``tasks`` and record each result in the store as it arrives (idempotent by uid)."""
    results: list[MatchResult] = []

    def on_result(r: MatchResult) -> None:
        new = league.store.record_match(r)
        results.append(r)
        if progress:
            progress(r, new)

    stats = runner.run(tasks, on_result)
    return stats, results


def _label(mode: str) -> str:
    return f"{mode}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_round_robin(league: League, runner, players: list[str] | None = None, games_per_pair: int | None = None,
                    seed: int | None = None, progress: Progress | None = None) -> RunStats:
    """Every pair of ``players`` (default: all active) plays ``games_per_pair`` games in each seat order."""
    t = league.config.tournament
    names = league.active_names(players)
    pairs = round_robin(names, games_per_pair or t.games_per_pair, both_seats=True)
    rng = np.random.default_rng(t.seed if seed is None else seed)
    stats, _ = play(league, runner, make_tasks(league, pairs, _label("round_robin"), rng), progress)
    league.snapshot_ratings()
    return stats


def run_gauntlet(league: League, runner, challenger: str, field: list[str] | None = None,
                 games_per_opponent: int | None = None, seed: int | None = None,
                 progress: Progress | None = None) -> RunStats:
    """``challenger`` plays each field player ``games_per_opponent`` games per seat order."""
    t = league.config.tournament
    league.spec(challenger)
    names = league.active_names(field)
    pairs = gauntlet(challenger, names, games_per_opponent or t.games_per_pair)
    rng = np.random.default_rng(t.seed if seed is None else seed)
    stats, _ = play(league, runner, make_tasks(league, pairs, _label("gauntlet"), rng), progress)
    league.snapshot_ratings()
    return stats


def run_swiss(league: League, runner, players: list[str] | None = None, rounds: int | None = None,
              seed: int | None = None, progress: Progress | None = None) -> tuple[RunStats, dict[str, float]]:
    """A Swiss tournament; returns the run stats and the final points (win 1, draw 0.5, bye 1)."""
    t = league.config.tournament
    names = league.active_names(players)
    rng = np.random.default_rng(t.seed if seed is None else seed)
    label = _label("swiss")
    base = elo_ratings(league.games(), league.config.ratings.settings(), names)
    ratings = {n: base[n].rating for n in names}
    points = {n: 0.0 for n in names}
    played: set[frozenset[str]] = set()
    total = RunStats()
    for r in range(rounds or t.rounds):
        pairs, bye = swiss_round(names, points, ratings, played, r, rng)
        if bye is not None:
            points[bye] += 1.0
        stats, results = play(league, runner, make_tasks(league, pairs, f"{label}-r{r + 1}", rng), progress)
        for res in results:
            a, b = res.seats[0], res.seats[1]
            played.add(frozenset((a.player, b.player)))
            sa = 1.0 if a.rank < b.rank else 0.0 if a.rank > b.rank else 0.5
            points[a.player] += sa
            points[b.player] += 1.0 - sa
        total.completed += stats.completed
        total.retried += stats.retried
        total.failed.update(stats.failed)
        total.seconds += stats.seconds
    league.snapshot_ratings()
    return total, points


def run_matchmade(league: League, runner, n_games: int, method: str | None = None, anchor: str | None = None,
                  players: list[str] | None = None, seed: int | None = None,
                  progress: Progress | None = None) -> RunStats:
    """``n_games`` games in batches of ``tournament.batch``; opponents chosen by ``method``.

    Args:
        method: ``proximity`` (Elo-predicted win probability closest to 0.5), ``pfsp`` (``tournament.pfsp_weighting``
            on the payoff matrix) or ``random``; default ``tournament.matchmaking``.
        anchor: if given, every game is this player against a chosen opponent; otherwise the player with the
            fewest games so far is the anchor of each game.

    Raises:
        LeagueError: unknown method or fewer than two players.
    """
    t = league.config.tournament
    method = method or t.matchmaking
    if method not in ("proximity", "pfsp", "random"):
        raise LeagueError(f"matchmaking '{method}' unknown; expected proximity, pfsp or random")
    names = league.active_names(players)
    if anchor is not None:
        league.spec(anchor)
        if anchor not in names:
            names.append(anchor)
    if len(names) < 2:
        raise LeagueError(f"need at least two active players, got {names}")
    rng = np.random.default_rng(t.seed if seed is None else seed)
    label = _label(f"matchmade-{method}")
    total = RunStats()
    done = 0
    while done < n_games:
        games = league.games()
        counts = Counter(p for g in games for team in g.teams for p in team)
        elo = elo_ratings(games, league.config.ratings.settings(), names)
        payoff = Payoff(games, names) if method == "pfsp" else None
        pairs: list[Pairing] = []
        for _ in range(min(t.batch, n_games - done)):
            if anchor is not None:
                a = anchor
            else:
                low = min(counts[n] for n in names)
                a = str(rng.choice([n for n in names if counts[n] == low]))
            others = [n for n in names if n != a]
            if method == "proximity":
                b = proximity_opponent(a, others, {k: v.rating for k, v in elo.items()}, rng)
            elif method == "pfsp":
                b = pfsp_opponent(a, others, payoff, rng, t.pfsp_weighting, t.pfsp_p)
            else:
                b = str(rng.choice(others))
            counts[a] += 1
            counts[b] += 1
            pairs.append((a, b) if rng.random() < 0.5 else (b, a))
        stats, _ = play(league, runner, make_tasks(league, pairs, label, rng), progress)
        done += len(pairs)
        total.completed += stats.completed
        total.retried += stats.retried
        total.failed.update(stats.failed)
        total.seconds += stats.seconds
    league.snapshot_ratings()
    return total
