"""Matchmaking: round robin, gauntlet, Swiss, rating proximity and PFSP."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from league.errors import LeagueError
from league.matchmaking import (Payoff, f_hard, gauntlet, pfsp_opponent, pfsp_weights, proximity_opponent, round_robin,
                                swiss_round)
from league.records import Game


def test_round_robin_every_pair_both_seats_n_games():
    pairs = round_robin(["a", "b", "c"], games_per_pair=2)
    assert len(pairs) == 3 * 2 * 2
    c = Counter(pairs)
    assert all(c[(x, y)] == 2 for x in "abc" for y in "abc" if x != y)
    with pytest.raises(LeagueError, match="at least two"):
        round_robin(["a"])


def test_gauntlet_plays_the_whole_field():
    pairs = gauntlet("new", ["a", "b", "new"], games_per_opponent=1)
    assert sorted(pairs) == sorted([("new", "a"), ("a", "new"), ("new", "b"), ("b", "new")])


def test_swiss_pairs_by_points_and_avoids_rematches():
    rng = np.random.default_rng(0)
    players = ["a", "b", "c", "d", "e"]
    points = {"a": 2, "b": 1.5, "c": 1, "d": 0.5, "e": 0}
    pairs, bye = swiss_round(players, points, {}, {frozenset(("a", "b"))}, 0, rng)
    assert bye == "e"  # lowest ranked
    # a would meet b (next in score order) but already played b, so a gets c and b gets d
    assert {frozenset(p) for p in pairs} == {frozenset(("a", "c")), frozenset(("b", "d"))}


def test_proximity_picks_predicted_win_probability_closest_to_half():
    rng = np.random.default_rng(0)
    ratings = {"me": 1500, "weak": 1000, "near": 1540, "strong": 1900}
    assert proximity_opponent("me", ["weak", "near", "strong"], ratings, rng) == "near"


def test_pfsp_weights_and_sampling_follow_the_payoff_matrix():
    w = pfsp_weights(np.array([0.9, 0.5, 0.1]), "hard", 2)
    assert np.allclose(w, f_hard(np.array([0.9, 0.5, 0.1])) / f_hard(np.array([0.9, 0.5, 0.1])).sum())
    assert w[2] > w[1] > w[0]
    v = pfsp_weights(np.array([0.9, 0.5, 0.1]), "var")
    assert v[1] > v[0] and v[0] == pytest.approx(v[2])
    # "me" beats "easy" 9/10 and loses to "hard" 9/10: PFSP-hard draws "hard" most of the time
    games = [Game.duel("me", "easy", 1.0 if i < 9 else 0.0) for i in range(10)]
    games += [Game.duel("me", "hard", 0.0 if i < 9 else 1.0) for i in range(10)]
    pay = Payoff(games)
    assert pay.win_rate("me", "easy") == pytest.approx(9.5 / 11)
    assert pay.win_rate("me", "unseen") == 0.5
    rng = np.random.default_rng(1)
    picks = Counter(pfsp_opponent("me", ["easy", "hard"], pay, rng) for _ in range(400))
    assert picks["hard"] > 0.85 * 400
    with pytest.raises(LeagueError, match="weighting"):
        pfsp_weights(np.array([0.5]), "soft")
