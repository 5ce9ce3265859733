"""A Unity ML-Agents build (or the Editor) as a PettingZoo ``ParallelEnv``, over mlagents-envs 0.28.

Agents and spaces
    Unity names a behavior ``Name?team=N``; an agent is ``<behavior>?agent_id=<K>`` with Unity's agent
    id K, e.g. ``SoccerTwos?team=1?agent_id=3`` (:func:`envs.registry.behavior_of` / ``team_of`` parse
    them). Unity keeps an agent's id from one episode to the next and gives a new or re-enabled
    (respawned) agent a fresh id. PettingZoo forbids an agent to come back once its episode ended, so
    an agent's second, third ... episode is a new PettingZoo agent ``<behavior>?agent_id=<K>?episode=<E>``
    (E = 1, 2, ...: the Unity agent's episodes since the connection; the first has no suffix).
    ``possible_agents`` **grows** as agents appear (Unity does not announce its agents in advance);
    it never shrinks. Observation space: a ``Box`` for one sensor, else a ``Tuple`` of ``Box`` in the
    player's sensor order (sorted by sensor name in Unity); visual sensors are float32 CHW in [0, 1];
    a variable-length (buffer) sensor is refused. Action space: ``Box(-1, 1)`` (continuous),
    ``Discrete`` (one branch), ``MultiDiscrete`` (several), ``Tuple(discrete, Box)`` (hybrid).

Step semantics (PettingZoo's parallel API; ``pettingzoo.test.parallel_api_test`` passes)
    * An agent is *live* from its first decision request until its episode ends. ``reset()`` and
      ``step()`` return an entry in observations, rewards, terminations, truncations and infos for
      every live agent (and for the agents that ended in the step, with their final observation).
    * ``infos[a]["deciding"]``: the agent has a pending decision request and must act at the next
      ``step``. A live agent that is not deciding (``DecisionRequester`` with a period > 1) gets the
      observation of its last decision and reward 0; Unity accumulates its rewards and reports them
      with its next decision or its episode end, so summing rewards from one decision to the next
      gives the reward of that decision. Reward = individual reward + ``group_reward``; both are also
      in ``infos[a]`` (``individual_reward``, ``group_reward``, ``group_id``, ``agent_id``, ``behavior``).
    * ``step(actions)`` sends the actions of deciding agents (in Unity's decision-request order);
      actions given for live agents that are not deciding are ignored (they keep acting on their
      last action, as Unity does), a deciding agent without an action gets zeros (mlagents'
      ``empty_action``), and an action for an agent that does not exist is an error.
    * ``terminations`` / ``truncations``: ``truncation`` = Unity's ``max_step_reached`` (also used when
      the player had to be restarted); ``termination`` = any other end (``EndEpisode``, the agent
      disabled or destroyed). Unity reports an episode end with the next message, often beside the
      same agent's first decision of its next episode: that decision is a new agent (see above) that
      joins in the same step, with reward 0 (a reward before an agent's first decision belongs to no
      action).
    * The player's training areas restart on their own, so ``agents`` rarely becomes empty and
      ``streams_episodes`` is true: :class:`envs.adapter.ArrayEnv` then counts episodes per group.
      When ``agents`` is empty, ``reset()`` continues into the next episode without sending RESET
      (the player already began it); RESET goes to Unity on the first call, after a restart, when
      agents are live or with ``options={"force": True}``.
    * :meth:`UnityParallelEnv.drain_stats` gives the Stats side channel's ``(key, value, aggregation)``
      received so far (aggregation: ``AVERAGE``, ``MOST_RECENT``, ``SUM`` or ``HISTOGRAM``);
      :class:`envs.adapter.ArrayEnv` drains them every step and hands them on with the next episode's
      ``EpisodeStats.info["unity_stats"]``. (Not in ``infos``: PettingZoo wants agents only there.)

No hang: every wait on the player is bounded by ``timeout_wait`` (each step polls the player
process at least every second); the gRPC handler thread waits in short slices and returns a
"closed" status to the player as soon as the env is closed or Python shuts down; a player started
here gets SIGKILL when the thread that launched it ends (Linux ``setpriv --pdeathsig``); any
error while connecting, resetting or stepping closes the player before it propagates.

``state()`` is not provided (Unity has no global state): trainers concatenate observations.
``reset(seed=...)`` cannot reseed a running player; the seed is sent once, at connection.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core prints INFO lines (GOAWAY) on every close
import grpc  # noqa: E402
import numpy as np
from gymnasium import spaces
from mlagents_envs import env_utils
from mlagents_envs.base_env import ActionTuple, BehaviorSpec, DimensionProperty
from mlagents_envs.communicator_objects.header_pb2 import HeaderProto
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
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
HANDLER_POLL_S = 0.25  # the gRPC handler thread checks this often whether the env was closed
CLOSE_WAIT_S = 5.0  # at most this long for a player to quit after QUIT before it is killed
RESET_SEARCH_STEPS = 10_000  # reset() without RESET steps at most this often waiting for a decision request


# ------------------------------------------------------------------------------------ processes
def _launch_executable(file_name: str, args: list[str]) -> subprocess.Popen:
    """mlagents' ``env_utils.launch_executable`` (same checks, new session, output discarded unless
    mlagents logs at DEBUG), started through util-linux ``setpriv --pdeathsig KILL`` where it exists
    (Linux), so that no player outlives a trainer killed with SIGKILL or a worker process that could not
    close it. (A ``preexec_fn`` calling prctl cannot be used: forking Python code while gRPC's threads
    run crashes the child.)"""
    launch = env_utils.validate_environment_path(file_name)
    if launch is None:
        raise UnityEnvironmentException(f"Couldn't launch the {file_name} environment. Provided filename does not "
                                        "match any environments.")
    quiet = logging.getLogger("mlagents_envs").level > logging.DEBUG
    out = subprocess.DEVNULL if quiet else None
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    try:
        return subprocess.Popen([*prefix, launch, *args], start_new_session=True, stdout=out, stderr=out)
    except PermissionError as perm:
        raise UnityEnvironmentException(f"Error when trying to launch environment - make sure permissions are set "
                                        f'correctly. For example "chmod -R 755 {launch}"') from perm


# mlagents' UnityEnvironment looks the launcher up on its env_utils module at every launch.
env_utils.launch_executable = _launch_executable


# ------------------------------------------------------------------------------------ gRPC side
class _ThreadConn:
    """One end of an in-process pipe between the gRPC handler thread and the main thread.

    mlagents passes every message through a ``multiprocessing.Pipe``, i.e. pickles (serialises and
    re-parses) each protobuf twice per step although both ends live in the same process; with the
    pure-Python protobuf that protobuf 3.20 has on Python 3.11 that is a large share of the step
    cost. Same ``send`` / ``recv`` / ``poll`` / ``close`` surface, objects passed by reference;
    ``recv`` takes a timeout (seconds; None = mlagents' unbounded wait, which the main thread only
    uses after ``poll`` said a message is there).

    Raises:
        queue.Empty: ``recv(timeout)`` saw no message in time.
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

    def recv(self, timeout: float | None = None) -> Any:
        return self._peeked.pop() if self._peeked else self.inbox.get(timeout=timeout)

    def close(self) -> None:
        pass


_OPEN_HANDLERS: "weakref.WeakSet[_Servicer]" = weakref.WeakSet()


class _Servicer(UnityToExternalServicerImplementation):
    """mlagents' servicer whose handler thread never waits unboundedly: it waits for the trainer's
    reply in slices of ``HANDLER_POLL_S`` and, once :attr:`closed` is set (the env closed, or Python
    shutting down), answers the player with status 400 ("trainer closed") and returns, so the
    server's worker threads always finish (Python joins them at exit)."""

    def __init__(self) -> None:  # noqa: D107 - no super().__init__: it would open a multiprocessing Pipe
        a, b = queue.SimpleQueue(), queue.SimpleQueue()
        self.parent_conn, self.child_conn = _ThreadConn(a, b), _ThreadConn(b, a)
        self.closed = threading.Event()
        _OPEN_HANDLERS.add(self)

    def _reply(self, request: UnityMessageProto) -> UnityMessageProto:
        self.child_conn.send(request)
        while True:
            try:
                return self.child_conn.recv(timeout=HANDLER_POLL_S)
            except queue.Empty:
                if self.closed.is_set():
                    return UnityMessageProto(header=HeaderProto(status=400))

    def Initialize(self, request, context):  # noqa: N802 - gRPC method name
        return self._reply(request)

    def Exchange(self, request, context):  # noqa: N802 - gRPC method name
        return self._reply(request)


def _release_handlers() -> None:
    """At interpreter shutdown (before threads are joined): let every waiting handler thread go."""
    for handler in list(_OPEN_HANDLERS):
        handler.closed.set()


# threading's own pre-join hook: plain atexit handlers run only after non-daemon threads were joined
getattr(threading, "_register_atexit", lambda fn: None)(_release_handlers)


class _Communicator(RpcCommunicator):
    """mlagents' gRPC server bound to ``bind_address`` (loopback by default, where mlagents binds all
    interfaces), with in-process queues instead of pipes (:class:`_ThreadConn`) and a handler that
    never blocks forever (:class:`_Servicer`), polling the player process at most every second
    (mlagents polls every ``timeout_wait // 10`` s, a busy loop below 10 s)."""

    def __init__(self, worker_id: int, base_port: int, timeout_wait: float, bind_address: str):
        self.bind_address = bind_address
        super().__init__(worker_id, base_port, timeout_wait)

    def create_server(self) -> None:
        self.check_port(self.port)
        try:
            self.server = grpc.server(thread_pool=ThreadPoolExecutor(max_workers=10),
                                      options=(("grpc.so_reuseport", 0),))
            self.unity_to_external = _Servicer()
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

    def close(self) -> None:
        if self.unity_to_external is not None:
            self.unity_to_external.closed.set()
        super().close()


class _UnityEnvironment(UnityEnvironment):
    """``UnityEnvironment`` with CHW visual decoding (:mod:`envs.unity.decode`), :class:`_Communicator`,
    and no player left behind when the handshake fails or is interrupted (Ctrl-C included)."""

    def __init__(self, *args: Any, bind_address: str = "127.0.0.1", **kwargs: Any):
        self._bind_address = bind_address
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            if getattr(self, "_communicator", None) is not None:
                self.kill()  # stop the server and kill a player we launched
            atexit.unregister(self._close)  # mlagents registers it before the communicator exists
            raise

    def _close(self, timeout: float | None = None) -> None:
        super()._close(timeout)
        atexit.unregister(self._close)

    def kill(self, grace: float = 0.0) -> None:
        """Close the server (the player is told the trainer closed) and give the player ``grace``
        seconds to quit before it is killed; no mlagents "timed out shutting down" warning (a run's
        error stays one line); never raises."""
        self._loaded = False
        try:
            self._communicator.close()
        except Exception:  # noqa: BLE001 - best effort on a broken connection
            pass
        process, self._process = getattr(self, "_process", None), None
        if process is not None:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            try:
                process.kill()
                process.wait(timeout=CLOSE_WAIT_S)
            except Exception:  # noqa: BLE001 - already gone, or unkillable: nothing more to do
                pass
        atexit.unregister(self._close)

    def _get_communicator(self, worker_id, base_port, timeout_wait):  # noqa: D102 (mlagents hook)
        return _Communicator(worker_id, base_port, timeout_wait, self._bind_address)

    def _update_state(self, output) -> None:
        for name, spec in self._env_specs.items():
            infos = output.agentInfos[name].value if name in output.agentInfos else []
            self._env_state[name] = steps_from_proto(infos, spec, name)
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


def _obs_space(spec: BehaviorSpec, behavior: str = "?") -> spaces.Space:
    """The behavior's observation space (see the module docstring).

    Raises:
        UnityEnvError: a variable-length (buffer) sensor, naming the behavior and the sensor.
    """
    boxes = []
    for i, o in enumerate(spec.observation_specs):
        if any(int(p) & DimensionProperty.VARIABLE_SIZE for p in o.dimension_property):
            raise UnityEnvError(f"behavior '{behavior}': sensor {i} ('{o.name}') is a variable-length (buffer) sensor "
                                f"of shape {list(o.shape)}; not supported (it needs an attention encoder): remove the "
                                "BufferSensor from the agent")
        shape = chw_shape(o)
        boxes.append(spaces.Box(0.0, 1.0, shape, np.float32) if len(shape) == 3
                     else spaces.Box(-np.inf, np.inf, shape, np.float32))
    return boxes[0] if len(boxes) == 1 else spaces.Tuple(boxes)


def _unity_behavior(agent: str) -> str:
    """The Unity behavior (``Name?team=N``) of an agent name, an ``...?episode=E`` name or a slot label
    ``Name?team=N?slot=i`` (:func:`envs.unity.unity_spec`)."""
    base = agent.split("?episode=", 1)[0]
    for key in ("?agent_id=", "?slot="):
        if key in base:
            return base.rsplit(key, 1)[0]
    return base


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
        num_areas: ``--num-areas`` sent to the player (it holds that many training areas).
        restart: the worker's :class:`RestartLimiter` (None = never restart: a dead player raises).
        bind_address: address of the gRPC server (loopback by default; "0.0.0.0" for players in
            other containers).

    Raises:
        UnityEnvError: missing or non-executable build, port in use, player never connects or
            exits at start, incompatible communication version (one line each).
    """

    metadata = {"name": "unity_v0", "render_modes": [], "is_parallelizable": True}
    streams_episodes = True  # training areas restart on their own (see envs.adapter)

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
        self._agent_behavior: dict[str, tuple[str, int]] = {}  # every name ever used -> (behavior, Unity id)
        self._obs_spaces: dict[str, spaces.Space] = {}
        self._act_spaces: dict[str, spaces.Space] = {}
        self._pending: dict[str, list[str]] = {}  # behavior -> agent names in DecisionSteps order
        self._current: dict[tuple[str, int], str] = {}  # (behavior, Unity id) -> its live agent name
        self._episodes: dict[tuple[str, int], int] = {}  # (behavior, Unity id) -> episodes named so far
        self._last_obs: dict[str, Any] = {}  # live agents only
        self._last_info: dict[str, dict] = {}
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
            self._unity.kill()  # at once: the player is dead, hung, or an error ends the run
            self._unity = None

    def _guarded(self, fn, *args):
        """Run ``fn``; on any error other than a dead player (handled by the caller) close the player
        first, so that no error path leaves a player running."""
        try:
            return fn(*args)
        except _DEATH:
            raise
        except BaseException:
            self._close_unity()
            raise

    # ------------------------------------------------------------------------------ spaces
    def _register_behavior(self, behavior: str) -> None:
        if behavior not in self._obs_spaces:
            spec = self._unity.behavior_specs[behavior]
            self._obs_spaces[behavior] = _obs_space(spec, behavior)
            self._act_spaces[behavior] = _action_space(spec)

    def _new_agent(self, behavior: str, agent_id: int) -> str:
        """Name a Unity agent's next episode (see the module docstring) and record it."""
        key = (behavior, int(agent_id))
        n = self._episodes.get(key, 0)
        self._episodes[key] = n + 1
        name = f"{behavior}?agent_id={int(agent_id)}" + (f"?episode={n}" if n else "")
        self._agent_behavior[name] = key
        self.possible_agents.append(name)
        self._current[key] = name
        return name

    def observation_space(self, agent: str) -> spaces.Space:
        """Observation space of ``agent`` (see the module docstring); the same object for every agent
        of a behavior (also for slot labels ``Name?team=N?slot=i``).

        Raises:
            UnityEnvError: the agent's behavior is unknown (not yet seen).
        """
        return self._space(self._obs_spaces, agent)

    def action_space(self, agent: str) -> spaces.Space:
        """Action space of ``agent`` (see the module docstring)."""
        return self._space(self._act_spaces, agent)

    def _space(self, table: dict, agent: str) -> spaces.Space:
        behavior = self._agent_behavior[agent][0] if agent in self._agent_behavior else _unity_behavior(agent)
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
        """Start (or continue into) the next episode; returns ``(obs, infos)`` of the live agents, all
        deciding (``infos[a]["deciding"]``).

        Sends RESET to the player on the first call, after a restart, when agents are live or with
        ``options={"force": True}`` (the live agents are dropped: Unity restarts their episodes without
        reporting an end); otherwise the player has already begun the next episode and the env steps
        it (with no actions to send) until decision requests arrive.

        Raises:
            UnityEnvError: the player cannot be (re)started, or sends no decision request within
                ``RESET_SEARCH_STEPS`` steps; :class:`UnityPlayerDied` when it dies during the reset
                and no restart is allowed.
        """
        if self._unity is None:
            self._connect()
        force = bool(options and options.get("force"))
        try:
            self._guarded(self._reset_unity, force)
        except _DEATH as exc:
            self._handle_death(exc)
            return self.reset(seed, options)
        obs = {a: self._last_obs[a] for a in self.agents}
        infos = {a: self._last_info[a] for a in self.agents}
        return obs, infos

    def _reset_unity(self, force: bool) -> None:
        if self._needs_unity_reset or self.agents or force:
            self._unity.reset()
            self._needs_unity_reset = False
            self._drop_live()
            self._read_decisions_only()
            return
        self._drop_live()
        for _ in range(RESET_SEARCH_STEPS):
            self._read_decisions_only()
            if self.agents:
                return
            self._unity.step()
        raise UnityEnvError(f"{self._where()}: the player sent no decision request in {RESET_SEARCH_STEPS} steps "
                            "after every agent's episode ended; do its agents request decisions (DecisionRequester)?")

    def _drop_live(self) -> None:
        self.agents, self._pending, self._current = [], {}, {}
        self._last_obs.clear()
        self._last_info.clear()

    def _read_decisions_only(self) -> None:
        """After a reset: every behavior's decision requests become live agents (terminal steps of
        episodes the PettingZoo side does not track are ignored)."""
        for behavior in self._unity.behavior_specs:
            self._register_behavior(behavior)
            decision, _ = self._unity.get_steps(behavior)
            names = []
            for j, agent_id in enumerate(decision.agent_id):
                name = self._new_agent(behavior, agent_id)
                self._record(behavior, decision, j, name)
                self.agents.append(name)
                names.append(name)
            self._pending[behavior] = names
        self._collect_stats()

    def _record(self, behavior: str, decision, j: int, name: str) -> None:
        """Keep agent ``name``'s observation and info from row ``j`` of a ``DecisionSteps``."""
        self._last_obs[name] = (tuple(o[j] for o in decision.obs) if isinstance(self._obs_spaces[behavior], spaces.Tuple)
                                else decision.obs[0][j])
        info = {"behavior": behavior, "agent_id": int(decision.agent_id[j]), "group_id": int(decision.group_id[j]),
                "individual_reward": float(decision.reward[j]), "group_reward": float(decision.group_reward[j]),
                "deciding": True}
        if decision.action_mask is not None:
            info["action_mask"] = (~np.concatenate([m[j:j + 1] for m in decision.action_mask], axis=1)[0]).astype(np.int8)
        self._last_info[name] = info

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
        """Send the deciding agents' actions, advance the player one step, report what came back.

        Raises:
            UnityEnvError: ``step`` with no live agent (call ``reset``), an action for an agent that
                does not exist or that does not fit the action space; :class:`UnityPlayerDied` when
                the player died and no restart is allowed.
        """
        if not self.agents:
            raise UnityEnvError("step() called with no live agent (every agent's episode ended); call reset()")
        unknown = [a for a in actions if a not in self._agent_behavior]
        if unknown:
            raise UnityEnvError(f"step(): actions for agent(s) this env never had: {', '.join(sorted(unknown)[:3])}; "
                                "act for the agents in env.agents whose infos say deciding")
        for behavior, names in self._pending.items():
            if not names:
                continue
            spec = self._unity.behavior_specs[behavior].action_spec
            n = len(names)
            d = np.zeros((n, spec.discrete_size), np.int32) if spec.discrete_size else None
            c = np.zeros((n, spec.continuous_size), np.float32) if spec.continuous_size else None
            for j, name in enumerate(names):
                if actions.get(name) is not None:
                    try:
                        self._to_action(behavior, actions[name], d, c, j)
                    except (ValueError, TypeError, IndexError) as exc:
                        raise UnityEnvError(f"action for '{name}' does not fit {self._act_spaces[behavior]}: {exc}") from None
            self._unity.set_actions(behavior, ActionTuple(continuous=c, discrete=d))
        try:
            self._guarded(self._unity.step)
            return self._guarded(self._read_step)
        except _DEATH as exc:
            return self._handle_death(exc)

    def _read_step(self) -> tuple[dict, dict, dict, dict, dict]:
        obs: dict[str, Any] = {}
        rewards = {a: 0.0 for a in self.agents}
        terms = {a: False for a in self.agents}
        truncs = {a: False for a in self.agents}
        infos: dict[str, Any] = {}
        ended: set[str] = set()
        deciding: set[str] = set()
        self._pending = {}
        for behavior in self._unity.behavior_specs:
            self._register_behavior(behavior)
            decision, terminal = self._unity.get_steps(behavior)
            multi = isinstance(self._obs_spaces[behavior], spaces.Tuple)
            for j, agent_id in enumerate(terminal.agent_id):
                name = self._current.pop((behavior, int(agent_id)), None)
                if name is None:
                    continue  # an episode the PettingZoo side never saw a decision of
                ended.add(name)
                r, g = float(terminal.reward[j]), float(terminal.group_reward[j])
                rewards[name] = r + g
                obs[name] = tuple(o[j] for o in terminal.obs) if multi else terminal.obs[0][j]
                if terminal.interrupted[j]:
                    truncs[name] = True
                else:
                    terms[name] = True
                infos[name] = {"behavior": behavior, "agent_id": int(agent_id), "group_id": int(terminal.group_id[j]),
                               "individual_reward": r, "group_reward": g, "deciding": False}
                self._last_obs.pop(name, None)
                self._last_info.pop(name, None)
            names = []
            for j, agent_id in enumerate(decision.agent_id):
                name = self._current.get((behavior, int(agent_id)))
                if name is None:  # a new agent, or the next episode of one that just ended: joins now
                    name = self._new_agent(behavior, agent_id)
                    self.agents.append(name)
                    rewards[name], terms[name], truncs[name] = 0.0, False, False
                else:
                    rewards[name] = float(decision.reward[j]) + float(decision.group_reward[j])
                self._record(behavior, decision, j, name)
                obs[name], infos[name] = self._last_obs[name], self._last_info[name]
                deciding.add(name)
                names.append(name)
            self._pending[behavior] = names
        self.agents = [a for a in self.agents if a not in ended]
        for a in self.agents:
            if a not in deciding:  # live, waiting for its next decision: its last observation
                obs[a] = self._last_obs[a]
                infos[a] = dict(self._last_info[a], deciding=False, individual_reward=0.0, group_reward=0.0)
                infos[a].pop("action_mask", None)
        self._collect_stats()
        return obs, rewards, terms, truncs, infos

    def _handle_death(self, exc: Exception) -> tuple[dict, dict, dict, dict, dict]:
        """The player died: restart it if the limits allow and truncate the live agents' episodes."""
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
        last = {a: self._last_obs[a] for a in agents if a in self._last_obs}
        self._drop_live()
        infos: dict[str, Any] = {a: {"player_restarted": True, "deciding": False} for a in agents}
        return (last, {a: 0.0 for a in agents}, {a: False for a in agents}, {a: True for a in agents}, infos)

    def close(self) -> None:
        """Close the connection and stop the player (QUIT; killed after ``CLOSE_WAIT_S`` seconds)."""
        if self._unity is not None:
            self._unity.kill(grace=min(self.timeout_wait, CLOSE_WAIT_S))
            self._unity = None

    def render(self) -> None:
        return None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self._close_unity()
        except Exception:
            pass
