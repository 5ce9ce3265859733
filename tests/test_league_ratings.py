"""Rating systems: formulas, and the synthetic recovery check (known Bradley-Terry strengths)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from league.errors import ConfigError
from league.ratings import RatingSettings, compute_ratings, elo_ratings, expected_score, openskill_ratings
from league.ratings.bradley_terry import ELO_PER_NAT, bradley_terry_ratings
from league.records import Game, ranks_from_scores
from league.synthetic import simulate_bt_games

# natural-log BT strengths of p0..p7: adjacent gap 0.57 nat = 99 Elo. (With a 60-Elo gap, online Elo at K=16
# swaps neighbours: its final rating carries ~35 Elo of noise; BT and OpenSkill still order them perfectly.)
STRENGTHS = np.linspace(-2.0, 2.0, 8)


@pytest.fixture(scope="module")
def synthetic_games():
    return simulate_bt_games(STRENGTHS, 20_000, np.random.default_rng(2024))


def test_elo_formula_and_draws():
    assert expected_score(1200, 1200) == pytest.approx(0.5)
    assert expected_score(1600, 1200) == pytest.approx(1 / (1 + 10 ** -1))
    r = elo_ratings([Game.duel("a", "b", 1.0)], RatingSettings(elo_k=16, initial=1200))
    assert r["a"].rating == pytest.approx(1208) and r["b"].rating == pytest.approx(1192)
    # a draw between unequal players moves the favourite down by K * (0.5 - E)
    r = elo_ratings([Game.duel("a", "b", 1.0), Game.duel("a", "b", 0.5)], RatingSettings(elo_k=16))
    e = expected_score(1208, 1192)
    assert r["a"].rating == pytest.approx(1208 + 16 * (0.5 - e))
    assert r["a"].lower is None  # online Elo has no interval


def test_ranks_from_scores():
    assert ranks_from_scores([3, 1, 3]) == (0, 2, 0)
    assert ranks_from_scores([-1.0, 1.0]) == (1, 0)


def test_openskill_teams_and_display():
    g = Game((("a", "b"), ("c", "d")), (0, 1))
    r = openskill_ratings([g] * 5)
    assert r["a"].extra["mu"] > 25 > r["c"].extra["mu"]
    assert r["a"].rating == pytest.approx(r["a"].extra["mu"] - 3 * r["a"].extra["sigma"])
    assert r["a"].games == 5


def test_unknown_system_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown rating system 'glicko'"):
        compute_ratings("glicko", [])
    with pytest.raises(ConfigError, match="openskill_model"):
        openskill_ratings([], RatingSettings(openskill_model="Nope"))


@pytest.mark.parametrize("system", ["elo", "openskill", "bt"])
def test_every_system_recovers_the_true_order(synthetic_games, system):
    r = compute_ratings(system, synthetic_games, RatingSettings(bootstrap=20))
    est = [r[f"p{i}"].rating for i in range(len(STRENGTHS))]
    assert spearmanr(est, STRENGTHS).statistic >= 0.95


def test_bt_estimates_match_truth(synthetic_games):
    r = bradley_terry_ratings(synthetic_games, RatingSettings(bootstrap=0))
    beta = np.array([r[f"p{i}"].extra["beta"] for i in range(len(STRENGTHS))])
    assert np.max(np.abs(beta - (STRENGTHS - STRENGTHS.mean()))) < 0.08
    assert np.mean([x.rating for x in r.values()]) == pytest.approx(1200)


def test_bt_bootstrap_intervals_cover_about_95_percent():
    hits = []
    for rep in range(10):
        games = simulate_bt_games(STRENGTHS, 20_000, np.random.default_rng(100 + rep))
        r = bradley_terry_ratings(games, RatingSettings(bootstrap=150, seed=rep))
        for i, s in enumerate(STRENGTHS):
            true = 1200 + ELO_PER_NAT * (s - STRENGTHS.mean())
            hits.append(r[f"p{i}"].lower <= true <= r[f"p{i}"].upper)
    coverage = float(np.mean(hits))  # 80 intervals; a 2x too narrow interval would cover ~67%
    assert 0.85 <= coverage <= 1.0, coverage


def test_bt_draws_count_half():
    games = [Game.duel("a", "b", 0.5)] * 10 + [Game.duel("a", "b", 1.0), Game.duel("a", "b", 0.0)]
    r = bradley_terry_ratings(games, RatingSettings(bootstrap=0))
    assert r["a"].rating == pytest.approx(r["b"].rating, abs=1e-3)
