"""Episode storage for off-policy recurrent trainers (QMIX, VDN): a per-copy recorder and a replay ring.

Layout (pymarl's ``EpisodeBatch``, oxwhirl/pymarl ``components/episode_buffer.py``): an episode of
``L`` transitions is stored as ``L + 1`` rows; row ``t`` holds what was known *before* the action
of step ``t`` (observations, state, masks) and what happened in step ``t`` (actions, reward,
termination), and row ``L`` holds the observations/state to bootstrap from. Episodes are padded
with zeros to the buffer's row count; ``length`` says how many transitions are real, so a batch
carries ``filled[b, t] = t < length[b]``.

Every field is ``[capacity, rows, *shape]``. The row count grows on demand (doubling) when an
episode is longer than any seen before, so whole episodes of any length fit.
"""
from __future__ import annotations

import numpy as np
import torch

Fields = dict[str, tuple[tuple[int, ...], np.dtype]]
"""``name -> (per-row shape, dtype)``."""


def _grow(arr: np.ndarray, axis: int, rows: int) -> np.ndarray:
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (0, rows - arr.shape[axis])
    return np.pad(arr, pad)


class EpisodeRecorder:
    """The episodes in progress of ``E`` env copies, one row per env step (see the module docstring).

    Args:
        n_envs: env copies ``E``.
        fields: per-row fields.
        rows: initial rows per episode (grows by doubling).

    Attributes:
        data: ``name -> ndarray [E, rows, *shape]``.
        t: int64 ``[E]``: the row each copy writes next (= transitions recorded so far).
    """

    def __init__(self, n_envs: int, fields: Fields, rows: int = 32):
        self.E, self.fields = n_envs, dict(fields)
        self.data = {k: np.zeros((n_envs, rows, *s), d) for k, (s, d) in fields.items()}
        self.t = np.zeros(n_envs, np.int64)
        self._e = np.arange(n_envs)

    @property
    def rows(self) -> int:
        return next(iter(self.data.values())).shape[1]

    def _ensure(self, row: int) -> None:
        if row >= self.rows:
            rows = max(2 * self.rows, row + 1)
            self.data = {k: _grow(v, 1, rows) for k, v in self.data.items()}

    def write(self, name: str, values: np.ndarray, offset: int = 0, where: np.ndarray | None = None) -> None:
        """Write ``values`` ``[E, *shape]`` into row ``t + offset`` of each copy (only copies in ``where``)."""
        self._ensure(int(self.t.max()) + offset)
        if where is None:
            self.data[name][self._e, self.t + offset] = values
        elif where.any():
            self.data[name][self._e[where], self.t[where] + offset] = values[where]

    def advance(self) -> None:
        """Every copy moves to its next row."""
        self.t += 1

    def take(self, e: int) -> tuple[dict[str, np.ndarray], int]:
        """Copy out copy ``e``'s episode (rows ``0..t``, so ``t`` transitions plus the bootstrap row)
        and start a fresh one. Returns ``(fields, n_transitions)``."""
        n = int(self.t[e])
        out = {k: v[e, : n + 1].copy() for k, v in self.data.items()}
        for v in self.data.values():
            v[e, : n + 1] = 0
        self.t[e] = 0
        return out, n


class EpisodeReplayBuffer:
    """A ring of the last ``capacity`` episodes (see the module docstring), sampled uniformly.

    Args:
        capacity: episodes kept (``buffer_size``).
        fields: per-row fields.
        rows: initial rows per episode (grows by doubling).

    Attributes:
        pos: ring index the next episode is written to; ``count``: episodes stored;
        ``added``: episodes ever added.
    """

    def __init__(self, capacity: int, fields: Fields, rows: int = 32):
        self.capacity, self.fields = capacity, dict(fields)
        self.data = {k: np.zeros((capacity, rows, *s), d) for k, (s, d) in fields.items()}
        self.length = np.zeros(capacity, np.int64)
        self.pos = self.count = self.added = 0

    @property
    def rows(self) -> int:
        return next(iter(self.data.values())).shape[1]

    def __len__(self) -> int:
        return self.count

    def add(self, episode: dict[str, np.ndarray], length: int) -> None:
        """Store one episode: ``episode[name]`` ``[length + 1, *shape]``; overwrites the oldest when full."""
        if length + 1 > self.rows:
            rows = max(2 * self.rows, length + 1)
            self.data = {k: _grow(v, 1, rows) for k, v in self.data.items()}
        i = self.pos
        for k, v in self.data.items():
            v[i] = 0
            v[i, : length + 1] = episode[k]
        self.length[i] = length
        self.pos = (self.pos + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)
        self.added += 1

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu"
               ) -> dict[str, torch.Tensor]:
        """``batch_size`` distinct episodes, cut to the longest one's ``L`` transitions.

        Returns:
            ``name -> tensor [B, L + 1, *shape]`` plus ``"filled"`` float32 ``[B, L]``.

        Raises:
            ValueError: fewer than ``batch_size`` episodes stored.
        """
        if batch_size > self.count:
            raise ValueError(f"cannot sample {batch_size} episodes from a buffer holding {self.count}")
        idx = rng.choice(self.count, batch_size, replace=False)
        L = int(self.length[idx].max())
        out = {k: torch.from_numpy(v[idx, : L + 1]).to(device) for k, v in self.data.items()}
        out["filled"] = (torch.arange(L)[None, :] < torch.from_numpy(self.length[idx])[:, None]).float().to(device)
        return out

    def state_dict(self, with_data: bool) -> dict:
        """Ring position and counters; the stored episodes too when ``with_data``."""
        d = {"pos": self.pos, "count": self.count, "added": self.added, "capacity": self.capacity}
        if with_data:
            n = self.count
            d["length"] = self.length.copy()
            d["data"] = {k: v.copy() for k, v in self.data.items()} if n else None
        return d

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`. With stored episodes the ring (data, position, count) is exact;
        without them the buffer restarts empty at position 0 and only ``added`` carries over."""
        self.added = int(state.get("added", 0))
        if state.get("data") is not None and int(state.get("capacity", -1)) == self.capacity:
            self.data = {k: np.array(state["data"][k]) for k in self.data}
            self.length = np.array(state["length"])
            self.pos, self.count = int(state["pos"]), int(state["count"])
        else:
            self.pos = self.count = 0
            self.length[:] = 0
