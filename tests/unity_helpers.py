"""Shared pieces of the Unity tests: the stand-in's path, free ports, and a per-test time limit."""
from __future__ import annotations

import os
import signal
import socket
import sys

import numpy as np
import pytest

STANDIN = os.path.join(os.path.dirname(sys.executable), "marl-unity-standin")


def free_port(n: int = 1, lo: int = 21000, hi: int = 29000) -> int:
    """A port p in [lo, hi) with p .. p+n-1 free on 127.0.0.1 (random start: parallel runs rarely collide).

    Raises:
        RuntimeError: no such range found in 200 tries.
    """
    rng = np.random.default_rng()
    for _ in range(200):
        p = int(rng.integers(lo, hi - n))
        try:
            for q in range(p, p + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port")


def time_limit(seconds: int):
    """An autouse fixture: SIGALRM fails the test after ``seconds`` (no Unity test may hang)."""
    @pytest.fixture(autouse=True)
    def _time_limit():
        def boom(*_):
            raise TimeoutError(f"test took longer than {seconds} s")
        old = signal.signal(signal.SIGALRM, boom)
        signal.alarm(seconds)
        yield
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return _time_limit
