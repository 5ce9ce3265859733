"""Static description of a multi-agent env as the trainers see it: behaviors, agent slots, spaces.

A *behavior* is a group of agents that share one policy (ML-Agents' term). Each agent of a
behavior owns a fixed *slot* ``i`` in ``0 .. n_agents-1``; every per-agent array the env layer
produces is laid out ``[..., n_agents, ...]`` in slot order, so policies batch over slots.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ActionSpec:
    """Action space of one behavior (ML-Agents' ``ActionSpec``: discrete branches and/or continuous).

    Attributes:
        discrete_branches: size of each discrete branch, e.g. ``(5,)`` for ``Discrete(5)``,
            ``(3, 3, 3)`` for ``MultiDiscrete([3, 3, 3])``; empty when there are none.
        continuous_size: number of continuous action dimensions (0 when none).
        low, high: float32 ``[continuous_size]`` bounds of the env's Box; the policy acts in
            ``[-1, 1]`` (ML-Agents' ``clamp(a, -3, 3) / 3``) and the env layer rescales.
    """

    discrete_branches: tuple[int, ...] = ()
    continuous_size: int = 0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def is_discrete(self) -> bool:
        return bool(self.discrete_branches)

    @property
    def mask_size(self) -> int:
        """Length of the flat action mask: ``sum(discrete_branches)``."""
        return int(sum(self.discrete_branches))


@dataclass(frozen=True)
class BehaviorSpec:
    """One behavior: its agents (slot order), observation shape and action spec.

    Attributes:
        name: behavior name (YAML ``behaviors:`` key).
        agents: PettingZoo agent names, index = slot.
        obs_shape: shape of one agent's observation (float32).
        action: the :class:`ActionSpec` shared by all its agents.
        teams: team id per slot (``Name?team=N``; 0 when the env has no teams).
        sensor_shapes: shapes of the sensors when there are several (a ``Tuple`` or ``Dict`` observation
            space); empty for one sensor. See :attr:`sensors`.
        obs_dtype: how observations are stored: ``"float32"``, or ``"uint8"`` when the env gives a single
            ``Box(0, 255, uint8)`` image (PettingZoo frames): stored as the env gives them (a quarter of the
            memory) and scaled by :attr:`obs_scale` (1/255) at the networks' input, so the networks see [0, 1].
    """

    name: str
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    action: ActionSpec
    teams: tuple[int, ...] = ()
    sensor_shapes: tuple[tuple[int, ...], ...] = ()
    obs_dtype: str = "float32"

    @property
    def obs_scale(self) -> float:
        """Factor from the stored observation to the networks' input: 1/255 for ``uint8`` images, else 1."""
        return 1.0 / 255.0 if self.obs_dtype == "uint8" else 1.0

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def sensors(self) -> tuple[tuple[int, ...], ...]:
        """Shape of each sensor, in the agent's sensor order (ML-Agents: one ``obs_i`` per sensor).

        With several sensors the observation array holds them flattened and concatenated in this
        order (``obs_shape == (sum of sizes,)``); with one, it is that sensor's own shape.
        """
        return self.sensor_shapes or (tuple(self.obs_shape),)

    @property
    def obs_size(self) -> int:
        return int(np.prod(self.obs_shape))


@dataclass(frozen=True)
class EnvSpec:
    """Everything a trainer needs to size its networks and buffers.

    Attributes:
        env_id: the id the env was made from.
        behaviors: behaviors in a fixed order.
        state_shape: shape of the global state (``env.state()``, else the concatenation of all
            agents' flattened observations, zeros for absent agents).
        turn_based: True for AEC games (one agent acts per env step).
        state_is_obs: True when the env has no ``state()`` and the state is every agent's observation
            concatenated (behavior blocks ``[n_agents, obs_size]`` in ``behaviors`` order, see
            :attr:`state_parts`); set by :class:`envs.adapter.ArrayEnv`, which writes it.
    """

    env_id: str
    behaviors: tuple[BehaviorSpec, ...]
    state_shape: tuple[int, ...]
    turn_based: bool = False
    state_is_obs: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def behavior(self, name: str) -> BehaviorSpec:
        for b in self.behaviors:
            if b.name == name:
                return b
        raise KeyError(f"no behavior named '{name}' (have: {', '.join(b.name for b in self.behaviors)})")

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.behaviors]

    @property
    def state_parts(self) -> tuple[tuple[int, tuple[tuple[int, ...], ...]], ...] | None:
        """Where each agent's sensors sit in the state: ``(n_agents, sensor shapes)`` per behavior, in
        state order, when :attr:`state_is_obs`; None for an ``env.state()`` (MAPPO's critic encodes the
        images of such a state per agent, ``marl.networks.StateEncoder``)."""
        if not self.state_is_obs:
            return None
        return tuple((b.n_agents, b.sensors) for b in self.behaviors)


def array_layout(spec: EnvSpec) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes (for ONE env copy) and dtypes of every array the env layer reads or writes.

    Keys are ``"<behavior>/<field>"`` for per-agent arrays and ``"state"``, ``"final_state"``.
    Per behavior (``A`` = n_agents):

    * ``obs`` ``obs_dtype`` (float32 or uint8) ``[A, *obs_shape]``: latest observation of each agent;
    * ``mask`` float32 ``[A, mask_size]``: 1 = action allowed (only with discrete actions);
    * ``active`` bool ``[A]``: the agent has a pending decision (must act on the next step);
    * ``alive`` bool ``[A]``: the agent is in the current episode (its ``obs`` is meaningful);
    * ``reward`` float32 ``[A]``: reward received during the last env step;
    * ``terminated`` / ``truncated`` bool ``[A]``: the agent's episode ended in the last step;
    * ``final_obs`` ``obs_dtype`` ``[A, *obs_shape]``: observation at truncation (for bootstrapping);
    * ``act_d`` int64 ``[A, n_branches]`` and/or ``act_c`` float32 ``[A, continuous_size]``: the
      actions to apply (written by the trainer);
    * ``traj_id`` int64 ``[A]``: id of the trajectory (one agent's life in one episode) the slot holds,
      unique within the env copy and never reused, so experience survives slot reuse;
    * ``group_id`` int64 ``[A]``: that agent's group (Unity's ``SimpleMultiAgentGroup`` id, 0 = none).
    """
    layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    f32, b8 = np.dtype(np.float32), np.dtype(np.bool_)
    for b in spec.behaviors:
        a = b.n_agents
        od = np.dtype(b.obs_dtype)
        layout[f"{b.name}/obs"] = ((a, *b.obs_shape), od)
        layout[f"{b.name}/final_obs"] = ((a, *b.obs_shape), od)
        if b.action.is_discrete:
            layout[f"{b.name}/mask"] = ((a, b.action.mask_size), f32)
            layout[f"{b.name}/act_d"] = ((a, len(b.action.discrete_branches)), np.dtype(np.int64))
        if b.action.continuous_size:
            layout[f"{b.name}/act_c"] = ((a, b.action.continuous_size), f32)
        for name, dt in (("active", b8), ("alive", b8), ("reward", f32), ("terminated", b8), ("truncated", b8)):
            layout[f"{b.name}/{name}"] = ((a,), dt)
        layout[f"{b.name}/traj_id"] = ((a,), np.dtype(np.int64))
        layout[f"{b.name}/group_id"] = ((a,), np.dtype(np.int64))
    layout["state"] = (spec.state_shape, f32)
    layout["final_state"] = (spec.state_shape, f32)
    return layout
