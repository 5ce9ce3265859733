"""On-policy rollout storage and GAE for agents that may act at different env steps.

Rows are env steps ``t``; every per-agent array is ``[T, E, A]`` (``E`` env copies, ``A`` agent
slots of one behavior). A row holds an experience for slot ``(e, a)`` only where ``valid`` is set
(the agent had a decision at that step). Rewards an agent receives between two of its decisions
are added to its *last* decision's row (:meth:`RolloutBuffer.add_reward`), which is how
ML-Agents assembles trajectories; so turn-based games, decision periods > 1 and agents that die
early all reduce to the same GAE recursion over each slot's own sequence of decisions.
"""
from __future__ import annotations

import numpy as np
import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, valid: torch.Tensor,
        bootstrap: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over each slot's valid rows.

    Args:
        rewards: float32 ``[T, ...]`` reward attributed to each decision (0 where not valid). On a
            truncation the caller has already added ``gamma * V(final obs)``.
        values: float32 ``[T, ...]`` value estimates (denormalised) at each decision.
        dones: float32/bool ``[T, ...]`` 1 where the slot's episode ended after this decision
            (no bootstrapping across it).
        valid: bool ``[T, ...]`` rows that are real decisions; others are skipped and get 0.
        bootstrap: float32 ``[...]`` value of each slot's state after its last valid row.
        gamma, lam: discount and GAE lambda.

    Returns:
        ``(advantages, returns)``, both float32 ``[T, ...]``; ``returns = advantages + values``
        on valid rows, 0 elsewhere.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    next_value = bootstrap.clone()
    next_adv = torch.zeros_like(bootstrap)
    not_done = 1.0 - dones.float()
    for t in range(T - 1, -1, -1):
        v = valid[t]
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        a = delta + gamma * lam * not_done[t] * next_adv
        adv[t] = torch.where(v, a, torch.zeros_like(a))
        next_value = torch.where(v, values[t], next_value)
        next_adv = torch.where(v, a, next_adv)
    returns = torch.where(valid, adv + values, torch.zeros_like(adv))
    return adv, returns


class RolloutBuffer:
    """Preallocated numpy storage for one behavior's rollout (see the module docstring).

    Args:
        capacity: max rows ``T``.
        n_envs, n_agents: ``E`` and ``A``.
        fields: ``name -> (per-slot shape, dtype)`` for the per-slot arrays (obs, actions...).

    Every field is an ndarray ``[capacity, E, A, *shape]``; ``reward``, ``done`` (float32) and
    ``valid`` (bool) ``[capacity, E, A]`` always exist. ``last_row`` int64 ``[E, A]`` is the row of
    each slot's latest decision (-1 = none open).
    """

    def __init__(self, capacity: int, n_envs: int, n_agents: int, fields: dict[str, tuple[tuple[int, ...], np.dtype]]):
        self.capacity, self.E, self.A = capacity, n_envs, n_agents
        self.data = {k: np.zeros((capacity, n_envs, n_agents, *s), d) for k, (s, d) in fields.items()}
        self.reward = np.zeros((capacity, n_envs, n_agents), np.float32)
        self.done = np.zeros((capacity, n_envs, n_agents), np.float32)
        self.valid = np.zeros((capacity, n_envs, n_agents), np.bool_)
        self.last_row = np.full((n_envs, n_agents), -1, np.int64)
        self._e, self._a = np.meshgrid(np.arange(n_envs), np.arange(n_agents), indexing="ij")
        self.t = 0
        self.count = 0

    def reset(self) -> None:
        """Start a new rollout; decisions still open from the last one are dropped."""
        self.reward[: self.t] = 0.0
        self.done[: self.t] = 0.0
        self.valid[: self.t] = False
        self.last_row[:] = -1
        self.t = 0
        self.count = 0

    def add_decisions(self, active: np.ndarray, **values: np.ndarray) -> int:
        """Store row ``t`` for the slots with ``active`` (bool ``[E, A]``) set; returns the row index."""
        t = self.t
        for k, v in values.items():
            self.data[k][t] = v
        self.valid[t] = active
        self.last_row[active] = t
        self.count += int(active.sum())
        self.t += 1
        return t

    def add_reward(self, reward: np.ndarray) -> None:
        """Add ``reward`` float32 ``[E, A]`` to each slot's open decision."""
        open_ = self.last_row >= 0
        if open_.all():
            self.reward[self.last_row, self._e, self._a] += reward
        elif open_.any():
            self.reward[self.last_row[open_], self._e[open_], self._a[open_]] += reward[open_]

    def end_episodes(self, ended: np.ndarray, bootstrap_reward: np.ndarray | None = None) -> None:
        """Close the open decision of slots with ``ended`` (bool ``[E, A]``) set.

        ``bootstrap_reward`` float32 ``[E, A]`` (``gamma * V(final obs)`` for truncated slots, 0
        for terminated ones) is added to that decision's reward.
        """
        m = ended & (self.last_row >= 0)
        if not m.any():
            self.last_row[ended] = -1
            return
        rows, e, a = self.last_row[m], self._e[m], self._a[m]
        self.done[rows, e, a] = 1.0
        if bootstrap_reward is not None:
            self.reward[rows, e, a] += bootstrap_reward[m]
        self.last_row[ended] = -1

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """All filled rows as torch tensors ``[t, E, A, ...]`` (zero-copy on CPU)."""
        t = self.t
        out = {k: torch.from_numpy(v[:t]).to(device) for k, v in self.data.items()}
        out.update(reward=torch.from_numpy(self.reward[:t]).to(device), done=torch.from_numpy(self.done[:t]).to(device),
                   valid=torch.from_numpy(self.valid[:t]).to(device))
        return out


def sequence_chunks(group: np.ndarray, t: np.ndarray, done: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut recorded decisions into training sequences for recurrent policies (ML-Agents / rMAPPO).

    Each slot's decisions, in time order, are cut at every episode end and every ``seq_len``
    decisions into an episode, so no sequence spans two episodes and each starts from the memory
    stored with its first decision (zeros at an episode start). Reference: rMAPPO's
    ``data_chunk_length`` chunks (marlbenchmark/on-policy ``SharedReplayBuffer.recurrent_generator``)
    and ML-Agents' ``sequence_length`` (its trajectories are padded the same way).

    Args:
        group: int64 ``[n]``: the slot (e.g. ``e * A + a``) of each decision.
        t: int64 ``[n]``: its row (time) in the rollout.
        done: bool/float ``[n]``: the slot's episode ended after this decision.
        seq_len: decisions per sequence (``network_settings.memory.sequence_length``).

    Returns:
        int64 ``[N, seq_len]``: for each sequence the positions (into the ``n`` inputs) of its decisions
        in order, ``-1`` where the sequence ended early (padding).
    """
    n = len(group)
    if n == 0:
        return np.zeros((0, seq_len), np.int64)
    perm = np.lexsort((t, group))
    g, dn = group[perm], np.asarray(done)[perm] > 0
    ar = np.arange(n)
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_episode = new_group | np.r_[True, dn[:-1]]
    pos_in_ep = ar - np.maximum.accumulate(np.where(new_episode, ar, 0))
    new_chunk = new_episode | (pos_in_ep % seq_len == 0)
    chunk = np.cumsum(new_chunk) - 1
    pos = ar - np.maximum.accumulate(np.where(new_chunk, ar, 0))
    out = np.full((int(chunk[-1]) + 1, seq_len), -1, np.int64)
    out[chunk, pos] = perm
    return out


def merge_buffers(parts: list[RolloutBuffer]) -> RolloutBuffer:
    """Stack rollout fragments of different env copies (e.g. from several env runners) along the copy
    axis: ``[T_i, E_i, A, ...]`` -> ``[max T_i, sum E_i, A, ...]``; rows a fragment lacks are invalid."""
    T = max(p.t for p in parts)
    E = sum(p.E for p in parts)
    first = parts[0]
    fields = {k: (v.shape[3:], v.dtype) for k, v in first.data.items()}
    out = RolloutBuffer(max(T, 1), E, first.A, fields)
    off = 0
    for p in parts:
        t, e = p.t, p.E
        for k, v in p.data.items():
            out.data[k][:t, off:off + e] = v[:t]
        out.reward[:t, off:off + e] = p.reward[:t]
        out.done[:t, off:off + e] = p.done[:t]
        out.valid[:t, off:off + e] = p.valid[:t]
        off += e
    out.t, out.count = T, sum(p.count for p in parts)
    return out


def compact_buffer(buf: RolloutBuffer) -> RolloutBuffer:
    """A copy holding only the filled rows (what an env runner ships back)."""
    fields = {k: (v.shape[3:], v.dtype) for k, v in buf.data.items()}
    out = RolloutBuffer(max(buf.t, 1), buf.E, buf.A, fields)
    t = buf.t
    for k, v in buf.data.items():
        out.data[k][:t] = v[:t]
    out.reward[:t], out.done[:t], out.valid[:t] = buf.reward[:t], buf.done[:t], buf.valid[:t]
    out.t, out.count = t, buf.count
    return out
