"""``marl-unity-standin``: a stand-in for a headless Unity player of the SoccerTwos sample scene.

FOR TESTS AND DEMOS ONLY. No Unity player can run on our CI machines, so this executable plays the
Unity side of the real ML-Agents wire protocol (``mlagents_envs.communicator_objects`` over gRPC,
communication version 1.5.0) and serves the Python game :class:`envs.games.soccer.SoccerTwosEnv`.
``UnityEnvironment`` launches it exactly as it launches a build (``--mlagents-port PORT``,
``-batchmode -nographics``, ``-logFile PATH``, then the user's ``--env-args``), so
``marl-learn ... --env "$(which marl-unity-standin)"`` exercises the same code path as a real build.

What it does as a Unity player would:

* connects as the gRPC client to ``127.0.0.1:PORT``; handshake: sends ``rl_initialization_output``
  (name, communication_version ``1.5.0``, package_version ``3.0.0``, capabilities), receives the
  seed, then exchanges ``rl_output`` / ``rl_input`` until QUIT or the trainer closes;
* behaviors ``SoccerTwos?team=0`` and ``SoccerTwos?team=1`` with brain parameters sent the first time
  each appears; agent ids 0..3; ``group_id`` 1/2 and ``group_reward``; rewards accumulated between
  decisions (as ``Agent.AddReward``); ``done`` / ``max_step_reached`` at episode end, and the next
  episode's first decisions in the same message (Unity resets the scene itself);
* side channels: applies EngineConfiguration (logged to the player log), EnvironmentParameters
  (``ball_touch``: float or uniform / gaussian / multirangeuniform sampler, re-sampled at each
  episode start like ``EnvironmentParameters.GetWithDefault``), sends Stats at each episode end
  (``SoccerTwos/Goals Blue``, ``SoccerTwos/Goals Purple`` (sum), ``SoccerTwos/Episode Length``
  (average), ``SoccerTwos/ball_touch`` (most recent)); unknown channels are logged and ignored;
* visual observations as Unity 3.x sends them: shape CHW ``[3, 12, 20]`` with dimension properties
  (NONE, TRANSLATIONAL, TRANSLATIONAL), PNG-compressed with a channel mapping (or raw floats).

What it does NOT model: rendering, physics engine timing, the real scene's physics (see
:mod:`envs.games.soccer`), ``num_areas`` (one field only), the Editor, training analytics,
heuristic/inference fallback when no trainer is listening (it exits with an error instead), and
RESET semantics beyond "start a new episode for all agents".

Test options: ``--visual``, ``--uncompressed-visual``, ``--visual-layout hwc`` (pre-3.x Unity),
``--death-step N``, ``--decision-period P``, ``--stagger``, ``--mask-kicks`` (kick actions masked
while the ball is out of reach), ``--crash-after N`` (hard exit after N steps; with
``--crash-marker FILE`` only once over all players sharing FILE: the first to create it crashes), ``--max-steps``, ``--connect-timeout``.
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
from mlagents_envs.communicator_objects.agent_info_pb2 import AgentInfoProto
from mlagents_envs.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from mlagents_envs.communicator_objects.header_pb2 import HeaderProto
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import UnityToExternalProtoStub
from mlagents_envs.side_channel.incoming_message import IncomingMessage
from mlagents_envs.side_channel.outgoing_message import OutgoingMessage
from PIL import Image

from envs.games.soccer import AGENTS, SoccerTwosEnv

API_VERSION = "1.5.0"
PACKAGE_VERSION = "3.0.0"
ENGINE_CHANNEL = "e951342c-4f7e-11ea-b238-784f4387d1f7"
ENV_PARAMS_CHANNEL = "534c891e-810f-11ea-a9d0-822485860400"
STATS_CHANNEL = "a1d8f7b7-cec8-50f9-b78b-d3e165a78520"
BEHAVIORS = ("SoccerTwos?team=0", "SoccerTwos?team=1")


def build_parser() -> argparse.ArgumentParser:
    """Command line: Unity's own flags plus the test options (unknown flags are ignored, as Unity does)."""
    p = argparse.ArgumentParser(prog="marl-unity-standin", allow_abbrev=False,
                                description="Stand-in Unity player of the SoccerTwos scene (tests and demos only).")
    p.add_argument("--mlagents-port", type=int, default=5004, help="trainer port (Unity: --mlagents-port)")
    p.add_argument("-batchmode", action="store_true", help="accepted for compatibility (always headless)")
    p.add_argument("-nographics", action="store_true", help="accepted for compatibility (never renders)")
    p.add_argument("-logFile", "-logfile", dest="log_file", default=None, help="player log path ('-' = stdout)")
    p.add_argument("--max-steps", type=int, default=400, help="episode step limit")
    p.add_argument("--decision-period", type=int, default=1)
    p.add_argument("--stagger", action="store_true", help="offset agent k's decisions by k %% period")
    p.add_argument("--death-step", type=int, default=None, help="agents 1 and 3 leave at this step")
    p.add_argument("--visual", action="store_true", help="add a CHW camera observation [3,12,20]")
    p.add_argument("--uncompressed-visual", action="store_true", help="send the camera as raw floats")
    p.add_argument("--visual-layout", choices=("chw", "hwc"), default="chw", help="hwc = pre-3.x Unity")
    p.add_argument("--mask-kicks", action="store_true", help="mask kicks while the ball is out of reach")
    p.add_argument("--crash-after", type=int, default=None, help="exit hard after this many steps")
    p.add_argument("--crash-marker", default=None, help="crash only if this file is absent (then create it)")
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


class StandinPlayer:
    """The Unity side of one connection (see the module docstring).

    Args:
        args: parsed command line (:func:`build_parser`).
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.log = _Log(args.log_file)
        self.game = SoccerTwosEnv(max_steps=args.max_steps, decision_period=args.decision_period,
                                  stagger=args.stagger, death_step=args.death_step, visual=args.visual)
        self.params: dict[str, _EnvParameter] = {}
        self.engine: dict[str, Any] = {}
        self.sent_brains: set[str] = set()
        self.deciders: dict[str, list[int]] = {b: [] for b in BEHAVIORS}  # agent ids, in sent order
        self.acc_reward = np.zeros(4)
        self.acc_group = np.zeros(4)
        self.total_steps = 0
        self.episode_steps = 0
        self.goals_at_start = np.zeros(2, np.int64)
        self.outgoing = bytearray()
        self._vector_name = "VectorSensor_size16"

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
    def _fill_observations(self, info: AgentInfoProto, ob: Any) -> None:
        """Append the agent's sensors to ``info`` in sensor-name order (camera, then vector)."""
        vec = ob[1] if self.args.visual else ob
        if self.args.visual:
            img = ob[0]  # CHW float in {0, 1}
            hwc = self.args.visual_layout == "hwc"
            o = info.observations.add(name="CameraSensor")
            o.shape.extend([img.shape[1], img.shape[2], img.shape[0]] if hwc else list(img.shape))
            o.dimension_properties.extend([2, 2, 1] if hwc else [1, 2, 2])
            if self.args.uncompressed_visual:
                o.compression_type = 0
                data = img.transpose(1, 2, 0) if hwc else img
                o.float_data.data.extend(np.ascontiguousarray(data).reshape(-1).tolist())
            else:
                buf = io.BytesIO()
                Image.fromarray((img.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB").save(buf, "PNG")
                o.compression_type = 1
                o.compressed_data = buf.getvalue()
                o.compressed_channel_mapping.extend([0, 1, 2])
        v = info.observations.add(name=self._vector_name)
        v.shape.append(vec.shape[0])
        v.dimension_properties.append(1)
        v.float_data.data.extend(vec.tolist())

    def _mask(self, vec: np.ndarray) -> list[bool]:
        """Unity's action mask (true = masked), flat over branches [3, 3, 3]."""
        far = float(np.hypot(vec[4], vec[5])) > 0.09
        return [False] * 7 + [far, far]

    def _fill_info(self, info: AgentInfoProto, k: int, ob: Any, done: bool, max_step: bool,
                   reward: float, group_reward: float) -> None:
        info.reward, info.group_reward, info.done, info.max_step_reached = reward, group_reward, done, max_step
        info.id, info.group_id = k, 1 + k // 2
        self._fill_observations(info, ob)
        if self.args.mask_kicks and not done:
            info.action_mask.extend(self._mask(ob[1] if self.args.visual else ob))

    def _take_reward(self, k: int) -> tuple[float, float]:
        """Reward and group reward accumulated since the agent's last info (then cleared)."""
        r, g = float(self.acc_reward[k]), float(self.acc_group[k])
        self.acc_reward[k] = self.acc_group[k] = 0.0
        return r, g

    # ------------------------------------------------------------------------------ game flow
    def _start_episode(self) -> dict:
        if "ball_touch" in self.params:
            self.game.ball_touch = self.params["ball_touch"].sample()
        obs, _ = self.game.reset()
        self.episode_steps = 0
        self.goals_at_start = self.game.goals.copy()
        self.acc_reward[:] = self.acc_group[:] = 0.0
        return obs

    def _end_episode_stats(self) -> None:
        g = self.game.goals - self.goals_at_start
        self._send_stat("SoccerTwos/Goals Blue", g[0], 2)
        self._send_stat("SoccerTwos/Goals Purple", g[1], 2)
        self._send_stat("SoccerTwos/Episode Length", self.episode_steps, 0)
        self._send_stat("SoccerTwos/ball_touch", self.game.ball_touch, 1)

    def _output(self, terminal: list, decisions: dict) -> UnityMessageProto:
        """The message to send: terminal infos first, then decision requests, brain parameters of
        behaviors not announced yet, and queued side-channel data. Built in place (python protobuf
        copies on ``append`` / ``CopyFrom``)."""
        msg = UnityMessageProto(header=HeaderProto(status=200))
        out = msg.unity_output
        self.deciders = {b: [] for b in BEHAVIORS}
        infos = out.rl_output.agentInfos
        for k, ob, max_step, r, g in terminal:
            self._fill_info(infos[BEHAVIORS[k // 2]].value.add(), k, ob, True, max_step, r, g)
        for k in range(4):
            if AGENTS[k] in decisions:
                self._fill_info(infos[BEHAVIORS[k // 2]].value.add(), k, decisions[AGENTS[k]], False, False,
                                *self._take_reward(k))
                self.deciders[BEHAVIORS[k // 2]].append(k)
        for b in BEHAVIORS:
            if b not in self.sent_brains and len(infos[b].value):
                bp = out.rl_initialization_output.brain_parameters.add(brain_name=b, is_training=True)
                bp.action_spec.num_discrete_actions = 3
                bp.action_spec.discrete_branch_sizes.extend([3, 3, 3])
                self.sent_brains.add(b)
        out.rl_output.side_channel = bytes(self.outgoing)
        self.outgoing = bytearray()
        return msg

    def _step(self, rl_input) -> UnityMessageProto:
        actions = {}
        for b, ids in self.deciders.items():
            acts = rl_input.agent_actions[b].value if b in rl_input.agent_actions else []
            for k, a in zip(ids, acts):
                actions[AGENTS[k]] = np.asarray(a.discrete_actions, np.int64)
        obs, rewards, term, trunc, infos = self.game.step(actions)
        self.total_steps += 1
        self.episode_steps += 1
        for a, info in infos.items():
            k = AGENTS.index(a)
            self.acc_reward[k] += info["individual_reward"]
            self.acc_group[k] += info["group_reward"]
        terminal = []
        for k, a in enumerate(AGENTS):
            if term.get(a) or trunc.get(a):
                terminal.append((k, obs.pop(a), bool(trunc.get(a)) and not term.get(a), *self._take_reward(k)))
        if not self.game.alive.any():
            self._end_episode_stats()
            obs = self._start_episode()
        return self._output(terminal, obs)

    def run(self) -> int:
        """Connect, handshake, serve until QUIT / trainer gone. Returns the exit code."""
        a = self.args
        self.log(f"Stand-in SoccerTwos player (tests/demos only); connecting to trainer on port {a.mlagents_port}")
        channel = grpc.insecure_channel(f"127.0.0.1:{a.mlagents_port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=a.connect_timeout)
        except grpc.FutureTimeoutError:
            self.log(f"Couldn't connect to trainer on port {a.mlagents_port}.")
            return 1
        stub = UnityToExternalProtoStub(channel)

        def exchange(msg: UnityMessageProto) -> Any:
            return stub.Exchange(msg)

        hello = UnityMessageProto(header=HeaderProto(status=200))
        init = hello.unity_output
        init.rl_initialization_output.name = "SoccerTwos (marl-unity-standin)"
        init.rl_initialization_output.communication_version = API_VERSION
        init.rl_initialization_output.package_version = PACKAGE_VERSION
        init.rl_initialization_output.capabilities.CopyFrom(UnityRLCapabilitiesProto(
            baseRLCapabilities=True, concatenatedPngObservations=True, compressedChannelMapping=True,
            hybridActions=True, trainingAnalytics=True, variableLengthObservation=True, multiAgentGroups=True))
        try:
            reply = exchange(hello)
            ini = reply.unity_input.rl_initialization_input
            if ini.communication_version.split(".")[0] != API_VERSION.split(".")[0]:
                self.log(f"Incompatible communication version {ini.communication_version}")
                return 1
            self.game.reset(seed=int(ini.seed))
            self.log(f"Connected: trainer {ini.package_version}, communication {ini.communication_version}, "
                     f"seed {ini.seed}")
            message = exchange(UnityMessageProto(header=HeaderProto(status=200)))
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
                    output = self._output([], self._start_episode())
                else:
                    if a.crash_after is not None and self.total_steps >= a.crash_after and _claim_crash(a.crash_marker):
                        self.log(f"Simulated crash after {self.total_steps} steps.")
                        os._exit(3)
                    output = self._step(rl_input)
                message = exchange(output)
        except grpc.RpcError as exc:
            self.log(f"Connection to the trainer lost: {exc.code()}")
            return 0


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
