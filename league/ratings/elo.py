"""Online Elo over the match log (Elo 1978; the formula ML-Agents' ghost trainer uses).

Expected score ``E_a = 1 / (1 + 10^((R_b - R_a) / 400))``; after a game ``R_a += K * (S_a - E_a)`` with
``S_a`` = 1 win, 0.5 draw, 0 loss. Teams: a side's rating is the mean of its members' ratings and every
member receives the side's update. A k-side game is split into k(k-1)/2 pairwise results, each with
K / (k-1), all computed from the ratings before the game.
"""
from __future__ import annotations

from typing import Iterable

from league.ratings.base import Rating, RatingSettings
from league.records import Game, pairwise_scores


def expected_score(r_a: float, r_b: float) -> float:
    """Elo win expectancy of A against B (ratings in Elo points), in [0, 1]."""
    return 1.0 / (1.0 + 10.0 ** ((r_b - r_a) / 400.0))


def elo_ratings(games: Iterable[Game], settings: RatingSettings = RatingSettings(), players: Iterable[str] = (),
                history: list[tuple[int, str, float]] | None = None) -> dict[str, Rating]:
    """Run Elo through ``games`` in order.

    Args:
        games: the match log in recording order.
        settings: uses ``elo_k`` and ``initial``.
        players: names to include even if they have no games (they keep the initial rating).
        history: if given, ``(game seq, player, rating after the game)`` is appended for every participant.

    Returns:
        name -> :class:`Rating` (no interval: online Elo has none).
    """
    k, init = settings.elo_k, settings.initial
    r: dict[str, float] = {p: init for p in players}
    n: dict[str, int] = {p: 0 for p in players}
    for g in games:
        sides = [[r.setdefault(p, init) for p in team] for team in g.teams]
        means = [sum(s) / len(s) for s in sides]
        delta = [0.0] * len(g.teams)
        scale = k / max(1, len(g.teams) - 1)
        for i, j, s_i in pairwise_scores(g):
            d = scale * (s_i - expected_score(means[i], means[j]))
            delta[i] += d
            delta[j] -= d
        for team, d in zip(g.teams, delta):
            for p in team:
                r[p] += d
                n[p] = n.get(p, 0) + 1
                if history is not None:
                    history.append((g.seq, p, r[p]))
    return {p: Rating(v, None, None, n.get(p, 0)) for p, v in r.items()}
