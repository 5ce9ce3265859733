"""Bradley-Terry maximum likelihood over the whole match log, with bootstrap intervals.

Model (Bradley & Terry 1952; team extension of Huang, Weng & Lin 2006): side A beats side B with
probability ``sigmoid(sum_{i in A} beta_i - sum_{j in B} beta_j)``; a draw counts as half a win for each
side (as Chatbot Arena does). ``beta`` is fitted by damped Newton on the negative log-likelihood plus a very weak
Gaussian prior (``ridge * |beta|^2``, which only keeps unbeaten players finite), then centred to mean 0
and shown on the Elo scale: ``rating = initial + 400 / ln(10) * beta`` (Chatbot Arena's scale and base).

Intervals: nonparametric bootstrap over matches (Efron 1979; what Chatbot Arena publishes): resample
the match log with replacement ``settings.bootstrap`` times (done exactly as a multinomial draw over the
distinct (pairing, outcome) cells, which is the same distribution and much faster), refit, and take the
percentile interval of each player's centred rating.

History (:func:`bradley_terry_history`): BT is a batch fit, not an online update, so its history is
the fit recomputed on growing prefixes of the log (the first k matches, for each mark k), without
bootstrap: a point estimate per player per mark, on the same Elo scale as the leaderboard.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from league.ratings.base import Rating, RatingSettings
from league.records import Game, pairwise_scores

ELO_PER_NAT = 400.0 / math.log(10.0)


@dataclass
class PairTable:
    """Aggregated pairwise outcomes.

    Attributes:
        players: names, index order of ``beta``.
        design: float64 ``[n_cells, n_players]``, +1 for side A members, -1 for side B members.
        counts: float64 ``[n_cells]``, games in the cell; ``score``: float64 ``[n_cells]`` A's score per game
            in the cell (1 win, 0.5 draw, 0 loss): every cell holds one outcome type.
    """

    players: list[str]
    design: np.ndarray
    counts: np.ndarray
    score: np.ndarray


def pair_table(games: Iterable[Game], players: Iterable[str] = ()) -> PairTable:
    """Aggregate the log into distinct (side A, side B, outcome) cells."""
    names: list[str] = list(dict.fromkeys(players))
    index = {p: i for i, p in enumerate(names)}
    cells: dict[tuple, float] = {}
    for g in games:
        for team in g.teams:
            for p in team:
                if p not in index:
                    index[p] = len(names)
                    names.append(p)
        for i, j, s in pairwise_scores(g):
            key = (tuple(sorted(g.teams[i])), tuple(sorted(g.teams[j])), s)
            cells[key] = cells.get(key, 0.0) + 1.0
    design = np.zeros((len(cells), len(names)))
    counts = np.zeros(len(cells))
    score = np.zeros(len(cells))
    for row, ((a, b, s), c) in enumerate(cells.items()):
        for p in a:
            design[row, index[p]] += 1.0
        for p in b:
            design[row, index[p]] -= 1.0
        counts[row], score[row] = c, s
    return PairTable(names, design, counts, score)


def fit_beta(design: np.ndarray, counts: np.ndarray, score: np.ndarray, ridge: float = 1e-4,
             x0: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood BT strengths (natural-log units, centred to mean 0), float64 ``[n_players]``.

    Args:
        design, counts, score: see :class:`PairTable`.
        ridge: weight of the ``|beta|^2`` prior (tiny: keeps the optimum finite for unbeaten players).
        x0: optional warm start.
    """
    n = design.shape[1]
    if n == 0:
        return np.zeros(0)
    wins = counts * score
    total = counts

    def nll(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ beta
        # -[w log s(z) + (n - w) log s(-z)], stable: log s(z) = -logaddexp(0, -z)
        f = np.sum(wins * np.logaddexp(0.0, -z) + (total - wins) * np.logaddexp(0.0, z)) + ridge * beta @ beta
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        g = design.T @ (total * p - wins) + 2.0 * ridge * beta
        return float(f), g

    # Damped Newton (the objective is convex; the Hessian X^T diag(n p (1-p)) X + 2 ridge I is n x n and cheap),
    # falling back to L-BFGS if Newton stalls (e.g. huge separated strengths).
    beta = np.zeros(n) if x0 is None else np.array(x0, dtype=np.float64)
    f, g = nll(beta)
    for _ in range(100):
        z = design @ beta
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        h = (design.T * (total * p * (1.0 - p))) @ design + 2.0 * ridge * np.eye(n)
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-6:
            f_new, g_new = nll(beta - t * step)
            if f_new <= f:
                break
            t *= 0.5
        else:
            break
        beta, f_prev, f, g = beta - t * step, f, f_new, g_new
        if f_prev - f < 1e-12 * max(1.0, abs(f)) and np.max(np.abs(g)) < 1e-6:
            break
    if np.max(np.abs(g)) > 1e-4:
        from scipy.optimize import minimize  # only for the rare fallback (its import costs ~1 s)

        beta = minimize(nll, beta, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-9}).x
    return beta - beta.mean()


def bradley_terry_ratings(games: Iterable[Game], settings: RatingSettings = RatingSettings(),
                          players: Iterable[str] = ()) -> dict[str, Rating]:
    """Fit BT on the whole log and bootstrap intervals.

    Returns:
        name -> :class:`Rating` on the Elo scale (mean = ``settings.initial``), with percentile
        ``settings.confidence`` interval from ``settings.bootstrap`` resamples (None when bootstrap = 0, and
        for players without games) and ``extra = {"beta": natural-log strength}``.
    """
    games = list(games)
    table = pair_table(games, players)
    n_games: dict[str, int] = {p: 0 for p in table.players}
    for g in games:
        for team in g.teams:
            for p in team:
                n_games[p] += 1
    beta = fit_beta(table.design, table.counts, table.score)
    lo = hi = None
    if settings.bootstrap > 0 and table.counts.sum() > 0:
        rng = np.random.default_rng(settings.seed)
        total = int(table.counts.sum())
        probs = table.counts / table.counts.sum()
        samples = np.empty((settings.bootstrap, len(beta)))
        for b in range(settings.bootstrap):
            c = rng.multinomial(total, probs).astype(np.float64)
            samples[b] = fit_beta(table.design, c, table.score, x0=beta)
        alpha = (1.0 - settings.confidence) / 2.0
        lo, hi = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    out = {}
    for i, p in enumerate(table.players):
        unplayed = n_games[p] == 0  # its rating is the scale's mean by construction: no interval to speak of
        out[p] = Rating(settings.initial + ELO_PER_NAT * beta[i],
                        None if lo is None or unplayed else settings.initial + ELO_PER_NAT * lo[i],
                        None if hi is None or unplayed else settings.initial + ELO_PER_NAT * hi[i],
                        n_games[p], {"beta": float(beta[i])})
    return out


def win_probability(beta_a: float, beta_b: float) -> float:
    """BT probability that A beats B from natural-log strengths."""
    return 1.0 / (1.0 + math.exp(beta_b - beta_a))


def bradley_terry_history(games: Iterable[Game], marks: Iterable[int], settings: RatingSettings = RatingSettings()
                          ) -> list[tuple[int, str, float]]:
    """BT ratings refitted on prefixes of the log (no bootstrap).

    Args:
        games: the match log in recording order.
        marks: prefix lengths k (numbers of matches); each is clipped to ``[1, len(games)]`` and
            deduplicated. Typical marks: every N matches, the ends of tournaments, and the whole log.
        settings: uses ``initial`` (the scale's mean); ``bootstrap`` is ignored on purpose (points only).

    Returns:
        ``(k, player, rating after the first k matches)`` for each mark (ascending) and each player who
        has played by then, on the Elo scale (``initial + 400/ln 10 * beta``, mean ``initial`` over the
        players present at that mark).
    """
    games = list(games)
    if not games:
        return []
    ks = sorted({min(max(int(k), 1), len(games)) for k in marks})
    out: list[tuple[int, str, float]] = []
    beta_prev: dict[str, float] = {}
    for k in ks:
        table = pair_table(games[:k])
        x0 = np.array([beta_prev.get(p, 0.0) for p in table.players])
        beta = fit_beta(table.design, table.counts, table.score, x0=x0)
        beta_prev = dict(zip(table.players, beta.tolist()))
        out.extend((k, p, settings.initial + ELO_PER_NAT * float(b)) for p, b in zip(table.players, beta))
    return out
