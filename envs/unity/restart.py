"""Restart quota of one Unity worker (ML-Agents' ``SubprocessEnvManager._worker_has_restart_quota``).

A worker whose player dies may restart while both hold:

* lifetime: fewer than ``max_lifetime_restarts`` restarts so far (-1 = unlimited);
* rate: fewer than ``restarts_rate_limit_n`` restarts in the last ``restarts_rate_limit_period_s``
  seconds (-1 = unlimited).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable


class RestartLimiter:
    """Counts restarts of one worker and says whether another is allowed.

    Args:
        max_lifetime_restarts: total restarts allowed (-1 = unlimited; ML-Agents default 10).
        restarts_rate_limit_n: restarts allowed per period (-1 = unlimited; default 1).
        restarts_rate_limit_period_s: the period in seconds (default 60).
        clock: monotonic time source in seconds (tests inject a fake one).
    """

    def __init__(self, max_lifetime_restarts: int = 10, restarts_rate_limit_n: int = 1,
                 restarts_rate_limit_period_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.max_lifetime_restarts = int(max_lifetime_restarts)
        self.rate_n = int(restarts_rate_limit_n)
        self.period = float(restarts_rate_limit_period_s)
        self.clock = clock
        self.count = 0
        self._recent: deque[float] = deque()

    def allowed(self) -> bool:
        """Whether one more restart fits both limits now."""
        now = self.clock()
        while self._recent and now - self._recent[0] > self.period:
            self._recent.popleft()
        lifetime_ok = self.max_lifetime_restarts == -1 or self.count < self.max_lifetime_restarts
        rate_ok = self.rate_n == -1 or len(self._recent) < self.rate_n
        return lifetime_ok and rate_ok

    def record(self) -> None:
        """Count one restart now."""
        self.count += 1
        self._recent.append(self.clock())

    def describe(self) -> str:
        """The limits, for error messages."""
        return (f"max_lifetime_restarts={self.max_lifetime_restarts}, restarts_rate_limit_n={self.rate_n} "
                f"per restarts_rate_limit_period_s={self.period:g}; {self.count} restart(s) so far")
