"""Who plays whom: round robin, Swiss rounds, rating-proximity pairing, PFSP and gauntlets.

Pairings are tuples of player names in seat order (seat 0 first). All randomness comes from the
``numpy.random.Generator`` passed in, so schedules are reproducible from the tournament seed.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterable, Sequence

import numpy as np

from league.errors import LeagueError
from league.ratings.elo import expected_score
from league.records import Game, pairwise_scores
from marl.pfsp import f_hard, f_var  # noqa: F401  (re-exported: PFSP math lives on the marl side)
from marl.pfsp import pfsp_weights as _pfsp_weights

Pairing = tuple[str, str]


def round_robin(players: Sequence[str], games_per_pair: int = 1, both_seats: bool = True) -> list[Pairing]:
    """Every unordered pair plays ``games_per_pair`` games in each seat order (or only A-B when not ``both_seats``).

    Raises:
        LeagueError: fewer than two players or ``games_per_pair < 1``.
    """
    _need_two(players)
    if games_per_pair < 1:
        raise LeagueError(f"games_per_pair must be >= 1, got {games_per_pair}")
    out: list[Pairing] = []
    for a, b in combinations(players, 2):
        for _ in range(games_per_pair):
            out.append((a, b))
            if both_seats:
                out.append((b, a))
    return out


def gauntlet(challenger: str, field: Sequence[str], games_per_opponent: int = 1, both_seats: bool = True) -> list[Pairing]:
    """``challenger`` plays every other player of ``field`` (one new player against the field)."""
    opponents = [p for p in field if p != challenger]
    if not opponents:
        raise LeagueError(f"gauntlet: no opponents for '{challenger}'")
    out: list[Pairing] = []
    for b in opponents:
        for _ in range(games_per_opponent):
            out.append((challenger, b))
            if both_seats:
                out.append((b, challenger))
    return out


def swiss_round(players: Sequence[str], points: dict[str, float], ratings: dict[str, float],
                played: set[frozenset[str]], round_index: int, rng: np.random.Generator) -> tuple[list[Pairing], str | None]:
    """Pairings for one Swiss round (FIDE-style simplified: Dutch system's score groups, greedy).

    Players are sorted by (points, rating) descending, ties broken randomly; each unpaired player is paired
    with the next one it has not met yet (a rematch only when no fresh opponent is left). With an odd
    count, the lowest-ranked player without a bye gets one (scored as a win by the caller). Seats
    alternate with ``round_index`` so colours balance.

    Returns:
        ``(pairings, bye_player_or_None)``.
    """
    _need_two(players)
    jitter = {p: rng.random() for p in players}
    order = sorted(players, key=lambda p: (-points.get(p, 0.0), -ratings.get(p, 0.0), jitter[p]))
    bye = None
    if len(order) % 2:
        bye = order.pop()  # lowest ranked
    pairs: list[Pairing] = []
    free = list(order)
    while free:
        a = free.pop(0)
        j = next((k for k, b in enumerate(free) if frozenset((a, b)) not in played), 0)
        b = free.pop(j)
        pairs.append((a, b) if round_index % 2 == 0 else (b, a))
    return pairs, bye


def proximity_opponent(anchor: str, candidates: Iterable[str], ratings: dict[str, float],
                       rng: np.random.Generator) -> str:
    """The candidate whose Elo-predicted win probability against ``anchor`` is closest to 0.5 (random tie-break)."""
    cands = [c for c in candidates if c != anchor]
    if not cands:
        raise LeagueError(f"matchmaking: no opponents for '{anchor}'")
    r_a = ratings.get(anchor, 0.0)
    gaps = np.array([abs(expected_score(r_a, ratings.get(c, 0.0)) - 0.5) for c in cands])
    best = np.flatnonzero(gaps <= gaps.min() + 1e-12)
    return cands[int(rng.choice(best))]


def pfsp_weights(win_rates: np.ndarray, weighting: str = "hard", p: float = 2.0) -> np.ndarray:
    """:func:`marl.pfsp.pfsp_weights` (Vinyals et al. 2019) with league errors.

    Raises:
        LeagueError: unknown weighting or empty candidates.
    """
    try:
        return _pfsp_weights(win_rates, weighting, p)
    except ValueError as exc:
        raise LeagueError(str(exc)) from None


def pfsp_opponent(anchor: str, candidates: Sequence[str], payoff: "Payoff", rng: np.random.Generator,
                  weighting: str = "hard", p: float = 2.0) -> str:
    """Sample an opponent for ``anchor`` with PFSP from the empirical win-rate matrix ``payoff``."""
    cands = [c for c in candidates if c != anchor]
    if not cands:
        raise LeagueError(f"pfsp: no opponents for '{anchor}'")
    w = pfsp_weights(np.array([payoff.win_rate(anchor, c) for c in cands]), weighting, p)
    return cands[int(rng.choice(len(cands), p=w))]


class Payoff:
    """Empirical head-to-head results: ``score[i, j]`` = points of i against j (win 1, draw 0.5), ``games[i, j]``.

    Only the side-vs-side pairs of each game count (k-side games are split pairwise); teammates share results.
    ``win_rate(a, b) = (score + prior / 2) / (games + prior)``: unplayed pairs are 0.5 (as AlphaStar's payoff
    initialisation), and a few games move it smoothly.
    """

    def __init__(self, games: Iterable[Game], players: Iterable[str] = (), prior: float = 1.0):
        self.names: list[str] = list(dict.fromkeys(players))
        games = list(games)
        for g in games:
            for team in g.teams:
                for p in team:
                    if p not in self.names:
                        self.names.append(p)
        self.index = {p: i for i, p in enumerate(self.names)}
        n = len(self.names)
        self.score = np.zeros((n, n))
        self.games = np.zeros((n, n))
        self.prior = prior
        for g in games:
            for i, j, s in pairwise_scores(g):
                for a in g.teams[i]:
                    for b in g.teams[j]:
                        ia, ib = self.index[a], self.index[b]
                        self.score[ia, ib] += s
                        self.score[ib, ia] += 1.0 - s
                        self.games[ia, ib] += 1
                        self.games[ib, ia] += 1

    def win_rate(self, a: str, b: str) -> float:
        """Smoothed P[a beats b] (draws half); 0.5 for unknown or unplayed pairs."""
        ia, ib = self.index.get(a), self.index.get(b)
        if ia is None or ib is None:
            return 0.5
        return float((self.score[ia, ib] + self.prior / 2) / (self.games[ia, ib] + self.prior))

    def matrix(self) -> np.ndarray:
        """Raw win-rate matrix float ``[n, n]`` (NaN where unplayed, diagonal NaN)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.score / self.games
        m[self.games == 0] = np.nan
        return m


def _need_two(players: Sequence[str]) -> None:
    if len(players) < 2:
        raise LeagueError(f"need at least two active players, got {len(players)}: {list(players)}")
