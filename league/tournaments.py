"""Tournaments: a stored schedule of match tasks, played by a runner, resumable after any crash.

Modes: round robin (every pair, both seats, N games), Swiss (``rounds`` rounds paired by points), gauntlet
(one challenger against the field), and matchmade games (``n`` games whose opponent is chosen by rating
proximity, PFSP on the empirical payoff matrix, or uniformly; anchors are the players with fewest games).

Life of a tournament (:func:`start`, then :func:`run`; ``league run`` and ``league run --resume [ID]``):

1. :func:`start` gives it an id (``<mode>-<UTC time>-<6 hex>``), a seed (``--seed``, else the config's
   ``tournament.seed``, else a fresh random one) and its parameters (players, sizes, opening moves, ...), and
   stores them before any match is played. Round robin and gauntlet store their whole schedule in the same
   transaction. Swiss rounds and matchmade batches depend on earlier results, so each block (round / batch)
   is scheduled and stored right before its first match is played; the number of blocks is fixed at start.
2. Every scheduled match has an id derived from (tournament, seats, game index) (:func:`league.records.match_uid`)
   and a seed drawn from ``numpy.random.default_rng([tournament seed, block])``; the store records a match id
   once, so nothing is recorded twice, even across crashes and retries.
3. :func:`run` plays the scheduled matches that are not recorded yet, block by block, scheduling the next
   block only when the previous one is complete. A block with failed matches stops the tournament (it stays
   unfinished; ``--resume`` retries them). Once every block is scheduled and every match recorded, the ratings
   are snapshotted and the tournament is marked finished.

So a resumed tournament plays exactly its missing matches with the seeds they were scheduled with, and a new
tournament (a plain re-run) draws a new seed: repeated tournaments do not replay the same games.
"""
from __future__ import annotations

import datetime as dt
import math
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from league.errors import LeagueError
from league.league import League
from league.match import MatchTask
from league.matchmaking import (Pairing, Payoff, gauntlet, pfsp_opponent, proximity_opponent, round_robin,
                                swiss_round)
from league.ratings import elo_ratings
from league.records import MatchResult, ScheduledMatch, match_uid
from league.runners import RunStats
from league.store import TournamentInfo

Progress = Callable[[MatchResult, bool], None]
MODES = ("round_robin", "swiss", "gauntlet", "matchmade")


@dataclass
class Outcome:
    """What :func:`run` did.

    Attributes:
        tournament: the tournament after the run (``finished``, ``scheduled`` and ``recorded`` counts).
        stats: this run's matches (completed / retried / failed, seconds).
        points: Swiss points (win 1, draw 0.5, bye 1) over the recorded matches, else None.
        already_recorded: scheduled matches that were recorded before this run started (by an earlier run).
    """

    tournament: TournamentInfo
    stats: RunStats
    points: dict[str, float] | None = None
    already_recorded: int = 0
    blocks_left: int = 0


def new_tournament_id(mode: str) -> str:
    """``<mode>-<YYYYmmddTHHMMSS UTC>-<6 random hex>``."""
    return f"{mode}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def fresh_seed() -> int:
    """A random tournament seed in ``[0, 2**31 - 1)`` (from the OS's entropy, recorded with the tournament)."""
    return secrets.randbelow(2**31 - 1)


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The generator of one block's pairings and match seeds: ``numpy.random.default_rng([seed, block])``."""
    return np.random.default_rng([int(seed), int(block)])


def schedule_block(tid: str, block: int, pairings: Sequence[Pairing], rng: np.random.Generator,
                   earlier: Sequence[ScheduledMatch]) -> list[ScheduledMatch]:
    """Scheduled matches for ``pairings`` (block ``block``), after the ``earlier`` ones of the tournament.

    Game indices count the earlier matches with the same seats; seeds are drawn from ``rng`` in pairing order.
    """
    seen = Counter(m.seats for m in earlier)
    seeds = rng.integers(0, 2**31 - 1, size=len(pairings))
    out = []
    for k, (pair, s) in enumerate(zip(pairings, seeds)):
        seats = tuple(pair)
        gi = seen[seats]
        seen[seats] += 1
        out.append(ScheduledMatch(match_uid(tid, seats, gi), tid, block, len(earlier) + k, seats, gi, int(s)))
    return out


def start(league: League, mode: str, *, players: list[str] | None = None, games_per_pair: int | None = None,
          rounds: int | None = None, games: int | None = None, matchmaking: str | None = None,
          challenger: str | None = None, seed: int | None = None, tid: str | None = None) -> TournamentInfo:
    """Create a tournament: id, recorded seed, parameters and (round robin / gauntlet) the whole schedule.

    Args:
        mode: ``round_robin`` | ``swiss`` | ``gauntlet`` | ``matchmade``.
        players: names (default: every active player of the league's env).
        games_per_pair: round robin / gauntlet games per pair and seat order (default ``tournament.games_per_pair``).
        rounds: Swiss rounds (default ``tournament.rounds``).
        games: matchmade games (default ``tournament.games``), scheduled in batches of ``tournament.batch``.
        matchmaking: matchmade opponent choice ``proximity`` | ``pfsp`` | ``random`` (default ``tournament.matchmaking``).
        challenger: gauntlet challenger (required there) or matchmade anchor (optional).
        seed: tournament seed; default ``tournament.seed``, else a fresh random seed (recorded either way).
        tid: tournament id (default :func:`new_tournament_id`).

    Raises:
        LeagueError: unknown mode/method, fewer than two players, gauntlet without challenger;
            UnknownPlayerError / IncompatibleEnvError for bad players.
    """
    t, m = league.config.tournament, league.config.match
    if mode not in MODES:
        raise LeagueError(f"tournament mode '{mode}' unknown; expected one of {', '.join(MODES)}")
    names = league.active_names(players)
    params: dict = {"players": names, "opening_moves": m.opening_moves_for(league.config.env.id),
                    "max_steps": m.max_steps}
    if mode in ("round_robin", "gauntlet"):
        params["games_per_pair"] = int(games_per_pair or t.games_per_pair)
    if mode == "gauntlet":
        if not challenger:
            raise LeagueError("--mode gauntlet needs --challenger NAME")
        league.spec(challenger)
        params["challenger"] = challenger
    if mode == "swiss":
        params["rounds"] = int(rounds or t.rounds)
        if len(names) < 2:
            raise LeagueError(f"need at least two active players, got {names}")
    if mode == "matchmade":
        method = matchmaking or t.matchmaking
        if method not in ("proximity", "pfsp", "random"):
            raise LeagueError(f"matchmaking '{method}' unknown; expected proximity, pfsp or random")
        if challenger is not None:
            league.spec(challenger)
            if challenger not in names:
                names.append(challenger)
        if len(names) < 2:
            raise LeagueError(f"need at least two active players, got {names}")
        params.update(games=int(games or t.games), batch=int(t.batch), matchmaking=method, anchor=challenger,
                      pfsp_weighting=t.pfsp_weighting, pfsp_p=float(t.pfsp_p))
    seed = int(seed if seed is not None else t.seed if t.seed is not None else fresh_seed())
    tid = tid or new_tournament_id(mode)
    schedule: list[ScheduledMatch] = []
    if mode == "round_robin":
        schedule = schedule_block(tid, 0, round_robin(names, params["games_per_pair"], both_seats=True),
                                  block_rng(seed, 0), [])
    elif mode == "gauntlet":
        schedule = schedule_block(tid, 0, gauntlet(challenger, names, params["games_per_pair"]), block_rng(seed, 0), [])
    league.store.create_tournament(tid, env_id=league.config.env.id, mode=mode, seed=seed, params=params,
                                   schedule=schedule, state={"byes": {}})
    return league.store.tournament(tid)


def resolve(league: League, tid: str | None) -> TournamentInfo:
    """The tournament to resume: ``tid``, or the league's most recent unfinished tournament.

    Raises:
        StoreError: no such tournament; LeagueError: none unfinished, or ``tid`` plays another env.
    """
    if tid is None:
        pending = league.store.tournaments(env_id=league.config.env.id, unfinished_only=True)
        if not pending:
            raise LeagueError(f"no unfinished tournament in league '{league.config.name}' to resume; "
                              "start one with `league run` (without --resume)")
        return pending[0]
    info = league.store.tournament(tid)
    if info.env_id != league.config.env.id:
        raise LeagueError(f"tournament '{tid}' plays env '{info.env_id}', this league plays '{league.config.env.id}'")
    return info


def n_blocks(info: TournamentInfo) -> int:
    """How many blocks the tournament has in all (1 for round robin / gauntlet)."""
    p = info.params
    if info.mode == "swiss":
        return int(p["rounds"])
    if info.mode == "matchmade":
        return math.ceil(int(p["games"]) / int(p["batch"]))
    return 1


def expected_matches(info: TournamentInfo) -> int:
    """Matches the whole tournament will have (Swiss: ``rounds * floor(players / 2)``)."""
    p = info.params
    if info.mode == "swiss":
        return int(p["rounds"]) * (len(p["players"]) // 2)
    if info.mode == "matchmade":
        return int(p["games"])
    return info.scheduled


def _tasks(league: League, info: TournamentInfo, sched: Sequence[ScheduledMatch]) -> list[MatchTask]:
    specs = {n: league.spec(n) for n in {p for m in sched for p in m.seats}}
    env, mb = league.config.env, league.config.match
    replay = league.config.resolve(mb.replay_dir) if mb.replay_dir else None
    p = info.params
    return [MatchTask(uid=m.uid, env_id=env.id, env_kwargs=dict(env.kwargs), seed=m.seed,
                      seats=tuple(specs[n] for n in m.seats), tournament=info.id, max_steps=int(p["max_steps"]),
                      opening_moves=int(p["opening_moves"]), replay_dir=replay, behavior_map=dict(env.behavior_map),
                      supersuit=tuple(env.supersuit)) for m in sched]


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


def _swiss_points(league: League, info: TournamentInfo, sched: list[ScheduledMatch], upto: int) -> dict[str, float]:
    block_of = {m.uid: m.block for m in sched}
    points = {n: 0.0 for n in info.params["players"]}
    for uid, names, ranks in league.store.tournament_results(info.id):
        if block_of.get(uid, upto) >= upto or len(names) != 2:
            continue
        sa = 1.0 if ranks[0] < ranks[1] else 0.0 if ranks[0] > ranks[1] else 0.5
        points[names[0]] = points.get(names[0], 0.0) + sa
        points[names[1]] = points.get(names[1], 0.0) + 1.0 - sa
    for r, bye in info.state.get("byes", {}).items():
        if int(r) < upto:
            points[bye] = points.get(bye, 0.0) + 1.0
    return points


def _next_block(league: League, info: TournamentInfo, block: int, sched: list[ScheduledMatch]) -> tuple[list[ScheduledMatch], dict]:
    """Schedule block ``block`` of a Swiss / matchmade tournament from the results so far."""
    p, rng = info.params, block_rng(info.seed, block)
    names = list(p["players"])
    state = {"byes": dict(info.state.get("byes", {}))}
    if info.mode == "swiss":
        base = elo_ratings(league.games(), league.config.ratings.settings(), names)
        ratings = {n: base[n].rating for n in names}
        points = _swiss_points(league, info, sched, block)
        played = {frozenset(m.seats) for m in sched}
        pairs, bye = swiss_round(names, points, ratings, played, block, rng)
        if bye is not None:
            state["byes"][str(block)] = bye
        return schedule_block(info.id, block, pairs, rng, sched), state
    # matchmade
    games = league.games()
    counts = Counter(q for g in games for team in g.teams for q in team)
    elo = elo_ratings(games, league.config.ratings.settings(), names)
    method, anchor = p["matchmaking"], p.get("anchor")
    payoff = Payoff(games, names) if method == "pfsp" else None
    pairs: list[Pairing] = []
    for _ in range(min(int(p["batch"]), int(p["games"]) - block * int(p["batch"]))):
        if anchor is not None:
            a = anchor
        else:
            low = min(counts[n] for n in names)
            a = str(rng.choice([n for n in names if counts[n] == low]))
        others = [n for n in names if n != a]
        if method == "proximity":
            b = proximity_opponent(a, others, {k: v.rating for k, v in elo.items()}, rng)
        elif method == "pfsp":
            b = pfsp_opponent(a, others, payoff, rng, p["pfsp_weighting"], float(p["pfsp_p"]))
        else:
            b = str(rng.choice(others))
        counts[a] += 1
        counts[b] += 1
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return schedule_block(info.id, block, pairs, rng, sched), state


def run(league: League, runner, tid: str, progress: Progress | None = None) -> Outcome:
    """Play the missing matches of tournament ``tid`` (all of them for a new one), block by block.

    Returns:
        :class:`Outcome`; ``outcome.tournament.finished`` tells whether it is complete.

    Raises:
        StoreError: unknown tournament; LeagueError (and subclasses): a user error in a match (bad player or env),
            after the matches already played are recorded.
    """
    info = league.store.tournament(tid)
    total = RunStats()
    before = info.recorded
    blocks = n_blocks(info)
    sched = league.store.schedule(tid)
    stopped = False
    for block in range(blocks):
        mine = [m for m in sched if m.block == block]
        if not mine and info.mode in ("swiss", "matchmade"):
            mine, state = _next_block(league, info, block, sched)
            league.store.schedule_block(tid, mine, state)
            info = league.store.tournament(tid)
            sched = sched + mine
        done = league.store.recorded_uids(tid)
        todo = [m for m in mine if m.uid not in done]
        if todo:
            stats, _ = play(league, runner, _tasks(league, info, todo), progress)
            total.completed += stats.completed
            total.retried += stats.retried
            total.failed.update(stats.failed)
            total.seconds += stats.seconds
            if stats.failed:  # later blocks would be paired on incomplete results: stop; --resume retries
                stopped = True
                break
    info = league.store.tournament(tid)
    scheduled_blocks = len({m.block for m in sched})
    left = blocks - scheduled_blocks if stopped else 0
    if not stopped and info.recorded == info.scheduled and not info.finished:
        league.snapshot_ratings()
        league.store.finish_tournament(tid)
        info = league.store.tournament(tid)
    points = _swiss_points(league, info, sched, blocks) if info.mode == "swiss" else None
    return Outcome(info, total, points, before, left)


# ------------------------------------------------------------------ one-call helpers (start + run)
def run_round_robin(league: League, runner, players: list[str] | None = None, games_per_pair: int | None = None,
                    seed: int | None = None, progress: Progress | None = None) -> RunStats:
    """Every pair of ``players`` (default: all active) plays ``games_per_pair`` games in each seat order."""
    info = start(league, "round_robin", players=players, games_per_pair=games_per_pair, seed=seed)
    return run(league, runner, info.id, progress).stats


def run_gauntlet(league: League, runner, challenger: str, field: list[str] | None = None,
                 games_per_opponent: int | None = None, seed: int | None = None,
                 progress: Progress | None = None) -> RunStats:
    """``challenger`` plays each field player ``games_per_opponent`` games per seat order."""
    info = start(league, "gauntlet", players=field, games_per_pair=games_per_opponent, challenger=challenger, seed=seed)
    return run(league, runner, info.id, progress).stats


def run_swiss(league: League, runner, players: list[str] | None = None, rounds: int | None = None,
              seed: int | None = None, progress: Progress | None = None) -> tuple[RunStats, dict[str, float]]:
    """A Swiss tournament; returns the run stats and the final points (win 1, draw 0.5, bye 1)."""
    info = start(league, "swiss", players=players, rounds=rounds, seed=seed)
    out = run(league, runner, info.id, progress)
    return out.stats, out.points or {}


def run_matchmade(league: League, runner, n_games: int, method: str | None = None, anchor: str | None = None,
                  players: list[str] | None = None, seed: int | None = None,
                  progress: Progress | None = None) -> RunStats:
    """``n_games`` games in batches of ``tournament.batch``; opponents chosen by ``method`` (see :func:`start`)."""
    info = start(league, "matchmade", players=players, games=n_games, matchmaking=method, challenger=anchor, seed=seed)
    return run(league, runner, info.id, progress).stats


__all__ = ["MODES", "Outcome", "start", "run", "resolve", "expected_matches", "n_blocks", "schedule_block",
           "block_rng", "new_tournament_id", "fresh_seed", "play", "run_round_robin", "run_gauntlet", "run_swiss",
           "run_matchmade"]
