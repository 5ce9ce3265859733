"""A PettingZoo env (ParallelEnv or AEC) seen as fixed-size numpy arrays per behavior.

:class:`ArrayEnv` is what the vector env runs in each worker. It writes its outputs into arrays
it is handed (views into shared memory in worker processes, plain arrays in-process), so a step
moves no Python objects between processes. The layout is :func:`envs.spec.array_layout`.

Semantics of one :meth:`ArrayEnv.step` (the same for simultaneous, turn-based and Unity envs):

* Only agents with ``active`` set act; their actions are read from ``act_d`` / ``act_c``.
* ``reward[i]`` is what slot ``i`` received during this step, whether or not it acted (a
  turn-based game that ends on the other player's move credits the loser here).
* ``terminated[i]`` / ``truncated[i]``: slot ``i``'s episode ended in this step (truncation =
  time limit, to be bootstrapped from ``final_obs``; termination = no bootstrap).
* When every agent is done the env records the episode, resets at once, and ``obs`` / ``active``
  / ``state`` already describe the first step of the next episode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from envs.registry import EnvError, apply_supersuit, behavior_of, make_env, team_of
from envs.spec import ActionSpec, BehaviorSpec, EnvSpec


@dataclass
class EpisodeStats:
    """One finished episode: per behavior, each participating slot's summed reward, and its length.

    Attributes:
        returns: behavior -> float32 ``[n_agents]`` episode returns (NaN for slots not in the episode).
        length: env steps in the episode.
        info: extras from the env (e.g. the winner of a two-team game), free-form.
    """

    returns: dict[str, np.ndarray]
    length: int
    info: dict[str, Any]


@dataclass(frozen=True)
class ObsLayout:
    """How one agent's PettingZoo observation becomes its row of the ``obs`` array.

    Attributes:
        shape: the row's shape (one sensor: its own shape; several: ``(sum of sizes,)``).
        kind: ``"box"``, ``"discrete"`` (one-hot), ``"dict_obs"`` (``{"observation", "action_mask"}``)
            or ``"multi"`` (a ``Tuple`` of sensors, or a ``Dict`` of sensors in sorted key order).
        sensors: the sensors' shapes for ``"multi"`` (else empty).
        keys: tuple indices or dict keys of the sensors, in order (``"multi"``).
        has_mask: the observation carries an ``action_mask``.
    """

    shape: tuple[int, ...]
    kind: str
    sensors: tuple[tuple[int, ...], ...] = ()
    keys: tuple = ()
    has_mask: bool = False


def _sensor_shape(space: spaces.Space, where: str) -> tuple[int, ...]:
    if isinstance(space, spaces.Box):
        return tuple(int(d) for d in space.shape)
    if isinstance(space, spaces.Discrete):
        return (int(space.n),)  # one-hot encoded
    raise EnvError(f"unsupported observation space {space} at {where}; each sensor must be a Box or Discrete")


def _obs_parts(space: spaces.Space) -> ObsLayout:
    """The :class:`ObsLayout` of an observation space.

    Accepted: ``Box``, ``Discrete`` (one-hot), ``Dict(observation=Box, action_mask=...)`` (PettingZoo
    classic), and several sensors as ``Tuple(Box | Discrete, ...)`` (the Unity adapter's multi-sensor
    agents) or ``Dict`` of them without an ``observation`` key (keys sorted; an ``action_mask`` key is
    the mask).

    Raises:
        EnvError: any other space, naming it.
    """
    if isinstance(space, spaces.Dict):
        has_mask = "action_mask" in space.spaces
        if "observation" in space.spaces:
            return ObsLayout(_sensor_shape(space["observation"], "observation"), "dict_obs", has_mask=has_mask)
        keys = tuple(sorted(k for k in space.spaces if k != "action_mask"))
        sensors = tuple(_sensor_shape(space[k], f"key '{k}'") for k in keys)
    elif isinstance(space, spaces.Tuple):
        keys, has_mask = tuple(range(len(space.spaces))), False
        sensors = tuple(_sensor_shape(sp, f"index {i}") for i, sp in enumerate(space.spaces))
    elif isinstance(space, spaces.Box):
        return ObsLayout(tuple(int(d) for d in space.shape), "box")
    elif isinstance(space, spaces.Discrete):
        return ObsLayout((int(space.n),), "discrete")
    else:
        raise EnvError(f"unsupported observation space {space}; expected Box, Discrete, Dict(observation=...), or "
                       "several sensors as a Tuple/Dict of Box")
    if not sensors:
        raise EnvError(f"observation space {space} has no sensors")
    if len(sensors) == 1:
        return ObsLayout(sensors[0], "multi", sensors, keys, has_mask)
    return ObsLayout((sum(int(np.prod(x)) for x in sensors),), "multi", sensors, keys, has_mask)


def _action_spec(space: spaces.Space) -> ActionSpec:
    if isinstance(space, spaces.Discrete):
        return ActionSpec(discrete_branches=(int(space.n),))
    if isinstance(space, spaces.MultiDiscrete):
        return ActionSpec(discrete_branches=tuple(int(n) for n in np.asarray(space.nvec).ravel()))
    if isinstance(space, spaces.Box):
        n = int(np.prod(space.shape))
        return ActionSpec(continuous_size=n, low=tuple(map(float, np.broadcast_to(space.low, space.shape).ravel())),
                          high=tuple(map(float, np.broadcast_to(space.high, space.shape).ravel())))
    if isinstance(space, spaces.Tuple) and len(space.spaces) == 2:
        d, c = (_action_spec(s) for s in space.spaces)
        if d.is_discrete and c.continuous_size and not d.continuous_size:
            return ActionSpec(d.discrete_branches, c.continuous_size, c.low, c.high)
    raise EnvError(f"unsupported action space {space}; expected Discrete, MultiDiscrete, Box or Tuple(discrete, Box)")


def build_spec(env_id: str, env: AECEnv | ParallelEnv, behavior_map: dict[str, str] | None = None) -> EnvSpec:
    """Group ``env.possible_agents`` into behaviors and read their spaces.

    Args:
        env_id: recorded in the spec.
        env: a PettingZoo env that has been reset once.
        behavior_map: optional ``agent name -> behavior`` overrides (YAML ``env_settings.behavior_map``).

    Raises:
        EnvError: agents of one behavior disagree on their spaces.
    """
    behavior_map = behavior_map or {}
    groups: dict[str, list[str]] = {}
    for agent in env.possible_agents:
        groups.setdefault(behavior_map.get(agent, behavior_of(agent)), []).append(agent)
    behaviors = []
    for name, agents in groups.items():
        layout = _obs_parts(env.observation_space(agents[0]))
        action = _action_spec(env.action_space(agents[0]))
        for a in agents[1:]:
            if _obs_parts(env.observation_space(a)) != layout or _action_spec(env.action_space(a)) != action:
                raise EnvError(f"env '{env_id}': agents '{agents[0]}' and '{a}' of behavior '{name}' have different "
                               "spaces; give them different behaviors in env_settings.behavior_map")
        sensors = layout.sensors if len(layout.sensors) > 1 else ()
        behaviors.append(BehaviorSpec(name, tuple(agents), layout.shape, action, tuple(team_of(a) for a in agents),
                                      sensors))
    state_shape: tuple[int, ...] | None = None
    try:
        state_shape = tuple(np.asarray(env.state()).shape)
    except (NotImplementedError, AttributeError, TypeError, ValueError):  # no state(), or a non-callable attribute
        # (pettingzoo.classic.rps_v2 keeps a dict named ``state``): use the observations concatenated
        pass
    if not state_shape:
        state_shape = (sum(b.n_agents * b.obs_size for b in behaviors),)
    return EnvSpec(env_id, tuple(behaviors), state_shape, turn_based=isinstance(env, AECEnv))


def _state_is_obs_concat(env: AECEnv | ParallelEnv) -> bool:
    """True for MPE (``mpe2``) envs, whose ``state()`` is every agent's observation concatenated
    in ``possible_agents`` order (``SimpleEnv.state``): the adapter then builds the state from
    the observations it already holds instead of computing them a second time (profiled: 8% of
    an env worker's time on simple_spread)."""
    try:
        from mpe2._mpe_utils.simple_env import SimpleEnv
    except ImportError:
        return False
    base = getattr(env, "aec_env", env).unwrapped
    return isinstance(base, SimpleEnv) and type(base).state is SimpleEnv.state and type(base).observe is SimpleEnv.observe


class ArrayEnv:
    """One PettingZoo env writing per-behavior arrays (see the module docstring).

    Args:
        env_id, env_kwargs: passed to :func:`envs.registry.make_env` (or give ``env``).
        supersuit: SuperSuit wrappers to apply (:func:`envs.registry.apply_supersuit`).
        out: dict of arrays laid out as :func:`envs.spec.array_layout`; allocated when ``None``.
        behavior_map: agent -> behavior overrides.
        env: an already-built env (for Unity adapters and tests).

    Raises:
        EnvError: bad env id, spaces or actions.
    """

    def __init__(self, env_id: str, env_kwargs: dict | None = None, out: dict[str, np.ndarray] | None = None,
                 behavior_map: dict[str, str] | None = None, env: AECEnv | ParallelEnv | None = None,
                 seed: int | None = None, supersuit: list | None = None):
        self.env = env if env is not None else make_env(env_id, env_kwargs)
        if supersuit:
            self.env = apply_supersuit(self.env, supersuit)
        self.turn_based = isinstance(self.env, AECEnv)
        self._reset_env(seed)
        self.spec = build_spec(env_id, self.env, behavior_map)
        self._has_state = True
        try:
            self.env.state()
        except (NotImplementedError, AttributeError, TypeError, ValueError):
            self._has_state = False
        # env.state() that is by definition the observations concatenated: take them from ``obs``
        self._state_from_obs = not supersuit and _state_is_obs_concat(self.env)
        from envs.spec import array_layout

        layout = array_layout(self.spec)
        self.out = out if out is not None else {k: np.zeros(s, d) for k, (s, d) in layout.items()}
        # slot lookup: agent -> (behavior, slot index)
        self._slot = {a: (b.name, i) for b in self.spec.behaviors for i, a in enumerate(b.agents)}
        self._layout = {b.name: _obs_parts(self.env.observation_space(b.agents[0])) for b in self.spec.behaviors}
        self._episode_returns = {b.name: np.full(b.n_agents, np.nan, np.float32) for b in self.spec.behaviors}
        self._state_parts = [(*self._slot[a], self.spec.behavior(self._slot[a][0]).obs_size) for a in self.env.possible_agents]
        self._episode_len = 0
        self._scale = {}
        for b in self.spec.behaviors:
            if b.action.continuous_size:
                low, high = np.asarray(b.action.low, np.float32), np.asarray(b.action.high, np.float32)
                self._scale[b.name] = (low, high)
        self._write_start()

    # ----------------------------------------------------------------------------------- helpers
    def _reset_env(self, seed: int | None) -> None:
        if self.turn_based:
            self.env.reset(seed=seed)
        else:
            self._last_obs, self._last_infos = self.env.reset(seed=seed)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (the current one is dropped, not recorded)."""
        self._reset_env(seed)
        self._write_start()

    def _write_obs(self, agent: str, obs: Any, info: dict | None) -> None:
        name, i = self._slot[agent]
        o = self.out
        lay = self._layout[name]
        if lay.kind == "box":
            o[f"{name}/obs"][i] = obs
        elif lay.kind == "dict_obs":
            o[f"{name}/obs"][i] = obs["observation"]
            if "action_mask" in obs and f"{name}/mask" in o:
                o[f"{name}/mask"][i] = obs["action_mask"]
        elif lay.kind == "discrete":
            o[f"{name}/obs"][i] = 0.0
            o[f"{name}/obs"][i, int(obs)] = 1.0
        else:  # several sensors: flattened and concatenated in sensor order
            dst, off = o[f"{name}/obs"][i].reshape(-1), 0
            for key, shape in zip(lay.keys, lay.sensors):
                size = int(np.prod(shape))
                part = obs[key]
                if np.ndim(part) == 0 and size > 1:  # a Discrete sensor: one-hot
                    dst[off:off + size] = 0.0
                    dst[off + int(part)] = 1.0
                else:
                    dst[off:off + size] = np.asarray(part, np.float32).reshape(-1)
                off += size
            if lay.has_mask and isinstance(obs, dict) and f"{name}/mask" in o:
                o[f"{name}/mask"][i] = obs["action_mask"]
        if info and "action_mask" in info and f"{name}/mask" in o:
            o[f"{name}/mask"][i] = info["action_mask"]

    def _write_state(self, key: str) -> None:
        if self._state_from_obs:
            dst, off = self.out[key], 0
            for name, i, size in self._state_parts:
                dst[off:off + size] = self.out[f"{name}/obs"][i].reshape(-1)
                off += size
        elif self._has_state:
            self.out[key][...] = self.env.state()
        else:
            self.out[key][...] = np.concatenate([self.out[f"{b.name}/obs"].reshape(-1) for b in self.spec.behaviors])

    def _write_start(self, keep_step_outputs: bool = False) -> None:
        """Write the first step of a new episode; ``keep_step_outputs`` keeps the reward and
        terminated/truncated flags of the step that ended the previous one (auto-reset)."""
        o = self.out
        for b in self.spec.behaviors:
            for f in ("active", "alive") if keep_step_outputs else ("active", "alive", "terminated", "truncated"):
                o[f"{b.name}/{f}"][:] = False
            if not keep_step_outputs:
                o[f"{b.name}/reward"][:] = 0.0
            o[f"{b.name}/obs"][:] = 0.0
            if f"{b.name}/mask" in o:
                o[f"{b.name}/mask"][:] = 1.0
            self._episode_returns[b.name][:] = np.nan
        self._episode_len = 0
        if self.turn_based:
            self._aec_skip_dead()
            self._aec_write_obs()
        else:
            for agent, obs in self._last_obs.items():
                self._write_obs(agent, obs, self._last_infos.get(agent))
                name, i = self._slot[agent]
                o[f"{name}/active"][i] = o[f"{name}/alive"][i] = True
                self._episode_returns[name][i] = 0.0
        self._write_state("state")

    def _action_for(self, name: str, i: int) -> Any:
        o = self.out
        spec = self.spec.behavior(name).action
        d = o[f"{name}/act_d"][i] if spec.is_discrete else None
        c = None
        if spec.continuous_size:
            low, high = self._scale[name]
            a = np.clip(o[f"{name}/act_c"][i], -1.0, 1.0)
            c = low + (a + 1.0) * 0.5 * (high - low)
        if d is not None and c is not None:
            return (d.copy(), c.astype(np.float32))
        if d is not None:
            return int(d[0]) if len(spec.discrete_branches) == 1 else d.copy()
        return c.astype(np.float32)

    # ----------------------------------------------------------------------------------- step
    def step(self) -> EpisodeStats | None:
        """Apply the actions in ``act_d`` / ``act_c`` for every active slot and advance one step.

        Returns:
            The finished episode's stats when this step ended it (the env has then been reset),
            else ``None``.
        """
        o = self.out
        for b in self.spec.behaviors:
            o[f"{b.name}/reward"][:] = 0.0
            o[f"{b.name}/terminated"][:] = False
            o[f"{b.name}/truncated"][:] = False
        self._episode_len += 1
        if self.turn_based:
            done = self._aec_step()
        else:
            done = self._parallel_step()
        for b in self.spec.behaviors:
            r = self._episode_returns[b.name]
            alive_or_ended = o[f"{b.name}/alive"] | o[f"{b.name}/terminated"] | o[f"{b.name}/truncated"]
            r[alive_or_ended] += o[f"{b.name}/reward"][alive_or_ended]
        if not done:
            return None
        stats = EpisodeStats({k: v.copy() for k, v in self._episode_returns.items()}, self._episode_len,
                             getattr(self, "_episode_info", {}))
        self._episode_info = {}
        self._reset_env(None)
        self._write_start(keep_step_outputs=True)
        return stats

    def _parallel_step(self) -> bool:
        o, env = self.out, self.env
        actions = {}
        for agent in env.agents:
            name, i = self._slot[agent]
            if o[f"{name}/active"][i]:
                actions[agent] = self._action_for(name, i)
        obs, rewards, terms, truncs, infos = env.step(actions)
        for agent, r in rewards.items():
            name, i = self._slot[agent]
            o[f"{name}/reward"][i] = r
        for b in self.spec.behaviors:
            o[f"{b.name}/active"][:] = False
        for agent, ob in obs.items():
            self._write_obs(agent, ob, infos.get(agent))
            name, i = self._slot[agent]
            o[f"{name}/active"][i] = True
            if not o[f"{name}/alive"][i]:  # joined mid-episode
                o[f"{name}/alive"][i] = True
                self._episode_returns[name][i] = 0.0
        ended = False
        for agent in set(terms) | set(truncs):
            t, tr = bool(terms.get(agent, False)), bool(truncs.get(agent, False))
            if not (t or tr):
                continue
            name, i = self._slot[agent]
            o[f"{name}/terminated"][i] = t
            o[f"{name}/truncated"][i] = tr and not t
            o[f"{name}/active"][i] = False
            o[f"{name}/alive"][i] = False
            ended = True
            if tr and not t:
                o[f"{name}/final_obs"][i] = o[f"{name}/obs"][i]
        if ended:
            self._write_state("final_state")
        self._episode_info = {k: v for k, v in infos.items() if not isinstance(v, dict)} if infos else {}
        if not env.agents:
            return True
        self._write_state("state")
        return False

    # AEC (turn-based) -----------------------------------------------------------------------
    def _aec_skip_dead(self) -> None:
        """Step ``None`` for agents that are done, as the AEC API requires.

        A dead step only removes the agent (PettingZoo's ``_was_dead_step``) and produces no
        reward; some envs (shimmy's OpenSpiel) leave the last step's rewards in ``env.rewards``,
        so reading them again here would credit the final reward twice.
        """
        env = self.env
        while env.agents:
            a = env.agent_selection
            if not (env.terminations.get(a) or env.truncations.get(a)):
                break
            self._aec_mark_done(a)
            env.step(None)

    def _aec_mark_done(self, agent: str) -> None:
        o = self.out
        name, i = self._slot[agent]
        if not o[f"{name}/alive"][i]:
            return
        t = bool(self.env.terminations.get(agent))
        o[f"{name}/terminated"][i] = t
        o[f"{name}/truncated"][i] = not t
        o[f"{name}/alive"][i] = False
        if not t:
            o[f"{name}/final_obs"][i] = o[f"{name}/obs"][i]

    def _aec_collect_rewards(self) -> None:
        o = self.out
        for agent, r in self.env.rewards.items():
            if r:
                name, i = self._slot[agent]
                o[f"{name}/reward"][i] += r

    def _aec_write_obs(self) -> None:
        env, o = self.env, self.out
        for b in self.spec.behaviors:
            o[f"{b.name}/active"][:] = False
        for agent in env.agents:
            name, i = self._slot[agent]
            if not o[f"{name}/alive"][i]:
                o[f"{name}/alive"][i] = True
                self._episode_returns[name][i] = 0.0
            self._write_obs(agent, env.observe(agent), env.infos.get(agent))
        if env.agents:
            name, i = self._slot[env.agent_selection]
            o[f"{name}/active"][i] = True

    def _aec_step(self) -> bool:
        env = self.env
        agent = env.agent_selection
        name, i = self._slot[agent]
        env.step(self._action_for(name, i))
        self._aec_collect_rewards()
        for a in list(self._slot):
            if a in env.terminations and (env.terminations[a] or env.truncations[a]):
                self._aec_mark_done(a)
        self._aec_skip_dead()
        if not env.agents:
            self._write_state("final_state")
            return True
        self._aec_write_obs()
        self._write_state("state")
        return False

    def rebind(self, out: dict[str, np.ndarray]) -> None:
        """Write into ``out`` from now on (same layout); the current contents are copied over.

        The play loop builds one env first, learns its spec, then stacks the copies' arrays.
        """
        for k, v in self.out.items():
            out[k][...] = v
        self.out = out

    def abort_episode(self) -> EpisodeStats:
        """End the current episode where it stands (a step cap was hit) and start the next one.

        Returns:
            the cut episode's stats (returns so far, length so far).
        """
        stats = EpisodeStats({k: v.copy() for k, v in self._episode_returns.items()}, self._episode_len,
                             {"cut": True})
        self._episode_info = {}
        self._reset_env(None)
        self._write_start()
        return stats

    @property
    def game_state(self):
        """The underlying OpenSpiel ``pyspiel.State`` (shimmy's ``game_state``) or None for other envs.

        Search bots (:class:`marl.policy.MCTSPolicy`) read it; it is looked up through wrappers.
        """
        env = self.env
        for _ in range(16):
            state = getattr(env, "game_state", None)
            if state is not None:
                return state
            nxt = getattr(env, "env", None)
            if nxt is None or nxt is env:
                nxt = getattr(env, "unwrapped", None)
                if nxt is None or nxt is env:
                    return None
            env = nxt
        return None

    def set_environment_parameters(self, values: dict) -> None:
        """Pass ``environment_parameters`` to the env when it takes them (the Unity adapter does)."""
        env = self.env
        while env is not None:
            fn = getattr(env, "set_environment_parameters", None)
            if fn is not None:
                fn(values)
                return
            env = getattr(env, "env", None)

    def close(self) -> None:
        self.env.close()
