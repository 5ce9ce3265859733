"""A Unity ML-Agents build (or the Editor) as a PettingZoo ``ParallelEnv``, over mlagents-envs 0.28.

Agents and spaces
    Agent names are ``<behavior>?agent_id=<K>``, with Unity's behavior names carrying the team:
    ``SoccerTwos?team=1?agent_id=3`` (:func:`envs.registry.behavior_of` / ``team_of`` parse them).
    Agent ids are Unity's, stable across steps and episodes. Several behaviors can run at once.
    ``possible_agents`` **grows** as agents appear for the first time (Unity does not announce
    its agents in advance); it never shrinks. Observation space: a ``Box`` for one sensor, else a
    ``Tuple`` of ``Box`` in the player's sensor order (sorted by sensor name in Unity); visual
    sensors are float32 CHW in [0, 1]. Action space: ``Box(-1, 1)`` (continuous), ``Discrete`` (one
    branch), ``MultiDiscrete`` (several), ``Tuple(discrete, Box)`` (hybrid).

Step semantics (what the trainer consumes)
    * ``reset()`` returns observations of the agents that must act at the next ``step``.
    * ``step(actions)`` takes actions **only for agents with a pending decision** (those whose
      observation was last returned and that are not done); actions for others are ignored, and a
      missing action for a pending agent is sent as zeros (mlagents' ``empty_action``).
    * In the returned ``obs``: an agent that is **not** flagged done must act next step; an agent
      flagged in ``terminations`` / ``truncations`` ended its episode in this step and its entry is
      its final observation (for bootstrapping a truncation). ``truncation`` = Unity's
      ``max_step_reached`` (also used when the player had to be restarted); ``termination`` = any
      other end (``EndEpisode``, agent destroyed).
    * Agents that decide every ``k`` steps (``DecisionRequester``) appear in ``obs`` only at their
      decision steps. ``rewards`` holds every agent alive at the start of the step; Unity
      accumulates an agent's reward between its decisions and reports it at the next decision (or
      at its end), so ``rewards[a]`` is 0 in between: summing rewards from one decision to the next
      gives the reward for that decision. Reward = individual reward + ``group_reward``; both are
      also in ``infos[a]`` (``individual_reward``, ``group_reward``, ``group_id``).
    * ``infos[a]["action_mask"]``: int8 ``[sum(branch sizes)]``, **1 = allowed** (Unity's mask is
      true = masked; inverted here), present for discrete behaviors at decision steps.
    * An agent appearing mid-episode (first decision, or first decision after its group reset)
      joins ``agents``. An agent that ended stays out of ``agents`` until every agent has ended
      (PettingZoo: no revival); decisions Unity requests for it meanwhile get zero actions. Then
      ``reset()`` does not send RESET to Unity (the player already started the next episode): it
      returns the pending decisions of the next episode.
    * When every agent has ended, ``infos["unity_stats"]`` lists ``(key, value, aggregation)`` of
      the Stats side channel since the previous episode end (aggregation: ``AVERAGE``,
      ``MOST_RECENT``, ``SUM`` or ``HISTOGRAM``); :meth:`UnityParallelEnv.drain_stats` gives them
      on demand instead.

``state()`` is not provided (Unity has no global state): trainers concatenate observations.
``reset(seed=...)`` cannot reseed a running player; the seed is sent once, at connection.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import queue
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core prints INFO lines (GOAWAY) on every close
import grpc  # noqa: E402
import numpy as np
from gymnasium import spaces
from mlagents_envs import env_utils
from mlagents_envs.base_env import ActionTuple, BehaviorSpec
from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import add_UnityToExternalProtoServicer_to_server
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import (UnityCommunicationException, UnityCommunicatorStoppedException,
                                     UnityEnvironmentException, UnityTimeOutException, UnityWorkerInUseException)
from mlagents_envs.rpc_communicator import RpcCommunicator, UnityToExternalServicerImplementation
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel
from pettingzoo import ParallelEnv

from envs.unity.decode import chw_shape, steps_from_proto
from envs.unity.errors import UnityEnvError, UnityPlayerDied
from envs.unity.parameters import apply_engine, apply_parameters, current_values
from envs.unity.restart import RestartLimiter

log = logging.getLogger(__name__)
DEFAULT_EDITOR_PORT = UnityEnvironment.DEFAULT_EDITOR_PORT  # 5004
_DEATH = (UnityEnvironmentException, UnityCommunicatorStoppedException, UnityTimeOutException,
          UnityCommunicationException)


class _ThreadConn:
    """One end of an in-process pipe between the gRPC handler thread and the main thread.

    mlagents passes every message through a ``multiprocessing.Pipe``, i.e. pickles (serialises and
    re-parses) each protobuf twice per step although both ends live in the same process; with the
    pure-Python protobuf that protobuf 3.20 has on Python 3.11 that is a large share of the step
    cost. Same ``send`` / ``recv`` / ``poll`` / ``close`` surface, objects passed by reference.
    """

    def __init__(self, inbox: queue.SimpleQueue, outbox: queue.SimpleQueue):
        self.inbox, self.outbox = inbox, outbox
        self._peeked: list = []

    def send(self, obj: Any) -> None:
        self.outbox.put(obj)

    def poll(self, timeout: float = 0.0) -> bool:
        if not self._peeked:
            try:
                self._peeked.append(self.inbox.get(timeout=timeout))
            except queue.Empty:
                return False
        return True

    def recv(self) -> Any:
        return self._peeked.pop() if self._peeked else self.inbox.get()

    def close(self) -> None:
        pass


class _Communicator(RpcCommunicator):
    """mlagents' gRPC server bound to ``bind_address`` (loopback by default, where mlagents binds all
    interfaces), with in-process queues instead of pipes (:class:`_ThreadConn`), polling the player process at most every second (mlagents polls every
    ``timeout_wait // 10`` s, a busy loop below 10 s)."""

    def __init__(self, worker_id: int, base_port: int, timeout_wait: float, bind_address: str):
        self.bind_address = bind_address
        super().__init__(worker_id, base_port, timeout_wait)

    def create_server(self) -> None:
        self.check_port(self.port)
        try:
            self.server = grpc.server(thread_pool=ThreadPoolExecutor(max_workers=10),
                                      options=(("grpc.so_reuseport", 0),))
            self.unity_to_external = UnityToExternalServicerImplementation()
            a, b = queue.SimpleQueue(), queue.SimpleQueue()
            self.unity_to_external.parent_conn, self.unity_to_external.child_conn = _ThreadConn(a, b), _ThreadConn(b, a)
            add_UnityToExternalProtoServicer_to_server(self.unity_to_external, self.server)
            if not self.server.add_insecure_port(f"{self.bind_address}:{self.port}"):
                raise OSError("bind failed")
            self.server.start()
            self.is_open = True
        except Exception:
            raise UnityWorkerInUseException(self.worker_id) from None

    def poll_for_timeout(self, poll_callback=None) -> None:
        deadline = time.monotonic() + self.timeout_wait
        interval = min(1.0, max(0.05, self.timeout_wait / 10))
        while time.monotonic() < deadline:
            if self.unity_to_external.parent_conn.poll(interval):
                return
            if poll_callback:
                poll_callback()
        raise UnityTimeOutException("The Unity environment took too long to respond.")


class _UnityEnvironment(UnityEnvironment):
    """``UnityEnvironment`` with CHW visual decoding (:mod:`envs.unity.decode`) and :class:`_Communicator`."""

    def __init__(self, *args: Any, bind_address: str = "127.0.0.1", **kwargs: Any):
        self._bind_address = bind_address
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            atexit.unregister(self._close)  # mlagents registers it before the communicator exists
            raise

    def _close(self, timeout: int | None = None) -> None:
        super()._close(timeout)
        atexit.unregister(self._close)

    def _get_communicator(self, worker_id, base_port, timeout_wait):  # noqa: D102 (mlagents hook)
        return _Communicator(worker_id, base_port, timeout_wait, self._bind_address)

    def _update_state(self, output) -> None:
        for name, spec in self._env_specs.items():
            infos = output.agentInfos[name].value if name in output.agentInfos else []
            self._env_state[name] = steps_from_proto(infos, spec)
        self._side_channel_manager.process_side_channel_message(output.side_channel)


def _action_space(spec: BehaviorSpec) -> spaces.Space:
    a = spec.action_spec
    cont = spaces.Box(-1.0, 1.0, (a.continuous_size,), np.float32) if a.continuous_size else None
    disc = None
    if a.discrete_size == 1:
        disc = spaces.Discrete(a.discrete_branches[0])
    elif a.discrete_size > 1:
        disc = spaces.MultiDiscrete(list(a.discrete_branches))
    if cont is not None and disc is not None:
        return spaces.Tuple((disc, cont))
    if cont is None and disc is None:
        raise UnityEnvError("a behavior with neither continuous nor discrete actions")
    return cont if disc is None else disc


def _obs_space(spec: BehaviorSpec) -> spaces.Space:
    boxes = []
    for o in spec.observation_specs:
        shape = chw_shape(o)
        boxes.append(spaces.Box(0.0, 1.0, shape, np.float32) if len(shape) == 3
                     else spaces.Box(-np.inf, np.inf, shape, np.float32))
    return boxes[0] if len(boxes) == 1 else spaces.Tuple(boxes)


class UnityParallelEnv(ParallelEnv):
    """A Unity player as a PettingZoo ``ParallelEnv`` (semantics in the module docstring).

    Args:
        env_path: build executable (as ``--env``), or None to wait for the Editor on ``editor_port``.
        worker_id: worker index; the player's port is ``base_port + worker_id``.
        base_port: port of worker 0 (ML-Agents' ``--base-port``, 5005).
        editor_port: port used when ``env_path`` is None (ML-Agents: 5004).
        no_graphics: launch with ``-nographics -batchmode``.
        timeout_wait: seconds to wait for the player at connection and at every step.
        env_args: extra command-line arguments for the executable (``--env-args``).
        log_dir: folder for ``Player-<worker_id>.log`` (made absolute; None = the player's default).
        engine: ``engine_settings`` (width, height, quality_level, time_scale, target_frame_rate,
            capture_frame_rate), sent through the EngineConfiguration side channel.
        environment_parameters: the YAML ``environment_parameters`` (floats, samplers, curricula
            at their first lesson), sent through the EnvironmentParameters side channel.
        seed: seed sent to the player at connection (samplers get ``seed + worker_id``).
        num_areas: ``--num-areas`` sent to the player.
        restart: the worker's :class:`RestartLimiter` (None = never restart: a dead player raises).
        bind_address: address of the gRPC server (loopback by default; "0.0.0.0" for players in
            other containers).

    Raises:
        UnityEnvError: missing or non-executable build, port in use, player never connects or
            exits at start, incompatible communication version (one line each).
    """

    metadata = {"name": "unity_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, env_path: str | None, *, worker_id: int = 0, base_port: int = UnityEnvironment.BASE_ENVIRONMENT_PORT,
                 editor_port: int = DEFAULT_EDITOR_PORT, no_graphics: bool = True, timeout_wait: float = 60,
                 env_args: Sequence[str] | None = None, log_dir: str | None = None, engine: dict | None = None,
                 environment_parameters: dict | None = None, seed: int = 0, num_areas: int = 1,
                 restart: RestartLimiter | None = None, bind_address: str = "127.0.0.1"):
        self.env_path = env_path
        self.worker_id = int(worker_id)
        self.port = (int(base_port) + self.worker_id) if env_path else int(editor_port)
        self._base_port = int(base_port) if env_path else int(editor_port)
        self.no_graphics, self.timeout_wait = bool(no_graphics), float(timeout_wait)
        self.env_args = list(env_args or [])
        self.log_dir = os.path.abspath(log_dir) if log_dir else None
        self.engine = dict(engine or {})
        self._param_values = current_values(environment_parameters)
        self.seed, self.num_areas = int(seed), int(num_areas)
        self.restart = restart
        self.bind_address = bind_address
        self.possible_agents: list[str] = []
        self.agents: list[str] = []
        self._agent_behavior: dict[str, tuple[str, int]] = {}
        self._obs_spaces: dict[str, spaces.Space] = {}
        self._act_spaces: dict[str, spaces.Space] = {}
        self._pending: dict[str, list[str]] = {}  # behavior -> agent names in DecisionSteps order
        self._last_obs: dict[str, Any] = {}
        self._last_info: dict[str, dict] = {}
        self._finished: set[str] = set()
        self._stats: deque = deque()
        self._unity: _UnityEnvironment | None = None
        self._needs_unity_reset = True
        self._connect()

    # ------------------------------------------------------------------------------ connection
    @property
    def log_path(self) -> str | None:
        """The player's log file (``<log_dir>/Player-<worker_id>.log``), when ``log_dir`` is set."""
        return os.path.join(self.log_dir, f"Player-{self.worker_id}.log") if self.log_dir else None

    def _where(self) -> str:
        return f"Unity worker {self.worker_id} (port {self.port})"

    def _preflight(self) -> None:
        if self.env_path is None:
            return
        if os.path.isdir(self.env_path) and not env_utils.validate_environment_path(self.env_path):
            raise UnityEnvError(f"--env {self.env_path}: is a folder without a build executable in it; "
                                "give the path of the executable (e.g. Build/Game.x86_64)")
        launch = env_utils.validate_environment_path(self.env_path)
        if launch is None or not os.path.isfile(launch):
            raise UnityEnvError(f"--env {self.env_path}: no such build (expected the path of a Unity "
                                "executable, e.g. Build/Game.x86_64)")
        if not os.access(launch, os.X_OK):
            raise UnityEnvError(f"--env {self.env_path}: {launch} is not executable (try: chmod +x {launch})")

    def _connect(self, restarting: bool = False) -> None:
        """Launch the player (or wait for the Editor) and do the handshake; maps mlagents' errors."""
        self._preflight()
        self._engine_channel = EngineConfigurationChannel()
        self._params_channel = EnvironmentParametersChannel()
        self._stats_channel = StatsSideChannel()
        apply_engine(self._engine_channel, self.engine)
        apply_parameters(self._params_channel, self._param_values, self.seed + self.worker_id)
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
        # After a player died, our own closed server may hold the port for a moment: retry briefly.
        wait_port_until = time.monotonic() + (10.0 if restarting else 0.0)
        try:
            while True:
                try:
                    self._unity = _UnityEnvironment(
                        file_name=self.env_path, worker_id=self.worker_id if self.env_path else 0,
                        base_port=self._base_port, seed=self.seed, no_graphics=self.no_graphics,
                        timeout_wait=self.timeout_wait, additional_args=self.env_args,
                        side_channels=[self._engine_channel, self._params_channel, self._stats_channel],
                        log_folder=self.log_dir, num_areas=self.num_areas, bind_address=self.bind_address)
                    break
                except UnityWorkerInUseException:
                    if time.monotonic() >= wait_port_until:
                        raise
                    time.sleep(0.25)
        except UnityWorkerInUseException:
            raise UnityEnvError(f"{self._where()}: port {self.port} is already in use (base_port {self._base_port} + "
                                f"worker_id {self.worker_id}); close the program using it or pick another --base-port") from None
        except UnityTimeOutException:
            if self.env_path is None:
                raise UnityEnvError(f"{self._where()}: no Unity Editor connected within {self.timeout_wait:g} s; "
                                    "press Play in the Editor, or give --env <build>") from None
            raise UnityEnvError(f"{self._where()}: the player {self.env_path} did not connect within "
                                f"{self.timeout_wait:g} s (--timeout-wait); is it an ML-Agents build with Behavior Type "
                                f"'Default'? log: {self.log_path or 'not kept (no log_dir)'}") from None
        except UnityEnvironmentException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnityEnvError(f"{self._where()}: the player {self.env_path} failed at start: {first} "
                                f"log: {self.log_path or 'not kept (no log_dir)'}") from None
        self._needs_unity_reset = True
        for behavior in self._unity.behavior_specs:
            self._register_behavior(behavior)

    def _close_unity(self) -> None:
        if self._unity is not None:
            try:
                self._unity._close(0)  # kill at once: the player is dead or hung
            except Exception:  # pragma: no cover - best effort on a broken connection
                pass
            self._unity = None

    # ------------------------------------------------------------------------------ spaces
    def _register_behavior(self, behavior: str) -> None:
        if behavior not in self._obs_spaces:
            spec = self._unity.behavior_specs[behavior]
            self._obs_spaces[behavior] = _obs_space(spec)
            self._act_spaces[behavior] = _action_space(spec)

    def _name(self, behavior: str, agent_id: int) -> str:
        name = f"{behavior}?agent_id={int(agent_id)}"
        if name not in self._agent_behavior:
            self._agent_behavior[name] = (behavior, int(agent_id))
            self.possible_agents.append(name)
        return name

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        """Observation space of ``agent`` (see the module docstring).

        Raises:
            UnityEnvError: the agent's behavior is unknown (not yet seen).
        """
        return self._space(self._obs_spaces, agent)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        """Action space of ``agent`` (see the module docstring)."""
        return self._space(self._act_spaces, agent)

    def _space(self, table: dict, agent: str) -> spaces.Space:
        behavior = self._agent_behavior.get(agent, (agent.rsplit("?agent_id=", 1)[0], -1))[0]
        if behavior not in table:
            raise UnityEnvError(f"agent '{agent}': behavior '{behavior}' has not been seen from the player "
                                f"(known: {sorted(table) or 'none yet; call reset() first'})")
        return table[behavior]

    @property
    def behavior_names(self) -> list[str]:
        """Behavior names the player has announced (``Name?team=N``)."""
        return list(self._obs_spaces)

    # ------------------------------------------------------------------------------ side channels
    def set_environment_parameters(self, values: dict[str, Any]) -> None:
        """Send new ``key -> float | sampler dict`` values (e.g. ``Curriculum.values()``) with the
        next step; they are re-sent after a player restart."""
        self._param_values.update(values)
        apply_parameters(self._params_channel, values, self.seed + self.worker_id)

    def drain_stats(self) -> list[tuple[str, float, str]]:
        """Stats side-channel values received since the last call: ``(key, value, aggregation)``."""
        self._collect_stats()
        out = list(self._stats)
        self._stats.clear()
        return out

    def _collect_stats(self) -> None:
        if self._unity is None:
            return
        for key, values in self._stats_channel.get_and_reset_stats().items():
            for value, agg in values:
                self._stats.append((key, float(value), agg.name))

    # ------------------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start (or continue into) the next episode; returns ``(obs, infos)`` of agents that must act.

        Sends RESET to the player on the first call, after a restart, when called mid-episode or
        with ``options={"force": True}``; otherwise the player has already begun the next episode.

        Raises:
            UnityEnvError: the player cannot be (re)started; :class:`UnityPlayerDied` when it dies
                during the reset and no restart is allowed.
        """
        if self._unity is None:
            self._connect()
        force = bool(options and options.get("force"))
        try:
            if self._needs_unity_reset or self.agents or force:
                self._unity.reset()
                self._needs_unity_reset = False
                self._read_pending()
            else:
                for _ in range(100000):
                    if any(self._pending.values()):
                        break
                    self._unity.step()
                    self._read_pending()
        except _DEATH as exc:
            self._handle_death(exc)
            return self.reset(seed, options)
        self._finished = set()
        self.agents = [a for names in self._pending.values() for a in names]
        obs = {a: self._last_obs[a] for a in self.agents}
        infos = {a: self._last_info[a] for a in self.agents}
        return obs, infos

    def _read_pending(self) -> None:
        """After a reset: record every behavior's decision requests (terminal steps are ignored)."""
        self._pending = {}
        for behavior in self._unity.behavior_specs:
            self._register_behavior(behavior)
            decision, _ = self._unity.get_steps(behavior)
            self._pending[behavior] = self._record_decisions(behavior, decision)

    def _record_decisions(self, behavior: str, decision) -> list[str]:
        names = []
        masks = None
        if decision.action_mask is not None:
            masks = (~np.concatenate(decision.action_mask, axis=1)).astype(np.int8)  # 1 = allowed
        multi = isinstance(self._obs_spaces[behavior], spaces.Tuple)
        for j, agent_id in enumerate(decision.agent_id):
            name = self._name(behavior, agent_id)
            names.append(name)
            self._last_obs[name] = tuple(o[j] for o in decision.obs) if multi else decision.obs[0][j]
            info = {"behavior": behavior, "agent_id": int(agent_id), "group_id": int(decision.group_id[j]),
                    "individual_reward": float(decision.reward[j]), "group_reward": float(decision.group_reward[j])}
            if masks is not None:
                info["action_mask"] = masks[j]
            self._last_info[name] = info
        return names

    def _to_action(self, behavior: str, action: Any, out_d: np.ndarray | None, out_c: np.ndarray | None, j: int) -> None:
        space = self._act_spaces[behavior]
        if isinstance(space, spaces.Tuple):
            self._to_action_part(space.spaces[0], action[0], out_d, out_c, j)
            self._to_action_part(space.spaces[1], action[1], out_d, out_c, j)
        else:
            self._to_action_part(space, action, out_d, out_c, j)

    @staticmethod
    def _to_action_part(space: spaces.Space, action: Any, out_d, out_c, j: int) -> None:
        if isinstance(space, spaces.Box):
            out_c[j] = np.clip(np.asarray(action, np.float32).reshape(-1), -1.0, 1.0)
        else:
            out_d[j] = np.asarray(action, np.int32).reshape(-1)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Send the pending agents' actions, advance the player one step, report what came back.

        Raises:
            UnityEnvError: ``step`` after every agent ended (call ``reset``), a malformed action;
                :class:`UnityPlayerDied` when the player died and no restart is allowed.
        """
        if not self.agents:
            raise UnityEnvError("step() called after every agent's episode ended; call reset()")
        live = set(self.agents)
        for behavior, names in self._pending.items():
            if not names:
                continue
            spec = self._unity.behavior_specs[behavior].action_spec
            n = len(names)
            d = np.zeros((n, spec.discrete_size), np.int32) if spec.discrete_size else None
            c = np.zeros((n, spec.continuous_size), np.float32) if spec.continuous_size else None
            for j, name in enumerate(names):
                if name in live and name in actions and actions[name] is not None:
                    try:
                        self._to_action(behavior, actions[name], d, c, j)
                    except (ValueError, TypeError, IndexError) as exc:
                        raise UnityEnvError(f"action for '{name}' does not fit {self._act_spaces[behavior]}: {exc}") from None
            self._unity.set_actions(behavior, ActionTuple(continuous=c, discrete=d))
        try:
            self._unity.step()
        except _DEATH as exc:
            return self._handle_death(exc)
        return self._read_step(live)

    def _read_step(self, live: set[str]) -> tuple[dict, dict, dict, dict, dict]:
        obs: dict[str, Any] = {}
        rewards = {a: 0.0 for a in self.agents}
        terms = {a: False for a in self.agents}
        truncs = {a: False for a in self.agents}
        infos: dict[str, Any] = {}
        ended: set[str] = set()
        self._pending = {}
        for behavior in self._unity.behavior_specs:
            self._register_behavior(behavior)
            decision, terminal = self._unity.get_steps(behavior)
            multi = isinstance(self._obs_spaces[behavior], spaces.Tuple)
            for j, agent_id in enumerate(terminal.agent_id):
                name = self._name(behavior, agent_id)
                if name not in live or name in ended:
                    continue  # an episode the PettingZoo side does not track
                ended.add(name)
                r, g = float(terminal.reward[j]), float(terminal.group_reward[j])
                rewards[name] = r + g
                obs[name] = tuple(o[j] for o in terminal.obs) if multi else terminal.obs[0][j]
                if terminal.interrupted[j]:
                    truncs[name] = True
                else:
                    terms[name] = True
                infos[name] = {"behavior": behavior, "agent_id": int(agent_id), "group_id": int(terminal.group_id[j]),
                               "individual_reward": r, "group_reward": g}
            names = self._record_decisions(behavior, decision)
            self._pending[behavior] = names
            for j, name in enumerate(names):
                if name in ended or name in self._finished:
                    continue  # its next episode: held until every agent has ended
                if name in live:
                    obs[name] = self._last_obs[name]
                    rewards[name] = float(decision.reward[j]) + float(decision.group_reward[j])
                    infos[name] = self._last_info[name]
                else:  # joins this episode
                    live.add(name)
                    obs[name] = self._last_obs[name]
                    rewards[name], terms[name], truncs[name] = 0.0, False, False
                    infos[name] = self._last_info[name]
        self._finished |= ended
        order = {a: i for i, a in enumerate(self.possible_agents)}
        self.agents = sorted((a for a in live if a not in self._finished), key=order.__getitem__)
        for a in self.agents:
            infos.setdefault(a, {})
        self._collect_stats()
        if not self.agents:
            infos["unity_stats"] = list(self._stats)
            self._stats.clear()
        return obs, rewards, terms, truncs, infos

    def _handle_death(self, exc: Exception) -> tuple[dict, dict, dict, dict, dict]:
        """The player died: restart it if the limits allow and truncate the live agents' episode."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self._close_unity()
        if self.restart is None or not self.restart.allowed():
            limits = self.restart.describe() if self.restart else "restarts disabled"
            raise UnityPlayerDied(f"{self._where()}: the player died ({reason}) and may not be restarted "
                                  f"({limits}); log: {self.log_path or 'not kept'}")
        self.restart.record()
        log.warning("%s: the player died (%s); restarting (%d restart(s) so far)", self._where(), reason, self.restart.count)
        self._connect(restarting=True)
        agents = list(self.agents)
        self.agents, self._pending, self._finished = [], {}, set()
        infos: dict[str, Any] = {a: {"player_restarted": True} for a in agents}
        infos["unity_stats"] = list(self._stats)
        self._stats.clear()
        return ({a: self._last_obs[a] for a in agents if a in self._last_obs}, {a: 0.0 for a in agents},
                {a: False for a in agents}, {a: True for a in agents}, infos)

    def close(self) -> None:
        """Close the connection and stop the player."""
        if self._unity is not None:
            try:
                self._unity.close()
            except Exception:  # pragma: no cover - closing a dead player
                self._close_unity()
            self._unity = None

    def render(self) -> None:
        return None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self._close_unity()
        except Exception:
            pass
