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

Agents that come and go (parallel envs): a slot belongs to one agent at a time. An agent in the
env's observations for the first time takes its spec label's slot (``possible_agents`` at the start)
or any free slot of its behavior and team, preferring one its group (``infos[agent]["group_id"]``)
used before; when its episode ends (``terminated`` / ``truncated``) the slot is free again, possibly
for a new agent in the same step. Only agents whose ``infos[agent]["deciding"]`` is true (or absent)
are ``active``; the others keep their row. ``traj_id`` numbers each agent's trajectory (unique per env
copy, never reused) and ``group_id`` is its group, so experience can be told apart across slot reuse.
A *stream* env (``env.streams_episodes``: the Unity adapter, whose training areas restart on their
own) is never reset by the env layer; an episode there is one group's (its members from the first
decision until the last one left), reported by :meth:`ArrayEnv.step` in the step it ends.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from envs.registry import EnvError, apply_supersuit, behavior_of, make_env, team_of
from envs.spec import ActionSpec, BehaviorSpec, EnvSpec


def _deciding(info: dict | None) -> bool:
    """Whether an agent in a step's observations must act next: ``infos[agent]["deciding"]``, true when
    absent (envs that list only the agents that decide, or every agent every step)."""
    return True if info is None else bool(info.get("deciding", True))


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
        hwc: per sensor (one entry for a single sensor), whether it is a channel-last ``[H, W, C]`` image
            that the env layer transposes to ``[C, H, W]`` (the shapes above are already CHW).
        scales: per sensor of several (``"multi"``): 1/255 for a ``Box(0, 255, uint8)`` image, which is
            written scaled to [0, 1] (the observation array is float32 there), else 1.
    """

    shape: tuple[int, ...]
    kind: str
    sensors: tuple[tuple[int, ...], ...] = ()
    keys: tuple = ()
    has_mask: bool = False
    hwc: tuple[bool, ...] = ()
    scales: tuple[float, ...] = ()


IMAGE_LAYOUTS = ("auto", "hwc", "chw")


def is_hwc(shape: tuple[int, ...], layout: str = "auto") -> bool:
    """Whether a 3-D observation is a channel-last ``[H, W, C]`` image.

    ``layout`` (``env_settings.image_layout``): ``"hwc"`` / ``"chw"`` force it; ``"auto"`` reads it from
    the shape: the last axis holds few channels (<= 4) and the first does not, as PettingZoo (butterfly,
    Atari, classic boards: connect_four ``(6, 7, 2)``) and Gymnasium lay out images. Unity 3.x and
    OpenSpiel send CHW; their adapters pass ``"chw"``.
    """
    if len(shape) != 3 or layout == "chw":
        return False
    if layout == "hwc":
        return True
    return shape[2] <= 4 < shape[0]


def _sensor_shape(space: spaces.Space, where: str, layout: str = "auto") -> tuple[tuple[int, ...], bool]:
    """(CHW shape, whether it arrives HWC) of one sensor."""
    if isinstance(space, spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        if is_hwc(shape, layout):
            return (shape[2], shape[0], shape[1]), True
        return shape, False
    if isinstance(space, spaces.Discrete):
        return (int(space.n),), False  # one-hot encoded
    raise EnvError(f"unsupported observation space {space} at {where}; each sensor must be a Box or Discrete")


def _obs_parts(space: spaces.Space, layout: str = "auto") -> ObsLayout:
    """The :class:`ObsLayout` of an observation space.

    Accepted: ``Box``, ``Discrete`` (one-hot), ``Dict(observation=Box, action_mask=...)`` (PettingZoo
    classic), and several sensors as ``Tuple(Box | Discrete, ...)`` (the Unity adapter's multi-sensor
    agents) or ``Dict`` of them without an ``observation`` key (keys sorted; an ``action_mask`` key is
    the mask). Channel-last images (:func:`is_hwc`, ``layout``) are transposed to CHW.

    Raises:
        EnvError: any other space, naming it.
    """
    if isinstance(space, spaces.Dict):
        has_mask = "action_mask" in space.spaces
        if "observation" in space.spaces:
            shape, hwc = _sensor_shape(space["observation"], "observation", layout)
            return ObsLayout(shape, "dict_obs", has_mask=has_mask, hwc=(hwc,))
        keys = tuple(sorted(k for k in space.spaces if k != "action_mask"))
        parts = [_sensor_shape(space[k], f"key '{k}'", layout) for k in keys]
    elif isinstance(space, spaces.Tuple):
        keys, has_mask = tuple(range(len(space.spaces))), False
        parts = [_sensor_shape(sp, f"index {i}", layout) for i, sp in enumerate(space.spaces)]
    elif isinstance(space, spaces.Box):
        shape, hwc = _sensor_shape(space, "observation", layout)
        return ObsLayout(shape, "box", hwc=(hwc,))
    elif isinstance(space, spaces.Discrete):
        return ObsLayout((int(space.n),), "discrete")
    else:
        raise EnvError(f"unsupported observation space {space}; expected Box, Discrete, Dict(observation=...), or "
                       "several sensors as a Tuple/Dict of Box")
    if not parts:
        raise EnvError(f"observation space {space} has no sensors")
    sensors, hwc = tuple(p[0] for p in parts), tuple(p[1] for p in parts)
    spaces_ = [space[k] for k in keys]
    scales = tuple(1.0 / 255.0 if _is_byte_image(sp) else 1.0 for sp in spaces_)
    if len(sensors) == 1:
        return ObsLayout(sensors[0], "multi", sensors, keys, has_mask, hwc, scales)
    return ObsLayout((sum(int(np.prod(x)) for x in sensors),), "multi", sensors, keys, has_mask, hwc, scales)


def _is_byte_image(space: spaces.Space) -> bool:
    """A ``Box(0, 255, uint8)``: raw image bytes."""
    return (isinstance(space, spaces.Box) and space.dtype == np.uint8 and bool(np.all(space.low == 0))
            and bool(np.all(space.high == 255)))


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


def build_spec(env_id: str, env: AECEnv | ParallelEnv, behavior_map: dict[str, str] | None = None,
               image_layout: str = "auto") -> EnvSpec:
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
        layout = _obs_parts(env.observation_space(agents[0]), image_layout)
        action = _action_spec(env.action_space(agents[0]))
        for a in agents[1:]:
            if _obs_parts(env.observation_space(a), image_layout) != layout or _action_spec(env.action_space(a)) != action:
                raise EnvError(f"env '{env_id}': agents '{agents[0]}' and '{a}' of behavior '{name}' have different "
                               "spaces; give them different behaviors in env_settings.behavior_map")
        sensors = layout.sensors if len(layout.sensors) > 1 else ()
        behaviors.append(BehaviorSpec(name, tuple(agents), layout.shape, action, tuple(team_of(a) for a in agents),
                                      sensors, _obs_dtype(env.observation_space(agents[0]), layout)))
    state_shape: tuple[int, ...] | None = None
    has_state = True
    try:
        state_shape = tuple(np.asarray(env.state()).shape)
    except (NotImplementedError, AttributeError, TypeError, ValueError):  # no state(), or a non-callable attribute
        # (pettingzoo.classic.rps_v2 keeps a dict named ``state``): use the observations concatenated
        has_state = False
    if not state_shape:
        state_shape = (sum(b.n_agents * b.obs_size for b in behaviors),)
    return EnvSpec(env_id, tuple(behaviors), state_shape, turn_based=isinstance(env, AECEnv), state_is_obs=not has_state)


def _obs_dtype(space: spaces.Space, layout: ObsLayout) -> str:
    """``"uint8"`` when the observation is one ``Box(0, 255, uint8)`` (a PettingZoo frame, also after
    SuperSuit's ``atari_preprocessing``): it is stored as given and scaled to [0, 1] at the networks'
    input (:attr:`envs.spec.BehaviorSpec.obs_scale`); else ``"float32"``."""
    box = space["observation"] if layout.kind == "dict_obs" else space if layout.kind == "box" else None
    return "uint8" if box is not None and _is_byte_image(box) else "float32"


def _is_unity(env) -> bool:
    """True for our Unity adapter (``envs.unity``), whose images are CHW."""
    return type(env).__module__.startswith("envs.unity")


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
        spec: the env's :class:`EnvSpec` when the caller fixed it (the Unity factory sizes the slots
            once, from the first player, so that every worker's arrays agree); else it is built from
            ``env.possible_agents`` after the first reset.

    Raises:
        EnvError: bad env id, spaces or actions.
    """

    def __init__(self, env_id: str, env_kwargs: dict | None = None, out: dict[str, np.ndarray] | None = None,
                 behavior_map: dict[str, str] | None = None, env: AECEnv | ParallelEnv | None = None,
                 seed: int | None = None, supersuit: list | None = None, image_layout: str = "auto",
                 spec: EnvSpec | None = None, environment_parameters: dict | None = None,
                 parameters_required: bool = True, write_state: bool = True):
        self.env = env if env is not None else make_env(env_id, env_kwargs)
        self.env_id = env_id
        # False when no trainer reads the global state (IPPO, MA-POCA): ``state``/``final_state`` stay zeros
        # and env.state() is never called (cooperative_pong renders its whole 280x480x3 frame for it)
        self.write_state = write_state
        if environment_parameters:  # before the first episode starts, as a Unity player gets them at connection
            try:
                self.set_environment_parameters(environment_parameters)
            except EnvError as exc:
                if parameters_required or "reads no environment parameters" not in str(exc):
                    self.env.close()
                    raise
                import warnings

                warnings.warn(f"{exc}; playing without them", stacklevel=2)
        if image_layout not in IMAGE_LAYOUTS:
            raise EnvError(f"env_settings.image_layout: expected one of {', '.join(IMAGE_LAYOUTS)}, got {image_layout!r}")
        if image_layout == "auto" and (env_id.startswith("openspiel:") or env is not None and _is_unity(env)):
            image_layout = "chw"  # OpenSpiel and Unity 3.x send channel-first images
        self.image_layout = image_layout
        if supersuit:
            self.env = apply_supersuit(self.env, supersuit)
        self.turn_based = isinstance(self.env, AECEnv)
        self._reset_env(seed)
        self.spec = spec if spec is not None else build_spec(env_id, self.env, behavior_map, image_layout)
        self._behavior_map = dict(behavior_map or {})
        self._has_state = True
        try:
            self.env.state()
        except (NotImplementedError, AttributeError, TypeError, ValueError):
            self._has_state = False
        if not self._has_state and not self.spec.state_is_obs:  # a given spec (Unity): say what state holds
            self.spec = replace(self.spec, state_is_obs=True)
        # env.state() that is by definition the observations concatenated: take them from ``obs``
        self._state_from_obs = not supersuit and _state_is_obs_concat(self.env)
        from envs.spec import array_layout

        layout = array_layout(self.spec)
        self.out = out if out is not None else {k: np.zeros(s, d) for k, (s, d) in layout.items()}
        # slots: every spec label keeps its own slot; other agents take a free slot of their behavior and team
        self._label = {a: (b.name, i) for b in self.spec.behaviors for i, a in enumerate(b.agents)}
        self._slot: dict[str, tuple[str, int]] = dict(self._label) if self.turn_based else {}  # agent -> its slot now
        self._occupant = {b.name: [None] * b.n_agents for b in self.spec.behaviors}
        self._slot_team = {b.name: np.asarray(b.teams if b.teams else (0,) * b.n_agents) for b in self.spec.behaviors}
        self._slot_group = {b.name: np.zeros(b.n_agents, np.int64) for b in self.spec.behaviors}
        self._traj: dict[str, int] = {}  # live agent -> its trajectory id
        self._traj_return: dict[int, float] = {}  # trajectory id -> its rewards so far (this episode)
        self._traj_slot: dict[int, tuple[str, int]] = {}
        self._group_trajs: dict[int, list[int]] = {}  # episode group -> its trajectories this episode
        self._group_live: dict[int, int] = {}
        self._group_start: dict[int, int] = {}
        self._traj_group: dict[int, int] = {}
        self._next_traj = 0
        self._steps = 0  # env steps since the last reset
        self._full: set[tuple[str, int]] = set()  # (behavior, team) whose slots ran out (warned once)
        # (behavior, team) -> most agents live at once when that was more than its slots (see needed_slots)
        self._needed: dict[tuple[str, int], int] = {}
        self._unslotted: dict[tuple[str, int], set[str]] = {}  # agents refused a slot in the current step
        self._unity_stats: list = []
        # a stream env (the Unity adapter) never ends every agent at once: episodes are per group
        self._stream = bool(getattr(self.env, "streams_episodes", False))
        self._layout = {b.name: _obs_parts(self.env.observation_space(b.agents[0]), image_layout)
                        for b in self.spec.behaviors}
        self._episode_returns = {b.name: np.full(b.n_agents, np.nan, np.float32) for b in self.spec.behaviors}
        self._state_parts = ([(*self._label[a], self.spec.behavior(self._label[a][0]).obs_size)
                              for a in self.env.possible_agents] if self._state_from_obs else [])
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
            o[f"{name}/obs"][i] = np.transpose(obs, (2, 0, 1)) if lay.hwc[0] else obs
        elif lay.kind == "dict_obs":
            o[f"{name}/obs"][i] = np.transpose(obs["observation"], (2, 0, 1)) if lay.hwc[0] else obs["observation"]
            if "action_mask" in obs and f"{name}/mask" in o:
                o[f"{name}/mask"][i] = obs["action_mask"]
        elif lay.kind == "discrete":
            o[f"{name}/obs"][i] = 0.0
            o[f"{name}/obs"][i, int(obs)] = 1.0
        else:  # several sensors: flattened and concatenated in sensor order
            dst, off = o[f"{name}/obs"][i].reshape(-1), 0
            for key, shape, hwc, scale in zip(lay.keys, lay.sensors, lay.hwc, lay.scales):
                size = int(np.prod(shape))
                part = np.transpose(obs[key], (2, 0, 1)) if hwc else obs[key]
                if np.ndim(part) == 0 and size > 1:  # a Discrete sensor: one-hot
                    dst[off:off + size] = 0.0
                    dst[off + int(part)] = 1.0
                else:
                    dst[off:off + size] = np.asarray(part, np.float32).reshape(-1)
                    if scale != 1.0:  # a uint8 image among several sensors: [0, 1], as the networks take images
                        dst[off:off + size] *= scale
                off += size
            if lay.has_mask and isinstance(obs, dict) and f"{name}/mask" in o:
                o[f"{name}/mask"][i] = obs["action_mask"]
        if info and "action_mask" in info and f"{name}/mask" in o:
            o[f"{name}/mask"][i] = info["action_mask"]

    def _write_state(self, key: str) -> None:
        if not self.write_state:
            return
        if self._state_from_obs:
            dst, off = self.out[key], 0
            for name, i, size in self._state_parts:
                dst[off:off + size] = self.out[f"{name}/obs"][i].reshape(-1)
                off += size
        elif self._has_state:
            self.out[key][...] = self.env.state()
        else:  # the observations concatenated, in the networks' units (uint8 images scaled to [0, 1])
            dst, off = self.out[key], 0
            for b in self.spec.behaviors:
                size = b.n_agents * b.obs_size
                dst[off:off + size] = self.out[f"{b.name}/obs"].reshape(-1)
                if b.obs_scale != 1.0:
                    dst[off:off + size] *= b.obs_scale
                off += size

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
            self._occupant[b.name] = [None] * b.n_agents
        self._episode_len = self._steps = 0
        for table in (self._traj, self._traj_return, self._traj_slot, self._group_trajs, self._group_live,
                      self._group_start, self._traj_group):
            table.clear()
        if self.turn_based:
            self._aec_skip_dead()
            self._aec_write_obs()
        else:
            self._slot = {}
            for agent, obs in self._last_obs.items():
                info = self._last_infos.get(agent)
                slot = self._join(agent, info if isinstance(info, dict) else None)
                if slot is None:
                    continue
                self._write_obs(agent, obs, info)
                o[f"{slot[0]}/active"][slot[1]] = _deciding(info)
            self._note_unslotted()
        self._write_state("state")

    # ----------------------------------------------------------------------------------- slots
    def _group_key(self, info: dict | None, traj: int) -> int:
        """Which episode a new trajectory belongs to: one per env episode (key 0), or for a stream env
        (Unity) its ``group_id`` (an agent without a group is an episode of its own)."""
        if not self._stream:
            return 0
        g = int(info.get("group_id", 0) or 0) if info else 0
        return g if g > 0 else -(traj + 1)

    def _join(self, agent: str, info: dict | None) -> tuple[str, int] | None:
        """Give ``agent`` (new in this episode) a slot and start its trajectory; None when none is free.

        Its spec label slot when it has one and it is free, else a free slot of its behavior and team,
        preferring one last used by its group (``infos[agent]["group_id"]``: a respawned agent takes
        the place of the one it replaces). Slots are fixed while the env lives (``envs.spec``): an agent
        beyond them is reported once per behavior and team, is neither acted for nor recorded (it tries
        again at every step it is seen, and takes a slot as soon as one of its team is free), and is
        counted in :attr:`needed_slots`, from which ``marl.run`` grows the slots at the next rollout
        boundary (``docs/unity_contract.md``).
        """
        o = self.out
        group = int(info.get("group_id", 0) or 0) if info else 0
        label = self._label.get(agent)
        if label is not None and self._occupant[label[0]][label[1]] is None:
            name, i = label
        else:
            name = self._behavior_map.get(agent, behavior_of(agent))
            if name not in self._occupant:
                if (name, -1) not in self._full:
                    self._full.add((name, -1))
                    warnings.warn(f"agent '{agent}': behavior '{name}' appeared after the env started (known: "
                                  f"{', '.join(self._occupant)}); its agents are not trained", stacklevel=3)
                return None
            team = team_of(agent)
            occ, teams, groups = self._occupant[name], self._slot_team[name], self._slot_group[name]
            free = [j for j in range(len(occ)) if occ[j] is None and teams[j] == team]
            if not free:
                self._unslotted.setdefault((name, team), set()).add(agent)
                if (name, team) not in self._full:
                    self._full.add((name, team))
                    n_live = sum(1 for j in range(len(occ)) if teams[j] == team) + 1
                    warnings.warn(f"behavior '{name}' team {team}: {n_live} agents at once but "
                                  f"{n_live - 1} slots (sized when the env started); '{agent}' and any further "
                                  f"extra agents are not trained until the slots grow at the next rollout boundary "
                                  f"(marl-learn restarts the env workers with more slots on a Unity build); or "
                                  f"preallocate them (Unity builds: env_settings.env_kwargs.agent_slots: "
                                  f"{{{name}: {n_live}}})", stacklevel=3)
                return None
            same = [j for j in free if groups[j] == group]
            i = (same or free)[0]
        self._occupant[name][i] = agent
        self._slot[agent] = (name, i)
        self._slot_group[name][i] = group
        traj = self._next_traj
        self._next_traj += 1
        key = self._group_key(info, traj)
        if key not in self._group_trajs:
            self._group_trajs[key] = []
            self._group_start[key] = self._steps
        self._group_trajs[key].append(traj)
        self._group_live[key] = self._group_live.get(key, 0) + 1
        self._traj[agent], self._traj_return[traj], self._traj_slot[traj], self._traj_group[traj] = traj, 0.0, (name, i), key
        o[f"{name}/alive"][i] = True
        o[f"{name}/traj_id"][i] = traj
        o[f"{name}/group_id"][i] = group
        return name, i

    def _note_unslotted(self) -> None:
        """Record in :attr:`needed_slots` how many agents of each (behavior, team) were live in this step
        when some of them found no slot (those holding a slot plus those refused one), then forget them."""
        if not self._unslotted:
            return
        for (name, team), agents in self._unslotted.items():
            occ, teams = self._occupant[name], self._slot_team[name]
            live = sum(1 for j in range(len(occ)) if teams[j] == team and occ[j] is not None) + len(agents)
            self._needed[(name, team)] = max(self._needed.get((name, team), 0), live)
        self._unslotted = {}

    @property
    def needed_slots(self) -> dict[str, dict[int, int]]:
        """``{behavior: {team: most agents of that team live at once}}`` for every (behavior, team) whose
        slots were too few at some step since the env started (empty when they always sufficed); counts
        are over all of this copy's training areas, in slots per team. Also reported in the
        ``info["needed_slots"]`` of every :class:`EpisodeStats` this env returns once it is non-empty, so
        the run loop sees it across worker processes and Ray actors (``marl.grow.note_needed``)."""
        out: dict[str, dict[int, int]] = {}
        for (name, team), n in self._needed.items():
            out.setdefault(name, {})[int(team)] = n
        return out

    def _leave(self, agent: str) -> int | None:
        """Free ``agent``'s slot (its episode ended); returns its episode group when that has no live
        member left (the group's episode is over), else None."""
        name, i = self._slot.pop(agent)
        self._occupant[name][i] = None
        self.out[f"{name}/alive"][i] = False
        key = self._traj_group[self._traj.pop(agent)]
        self._group_live[key] -= 1
        return key if self._group_live[key] == 0 else None

    def _episode_stats(self, keys: list[int], length: int | None = None, info: dict | None = None) -> EpisodeStats:
        """The :class:`EpisodeStats` of the episode groups ``keys`` (merged; their tables are dropped):
        each slot's return is the sum over the trajectories it held in those episodes."""
        returns = {b.name: np.full(b.n_agents, np.nan, np.float32) for b in self.spec.behaviors}
        longest = 0
        for key in keys:
            for traj in self._group_trajs.pop(key, []):
                name, i = self._traj_slot.pop(traj)
                r = returns[name]
                r[i] = (0.0 if np.isnan(r[i]) else r[i]) + self._traj_return.pop(traj)
                self._traj_group.pop(traj, None)
            longest = max(longest, self._steps - self._group_start.pop(key, self._steps))
            self._group_live.pop(key, None)
        info = dict(info or {})
        if self._unity_stats:
            info["unity_stats"] = self._unity_stats
            self._unity_stats = []
        if self._needed:
            info["needed_slots"] = self.needed_slots
        return EpisodeStats(returns, longest if length is None else length, info)

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
            The finished episode's stats when this step ended one (a whole episode: the env has then
            been reset; a stream env: the episode groups that ended, merged), else ``None``.
        """
        o = self.out
        for b in self.spec.behaviors:
            o[f"{b.name}/reward"][:] = 0.0
            o[f"{b.name}/terminated"][:] = False
            o[f"{b.name}/truncated"][:] = False
        self._episode_len += 1
        self._steps += 1
        if not self.turn_based:
            return self._parallel_step()
        done = self._aec_step()
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

    def _parallel_step(self) -> EpisodeStats | None:
        """One step of a ``ParallelEnv``, in this order: rewards of the agents holding slots; agents
        whose episode ended (final observation, flags, slot freed, ``final_state``); then the other
        agents in ``obs``: new ones take a slot, deciding ones (``infos[a]["deciding"]``, default
        true) write their observation and become ``active``. So a slot freed in this step can hold a
        new agent in the same step: ``terminated``/``truncated``/``final_obs`` describe the one that
        left, ``obs``/``active``/``traj_id`` the one that came."""
        o, env = self.out, self.env
        actions = {}
        for agent, (name, i) in self._slot.items():
            if o[f"{name}/active"][i]:
                actions[agent] = self._action_for(name, i)
        obs, rewards, terms, truncs, infos = env.step(actions)
        for b in self.spec.behaviors:
            o[f"{b.name}/active"][:] = False
        for agent, r in rewards.items():
            slot = self._slot.get(agent)
            if slot is not None:  # a reward before an agent's first decision belongs to no trajectory
                o[f"{slot[0]}/reward"][slot[1]] = r
                self._traj_return[self._traj[agent]] += float(r)
        ended = [a for a in self._slot if terms.get(a) or truncs.get(a)]
        finished: list[int] = []
        for agent in ended:
            name, i = self._slot[agent]
            t = bool(terms.get(agent))
            if agent in obs:
                self._write_obs(agent, obs[agent], infos.get(agent))
            o[f"{name}/terminated"][i] = t
            o[f"{name}/truncated"][i] = not t
            if not t:
                o[f"{name}/final_obs"][i] = o[f"{name}/obs"][i]
            key = self._leave(agent)
            if key is not None:
                finished.append(key)
        if ended:
            self._write_state("final_state")
        # the episodes that ended are closed before anyone joins: a newcomer starts its group's next one
        group_stats = self._episode_stats(finished) if finished and self._stream else None
        ended_set = set(ended)
        for agent, ob in obs.items():
            if agent in ended_set or terms.get(agent) or truncs.get(agent):
                continue
            info = infos.get(agent)
            info = info if isinstance(info, dict) else None
            slot, deciding = self._slot.get(agent), _deciding(info)
            if slot is None:
                slot = self._join(agent, info)
                if slot is None:
                    continue
                self._write_obs(agent, ob, info)  # a newcomer's row holds its observation even before it decides
            elif deciding:
                self._write_obs(agent, ob, info)
            if deciding:
                o[f"{slot[0]}/active"][slot[1]] = True
        self._note_unslotted()
        drain = getattr(env, "drain_stats", None)  # the Unity adapter's Stats side channel
        if drain is not None:
            self._unity_stats.extend(drain())
        if self._stream:
            if group_stats is not None and self._unity_stats:
                group_stats.info.setdefault("unity_stats", []).extend(self._unity_stats)
                self._unity_stats = []
            if not env.agents:  # nobody left (e.g. the player was restarted): continue into the next episode
                self._reset_env(None)
                self._write_start(keep_step_outputs=True)
                return group_stats
            self._write_state("state")
            return group_stats
        self._episode_info = {k: v for k, v in infos.items() if not isinstance(v, dict)} if infos else {}
        if env.agents:
            self._write_state("state")
            return None
        self._episode_info.pop("unity_stats", None)
        stats = self._episode_stats(list(self._group_trajs), self._episode_len, self._episode_info)
        self._episode_info = {}
        self._reset_env(None)
        self._write_start(keep_step_outputs=True)
        return stats

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
                o[f"{name}/traj_id"][i] = self._next_traj  # a seat's trajectory: one per episode
                self._next_traj += 1
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
        if self.turn_based:
            stats = EpisodeStats({k: v.copy() for k, v in self._episode_returns.items()}, self._episode_len,
                                 {"cut": True})
        else:
            stats = self._episode_stats(list(self._group_trajs), self._episode_len, {"cut": True})
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
        """Pass ``environment_parameters`` (``key -> float | sampler dict``) to the env, which applies them
        from its next episode start: the Unity adapter (side channel) or any env, under any wrappers, with
        a ``set_environment_parameters(values)`` method (``envs/games/soccer.py``).

        Raises:
            EnvError: the env reads no environment parameters, or refuses one (one line naming it).
        """
        if not values:
            return
        env = self.env
        while env is not None:
            fn = getattr(env, "set_environment_parameters", None)
            if fn is not None:
                try:
                    fn(values)
                except ValueError as exc:
                    raise EnvError(f"env '{self.env_id}': {exc}") from None
                return
            env = getattr(env, "env", None)
        raise EnvError(f"environment_parameters ({', '.join(values)}): env '{self.env_id}' reads no environment "
                       "parameters (Unity builds and envs with a set_environment_parameters method do, e.g. "
                       "envs.games.soccer); remove the section, or give fixed values in env_settings.env_kwargs")

    def close(self) -> None:
        self.env.close()
