"""``marl-unity-standin``: a stand-in for a headless Unity player of the SoccerTwos sample scene.

FOR TESTS AND DEMOS ONLY. No Unity player can run on our CI machines, so this executable plays the
Unity side of the real ML-Agents wire protocol (``mlagents_envs.communicator_objects`` over gRPC,
communication version 1.5.0) and serves the Python game :class:`envs.games.soccer.SoccerTwosEnv`.
``UnityEnvironment`` launches it exactly as it launches a build (``--mlagents-port PORT``,
``-batchmode -nographics``, ``-logFile PATH``, then the user's ``--env-args``), so
``marl-learn ... --env "$(which marl-unity-standin)"`` exercises the same code path as a real build.

What it does as a Unity player of the scene (``docs/soccer_spec.md``) would:

* connects as the gRPC client to ``127.0.0.1:PORT``; handshake: sends ``rl_initialization_output``
  (name, communication_version ``1.5.0``, package_version ``3.0.0``, capabilities), receives the seed
  and ``num_areas``, then exchanges ``rl_output`` / ``rl_input`` until QUIT or the trainer closes;
* **training areas**: ``num_areas`` independent fields (``--num-areas`` of the trainer); area a has
  group ids ``1 + 2a`` (blue) and ``2 + 2a`` (purple) and starts with agent ids ``4a .. 4a + 3``;
* **sensors as the scene has them**, sorted by name as Unity sorts them: a stacked ray-perception
  sensor ``StackingSensor_size3_RayPerceptionSensor`` (192 floats) and the vector sensor
  ``VectorSensor_size16`` per agent (``--no-rays``: the vector sensor alone); ``--camera`` makes team 1
  another behavior, ``SoccerTwosCamera``, with a ``CameraSensor`` (CHW ``[3, H, W]``, PNG-compressed
  with a channel mapping, dimension properties (NONE, TRANSLATIONAL, TRANSLATIONAL)) and the vector
  sensor; ``--visual`` adds a ``[3, 12, 20]`` camera to every SoccerTwos agent instead;
* **agents that die and respawn**: with ``--death-step N`` bodies 1 and 3 of every area leave at
  step N of each episode (``done`` without ``max_step_reached``: the agent was disabled); with
  ``--respawn-delay D`` each comes back D steps later as a new agent with a **fresh agent id** (Unity
  gives a re-enabled or new agent a new id; an agent keeps its id from one episode to the next);
* **agents instantiated mid-episode**: with ``--extra-agent-step S`` every area gets a fifth agent of
  behavior SoccerTwos team 0 (blue) at step S of each episode, the first step from S on at which body 0
  decides: a fresh agent id, the blue group's id, its first decision request at once, then a decision
  whenever body 0 decides, and its own episode end (a terminal info) when the area's episode ends. It
  has no body on the field (its observation is body 0's, its actions are checked and then ignored, it
  shares the blue group's reward): it exists so that more agents of one behavior and team are live than
  the trainer saw when it started (slot growth, ``docs/unity_contract.md``);
* **decision periods** ``--decision-period`` (every agent) and ``--team1-decision-period`` (team 1),
  ``--stagger`` offsets; rewards accumulate between decisions (``Agent.AddReward``) and are sent with
  the next decision or terminal step;
* **Unity's step order**: an episode end reaches the trainer with the next message, as a terminal
  ``AgentInfo`` (``done``, ``max_step_reached`` on a time-out), listed before the decision requests and
  usually beside the same agent's first decision of its next episode (the field resets itself);
  behaviors are announced (brain parameters) the first time one of their agents sends an info;
* **checks every action it receives**, per behavior and in decision-request order: a missing action,
  an action for an agent that did not ask, a value out of range, a masked value (``--mask-kicks``) or
  continuous values are **rejected** (the agent does nothing that step), logged with the agent's id
  (the first 20; then counted) and summed up in ``Action check: N actions received, M rejected (...)``
  when the connection ends;
* side channels: applies EngineConfiguration (logged), EnvironmentParameters (``ball_touch``: float
  or uniform / gaussian / multirangeuniform sampler, re-sampled at each episode start per area), sends
  Stats at each episode end (``SoccerTwos/Goals Blue``, ``SoccerTwos/Goals Purple`` (sum),
  ``SoccerTwos/Episode Length`` (average), ``SoccerTwos/ball_touch`` (most recent)).

What it does NOT model: rendering, the real scene's physics (see :mod:`envs.games.soccer`), the
Editor, training analytics, heuristic/inference fallback when no trainer is listening (it exits
instead), and Unity's Academy-step decision schedule (decisions follow the episode's step count).

Fault injection (tests): ``--crash-after N`` (hard exit after N steps; with ``--crash-marker FILE``
only once over all players sharing FILE), ``--hang-after N`` (stop answering after N steps),
``--connect-delay S``, ``--change-sensors-after E`` (the vector sensor grows by one float after E
finished episodes), ``--buffer-sensor`` (a variable-length BufferSensor, which the trainer refuses),
``--uncompressed-visual``, ``--visual-layout hwc`` (pre-3.x Unity), ``--max-steps``, ``--connect-timeout``.
"""
from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import threading
import time
import uuid
from typing import Any, TextIO

import grpc
import numpy as np
from mlagents_envs.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from mlagents_envs.communicator_objects.header_pb2 import HeaderProto
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.unity_rl_initialization_output_pb2 import UnityRLInitializationOutputProto
from mlagents_envs.side_channel.incoming_message import IncomingMessage
from mlagents_envs.side_channel.outgoing_message import OutgoingMessage
from PIL import Image

from envs.games.soccer import ACTION_BRANCHES, CAMERA_SENSOR, SoccerTwosEnv

API_VERSION = "1.5.0"
PACKAGE_VERSION = "3.0.0"
ENGINE_CHANNEL = "e951342c-4f7e-11ea-b238-784f4387d1f7"
ENV_PARAMS_CHANNEL = "534c891e-810f-11ea-a9d0-822485860400"
STATS_CHANNEL = "a1d8f7b7-cec8-50f9-b78b-d3e165a78520"
LOGGED_REJECTIONS = 20  # rejected actions logged one by one; later ones are only counted
_DIM_NONE, _DIM_TE, _DIM_VARIABLE = 1, 2, 4  # mlagents DimensionProperty values
EXTRA_BODY = 4  # the --extra-agent-step agent's index in an area (it has no body in the game)


# ---------------------------------------------------------------------------------- wire encoding
# The python protobuf of protobuf 3.20 (what mlagents-envs 0.28 pins) checks and packs every float
# one by one; the stand-in writes its step messages by hand instead (the encoding of
# communicator_objects' .proto files; tests/test_unity_adapter.py parses them back with protobuf).
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative int32 values are 10-byte varints, as protobuf writes them
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): message, string, bytes or packed repeated."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _float_field(number: int, value: float) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<f", value)


def _observation(name: str, shape: list[int], props: list[int], floats: np.ndarray | None = None,
                 png: bytes | None = None, mapping: list[int] | None = None) -> bytes:
    """An ``ObservationProto``: raw float32 data (``floats``, C order) or one PNG with its channel mapping."""
    out = _field(1, b"".join(_varint(d) for d in shape))
    if png is not None:
        out += _varint_field(2, 1) + _field(3, png)  # compression_type PNG
    else:
        out += _field(4, _field(1, np.ascontiguousarray(floats, "<f4").tobytes()))
    if mapping:
        out += _field(5, b"".join(_varint(m) for m in mapping))
    return out + _field(6, b"".join(_varint(p) for p in props)) + _field(8, name.encode())


def _agent_info(uid: int, group_id: int, reward: float, group_reward: float, done: bool, max_step: bool,
                observations: list[bytes], mask: list[bool] | None) -> bytes:
    """An ``AgentInfoProto``."""
    out = _float_field(7, reward)
    if done:
        out += _varint_field(8, 1)
    if max_step:
        out += _varint_field(9, 1)
    out += _varint_field(10, uid)
    if mask is not None:
        out += _field(11, bytes(int(m) for m in mask))
    out += b"".join(_field(13, o) for o in observations)
    return out + _varint_field(14, group_id) + _float_field(15, group_reward)


def build_parser() -> argparse.ArgumentParser:
    """Command line: Unity's own flags plus the test options (unknown flags are ignored, as Unity does)."""
    p = argparse.ArgumentParser(prog="marl-unity-standin", allow_abbrev=False,
                                description="Stand-in Unity player of the SoccerTwos scene (tests and demos only).")
    p.add_argument("--mlagents-port", type=int, default=5004, help="trainer port (Unity: --mlagents-port)")
    p.add_argument("-batchmode", action="store_true", help="accepted for compatibility (always headless)")
    p.add_argument("-nographics", action="store_true", help="accepted for compatibility (never renders)")
    p.add_argument("-logFile", "-logfile", dest="log_file", default=None, help="player log path ('-' = stdout)")
    p.add_argument("--max-steps", type=int, default=400, help="episode step limit")
    p.add_argument("--no-rays", action="store_true", help="no ray-perception sensor (vector sensor only)")
    p.add_argument("--decision-period", type=int, default=1)
    p.add_argument("--team1-decision-period", type=int, default=None, help="decision period of team 1")
    p.add_argument("--stagger", action="store_true", help="offset body k's decisions by k %% period")
    p.add_argument("--death-step", type=int, default=None, help="bodies 1 and 3 leave at this step")
    p.add_argument("--respawn-delay", type=int, default=None, help="they return as new agents this many steps later")
    p.add_argument("--extra-agent-step", type=int, default=None,
                   help="a fifth (body-less) blue agent appears at this step of every episode in every area")
    p.add_argument("--visual", action="store_true", help="add a CHW camera observation [3,12,20] to every agent")
    p.add_argument("--camera", action="store_true", help="team 1 is behavior SoccerTwosCamera (camera + vector)")
    p.add_argument("--camera-size", default="24x40", help="HxW of the --camera sensor (default 24x40)")
    p.add_argument("--uncompressed-visual", action="store_true", help="send images as raw floats")
    p.add_argument("--visual-layout", choices=("chw", "hwc"), default="chw", help="hwc = pre-3.x Unity")
    p.add_argument("--mask-kicks", action="store_true", help="mask kicks while the ball is out of reach")
    p.add_argument("--crash-after", type=int, default=None, help="exit hard after this many steps")
    p.add_argument("--crash-marker", default=None, help="crash only if this file is absent (then create it)")
    p.add_argument("--hang-after", type=int, default=None, help="stop answering after this many steps")
    p.add_argument("--connect-delay", type=float, default=0.0, help="seconds to wait before connecting")
    p.add_argument("--change-sensors-after", type=int, default=None,
                   help="after this many finished episodes the vector sensor sends one more float")
    p.add_argument("--buffer-sensor", action="store_true", help="add a variable-length BufferSensor")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the trainer")
    return p


def _claim_crash(marker: str | None) -> bool:
    """True if this player should crash now: always without a marker, else only the first player to
    create ``marker`` (atomic ``O_CREAT | O_EXCL``, so players sharing one marker crash once in all)."""
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        return False


class _Log:
    """Unity-style player log (``-logFile``)."""

    def __init__(self, path: str | None):
        self.f: TextIO | None
        if path == "-":
            self.f = sys.stdout
        elif path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.f = open(path, "a", buffering=1)
        else:
            self.f = None

    def __call__(self, msg: str) -> None:
        if self.f is not None:
            self.f.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")


class _EnvParameter:
    """One EnvironmentParameters value: a float or a sampler (Unity's ``SamplerFactory``)."""

    def __init__(self, value: float | None = None, sampler: tuple | None = None, seed: int = 0):
        self.value, self.sampler = value, sampler
        self.rng = np.random.default_rng(seed)

    def sample(self) -> float:
        if self.sampler is None:
            return float(self.value)
        kind, params = self.sampler
        if kind == 0:
            return float(self.rng.uniform(params[0], params[1]))
        if kind == 1:
            return float(self.rng.normal(params[0], params[1]))
        lo, hi = np.asarray(params[0::2]), np.asarray(params[1::2])
        i = self.rng.choice(len(lo), p=(hi - lo) / (hi - lo).sum())
        return float(self.rng.uniform(lo[i], hi[i]))


class _Area:
    """One training area: a game, the Unity agent id of each of its four bodies, rewards accumulated
    since each body's last info (``Agent.AddReward`` / ``AddGroupReward``) and episode counters."""

    def __init__(self, index: int, game: SoccerTwosEnv):
        self.index, self.game = index, game
        self.uid = [4 * index + k for k in range(4)]
        self.acc_reward = np.zeros(5)  # index 4: the --extra-agent-step agent
        self.acc_group = np.zeros(5)
        self.extra_uid: int | None = None  # the extra agent's id while it is live in this episode
        self.extra_spawned = False
        self.extra_obs: Any = None
        self.episode_steps = 0
        self.goals_at_start = np.zeros(2, np.int64)

    def group_id(self, body: int) -> int:
        return 1 + 2 * self.index + (0 if body == EXTRA_BODY else body // 2)

    def take_reward(self, body: int) -> tuple[float, float]:
        """Reward and group reward accumulated since the body's last info (then cleared)."""
        r, g = float(self.acc_reward[body]), float(self.acc_group[body])
        self.acc_reward[body] = self.acc_group[body] = 0.0
        return r, g


class StandinPlayer:
    """The Unity side of one connection (see the module docstring).

    Args:
        args: parsed command line (:func:`build_parser`).
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.log = _Log(args.log_file)
        try:
            h, w = (int(x) for x in args.camera_size.lower().split("x"))
        except ValueError:
            raise SystemExit(f"marl-unity-standin: --camera-size {args.camera_size!r}: expected HxW, e.g. 24x40") from None
        self.game_kwargs = dict(max_steps=args.max_steps, decision_period=args.decision_period,
                                team1_decision_period=args.team1_decision_period, stagger=args.stagger,
                                death_step=args.death_step, respawn_delay=args.respawn_delay, visual=args.visual,
                                rays=not args.no_rays, camera=args.camera, camera_shape=(3, h, w))
        if args.extra_agent_step is not None and args.extra_agent_step < 1:
            raise SystemExit(f"marl-unity-standin: --extra-agent-step {args.extra_agent_step}: expected a step >= 1")
        self.template = SoccerTwosEnv(**self.game_kwargs)  # validates the options; names the behaviors
        self.behaviors = sorted({self._behavior(k) for k in range(4)})
        self.areas: list[_Area] = []
        self.next_uid = 4
        self.params: dict[str, _EnvParameter] = {}
        self.engine: dict[str, Any] = {}
        self.sent_brains: set[str] = set()
        # behavior -> [(area, body, uid, mask or None)] of the decisions requested, in sent order
        self.deciders: dict[str, list[tuple[int, int, int, list | None]]] = {b: [] for b in self.behaviors}
        self.total_steps = 0
        self.finished_episodes = 0
        self.outgoing = bytearray()
        self.received = 0
        self.rejected: dict[str, int] = {}

    def _behavior(self, body: int) -> str:
        """Unity's behavior name of a body: ``Name?team=N`` (Behavior Parameters name and TeamId)."""
        body = 0 if body == EXTRA_BODY else body  # the extra agent is blue (team 0), as body 0
        return f"{self.template.behavior_of_body(body)}?team={body // 2}"

    # ------------------------------------------------------------------------------ side channels
    def _read_side_channels(self, data: bytes) -> None:
        off = 0
        while off < len(data):
            cid = str(uuid.UUID(bytes_le=bytes(data[off:off + 16])))
            (n,) = struct.unpack_from("<i", data, off + 16)
            msg = IncomingMessage(bytes(data[off + 20:off + 20 + n]))
            off += 20 + n
            if cid == ENGINE_CHANNEL:
                kind = msg.read_int32()
                if kind == 0:
                    self.engine["width"], self.engine["height"] = msg.read_int32(), msg.read_int32()
                elif kind == 1:
                    self.engine["quality_level"] = msg.read_int32()
                elif kind == 2:
                    self.engine["time_scale"] = msg.read_float32()
                elif kind == 3:
                    self.engine["target_frame_rate"] = msg.read_int32()
                elif kind == 4:
                    self.engine["capture_frame_rate"] = msg.read_int32()
                self.log(f"EngineConfiguration: {self.engine}")
            elif cid == ENV_PARAMS_CHANNEL:
                key, kind = msg.read_string(), msg.read_int32()
                if kind == 0:
                    self.params[key] = _EnvParameter(value=msg.read_float32())
                    self.log(f"EnvironmentParameters: {key} = {self.params[key].value}")
                else:
                    seed, stype = msg.read_int32(), msg.read_int32()
                    values = msg.read_float32_list() if stype == 2 else [msg.read_float32(), msg.read_float32()]
                    self.params[key] = _EnvParameter(sampler=(stype, values), seed=seed)
                    self.log(f"EnvironmentParameters: {key} = sampler {stype} {values} seed {seed}")
            else:
                self.log(f"Unknown side channel data received. Channel type: {cid}.")

    def _send_stat(self, key: str, value: float, aggregation: int) -> None:
        m = OutgoingMessage()
        m.write_string(key)
        m.write_float32(float(value))
        m.write_int32(aggregation)
        self.outgoing += uuid.UUID(STATS_CHANNEL).bytes_le + struct.pack("<i", len(m.buffer)) + m.buffer

    # ------------------------------------------------------------------------------ observations
    def _image(self, img: np.ndarray) -> bytes:
        """An image ``ObservationProto`` (CHW or HWC as ``--visual-layout`` says; PNG unless raw)."""
        hwc = self.args.visual_layout == "hwc"
        shape = [img.shape[1], img.shape[2], img.shape[0]] if hwc else list(img.shape)
        props = [_DIM_TE, _DIM_TE, _DIM_NONE] if hwc else [_DIM_NONE, _DIM_TE, _DIM_TE]
        if self.args.uncompressed_visual:
            data = img.transpose(1, 2, 0) if hwc else img
            return _observation(CAMERA_SENSOR, shape, props, floats=np.ascontiguousarray(data))
        buf = io.BytesIO()
        Image.fromarray((img.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB").save(buf, "PNG")
        return _observation(CAMERA_SENSOR, shape, props, png=buf.getvalue(), mapping=[0, 1, 2])

    def _observations(self, behavior: str, ob: Any) -> list[bytes]:
        """The agent's sensors as ``ObservationProto`` bytes, in Unity's sensor order (sorted by name)."""
        names = self.template.sensor_names(behavior.split("?", 1)[0])
        parts = ob if isinstance(ob, tuple) else (ob,)
        out = []
        if self.args.buffer_sensor:  # "BufferSensor" sorts first: up to 4 entities of 6 floats
            out.append(_observation("BufferSensor", [4, 6], [_DIM_VARIABLE, _DIM_NONE], floats=np.zeros(24, np.float32)))
        for name, part in zip(names, parts):
            if name == CAMERA_SENSOR:
                out.append(self._image(part))
                continue
            if (name.startswith("VectorSensor") and self.args.change_sensors_after is not None
                    and self.finished_episodes >= self.args.change_sensors_after):
                part = np.append(part, np.float32(0.0))  # the sensor changed shape (what the trainer must refuse)
                name = f"VectorSensor_size{part.shape[0]}"
            out.append(_observation(name, [int(part.shape[0])], [_DIM_NONE], floats=part))
        return out

    @staticmethod
    def _mask(vec: np.ndarray) -> list[bool]:
        """Unity's action mask (true = masked), flat over branches [3, 3, 3]: kicks while the ball is out of reach."""
        far = float(np.hypot(vec[4], vec[5])) > 0.09
        return [False] * 7 + [far, far]

    def _info(self, area: _Area, body: int, uid: int, behavior: str, ob: Any, done: bool, max_step: bool,
              reward: float, group_reward: float) -> tuple[bytes, list | None]:
        """One ``AgentInfoProto`` (bytes) and the action mask it carries (None without ``--mask-kicks``)."""
        mask = None
        if self.args.mask_kicks and not done:
            mask = self._mask(ob[-1] if isinstance(ob, tuple) else ob)
        return _agent_info(uid, area.group_id(body), reward, group_reward, done, max_step, self._observations(behavior, ob),
                           mask), mask

    # ------------------------------------------------------------------------------ game flow
    def _start_episode(self, area: _Area) -> dict:
        if "ball_touch" in self.params:
            area.game.ball_touch = self.params["ball_touch"].sample()
        obs, _ = area.game.reset()
        area.episode_steps = 0
        area.goals_at_start = area.game.goals.copy()
        area.acc_reward[:] = area.acc_group[:] = 0.0
        area.extra_uid, area.extra_spawned, area.extra_obs = None, False, None
        return obs

    def _end_episode_stats(self, area: _Area) -> None:
        g = area.game.goals - area.goals_at_start
        self._send_stat("SoccerTwos/Goals Blue", g[0], 2)
        self._send_stat("SoccerTwos/Goals Purple", g[1], 2)
        self._send_stat("SoccerTwos/Episode Length", area.episode_steps, 0)
        self._send_stat("SoccerTwos/ball_touch", area.game.ball_touch, 1)
        self.finished_episodes += 1

    def _output(self, terminal: list, decisions: list) -> bytes:
        """The message to send (serialised ``UnityMessageProto``): terminal infos first, then decision
        requests (both over all areas), brain parameters of behaviors not announced yet, and queued
        side-channel data.

        Args:
            terminal: ``(area, body, uid, obs, max_step, reward, group_reward)`` per ended agent.
            decisions: ``(area, body, obs)`` per decision request.
        """
        self.deciders = {b: [] for b in self.behaviors}
        infos: dict[str, list[bytes]] = {}
        for area, body, uid, ob, max_step, r, g in terminal:
            b = self._behavior(body)
            infos.setdefault(b, []).append(self._info(area, body, uid, b, ob, True, max_step, r, g)[0])
        for area, body, ob in decisions:
            b = self._behavior(body)
            uid = area.extra_uid if body == EXTRA_BODY else area.uid[body]
            data, mask = self._info(area, body, uid, b, ob, False, False, *area.take_reward(body))
            infos.setdefault(b, []).append(data)
            self.deciders[b].append((area.index, body, uid, mask))
        init = UnityRLInitializationOutputProto()
        for b in self.behaviors:
            if b not in self.sent_brains and infos.get(b):
                bp = init.brain_parameters.add(brain_name=b, is_training=True)
                bp.action_spec.num_discrete_actions = len(ACTION_BRANCHES)
                bp.action_spec.discrete_branch_sizes.extend(ACTION_BRANCHES)
                self.sent_brains.add(b)
        rl_output = b"".join(_field(2, _field(1, b.encode()) + _field(2, b"".join(_field(1, i) for i in lst)))
                             for b, lst in infos.items())
        rl_output += _field(3, bytes(self.outgoing))
        self.outgoing = bytearray()
        output = _field(1, rl_output) + (_field(2, init.SerializeToString()) if init.brain_parameters else b"")
        return _field(1, _varint_field(1, 200)) + _field(2, output)

    def _reject(self, kind: str, text: str) -> None:
        self.rejected[kind] = self.rejected.get(kind, 0) + 1
        if sum(self.rejected.values()) <= LOGGED_REJECTIONS:
            self.log(f"Rejected action: {text}")
        elif sum(self.rejected.values()) == LOGGED_REJECTIONS + 1:
            self.log("Rejected action: more rejections follow; only counted from now on")

    def _check_action(self, behavior: str, uid: int, action: Any, mask: list | None) -> np.ndarray | None:
        """The action's discrete values, or None (rejected and logged) when it does not fit the request."""
        who = f"{behavior} agent {uid}"
        if len(action.continuous_actions):
            self._reject("continuous", f"{who}: {len(action.continuous_actions)} continuous values, the behavior has none")
            return None
        values = np.asarray(action.discrete_actions, np.int64)
        if values.shape != (len(ACTION_BRANCHES),):
            self._reject("shape", f"{who}: {values.size} discrete values, expected {len(ACTION_BRANCHES)}")
            return None
        for branch, (v, n) in enumerate(zip(values, ACTION_BRANCHES)):
            if not 0 <= v < n:
                self._reject("out of range", f"{who}: branch {branch} value {v} is out of range 0..{n - 1}")
                return None
        if mask is not None:
            offsets = np.concatenate([[0], np.cumsum(ACTION_BRANCHES)[:-1]])
            for branch, v in enumerate(values):
                if mask[offsets[branch] + v]:
                    self._reject("masked", f"{who}: branch {branch} value {v} is masked")
                    return None
        return values

    def _read_actions(self, rl_input) -> list[dict[str, np.ndarray]]:
        """Per area, ``agent name -> action`` of the decisions requested last step (checked)."""
        actions: list[dict[str, np.ndarray]] = [{} for _ in self.areas]
        for b, entries in self.deciders.items():
            acts = list(rl_input.agent_actions[b].value) if b in rl_input.agent_actions else []
            self.received += len(acts)
            for area_index, body, uid, _ in entries[len(acts):]:
                self._reject("missing", f"{b} agent {uid}: no action for its decision request")
            for _ in acts[len(entries):]:
                self._reject("unasked", f"{b}: an action beyond the {len(entries)} decision request(s) "
                             "(for an agent that did not ask)")
            for (area_index, body, uid, mask), a in zip(entries, acts):
                values = self._check_action(b, uid, a, mask)
                if values is not None and body != EXTRA_BODY:  # the extra agent has no body to move
                    actions[area_index][self.areas[area_index].game.names[body]] = values
        for b in rl_input.agent_actions:
            if b not in self.deciders:
                self._reject("unknown behavior", f"actions for behavior '{b}', which this scene does not have")
        return actions

    def _step(self, rl_input) -> bytes:
        actions = self._read_actions(rl_input)
        terminal, decisions = [], []
        for area in self.areas:
            game = area.game
            names_before = list(game.names)
            obs, _rewards, term, trunc, infos = game.step(actions[area.index])
            self.total_steps += 1
            area.episode_steps += 1
            for name, info in infos.items():
                if name in names_before:
                    k = names_before.index(name)
                    area.acc_reward[k] += info["individual_reward"]
                    area.acc_group[k] += info["group_reward"]
                    if k == 0 and area.extra_uid is not None:  # the extra agent shares the blue group's reward
                        area.acc_group[EXTRA_BODY] += info["group_reward"]
            for k, name in enumerate(names_before):
                if term.get(name) or trunc.get(name):
                    terminal.append((area, k, area.uid[k], obs[name], bool(trunc.get(name)) and not term.get(name),
                                     *area.take_reward(k)))
            if not game.alive.any() and area.extra_uid is not None:  # the extra agent's episode ends with its area's
                first = names_before[0]
                terminal.append((area, EXTRA_BODY, area.extra_uid, obs.get(first, area.extra_obs),
                                 bool(trunc.get(first)) and not term.get(first), *area.take_reward(EXTRA_BODY)))
            if not game.alive.any():  # the field resets itself: first decisions of the next episode
                self._end_episode_stats(area)
                obs = self._start_episode(area)
                decisions.extend((area, k, obs[n]) for k, n in enumerate(game.names) if n in obs)
                continue
            for k in range(4):
                if game.names[k] != names_before[k]:  # a new agent on this body: Unity gives it a fresh id
                    area.uid[k] = self.next_uid
                    self.next_uid += 1
            for k, name in enumerate(game.names):
                if game.alive[k] and name in obs and infos.get(name, {}).get("deciding"):
                    decisions.append((area, k, obs[name]))
            first = game.names[0]
            if (self.args.extra_agent_step is not None and game.alive[0] and first in obs
                    and infos.get(first, {}).get("deciding")):
                if not area.extra_spawned and area.episode_steps >= self.args.extra_agent_step:
                    area.extra_uid, area.extra_spawned = self.next_uid, True  # Unity instantiates it: a fresh id
                    self.next_uid += 1
                if area.extra_uid is not None:
                    area.extra_obs = obs[first]
                    decisions.append((area, EXTRA_BODY, obs[first]))
        return self._output(terminal, decisions)

    def _reset(self) -> bytes:
        decisions = []
        for area in self.areas:
            obs = self._start_episode(area)
            decisions.extend((area, k, obs[n]) for k, n in enumerate(area.game.names) if n in obs)
        return self._output([], decisions)

    def _summary(self) -> None:
        n = sum(self.rejected.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        self.log(f"Action check: {self.received} actions received, {n} rejected ({detail})")

    def run(self) -> int:
        """Connect, handshake, serve until QUIT / trainer gone. Returns the exit code."""
        a = self.args
        if a.connect_delay > 0:
            time.sleep(a.connect_delay)
        self.log(f"Stand-in SoccerTwos player (tests/demos only); connecting to trainer on port {a.mlagents_port}")
        channel = grpc.insecure_channel(f"127.0.0.1:{a.mlagents_port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=a.connect_timeout)
        except grpc.FutureTimeoutError:
            self.log(f"Couldn't connect to trainer on port {a.mlagents_port}.")
            return 1
        # Exchange with requests already serialised (the step messages are written by hand)
        exchange = channel.unary_unary("/communicator_objects.UnityToExternalProto/Exchange",
                                       request_serializer=None, response_deserializer=UnityMessageProto.FromString)
        hello = UnityMessageProto(header=HeaderProto(status=200))
        init = hello.unity_output
        init.rl_initialization_output.name = "SoccerTwos (marl-unity-standin)"
        init.rl_initialization_output.communication_version = API_VERSION
        init.rl_initialization_output.package_version = PACKAGE_VERSION
        init.rl_initialization_output.capabilities.CopyFrom(UnityRLCapabilitiesProto(
            baseRLCapabilities=True, concatenatedPngObservations=True, compressedChannelMapping=True,
            hybridActions=True, trainingAnalytics=True, variableLengthObservation=True, multiAgentGroups=True))
        try:
            reply = exchange(hello.SerializeToString())
            ini = reply.unity_input.rl_initialization_input
            if ini.communication_version.split(".")[0] != API_VERSION.split(".")[0]:
                self.log(f"Incompatible communication version {ini.communication_version}")
                return 1
            n_areas = max(1, int(ini.num_areas))
            self.areas = [_Area(i, SoccerTwosEnv(**self.game_kwargs)) for i in range(n_areas)]
            for area in self.areas:
                area.game.reset(seed=int(ini.seed) * 1000 + area.index)
            self.next_uid = 4 * n_areas
            self.log(f"Connected: trainer {ini.package_version}, communication {ini.communication_version}, "
                     f"seed {ini.seed}, {n_areas} training area(s), behaviors {', '.join(self.behaviors)}")
            self.log("Scene: " + ", ".join(f"{k}={v}" for k, v in self.game_kwargs.items())
                     + f", extra_agent_step={self.args.extra_agent_step}")
            message = exchange(UnityMessageProto(header=HeaderProto(status=200)).SerializeToString())
            while True:
                if message.header.status != 200:
                    self.log("Trainer closed the connection; quitting.")
                    return 0
                rl_input = message.unity_input.rl_input
                self._read_side_channels(rl_input.side_channel)
                if rl_input.command == 2:  # QUIT
                    self.log("QUIT received.")
                    return 0
                if rl_input.command == 1:  # RESET
                    self.log("RESET received.")
                    output = self._reset()
                else:
                    if a.crash_after is not None and self.total_steps >= a.crash_after and _claim_crash(a.crash_marker):
                        self.log(f"Simulated crash after {self.total_steps} steps.")
                        os._exit(3)
                    if a.hang_after is not None and self.total_steps >= a.hang_after:
                        self.log(f"Simulated hang after {self.total_steps} steps (no more answers).")
                        while True:
                            time.sleep(3600)
                    output = self._step(rl_input)
                message = exchange(output)
        except grpc.RpcError as exc:
            self.log(f"Connection to the trainer lost: {exc.code()}")
            return 0
        finally:
            self._summary()


def _watch_parent() -> None:
    """Exit when the launching trainer dies (Unity players linger; a test stand-in must not)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``marl-unity-standin``."""
    args, _unknown = build_parser().parse_known_args(argv)
    threading.Thread(target=_watch_parent, daemon=True).start()
    code = StandinPlayer(args).run()
    sys.exit(code)


if __name__ == "__main__":
    main()
