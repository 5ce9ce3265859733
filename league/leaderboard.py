"""Leaderboard rows, head-to-head matrix and rating histories (shared by the CLI and the web page)."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from league.league import League
from league.matchmaking import Payoff
from league.ratings import SYSTEMS, rating_history
from league.records import Game


@dataclass(frozen=True)
class Row:
    """One leaderboard line.

    Attributes:
        rank: 1 = best (by ``rating`` of the chosen system).
        rating, lower, upper: see :class:`league.ratings.Rating` (lower/upper None when the system has none).
        games, wins, draws, losses: counts over the match log; ``win_rate`` = wins / games (None when 0 games).
        last_played: ISO time of the player's latest match, or None.
    """

    rank: int
    player: str
    rating: float
    lower: float | None
    upper: float | None
    games: int
    wins: int
    draws: int
    losses: int
    win_rate: float | None
    last_played: str | None
    policy: str
    version: int


def _outcome_counts(games: list[Game]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for g in games:
        best = min(g.ranks)
        tied_best = sum(1 for r in g.ranks if r == best) > 1
        for team, r in zip(g.teams, g.ranks):
            for p in team:
                c = out.setdefault(p, {"w": 0, "d": 0, "l": 0, "last": None})
                if r == best and not tied_best:
                    c["w"] += 1
                elif r == best:
                    c["d"] += 1
                else:
                    c["l"] += 1
                if g.when is not None and (c["last"] is None or g.when > c["last"]):
                    c["last"] = g.when
    return out


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def leaderboard(league: League, system: str, games: list[Game] | None = None, include_inactive: bool = False) -> list[Row]:
    """Rows sorted by rating (best first) for ``system`` (``elo`` | ``openskill`` | ``bt``)."""
    games = league.games() if games is None else games
    ratings = league.ratings(system, games)
    counts = _outcome_counts(games)
    players = {p.name: p for p in league.store.players() if p.env_id == league.config.env.id}
    rows = []
    names = [n for n in players if include_inactive or players[n].active]
    names.sort(key=lambda n: -ratings[n].rating if n in ratings else math.inf)
    for i, n in enumerate(names):
        r = ratings.get(n)
        c = counts.get(n, {"w": 0, "d": 0, "l": 0, "last": None})
        total = c["w"] + c["d"] + c["l"]
        rows.append(Row(i + 1, n, r.rating if r else float("nan"), r.lower if r else None, r.upper if r else None,
                        total, c["w"], c["d"], c["l"], c["w"] / total if total else None, _iso(c["last"]),
                        players[n].policy, players[n].version))
    return rows


def rows_json(rows: list[Row], system: str) -> dict[str, Any]:
    """JSON-ready leaderboard object: ``{"system": ..., "players": [row dicts]}``."""
    return {"system": system, "players": [asdict(r) for r in rows]}


def rich_table(rows: list[Row], system: str, title: str = "") -> Table:
    """A rich table: rank, player, rating (interval), games, W-D-L, win rate, last played."""
    label = {"elo": "Elo", "openskill": "OpenSkill mu-3sigma", "bt": "Bradley-Terry"}.get(system, system)
    t = Table(title=title or f"Leaderboard ({label})")
    for col, just in (("#", "right"), ("player", "left"), ("rating", "right"), ("95% interval", "right"),
                      ("games", "right"), ("W-D-L", "right"), ("win rate", "right"), ("last played", "left")):
        t.add_column(col, justify=just)
    for r in rows:
        interval = f"[{r.lower:.1f}, {r.upper:.1f}]" if r.lower is not None and r.upper is not None else "-"
        t.add_row(str(r.rank), r.player, f"{r.rating:.1f}", interval, str(r.games), f"{r.wins}-{r.draws}-{r.losses}",
                  "-" if r.win_rate is None else f"{100 * r.win_rate:.1f}%", r.last_played or "never")
    return t


def head_to_head(league: League, games: list[Game] | None = None, names: list[str] | None = None) -> dict[str, Any]:
    """``{"players": [...], "win_rate": [[row beats column, None if unplayed]], "games": [[count]]}``."""
    games = league.games() if games is None else games
    if names is None:
        names = [r.player for r in leaderboard(league, "elo", games)]
    pay = Payoff(games, names)
    idx = [pay.index[n] for n in names]
    m = pay.matrix()
    return {"players": names,
            "win_rate": [[None if math.isnan(m[i, j]) else round(float(m[i, j]), 4) for j in idx] for i in idx],
            "games": [[int(pay.games[i, j]) for j in idx] for i in idx]}


def history(league: League, player: str, system: str, games: list[Game] | None = None) -> list[dict[str, Any]]:
    """A player's rating over time: per game for elo/openskill (from the log), stored snapshots for bt.

    Returns:
        ``[{"n_matches": k, "rating": r}, ...]`` oldest first, where k counts the league's matches so far.

    Raises:
        UnknownPlayerError: ``player`` is not registered.
    """
    league.player(player)
    if system == "bt":
        return [{"n_matches": h["n_matches"], "rating": h["rating"]} for h in league.store.rating_history(player, "bt")]
    games = league.games() if games is None else games
    pos = {g.seq: k + 1 for k, g in enumerate(games)}
    return [{"n_matches": pos[seq], "rating": r} for seq, p, r in rating_history(system, games, league.config.ratings.settings())
            if p == player]


__all__ = ["Row", "leaderboard", "rows_json", "rich_table", "head_to_head", "history", "SYSTEMS"]
