"""Agent slots that grow: when a Unity scene has more agents of one behavior and team live at once than
the slots sized when the run started, the run grows the slots at the next rollout boundary.

Who does what (``docs/unity_contract.md``, "Slots that grow"):

* the env layer (:class:`envs.adapter.ArrayEnv`) never crashes on an agent without a free slot: it is
  not acted for nor recorded within the rollout, and the most agents live at once per behavior and team
  is reported in ``EpisodeStats.info["needed_slots"]`` (:func:`note_needed` collects it);
* the run loop (:func:`marl.run.train`) then sees a :func:`shortfall`, saves checkpoints, closes the env
  workers, probes a player again with ``agent_slots`` raised (``UnityArrayEnvFactory.with_agent_slots``),
  builds the trainer of the new spec and moves every behavior's state into it with :func:`transfer`;
* the networks whose shapes depend on the slots are widened so that they compute what they computed
  before (:func:`widen_module_state`): each slot's input columns move to that slot's new position, new
  columns get zero weights. The algorithms say where the columns are (reached through the trainer's
  ``widen_state`` and each learner's ``widened_state``: ``widen_learner_state`` in
  :mod:`marl.algos.mappo` and :mod:`marl.algos.poca`).

Slot order is team-major (``envs.unity.unity_spec``), so growing team 0 moves the slots of team 1:
:func:`slot_map` maps the k-th slot of team t to the k-th slot of team t.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.spec import BehaviorSpec, EnvSpec


class GrowError(RuntimeError):
    """Slots that cannot grow (one line for the user)."""


# ------------------------------------------------------------------------------------------ counting
def note_needed(into: dict[str, dict[int, int]], stats: Any) -> None:
    """Merge ``stats.info["needed_slots"]`` (an :class:`envs.adapter.EpisodeStats` of any env copy;
    ``{behavior: {team: agents live at once}}``) into ``into`` (the maximum per behavior and team)."""
    info = getattr(stats, "info", None)
    needed = info.get("needed_slots") if isinstance(info, dict) else None
    for name, teams in (needed or {}).items():
        mine = into.setdefault(name, {})
        for team, n in teams.items():
            mine[int(team)] = max(mine.get(int(team), 0), int(n))


def team_slots(b: BehaviorSpec) -> dict[int, int]:
    """Slots per team of a behavior: ``{team id: count}``."""
    teams = b.teams if b.teams else (0,) * b.n_agents
    out: dict[int, int] = {}
    for t in teams:
        out[int(t)] = out.get(int(t), 0) + 1
    return out


def shortfall(spec: EnvSpec, needed: dict[str, dict[int, int]]) -> dict[str, int]:
    """Behaviors some team of which needed more slots than it has: ``{behavior: slots per team to give it}``
    (the most agents any of its short teams had live at once; ``agent_slots`` raises every team of the
    behavior to that). Behaviors the spec does not have are left out (they are not trainable)."""
    out: dict[str, int] = {}
    for name, teams in needed.items():
        if name not in spec.names:
            continue
        have = team_slots(spec.behavior(name))
        short = [n for t, n in teams.items() if n > have.get(t, 0)]
        if short:
            out[name] = max(short)
    return out


# ------------------------------------------------------------------------------------------ slot maps
def slot_map(old: BehaviorSpec, new: BehaviorSpec) -> np.ndarray:
    """int64 ``[old.n_agents]``: the new index of each old slot (the k-th slot of team t stays the k-th
    slot of team t).

    Raises:
        GrowError: the new behavior has fewer slots on some team (slots only grow).
    """
    def ranks(b: BehaviorSpec) -> dict[tuple[int, int], int]:
        teams = b.teams if b.teams else (0,) * b.n_agents
        seen: dict[int, int] = {}
        out = {}
        for i, t in enumerate(teams):
            k = seen.get(int(t), 0)
            seen[int(t)] = k + 1
            out[(int(t), k)] = i
        return out

    r_old, r_new = ranks(old), ranks(new)
    missing = [key for key in r_old if key not in r_new]
    if missing:
        t, k = missing[0]
        raise GrowError(f"behavior '{old.name}': team {t} has {sum(1 for x in r_new if x[0] == t)} slots in the new "
                        f"spec, fewer than the {k + 1}+ it had (slots only grow)")
    out = np.empty(old.n_agents, np.int64)
    for key, i in r_old.items():
        out[i] = r_new[key]
    return out


def identity_columns(width: int) -> tuple[int, np.ndarray]:
    """A segment of input columns that does not move: ``(old width, old column of each new column)``."""
    return width, np.arange(width, dtype=np.int64)


def slot_columns(width: int, n_old: int, n_new: int, smap: np.ndarray) -> tuple[int, np.ndarray]:
    """A segment of ``n`` slots of ``width`` columns each (``[n, width]`` flattened) whose slot ``j`` moves to
    ``smap[j]``: ``(old width n_old * width, old column of each new column or -1 for a new slot's)``."""
    cols = np.full(n_new * width, -1, np.int64)
    for j in range(n_old):
        cols[smap[j] * width:(smap[j] + 1) * width] = np.arange(j * width, (j + 1) * width)
    return n_old * width, cols


def join_columns(*segments: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """Segments side by side (in input order): ``(old input width, old column of each new column or -1)``."""
    off, parts = 0, []
    for w_old, cols in segments:
        parts.append(np.where(cols >= 0, cols + off, -1))
        off += w_old
    return off, (np.concatenate(parts) if parts else np.zeros(0, np.int64))


# ------------------------------------------------------------------------------------------ widening
def _widen_last(t: torch.Tensor, cols: np.ndarray, fill: float) -> torch.Tensor:
    """``t [..., old]`` -> ``[..., len(cols)]``: column ``c`` is ``t[..., cols[c]]``, or ``fill`` where ``cols[c] < 0``."""
    out = t.new_full((*t.shape[:-1], len(cols)), fill)
    keep = torch.from_numpy(np.flatnonzero(cols >= 0))
    out[..., keep] = t[..., torch.from_numpy(cols[cols >= 0])]
    return out


def _widened_keys(module: nn.Module, old_sd: dict, in_old: int, cols: np.ndarray) -> dict[str, float]:
    """Keys of ``module``'s state whose last axis is the input that widens: ``{key: fill}`` (1 for a
    LayerNorm's scale, 0 otherwise). Raises GrowError for any other shape change."""
    out = {}
    for k, t_new in module.state_dict().items():
        if k not in old_sd:
            raise GrowError(f"cannot widen the saved network: it has no '{k}'")
        t_old = old_sd[k]
        if tuple(t_old.shape) == tuple(t_new.shape):
            continue
        if (t_old.dim() >= 1 and t_old.shape[:-1] == t_new.shape[:-1] and t_old.shape[-1] == in_old
                and t_new.shape[-1] == len(cols)):
            owner = module.get_submodule(k.rsplit(".", 1)[0]) if "." in k else module
            out[k] = 1.0 if isinstance(owner, nn.LayerNorm) and k.endswith("weight") else 0.0
            continue
        raise GrowError(f"cannot widen '{k}' from {tuple(t_old.shape)} to {tuple(t_new.shape)} (only the input "
                        f"columns of the slots may change, {in_old} -> {len(cols)})")
    return out


def widen_module_state(module: nn.Module, old_sd: dict, columns: tuple[int, np.ndarray]) -> dict:
    """``old_sd`` (a state dict of ``module``'s class built for fewer slots) made loadable by ``module``.

    Every tensor whose last axis is the network's input (the first dense layer's weight ``[out, in]``; a
    LayerNorm on the inputs, ``[in]``) is rebuilt column by column from ``columns = (old input width, old
    column of each new column or -1)``: moved columns keep their weights, new columns get zero weights (a
    LayerNorm's scale 1, shift 0), so the layer computes the same pre-activations for inputs whose new
    columns are zero. Exact without an input LayerNorm; with one (``network_settings.layer_norm``), the
    normalisation statistics also average the new zero columns, so outputs move slightly.

    Raises:
        GrowError: any other shape change.
    """
    in_old, cols = columns
    keys = _widened_keys(module, old_sd, in_old, cols)
    out = {k: v.clone() for k, v in old_sd.items()}
    for k, fill in keys.items():
        out[k] = _widen_last(old_sd[k], cols, fill)
    return out


def widen_adam_state(opt_sd: dict, module: nn.Module, old_sd: dict, columns: tuple[int, np.ndarray],
                     offset: int = 0) -> dict:
    """An Adam state dict (``opt_sd``) whose parameters ``offset ..`` are ``module``'s, in
    ``module.parameters()`` order, widened as :func:`widen_module_state` widens the parameters: the
    moments of new columns start at zero (as a fresh optimiser's), the others are kept."""
    in_old, cols = columns
    keys = _widened_keys(module, old_sd, in_old, cols)
    out = copy.deepcopy(opt_sd)
    for i, (name, _p) in enumerate(module.named_parameters()):
        st = out["state"].get(offset + i)
        if not st or name not in keys:
            continue
        for m in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if isinstance(st.get(m), torch.Tensor) and st[m].dim() >= 1:
                st[m] = _widen_last(st[m], cols, 0.0)
    return out


# ------------------------------------------------------------------------------------------ trainers
def _inner(trainer):
    return getattr(trainer, "inner", trainer)


def _widener(trainer):
    """The trainer's ``widen_state(behavior, state, old_env, new_env)`` when its learners can widen their
    networks (``widened_state``: MAPPO/IPPO, MA-POCA), else None."""
    inner = _inner(trainer)
    learners = getattr(inner, "learners", None) or {}
    if not hasattr(inner, "widen_state") or not all(hasattr(L, "widened_state") for L in learners.values()):
        return None
    return inner.widen_state


def refusal(trainer, cfg) -> str | None:
    """Why this run's slots cannot grow (one line), or None when they can.

    Growth needs an algorithm that widens its networks (MAPPO/IPPO, MA-POCA; QMIX/VDN's mixer is sized by
    the agent count and is not widened) and, for a self-play behavior, an actor without agent ids (the
    window's saved opponents would need widening too).
    """
    if _widener(trainer) is None:
        kinds = sorted({cfg.behavior_settings(b).trainer_type for b in trainer.spec.names})
        return (f"trainer_type {', '.join(kinds)} cannot widen its networks for more agents (mappo, ippo and poca "
                "can); preallocate slots with env_settings.env_kwargs.agent_slots")
    learners = getattr(_inner(trainer), "learners", {})
    for name in getattr(trainer, "ghosts", {}):
        if getattr(learners.get(name), "n_ids", 0):
            return (f"behavior '{name}' plays self-play with agent ids (network_settings.agent_id: true), whose saved "
                    "opponents cannot be widened; preallocate slots with env_settings.env_kwargs.agent_slots")
    return None


def load_widened(trainer, behavior: str, state: dict, old_spec: EnvSpec, new_spec: EnvSpec,
                 weights_only: bool = False) -> None:
    """Load a behavior's trainer state saved for ``old_spec`` into ``trainer`` (built for ``new_spec``, with as
    many or more slots per team), widening its networks and optimiser moments (:func:`widen_module_state`).

    Raises:
        GrowError: the algorithm cannot widen (see :func:`refusal`), or a shape it cannot widen.
    """
    widen = _widener(trainer)
    if widen is None:
        raise GrowError(f"behavior '{behavior}': trainer {type(_inner(trainer)).__name__} cannot widen its networks")
    trainer.load_state_dict(behavior, widen(behavior, state, old_spec, new_spec), weights_only)


def transfer(old, new, old_spec: EnvSpec, new_spec: EnvSpec) -> None:
    """Move every behavior's state (networks, optimisers, value normaliser, extras such as self-play's Elo,
    team and snapshot window) from trainer ``old`` (built for ``old_spec``) into ``new`` (built for
    ``new_spec``), widening what depends on the slots; the time counters carry over.

    Raises:
        GrowError: see :func:`load_widened`.
    """
    for b in new_spec.names:
        load_widened(new, b, old.state_dict(b), old_spec, new_spec)
        new.load_extra(b, old.extra_state(b))
    _inner(new).timing = old.timing
