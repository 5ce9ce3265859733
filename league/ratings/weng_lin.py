"""Weng-Lin Bayesian ratings through the ``openskill`` library (Weng & Lin 2011, JMLR 12).

Each player has a Gaussian skill (mu, sigma), updated online game by game with the library's model
(PlackettLuce by default; teams and free-for-all supported natively).

What is shown, and how the numbers relate (docs/league.md, "Ratings"):

* ``rating`` (ranked by) is the *conservative* rating ``mu - 3*sigma`` (TrueSkill's leaderboard value,
  Herbrich et al. 2006; OpenSkill's ``ordinal()``): the skill is above it with probability 99.87% under
  the player's Gaussian. It is a lower bound, not an estimate, so it is not the centre of any interval.
* ``estimate`` is ``mu``, the skill estimate; ``lower``/``upper`` is the ``confidence`` interval of mu,
  ``mu -+ z sigma`` (z = 1.96 for 95%). So ``rating < lower <= estimate <= upper`` whenever sigma > 0 (and the
  confidence is below 99.73%, i.e. z < 3).
* The history (``history=``) records ``rating`` (mu - 3 sigma), the value the leaderboard ranks by, in
  OpenSkill's own units (mu0 = 25, sigma0 = 25/3).
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Iterable

import openskill.models as osm

from league.errors import ConfigError
from league.ratings.base import Rating, RatingSettings
from league.records import Game


def make_model(name: str):
    """An openskill model instance by class name. Raises ConfigError for unknown names."""
    models = {cls.__name__: cls for cls in osm.MODELS}
    if name not in models:
        raise ConfigError(f"ratings.openskill_model: unknown model '{name}'; expected one of {', '.join(models)}")
    return models[name]()


def openskill_ratings(games: Iterable[Game], settings: RatingSettings = RatingSettings(), players: Iterable[str] = (),
                      history: list[tuple[int, str, float]] | None = None) -> dict[str, Rating]:
    """Run the Weng-Lin update through ``games`` in order.

    Returns:
        name -> :class:`Rating` with ``rating = mu - 3 sigma``, ``estimate = mu``, ``lower/upper = mu -+ z sigma``
        and ``extra = {"mu", "sigma"}`` (openskill's default scale: mu0 = 25, sigma0 = 25/3).

    Raises:
        ConfigError: unknown ``settings.openskill_model``.
    """
    model = make_model(settings.openskill_model)
    state: dict[str, object] = {p: model.rating(name=p) for p in players}
    n: dict[str, int] = {p: 0 for p in players}
    for g in games:
        teams = [[state.setdefault(p, model.rating(name=p)) for p in team] for team in g.teams]
        new = model.rate(teams, ranks=list(g.ranks))
        for team, new_team in zip(g.teams, new):
            for p, rt in zip(team, new_team):
                state[p] = rt
                n[p] = n.get(p, 0) + 1
                if history is not None:
                    history.append((g.seq, p, rt.mu - 3 * rt.sigma))
    z = NormalDist().inv_cdf(0.5 + settings.confidence / 2)
    return {p: Rating(rt.mu - 3 * rt.sigma, rt.mu - z * rt.sigma, rt.mu + z * rt.sigma, n.get(p, 0),
                      {"mu": rt.mu, "sigma": rt.sigma}, estimate=rt.mu) for p, rt in state.items()}
