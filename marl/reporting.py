"""Training statistics: TensorBoard scalars and console lines with ML-Agents' names.

Every ``summary_freq`` env steps each behavior writes, to ``results/<run-id>/<Behavior>/``
(TensorBoard events), ``Environment/Cumulative Reward`` (mean per-agent episode return of the
episodes finished since the last summary), ``Environment/Episode Length``, the trainer's update
scalars (``Policy/Entropy``, ``Losses/Value Loss`` ...) averaged over the updates in between,
and any custom stats (``Self-play/ELO``, Unity Stats side-channel keys). The console gets
ML-Agents' line:
``[INFO] <Behavior>. Step: N. Time Elapsed: T s. Mean Reward: R. Std of Reward: S. Training.``
"""
from __future__ import annotations

import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np


class StatsReporter:
    """Accumulates per-behavior statistics and writes a summary every ``summary_freq`` env steps.

    Args:
        run_dir: ``results/<run-id>``.
        summary_freq: behavior -> summary period in env steps.
        tensorboard: write TensorBoard events (off in tests that do not need them).
        console: a ``rich.console.Console`` for the INFO lines (None = print nothing).
    """

    def __init__(self, run_dir: Path, summary_freq: dict[str, int], tensorboard: bool = True, console=None,
                 start_step: int = 0):
        self.run_dir, self.freq, self.console = Path(run_dir), summary_freq, console
        self.t0 = time.time()
        self.rewards: dict[str, list[float]] = defaultdict(list)
        self.lengths: dict[str, list[int]] = defaultdict(list)
        self.scalars: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))  # last 100 episodes' per-agent mean
        self.next_summary = {b: (start_step // f + 1) * f for b, f in summary_freq.items()}
        # (step, mean per-agent return since the last summary, mean over the last 100 episodes)
        self.history: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        self._writers = {}
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writers = {b: SummaryWriter(str(self.run_dir / b)) for b in summary_freq}

    def add_episode(self, stats) -> None:
        """Record one finished episode (:class:`envs.adapter.EpisodeStats`), with its env stats."""
        self.add_env_stats(stats)
        for b, returns in stats.returns.items():
            r = returns[~np.isnan(returns)]
            if r.size == 0 or b not in self.freq:
                continue
            self.rewards[b].extend(r.tolist())
            self.lengths[b].append(stats.length)
            self.recent[b].append(float(r.mean()))

    def add_env_stats(self, stats) -> None:
        """Unity Stats side-channel values of a finished episode (``info["unity_stats"]``:
        ``(key, value, aggregation)`` tuples, aggregation 0 average | 1 most recent | 2 sum |
        3 histogram). Each is logged under its own key for every behavior: averages and
        histograms are averaged over the summary period, most-recent keeps the last value, sums add up."""
        names = {"AVERAGE": 0, "MOST_RECENT": 1, "SUM": 2, "HISTOGRAM": 3}
        for key, value, agg in stats.info.get("unity_stats", ()) if isinstance(stats.info, dict) else ():
            agg = names.get(agg, 0) if isinstance(agg, str) else int(getattr(agg, "value", agg))
            for b in self.freq:
                if agg == 1:
                    self.scalars[b][key] = [float(value)]
                elif agg == 2:
                    vals = self.scalars[b][key]
                    vals[:] = [sum(vals) + float(value)]
                else:
                    self.scalars[b][key].append(float(value))

    def add_scalars(self, behavior: str, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.scalars[behavior][k].append(float(v))

    def last_100_mean(self, behavior: str) -> float:
        """Mean per-agent return over the last 100 finished episodes (NaN before any)."""
        r = self.recent.get(behavior)
        return float(np.mean(r)) if r else float("nan")

    def maybe_summarize(self, step: int, force: bool = False) -> None:
        """Write summaries for every behavior whose ``summary_freq`` boundary ``step`` has passed."""
        for b, nxt in self.next_summary.items():
            if step < nxt and not force:
                continue
            self._summarize(b, step)
            self.next_summary[b] = (step // self.freq[b] + 1) * self.freq[b]

    def _summarize(self, b: str, step: int) -> None:
        w = self._writers.get(b)
        rewards = self.rewards.pop(b, [])
        lengths = self.lengths.pop(b, [])
        if rewards:
            mean, std = float(np.mean(rewards)), float(np.std(rewards))
            self.history[b].append((step, mean, self.last_100_mean(b)))
            if w:
                w.add_scalar("Environment/Cumulative Reward", mean, step)
                w.add_scalar("Environment/Episode Length", float(np.mean(lengths)), step)
        for k, vals in self.scalars.pop(b, {}).items():
            if w and vals:
                w.add_scalar(k, float(np.mean(vals)), step)
        if w:
            w.flush()
        if self.console is not None:
            elapsed = time.time() - self.t0
            if rewards:
                self.console.print(f"[INFO] {b}. Step: {step}. Time Elapsed: {elapsed:.3f} s. Mean Reward: {mean:.3f}. "
                                   f"Std of Reward: {std:.3f}. Training.", highlight=False, markup=False, soft_wrap=True)
            else:
                self.console.print(f"[INFO] {b}. Step: {step}. Time Elapsed: {elapsed:.3f} s. No episode was completed "
                                   "since last summary. Training.", highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
