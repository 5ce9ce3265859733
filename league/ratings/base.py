"""Common types of the rating systems."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rating:
    """A player's rating under one system.

    Attributes:
        rating: the value to rank by and display (Elo points; OpenSkill's conservative ``mu - 3*sigma``;
            BT on the Elo scale).
        lower, upper: a ``confidence`` (95%) interval of :attr:`center` on the same scale, or None when
            the system has none (online Elo). ``lower <= center <= upper`` always holds.
        games: number of rated games the player took part in.
        extra: system-specific values (OpenSkill ``mu``/``sigma``, BT ``beta`` in natural-log units).
        estimate: the point estimate the interval is about, when it is not ``rating`` (OpenSkill: ``mu``;
            its conservative rating ``mu - 3 sigma`` lies below the interval by design). None = ``rating``.
    """

    rating: float
    lower: float | None = None
    upper: float | None = None
    games: int = 0
    extra: dict = field(default_factory=dict)
    estimate: float | None = None

    @property
    def center(self) -> float:
        """The point estimate the interval ``[lower, upper]`` surrounds (``estimate`` or ``rating``)."""
        return self.rating if self.estimate is None else self.estimate


@dataclass(frozen=True)
class RatingSettings:
    """Settings shared by the rating systems (the league config's ``ratings:`` block).

    Attributes:
        elo_k: Elo K factor (points per unit of surprise); ML-Agents' docs say 16.
        initial: initial Elo rating and the anchor (mean) of the Bradley-Terry scale; ML-Agents uses 1200.
        openskill_model: an ``openskill.models`` class name (PlackettLuce is Weng-Lin's default).
        bootstrap: Bradley-Terry bootstrap resamples for the intervals.
        confidence: interval coverage (0.95).
        seed: RNG seed of the bootstrap (so the leaderboard is reproducible).
    """

    elo_k: float = 16.0
    initial: float = 1200.0
    openskill_model: str = "PlackettLuce"
    bootstrap: int = 200
    confidence: float = 0.95
    seed: int = 0
