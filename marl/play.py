"""The one play loop: N episodes of any env, any mix of policies per behavior and slot, seeded.

``marl-evaluate`` (:mod:`marl.evaluate`), ``marl-evaluate-vs`` (:mod:`marl.evaluate_vs`) and league
matches (:mod:`league.match`) all play through :func:`play_episodes`. Episodes run in-process on
``copies`` env copies (:class:`envs.adapter.ArrayEnv`, the same observation path as training:
the run's ``supersuit`` wrappers, ``behavior_map`` and env kwargs apply). Every env step makes one
batched :meth:`marl.policy.Policy.act` call per (behavior, policy) over all copies and the slots
that must act, so a policy's recurrent state is kept per (copy, slot) row and zeroed when that
copy's episode ends.

Seating: ``seating[behavior]`` is one :class:`~marl.policy.Policy` for every slot of the behavior,
or a list with one policy per slot (e.g. a snapshot in seat 0 and MCTS in seat 1). Slots keep
their index (``agent_index``), so a shared policy that takes an agent id acts as the agent of that
slot, exactly as in training.

Units: ``max_steps`` counts env steps of one episode (turns in an AEC game); an episode that
reaches it is cut and scored as it stands (``EpisodeResult.cut``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from envs.adapter import ArrayEnv, EpisodeStats
from envs.spec import EnvSpec, array_layout
from marl.policy import Policy, PolicyError, RandomPolicy

Seating = dict[str, "Policy | Sequence[Policy]"]


@dataclass
class EpisodeResult:
    """One finished (or cut) episode.

    Attributes:
        copy: env copy index that played it.
        index: its number among the episodes of that copy (0, 1, ...).
        returns: behavior -> float32 ``[n_agents]`` summed rewards (NaN for slots not in the episode).
        length: env steps.
        cut: True when ``max_steps`` ended it before the env did.
        actions: ``[(agent name, action)]`` in play order when ``record_actions`` (actions as JSON-able
            ints / lists), else empty.
        action_hash: SHA-256 (hex, 16 chars) of the action sequence when ``record_actions``: equal for
            replays of the same game.
    """

    copy: int
    index: int
    returns: dict[str, np.ndarray]
    length: int
    cut: bool = False
    actions: list = field(default_factory=list)
    action_hash: str | None = None


def _slot_policies(spec: EnvSpec, seating: Seating) -> dict[str, list[tuple[Policy, np.ndarray]]]:
    """behavior -> [(policy, bool slot mask [A])], one entry per distinct policy object."""
    out: dict[str, list[tuple[Policy, np.ndarray]]] = {}
    for b in spec.behaviors:
        if b.name not in seating:
            raise PolicyError(f"no policy seated for behavior '{b.name}' (seated: {', '.join(seating) or 'none'})")
        chosen = seating[b.name]
        per_slot = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen] * b.n_agents
        if len(per_slot) != b.n_agents:
            raise PolicyError(f"behavior '{b.name}' has {b.n_agents} slots, {len(per_slot)} policies were seated")
        groups: dict[int, tuple[Policy, np.ndarray]] = {}
        bound: dict[int, Policy] = {}
        for i, p in enumerate(per_slot):
            if isinstance(p, RandomPolicy) and (p.spec is None or p.spec.name != b.name):
                p = bound.setdefault(id(p), RandomPolicy(b))  # a random player acts with this behavior's actions
            p.check_fits(b)
            entry = groups.setdefault(id(p), (p, np.zeros(b.n_agents, np.bool_)))
            entry[1][i] = True
        out[b.name] = list(groups.values())
    return out


def act_rows(policy: Policy, arrays: dict[str, np.ndarray], spec, rows: np.ndarray, deterministic: bool = True,
             hidden: np.ndarray | None = None, game_states: Callable[[np.ndarray], list] | None = None):
    """One batched ``policy.act`` for the ``rows`` (bool ``[E, A]``) of behavior ``spec``; writes the actions
    into ``arrays["<behavior>/act_d"]`` / ``["act_c"]`` (already in ``[-1, 1]``).

    Used by the play loop and by the trainers' collectors (self-play opponents).

    Args:
        hidden: the policy's recurrent store ``[E, A, ...]`` for this behavior (read only; the caller
            stores the returned rows), or None.
        game_states: ``fn(copy indices) -> [state]`` for policies that need the game state.

    Returns:
        ``(copy indices, slot indices, d, c, new hidden rows)`` of the rows that acted.
    """
    name = spec.name
    e_idx, a_idx = np.nonzero(rows)
    if e_idx.size == 0:
        return e_idx, a_idx, None, None, None
    obs = arrays[f"{name}/obs"][e_idx, a_idx]
    mask_all = arrays.get(f"{name}/mask")
    mask = None if mask_all is None else mask_all[e_idx, a_idx]
    h_in = None if hidden is None else hidden[e_idx, a_idx]
    states = game_states(e_idx) if policy.needs_game_state and game_states is not None else None
    d, c, h = policy.act(obs, a_idx.astype(np.int64), mask, h_in, deterministic=deterministic, game_states=states)
    if d is not None:
        arrays[f"{name}/act_d"][e_idx, a_idx] = np.asarray(d).reshape(len(e_idx), -1)
    if c is not None:
        arrays[f"{name}/act_c"][e_idx, a_idx] = np.asarray(c).reshape(len(e_idx), -1)
    return e_idx, a_idx, d, c, h


def _rows_of(e_idx: np.ndarray, a_idx: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.zeros(shape, np.bool_)
    rows[e_idx, a_idx] = True
    return rows


def _action_value(d_row, c_row):
    """A JSON-able action for the replay log: an int for one branch, else a list."""
    if d_row is not None and c_row is None:
        return int(d_row[0]) if len(d_row) == 1 else [int(x) for x in d_row]
    if d_row is None:
        return [round(float(x), 6) for x in c_row]
    return [[int(x) for x in d_row], [round(float(x), 6) for x in c_row]]


def play_episodes(make_env: Callable[[int], ArrayEnv], seating: Seating | Callable[[EnvSpec], Seating],
                  episodes: int, seed: int = 0, deterministic: bool = True, copies: int | None = None,
                  opening_moves: int = 0, max_steps: int | None = None, record_actions: bool = False,
                  spec: EnvSpec | None = None) -> list[EpisodeResult]:
    """Play ``episodes`` episodes and return them in the order they finished.

    Args:
        make_env: ``make_env(copy_index) -> ArrayEnv`` (a fresh env; it is reset here).
        seating: behavior -> policy (all slots) or per-slot list; or a function of the env's spec
            returning that mapping.
        episodes: episodes to play; copy ``e`` plays ``episodes // copies`` (+1 for the first
            ``episodes % copies``) in full, so each counted episode is complete and unbiased by length.
        seed: copy ``e`` resets with ``seed + e``; the k-th distinct policy is ``reset(seed * 1000003 + k)``
            first (k in seating order); the opening moves draw from ``numpy.random.default_rng([seed, 7])``.
        deterministic: greedy actions (else sampled).
        copies: env copies played side by side (default ``min(16, episodes)``).
        opening_moves: the first ``opening_moves`` env steps of every episode are played uniformly at
            random over the legal actions (the same for every policy), so games between
            deterministic players differ (as opening books do in engine tournaments).
        max_steps: cut an episode after this many env steps (None = no cap).
        record_actions: keep each episode's action log and its hash.
        spec: the env's spec when the caller already has it (else read from copy 0).

    Returns:
        ``EpisodeResult`` per episode.

    Raises:
        PolicyError: a behavior without a policy, or a policy that does not fit its behavior.
        EnvError: the env failed.
    """
    if episodes < 1:
        return []
    n = max(1, min(copies or 16, episodes))
    envs: list[ArrayEnv] = []
    try:
        layout = None
        arrays: dict[str, np.ndarray] = {}
        for e in range(n):
            env = make_env(e)
            if layout is None:
                spec = spec or env.spec
                layout = array_layout(spec)
                arrays = {k: np.zeros((n, *s), d) for k, (s, d) in layout.items()}
            env.rebind({k: v[e] for k, v in arrays.items()})
            env.reset(seed + e)
            envs.append(env)
        assert spec is not None
        seats = seating(spec) if callable(seating) else seating
        groups = _slot_policies(spec, seats)
        k = 0
        for b in groups.values():
            for p, _ in b:
                p.reset(int(seed) * 1_000_003 + k)  # each distinct policy its own stream
                k += 1
        opening_rng = np.random.default_rng([int(seed) % (2**63), 7])
        opening = RandomPolicy(None, 0)
        quota = np.array([episodes // n + (e < episodes % n) for e in range(n)])
        played = np.zeros(n, np.int64)
        length = np.zeros(n, np.int64)
        hidden: dict[tuple[str, int], np.ndarray | None] = {}
        logs: list[list] = [[] for _ in range(n)]
        results: list[EpisodeResult] = []
        agents = {b.name: b.agents for b in spec.behaviors}

        traj = {b.name: arrays[f"{b.name}/traj_id"].copy() for b in spec.behaviors if f"{b.name}/traj_id" in arrays}
        while (played < quota).any():
            live = played < quota
            for b in spec.behaviors:
                name = b.name
                if name in traj:  # a slot now holding another agent (Unity respawn): its memory starts afresh
                    moved = arrays[f"{name}/traj_id"] != traj[name]
                    if moved.any():
                        for (bname, _), store in hidden.items():
                            if bname == name and store is not None:
                                store[moved] = 0
                        traj[name] = arrays[f"{name}/traj_id"].copy()
                active = arrays[f"{name}/active"] & live[:, None]
                for policy, slot_mask in groups[name]:
                    rows = active & slot_mask[None, :]
                    if not rows.any():
                        continue
                    key = (name, id(policy))
                    e_idx, a_idx, d, c, h = act_rows(policy, arrays, b, rows, deterministic, hidden.get(key),
                                                     lambda idx: [envs[e].game_state for e in idx])
                    if h is not None:
                        h = np.asarray(h)
                        if hidden.get(key) is None:
                            hidden[key] = np.zeros((n, b.n_agents, *h.shape[1:]), h.dtype)
                        hidden[key][e_idx, a_idx] = h
                    if opening_moves:
                        early = length[e_idx] < opening_moves
                        if early.any():
                            opening.spec, opening.rng = b, opening_rng
                            act_rows(opening, arrays, b, _rows_of(e_idx[early], a_idx[early], rows.shape))
                    if record_actions:
                        d_all = arrays.get(f"{name}/act_d")
                        c_all = arrays.get(f"{name}/act_c")
                        for e, a in zip(e_idx, a_idx):
                            logs[e].append((agents[name][a], _action_value(None if d_all is None else d_all[e, a],
                                                                          None if c_all is None else c_all[e, a])))
            for e in np.flatnonzero(live):
                stats: EpisodeStats | None = envs[e].step()
                length[e] += 1
                cut = stats is None and max_steps is not None and length[e] >= max_steps
                if cut:
                    stats = envs[e].abort_episode()
                if stats is None:
                    continue
                res = EpisodeResult(int(e), int(played[e]), stats.returns, int(length[e]), bool(cut))
                if record_actions:
                    res.actions = logs[e]
                    res.action_hash = hashlib.sha256(repr(logs[e]).encode()).hexdigest()[:16]
                    logs[e] = []
                results.append(res)
                played[e] += 1
                length[e] = 0
                for (bname, _), store in hidden.items():
                    if store is not None:
                        store[e] = 0
        return results
    finally:
        for env in envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing must not hide the outcome or the first error
                pass
