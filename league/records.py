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
        tournament: optional tournament/batch label.
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


@dataclass(frozen=True)
class Game:
    """A match outcome as the rating systems see it.

    Attributes:
        teams: per side, the player names on it (a 1-v-1 game is ``(("a",), ("b",))``).
        ranks: per side, 0 = best; equal ranks are a draw.
        seq: position in the match log (order of recording), used by the online raters.
        when: end time of the match (for "last played" and history plots); may be None in synthetic data.
    """

    teams: tuple[tuple[str, ...], ...]
    ranks: tuple[int, ...]
    seq: int = 0
    when: dt.datetime | None = None
    uid: str = ""

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
