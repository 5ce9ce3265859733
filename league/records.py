"""Plain records that cross process boundaries: a played match's result and a game outcome for the raters.

All are frozen dataclasses of builtins, so they pickle cheaply to/from match workers (processes or Ray).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SeatResult:
    """One seat (a side / team) of a finished match.

    Attributes:
        player: registered player name that controlled the seat.
        team: team index of the seat (0, 1, ...); seats of the same match have distinct teams.
        agents: env agent names the player controlled (e.g. ``("player_0",)``).
        score: sum of the seat's episode rewards (env units).
        rank: 0 = best; equal ranks mean a draw between those seats.
    """

    player: str
    team: int
    agents: tuple[str, ...]
    score: float
    rank: int


@dataclass(frozen=True)
class MatchResult:
    """A finished match, written once to the store under ``uid`` (recording is idempotent).

    Attributes:
        uid: match id chosen by the scheduler before the match is played; a retried match keeps its uid.
        env_id: env id (see :func:`envs.registry.make_env`); ``env_kwargs`` its keyword arguments.
        seed: the env/player seed; the same seed and players replay the same match.
        seats: the sides, in seat order.
        episode_length: env steps (AEC: single-agent turns; parallel: joint steps).
        started_at, ended_at: UTC timestamps.
        worker: who played it (``host:pid`` or a Ray worker id).
        replay_path: optional file with the action log.
        tournament: id of the tournament that scheduled it (see :class:`ScheduledMatch`), or None.
        action_hash: :attr:`marl.play.EpisodeResult.action_hash` of the game (16 hex chars of the SHA-256 of its
            action sequence): two matches with the same hash are the same game replayed. None = unknown (matches
            recorded before schema version 2).
    """

    uid: str
    env_id: str
    seed: int
    seats: tuple[SeatResult, ...]
    episode_length: int
    started_at: dt.datetime
    ended_at: dt.datetime
    worker: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    replay_path: str | None = None
    tournament: str | None = None
    action_hash: str | None = None


@dataclass(frozen=True)
class ScheduledMatch:
    """One match of a tournament's schedule, stored before the first match is played (see :mod:`league.tournaments`).

    Attributes:
        uid: the match id, :func:`match_uid` of (tournament, seats, game_index); the store records a uid once.
        tournament: the tournament id.
        block: round (Swiss) or batch (matchmade) number, 0 for round robin and gauntlet.
        index: position in the tournament's schedule (0, 1, ...), the order in which matches are played.
        seats: player names in seat order.
        game_index: how many earlier matches of the tournament had exactly these seats (0 for the first).
        seed: the match's env/player seed (drawn from the tournament seed).
    """

    uid: str
    tournament: str
    block: int
    index: int
    seats: tuple[str, ...]
    game_index: int
    seed: int


def match_uid(tournament: str, seats: tuple[str, ...] | list[str], game_index: int) -> str:
    """The id of the ``game_index``-th match with ``seats`` (names in seat order) in ``tournament``.

    32 hex chars of the SHA-256 of ``tournament``, the seat names and the game index (NUL-separated), so the same
    scheduled match always gets the same id: a resumed or retried match cannot be recorded twice.
    """
    import hashlib

    key = "\0".join([tournament, *seats, str(int(game_index))])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Diversity:
    """How many different games a match log holds (from the stored action hashes).

    Attributes:
        games: matches in the log.
        known: matches with an action hash (recorded from schema version 2 on); the others are unknown.
        distinct: different action hashes among the ``known`` matches.
    """

    games: int
    known: int
    distinct: int

    @property
    def replays(self) -> int:
        """Known matches that repeat an earlier game exactly (``known - distinct``)."""
        return self.known - self.distinct

    @property
    def mostly_replays(self) -> bool:
        """True when more than half of the known matches are replays of another one."""
        return self.known > 0 and self.replays > self.known / 2

    def line(self) -> str:
        """One human line: ``"games: 120, distinct: 118 (2 replays), unknown: 0"`` (+ a warning when mostly replays)."""
        text = f"games: {self.games}, distinct: {self.distinct} of {self.known} with a recorded action hash " \
               f"({self.replays} replays)"
        if self.games > self.known:
            text += f", {self.games - self.known} recorded before action hashes (unknown)"
        if self.mostly_replays:
            text += ("; warning: most games are exact replays, so game counts and intervals overstate the evidence "
                     "(raise match.opening_moves or let tournaments draw fresh seeds)")
        return text


def diversity(games: "list[Game]") -> Diversity:
    """:class:`Diversity` of a list of :class:`Game` records (their ``action_hash``)."""
    hashes = [g.action_hash for g in games if g.action_hash]
    return Diversity(len(games), len(hashes), len(set(hashes)))


@dataclass(frozen=True)
class Game:
    """A match outcome as the rating systems see it.

    Attributes:
        teams: per side, the player names on it (a 1-v-1 game is ``(("a",), ("b",))``).
        ranks: per side, 0 = best; equal ranks are a draw.
        seq: position in the match log (order of recording), used by the online raters.
        when: end time of the match (for "last played" and history plots); may be None in synthetic data.
        uid: the match id.
        action_hash: the game's action hash (:attr:`MatchResult.action_hash`), None when unknown.
    """

    teams: tuple[tuple[str, ...], ...]
    ranks: tuple[int, ...]
    seq: int = 0
    when: dt.datetime | None = None
    uid: str = ""
    action_hash: str | None = None

    @staticmethod
    def duel(a: str, b: str, score_a: float, seq: int = 0) -> "Game":
        """A 1-v-1 game from A's score: 1 = A won, 0.5 = draw, 0 = B won."""
        ranks = (0, 1) if score_a > 0.5 else (1, 0) if score_a < 0.5 else (0, 0)
        return Game(((a,), (b,)), ranks, seq)


def pairwise_scores(game: Game) -> list[tuple[int, int, float]]:
    """Decompose a game into side pairs ``(i, j, score_i)`` with score 1/0.5/0 from the ranks.

    A k-side free-for-all becomes k(k-1)/2 pairwise results (the usual reduction for Elo and Bradley-Terry).
    """
    out = []
    r = game.ranks
    for i in range(len(r)):
        for j in range(i + 1, len(r)):
            out.append((i, j, 1.0 if r[i] < r[j] else 0.0 if r[i] > r[j] else 0.5))
    return out


def ranks_from_scores(scores: list[float] | tuple[float, ...]) -> tuple[int, ...]:
    """Competition ranks (0 = highest score; ties share a rank): ``[3, 1, 3] -> (0, 2, 0)``."""
    return tuple(sum(1 for t in scores if t > s) for s in scores)
