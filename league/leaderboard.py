"""Leaderboard rows, head-to-head matrix and rating histories (shared by the CLI and the web page)."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from league.league import League, is_removed
from league.matchmaking import Payoff
from league.ratings import SYSTEMS, UNITS
from league.records import Game

#: What ``rating`` and the interval mean, per system (shown by the CLI, the page and ``--json``).
DEFINITIONS = {
    "elo": {"rating": "online Elo (K = ratings.elo_k), in Elo points", "interval": None},
    "bt": {"rating": "Bradley-Terry maximum likelihood on the Elo scale (mean = ratings.initial)",
           "interval": "bootstrap percentile interval of the rating (ratings.bootstrap resamples of the match log)"},
    "openskill": {"rating": "conservative rating mu - 3 sigma (the skill exceeds it with probability 99.87%); "
                            "ranked by it",
                  "interval": "interval of mu, mu -+ z sigma; mu (the estimate) is shown beside it"},
}


@dataclass(frozen=True)
class Row:
    """One leaderboard line.

    Attributes:
        rank: 1 = best (by ``rating`` of the chosen system).
        rating, lower, upper: see :class:`league.ratings.Rating` (lower/upper None when the system has none).
        estimate: the point estimate ``[lower, upper]`` surrounds (OpenSkill: mu; else ``rating``).
        games, wins, draws, losses: counts over the match log; ``win_rate`` = wins / games (None when 0 games).
        last_played: ISO time of the player's latest match, or None.
        tags: the player's tags (bots: ``bot``; snapshots: ``snapshot`` and the run id).
        active: False for a retired player (listed only with ``include_inactive``).
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
    estimate: float = float("nan")
    tags: tuple[str, ...] = ()
    active: bool = True
    parent: str | None = None


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
    """Rows sorted by rating (best first) for ``system`` (``elo`` | ``openskill`` | ``bt``).

    Players without games come last (their rating is the system's starting value, not a measurement).
    Retired players are left out unless ``include_inactive``; removed players (``league remove --force``)
    are never listed, though their matches count in everyone's ratings.
    """
    games = league.games() if games is None else games
    ratings = league.ratings(system, games)
    counts = _outcome_counts(games)
    players = {p.name: p for p in league.store.players() if p.env_id == league.config.env.id and not is_removed(p)}
    rows = []
    names = [n for n in players if include_inactive or players[n].active]
    # players without games last (their rating is only the system's starting value), then best rating first
    names.sort(key=lambda n: (counts.get(n) is None, -ratings[n].rating if n in ratings else math.inf))
    for i, n in enumerate(names):
        r = ratings.get(n)
        c = counts.get(n, {"w": 0, "d": 0, "l": 0, "last": None})
        total = c["w"] + c["d"] + c["l"]
        p = players[n]
        rows.append(Row(i + 1, n, r.rating if r else float("nan"), r.lower if r else None, r.upper if r else None,
                        total, c["w"], c["d"], c["l"], c["w"] / total if total else None, _iso(c["last"]),
                        p.policy, p.version, r.center if r else float("nan"), tuple(p.tags), p.active, p.parent))
    return rows


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def rows_json(rows: list[Row], system: str, confidence: float = 0.95) -> dict[str, Any]:
    """JSON-ready leaderboard object: ``{"system", "units", "definition": {"rating", "interval"},
    "confidence", "players": [row dicts]}`` (NaN ratings of players without a rating become null)."""
    players = []
    for r in rows:
        d = asdict(r)
        d["tags"] = list(r.tags)
        d["rating"], d["estimate"] = _finite(r.rating), _finite(r.estimate)
        players.append(d)
    return {"system": system, "units": UNITS.get(system, system), "definition": DEFINITIONS.get(system, {}),
            "confidence": confidence, "players": players}


def interval_label(system: str, confidence: float = 0.95) -> str:
    """Column header of the interval: ``95% interval`` (``95% interval of mu`` for OpenSkill)."""
    pct = f"{100 * confidence:g}%"
    return f"{pct} interval of mu" if system == "openskill" else f"{pct} interval"


def rich_table(rows: list[Row], system: str, title: str = "", confidence: float = 0.95) -> Table:
    """A rich table: rank, player, rating (OpenSkill: mu - 3 sigma and mu), interval, games, W-D-L, win rate,
    last played (retired players marked)."""
    label = {"elo": "Elo", "openskill": "OpenSkill", "bt": "Bradley-Terry"}.get(system, system)
    t = Table(title=title or f"Leaderboard ({label})", caption=f"rating: {DEFINITIONS.get(system, {}).get('rating', system)}")
    cols = [("#", "right"), ("player", "left"), ("mu-3sigma" if system == "openskill" else "rating", "right")]
    if system == "openskill":
        cols.append(("mu", "right"))
    cols += [(interval_label(system, confidence), "right"), ("games", "right"), ("W-D-L", "right"),
             ("win rate", "right"), ("last played", "left")]
    for col, just in cols:
        t.add_column(col, justify=just)
    for r in rows:
        interval = f"[{r.lower:.1f}, {r.upper:.1f}]" if r.lower is not None and r.upper is not None else "-"
        cells = [str(r.rank), r.player + ("" if r.active else " (retired)"), f"{r.rating:.1f}"]
        if system == "openskill":
            cells.append(f"{r.estimate:.1f}")
        cells += [interval, str(r.games), f"{r.wins}-{r.draws}-{r.losses}",
                  "-" if r.win_rate is None else f"{100 * r.win_rate:.1f}%", r.last_played or "never"]
        t.add_row(*cells)
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


def histories(league: League, players: list[str], system: str, games: list[Game] | None = None
              ) -> dict[str, list[dict[str, Any]]]:
    """Rating histories of several players under ``system``, in its own units (:data:`league.ratings.UNITS`;
    see :meth:`league.league.League.rating_history`): ``{player: [{"n_matches": k, "rating": r}, ...]}``
    oldest first, where k counts the league's matches so far."""
    want = set(players)
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in players}
    for k, p, r in league.rating_history(system, games):
        if p in want:
            out[p].append({"n_matches": k, "rating": r})
    return out


def history(league: League, player: str, system: str, games: list[Game] | None = None) -> list[dict[str, Any]]:
    """One player's rating history (see :func:`histories`).

    Raises:
        UnknownPlayerError: ``player`` is not registered.
    """
    league.player(player)
    return histories(league, [player], system, games)[player]


def head_to_head_row(league: League, player: str, games: list[Game] | None = None) -> list[dict[str, Any]]:
    """``player``'s record against each opponent it met, most games first:
    ``[{"opponent", "games", "wins", "draws", "losses", "win_rate" (draws count half)}]``.

    Raises:
        UnknownPlayerError: ``player`` is not registered.
    """
    league.player(player)
    games = league.games() if games is None else games
    rec: dict[str, list[int]] = {}
    for g in games:
        sides = [i for i, t in enumerate(g.teams) if player in t]
        if not sides:
            continue
        i = sides[0]
        for j, team in enumerate(g.teams):
            if j == i:
                continue
            for opp in team:
                c = rec.setdefault(opp, [0, 0, 0])
                c[0 if g.ranks[i] < g.ranks[j] else 2 if g.ranks[i] > g.ranks[j] else 1] += 1
    out = [{"opponent": o, "games": sum(c), "wins": c[0], "draws": c[1], "losses": c[2],
            "win_rate": round((c[0] + 0.5 * c[1]) / sum(c), 4)} for o, c in rec.items()]
    return sorted(out, key=lambda d: (-d["games"], d["opponent"]))


__all__ = ["Row", "DEFINITIONS", "leaderboard", "rows_json", "rich_table", "interval_label", "head_to_head",
           "head_to_head_row", "history", "histories", "SYSTEMS"]
