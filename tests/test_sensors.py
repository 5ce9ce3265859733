"""Agents with several sensors: the env layer's layout, ML-Agents' per-sensor encoders, training and the ONNX inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.adapter import ArrayEnv
from marl.checkpoint import FORMAT, spec_to_dict
from marl.config import NetworkSettings
from marl.networks import Actor, ObservationEncoder, VisualEncoder


class SensorGame(ParallelEnv):
    """Two agents, each with a camera ``[3, H, W]`` (or a vector) and a vector sensor; reward 1 when the
    action equals the index of the brightest of 3 vertical stripes in the camera image (seeded)."""

    metadata = {"name": "sensor_game"}

    def __init__(self, size: int = 24, dict_obs: bool = False):
        self.possible_agents = ["agent_0", "agent_1"]
        self.size, self.dict_obs = size, dict_obs
        cam = spaces.Box(0.0, 1.0, (3, size, size), np.float32)
        vec = spaces.Box(-1.0, 1.0, (5,), np.float32)
        self._obs_space = spaces.Dict({"camera": cam, "vector": vec}) if dict_obs else spaces.Tuple((cam, vec))
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return spaces.Discrete(3)

    def _obs(self):
        out = {}
        self.target = {}
        for a in self.possible_agents:
            k = int(self.rng.integers(3))
            img = np.zeros((3, self.size, self.size), np.float32)
            w = self.size // 3
            img[:, :, k * w:(k + 1) * w] = 1.0
            vec = self.rng.uniform(-1, 1, 5).astype(np.float32)
            self.target[a] = k
            out[a] = {"camera": img, "vector": vec} if self.dict_obs else (img, vec)
        return out

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        rewards = {a: float(int(actions[a]) == self.target[a]) for a in self.agents}
        self.t += 1
        done = self.t >= 4
        obs = self._obs()
        terms = {a: False for a in self.agents}
        truncs = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, {a: {} for a in self.possible_agents}


def factory(**kw):
    return SensorGame(**kw)


@pytest.mark.parametrize("dict_obs", [False, True])
def test_env_layer_concatenates_sensors_in_order(dict_obs):
    env = ArrayEnv("test_sensors:factory", {"size": 6, "dict_obs": dict_obs})
    b = env.spec.behavior("agent")
    assert b.sensors == ((3, 6, 6), (5,)) and b.obs_shape == (3 * 36 + 5,)
    raw = env.env._obs()  # what the env would send now; write it as the adapter does
    for i, a in enumerate(b.agents):
        env._write_obs(a, raw[a], None)
        img, vec = (raw[a]["camera"], raw[a]["vector"]) if dict_obs else raw[a]
        np.testing.assert_array_equal(env.out["agent/obs"][i], np.concatenate([img.ravel(), vec]))


def test_observation_encoder_per_sensor_and_small_images_warn():
    net = NetworkSettings(hidden_units=32, vis_encode_type="simple")
    actor = Actor(3 * 24 * 24 + 5, 2, __import__("envs.spec", fromlist=["ActionSpec"]).ActionSpec((3,)), net,
                  (3 * 24 * 24 + 5,), ((3, 24, 24), (5,)))
    assert isinstance(actor.encoder, ObservationEncoder)
    assert isinstance(actor.encoder.encoders[0], VisualEncoder) and actor.encoder.out_size == 32 + 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = Actor(3 * 8 * 8 + 5, 2, actor.action, net, (3 * 8 * 8 + 5,), ((3, 8, 8), (5,)))
    assert small.encoder is None  # flattened into the dense layers ...
    msgs = [str(w.message) for w in caught]
    assert any("image sensor [3, 8, 8] is smaller" in m and "flattened" in m for m in msgs), msgs  # ... with a warning


def test_camera_and_vector_behavior_trains_through_the_cnn_and_exports_one_input_per_sensor(tmp_path):
    from marl.algos.factory import make_trainer
    from marl.export import export_all_slots
    from marl.export.onnx_policy import OnnxPolicy
    from marl.inference import load_policy
    from envs.vector import VecEnv, default_factory
    from marl_helpers import cfg_of

    torch.manual_seed(0)
    data = {"behaviors": {"agent": {"trainer_type": "ippo",
                                    "hyperparameters": {"buffer_size": 256, "batch_size": 128, "num_epoch": 3,
                                                        "learning_rate": 0.003, "learning_rate_schedule": "constant"},
                                    "network_settings": {"hidden_units": 32, "vis_encode_type": "simple"},
                                    "max_steps": 6000}},
            "env_settings": {"env_path": "test_sensors:factory", "num_areas": 8, "seed": 1}}
    cfg = cfg_of(data)
    f = default_factory("test_sensors:factory", {})
    probe = f(0, None)
    spec = probe.spec
    probe.close()
    trainer = make_trainer(spec, cfg, 8, torch.device("cpu"))
    actor = trainer.actor("agent")
    assert isinstance(actor.encoder, ObservationEncoder)
    n_cnn = sum(p.numel() for p in actor.encoder.encoders[0].parameters())
    assert n_cnn > 1000  # the camera has its own convolutional encoder
    venv = VecEnv(f, spec, 1, 8, seed=1)
    rewards, step = [], 0
    try:
        while step < 6000:
            n, _ = trainer.collect_and_train(venv, step, on_episode=lambda e, s: rewards.append(float(np.nanmean(s.returns["agent"]))))
            step += n
    finally:
        venv.close()
    early, late = np.mean(rewards[:50]), np.mean(rewards[-50:])
    assert early < 2.0 and late > 3.0, (early, late)  # 4 steps, chance = 4/3; the stripe must be seen through the CNN
    payload = {"format": FORMAT, "behavior": "agent", "trainer_type": "ippo", "step": step, "env_id": spec.env_id,
               "behavior_spec": spec_to_dict(spec.behavior("agent")), "state_shape": list(spec.state_shape),
               "network_settings": cfg.behavior_settings("agent").network_settings.model_dump(),
               "trainer": trainer.state_dict("agent"), "extra": {}}
    files = export_all_slots(payload, tmp_path / "agent.onnx")
    onnx = OnnxPolicy(files[0])
    assert onnx.sensor_shapes == [(3, 24, 24), (5,)]  # obs_0 = camera, obs_1 = vector, in sensor order
    from marl.algos.mappo import TorchActorPolicy

    ref = TorchActorPolicy(payload, tmp_path / "x.pt")
    env = ArrayEnv("test_sensors:factory")
    obs = env.out["agent/obs"]
    idx = np.arange(2)
    d_t, _, _ = ref.act(obs, idx)
    d_o, _, _ = onnx.act(obs, idx)
    np.testing.assert_array_equal(d_t, d_o)


# ------------------------------------------------------------------------------------------ image layouts
class FrameGame(ParallelEnv):
    """One agent seeing a uint8 RGB frame ``[H, W, 3]`` (PettingZoo/Gymnasium layout) whose red channel
    holds a ramp, so a wrong transpose is visible."""

    metadata = {"name": "frame_game"}

    def __init__(self, h: int = 40, w: int = 60):
        self.possible_agents = ["agent_0"]
        self.h, self.w = h, w

    def observation_space(self, agent):
        return spaces.Box(0, 255, (self.h, self.w, 3), np.uint8)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def _frame(self):
        f = np.zeros((self.h, self.w, 3), np.uint8)
        f[..., 0] = np.arange(self.w, dtype=np.uint8)[None, :]
        f[..., 1] = 7
        return f

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return {"agent_0": self._frame()}, {"agent_0": {}}

    def step(self, actions):
        self.t += 1
        done = self.t >= 3
        out = ({"agent_0": self._frame()}, {"agent_0": 0.0}, {"agent_0": False}, {"agent_0": done}, {"agent_0": {}})
        if done:
            self.agents = []
        return out


def frames(**kw):
    return FrameGame(**kw)


def test_channel_last_images_are_detected_and_transposed_once():
    from envs.adapter import is_hwc

    assert is_hwc((40, 60, 3)) and is_hwc((6, 7, 2))  # PettingZoo frames, connect_four boards
    assert not is_hwc((3, 40, 60)) and not is_hwc((3, 3, 3)) and not is_hwc((40, 60, 3), "chw")
    env = ArrayEnv("test_sensors:frames")
    b = env.spec.behavior("agent")
    assert b.obs_shape == (3, 40, 60)  # CHW, ready for the CNN
    obs = env.out["agent/obs"][0]
    np.testing.assert_array_equal(obs[0, 5], np.arange(60))  # red channel ramp along the width
    assert (obs[1] == 7).all()
    forced = ArrayEnv("test_sensors:frames", image_layout="chw")  # the override key keeps the env's layout
    assert forced.spec.behavior("agent").obs_shape == (40, 60, 3)


def test_atari_preprocessing_preset_gives_stacked_84x84_uint8_frames():
    env = ArrayEnv("test_sensors:frames", {"h": 100, "w": 120}, supersuit=["atari_preprocessing"])
    b = env.spec.behavior("agent")
    assert b.obs_shape == (4, 84, 84)  # 4 grayscale frames, channel-first
    assert b.obs_dtype == "uint8" and b.obs_scale == 1.0 / 255.0  # kept as the env gives them
    obs = env.out["agent/obs"][0]
    assert obs.dtype == np.uint8 and obs.max() > 1  # raw 0..255 values, not rescaled floats
    plain = ArrayEnv("test_sensors:factory")  # float sensors stay float32
    assert plain.spec.behavior("agent").obs_dtype == "float32" and plain.out["agent/obs"].dtype == np.float32


def test_uint8_frames_are_stored_as_uint8_and_scaled_to_0_1_at_the_networks_input(tmp_path):
    """The rollout buffer keeps uint8 frames; the actor sees frame / 255 (same outputs as a float actor fed
    the scaled frame), and the exported ONNX, fed the env's raw values, acts as the torch policy."""
    from marl.algos.factory import make_trainer
    from marl.algos.mappo import TorchActorPolicy
    from marl.export import export_all_slots
    from marl.export.onnx_policy import OnnxPolicy
    from marl.networks import Actor
    from envs.vector import VecEnv, default_factory
    from marl_helpers import cfg_of

    torch.manual_seed(0)
    data = {"behaviors": {"agent": {"trainer_type": "ippo",
                                    "hyperparameters": {"buffer_size": 64, "batch_size": 32, "num_epoch": 1},
                                    "network_settings": {"hidden_units": 16, "vis_encode_type": "simple",
                                                         "normalize": True},
                                    "max_steps": 64}},
            "env_settings": {"env_path": "test_sensors:frames", "supersuit": ["atari_preprocessing"], "seed": 1}}
    cfg = cfg_of(data)
    f = default_factory("test_sensors:frames", {}, supersuit=["atari_preprocessing"])
    probe = f(0, None)
    spec = probe.spec
    raw = probe.out["agent/obs"].copy()
    probe.close()
    trainer = make_trainer(spec, cfg, 1, torch.device("cpu"))
    venv = VecEnv(f, spec, 1, 1, seed=1)
    try:
        trainer.collect_and_train(venv, 0)
    finally:
        venv.close()
    stored = trainer.collector.buffers["agent"].data["obs"]
    assert stored.dtype == np.uint8 and stored.nbytes == stored.size  # a quarter of float32's bytes
    actor = trainer.actor("agent")
    assert 0.0 < float(actor.obs_norm.mean.max()) <= 1.0  # the normaliser learned in the networks' [0, 1] units
    net = cfg.behavior_settings("agent").network_settings
    plain = Actor(actor.obs_size, actor.n_agents, spec.behavior("agent").action, net, (4, 84, 84))
    plain.load_state_dict(actor.state_dict())
    ids = torch.zeros(1, actor.n_agents)
    x = torch.from_numpy(raw).reshape(1, -1)
    with torch.no_grad():
        torch.testing.assert_close(actor.features(x, ids), plain.features(x.float() / 255.0, ids))
    payload = {"format": FORMAT, "behavior": "agent", "trainer_type": "ippo", "step": 64, "env_id": spec.env_id,
               "behavior_spec": spec_to_dict(spec.behavior("agent")), "state_shape": list(spec.state_shape),
               "network_settings": net.model_dump(), "trainer": trainer.state_dict("agent"), "extra": {}}
    ref = TorchActorPolicy(payload, tmp_path / "x.pt")
    onnx = OnnxPolicy(export_all_slots(payload, tmp_path / "agent.onnx")[0])
    assert ref.spec.obs_dtype == "uint8"  # read back from the checkpoint
    frames = np.random.default_rng(0).integers(0, 256, (16, 4, 84, 84), dtype=np.uint8)
    d_t, _, _ = ref.act(frames, np.zeros(16, np.int64))
    d_o, _, _ = onnx.act(frames, np.zeros(16, np.int64))
    np.testing.assert_array_equal(d_t, d_o)


def test_an_image_state_and_small_images_are_named_in_one_warning_each():
    from envs.spec import ActionSpec
    from marl.config import NetworkSettings
    from marl.networks import Actor, make_state_encoder, warn_image_state

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_image_state((560, 880, 3), "MAPPO's centralised critic")  # pistonball's env.state(), HWC
        warn_image_state((4, 26, 4), "MAPPO's centralised critic")  # KAZ's entity table is not an image
        warn_image_state((20,), "MAPPO's centralised critic")
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "[560, 880, 3]" in msgs[0] and "1478400 inputs" in msgs[0], msgs
    net = NetworkSettings(hidden_units=16, vis_encode_type="simple")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = make_state_encoder(((2, ((3, 12, 20), (8,))), (2, ((3, 24, 40), (8,)))), net)
    assert enc is not None and not caught  # the 24x40 camera is encoded; the 12x20 one is the actor's warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Actor(720, 0, ActionSpec((3,)), net, (3, 12, 20))
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "[3, 12, 20]" in msgs[0] and "centralised critic" in msgs[0], msgs


class ByteCameraGame(FrameGame):
    """FrameGame's uint8 HWC frame plus a vector, as a Tuple of two sensors."""

    def observation_space(self, agent):
        return spaces.Tuple((spaces.Box(0, 255, (self.h, self.w, 3), np.uint8), spaces.Box(-1, 1, (2,), np.float32)))

    def _frame(self):
        return (super()._frame(), np.array([0.5, -0.5], np.float32))


def byte_camera(**kw):
    return ByteCameraGame(**kw)


def test_a_uint8_image_among_several_sensors_is_written_in_0_1():
    env = ArrayEnv("test_sensors:byte_camera")
    b = env.spec.behavior("agent")
    assert b.sensors == ((3, 40, 60), (2,)) and b.obs_dtype == "float32"
    obs = env.out["agent/obs"][0]
    image = obs[:3 * 40 * 60].reshape(3, 40, 60)
    np.testing.assert_allclose(image[0, 5], np.arange(60) / 255.0, rtol=1e-6)  # the ramp, scaled like one image
    np.testing.assert_allclose(image[1], 7 / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(obs[-2:], [0.5, -0.5])  # the vector untouched
