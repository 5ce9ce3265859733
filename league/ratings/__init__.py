"""Rating systems, each recomputable from the stored match log alone.

* ``elo``: online Elo (:mod:`league.ratings.elo`);
* ``openskill``: Weng-Lin Bayesian ratings via openskill (:mod:`league.ratings.weng_lin`);
* ``bt``: Bradley-Terry MLE with bootstrap intervals (:mod:`league.ratings.bradley_terry`).
"""
from __future__ import annotations

from typing import Iterable

from league.errors import ConfigError
from league.ratings.base import Rating, RatingSettings
from league.ratings.bradley_terry import bradley_terry_history, bradley_terry_ratings
from league.ratings.elo import elo_ratings, expected_score
from league.ratings.weng_lin import openskill_ratings
from league.records import Game

SYSTEMS = ("elo", "openskill", "bt")


def compute_ratings(system: str, games: Iterable[Game], settings: RatingSettings = RatingSettings(),
                    players: Iterable[str] = ()) -> dict[str, Rating]:
    """Ratings of every player under ``system`` (one of :data:`SYSTEMS`) from the match log ``games``.

    Raises:
        ConfigError: unknown system name.
    """
    if system == "elo":
        return elo_ratings(games, settings, players)
    if system == "openskill":
        return openskill_ratings(games, settings, players)
    if system == "bt":
        return bradley_terry_ratings(games, settings, players)
    raise ConfigError(f"unknown rating system '{system}'; expected one of {', '.join(SYSTEMS)}")


#: Units of each system's ratings and histories (axis labels of the page, ``league leaderboard`` headers).
UNITS = {"elo": "Elo points", "openskill": "OpenSkill mu - 3 sigma (mu0 = 25)",
         "bt": "Bradley-Terry, Elo scale (points)"}


def rating_history(system: str, games: Iterable[Game], settings: RatingSettings = RatingSettings()
                   ) -> list[tuple[int, str, float]]:
    """Per-game trajectory ``(game seq, player, displayed rating after it)`` of an online system (elo, openskill),
    in the system's own units (:data:`UNITS`).

    Raises:
        ConfigError: ``system`` is not online (Bradley-Terry: :func:`bradley_terry_history`).
    """
    out: list[tuple[int, str, float]] = []
    if system == "elo":
        elo_ratings(games, settings, history=out)
    elif system == "openskill":
        openskill_ratings(games, settings, history=out)
    else:
        raise ConfigError(f"rating system '{system}' has no per-game history; use elo or openskill "
                          "(Bradley-Terry: bradley_terry_history)")
    return out


__all__ = ["SYSTEMS", "UNITS", "bradley_terry_history", "Rating", "RatingSettings", "compute_ratings", "rating_history", "elo_ratings",
           "openskill_ratings", "bradley_terry_ratings", "expected_score"]
