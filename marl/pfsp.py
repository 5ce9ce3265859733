"""Prioritised fictitious self-play (PFSP) weights: pure math, shared by self-play and the league.

Reference: Vinyals et al. 2019, "Grandmaster level in StarCraft II using multi-agent reinforcement
learning" (AlphaStar), Methods, "Prioritized fictitious self-play": opponent B is drawn with
probability proportional to ``f(P[A beats B])`` with ``f_hard(x) = (1 - x)^p`` (p = 2 in the published
pseudocode) or ``f_var(x) = x (1 - x)``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

WEIGHTINGS = ("hard", "var", "uniform")


def f_hard(x: np.ndarray, p: float = 2.0) -> np.ndarray:
    """PFSP weighting ``(1 - x)^p`` on win probability x: focus on opponents we lose to (AlphaStar, p=2)."""
    return (1.0 - x) ** p


def f_var(x: np.ndarray) -> np.ndarray:
    """PFSP weighting ``x (1 - x)``: focus on opponents of similar strength (AlphaStar)."""
    return x * (1.0 - x)


def pfsp_weights(win_rates: np.ndarray, weighting: str = "hard", p: float = 2.0) -> np.ndarray:
    """Normalised PFSP probabilities from the anchor's win rates against each candidate.

    Args:
        win_rates: float ``[n_candidates]``, P[anchor beats candidate] in [0, 1].
        weighting: ``"hard"`` (f_hard with exponent ``p``), ``"var"`` (f_var) or ``"uniform"``.
        p: f_hard's exponent.

    Returns:
        float64 ``[n_candidates]`` summing to 1 (uniform when every weight is 0).

    Raises:
        ValueError: unknown weighting or no candidates.
    """
    x = np.clip(np.asarray(win_rates, dtype=np.float64), 0.0, 1.0)
    if x.size == 0:
        raise ValueError("pfsp: no candidate opponents")
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hard": lambda v: f_hard(v, p), "var": f_var,
                                                          "uniform": np.ones_like}
    if weighting not in fns:
        raise ValueError(f"pfsp weighting '{weighting}' unknown; expected hard, var or uniform")
    w = fns[weighting](x)
    total = w.sum()
    return w / total if total > 0 else np.full(x.size, 1.0 / x.size)
