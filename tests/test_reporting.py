"""Summaries: the ML-Agents console line and Unity Stats side-channel aggregation."""
from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from envs.adapter import EpisodeStats
from marl.reporting import StatsReporter


def test_console_line_and_stats_aggregation(tmp_path):
    buf = io.StringIO()
    rep = StatsReporter(tmp_path, {"agent": 100}, tensorboard=False, console=Console(file=buf, width=60))
    for r in ([1.0, 3.0], [5.0, 7.0]):
        rep.add_episode(EpisodeStats({"agent": np.array(r, np.float32)}, 10,
                                     {"unity_stats": [("Goals", 2.0, 2), ("Goals", 1.0, 2), ("Speed", r[0], 0), ("Last", r[1], 1)]}))
    rep.maybe_summarize(99)
    assert buf.getvalue() == ""
    rep.maybe_summarize(100)
    line = buf.getvalue().strip()
    assert line.startswith("[INFO] agent. Step: 100. Time Elapsed: ") and "\n" not in line  # never wrapped
    assert line.endswith("Mean Reward: 4.000. Std of Reward: 2.236. Training.")
    assert rep.last_100_mean("agent") == 4.0
    # the scalars were consumed by the summary; check the aggregation on a fresh reporter
    rep2 = StatsReporter(tmp_path, {"agent": 100}, tensorboard=False)
    for r in (1.0, 5.0):
        rep2.add_env_stats(EpisodeStats({}, 1, {"unity_stats": [("Goals", 2.0, "SUM"), ("Speed", r, 0), ("Last", r, "MOST_RECENT")]}))
    s = rep2.scalars["agent"]
    assert s["Goals"] == [4.0] and np.mean(s["Speed"]) == 3.0 and s["Last"] == [5.0]
