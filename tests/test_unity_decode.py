"""Unity adapter pieces without a player: CHW decoding, masks, side-channel bytes, curricula, restarts."""
from __future__ import annotations

import io

import numpy as np
import pytest
from mlagents_envs.base_env import ActionSpec, BehaviorSpec, DimensionProperty, ObservationSpec, ObservationType
from mlagents_envs.communicator_objects.agent_info_pb2 import AgentInfoProto
from mlagents_envs.communicator_objects.observation_pb2 import ObservationProto
from mlagents_envs.exception import UnityObservationException
from mlagents_envs.rpc_utils import _observation_to_np_array
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.side_channel_manager import SideChannelManager
from PIL import Image

from envs.unity import Curriculum, UnityEnvError
from envs.unity.decode import decode_observation, steps_from_proto
from envs.unity.parameters import apply_engine, apply_parameters, current_values
from envs.unity.restart import RestartLimiter
from envs.unity.standin import StandinPlayer, build_parser

RNG = np.random.default_rng(0)
CHW = (RNG.integers(0, 256, (3, 5, 7)) / 255.0).astype(np.float32)  # asymmetric: C != H != W


def png_obs(chw: np.ndarray, layout: str = "chw") -> ObservationProto:
    buf = io.BytesIO()
    Image.fromarray(np.round(chw.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB").save(buf, "PNG")
    c, h, w = chw.shape
    shape, dims = ([c, h, w], [1, 2, 2]) if layout == "chw" else ([h, w, c], [2, 2, 1])
    return ObservationProto(shape=shape, dimension_properties=dims, compression_type=1, compressed_data=buf.getvalue(),
                            compressed_channel_mapping=[0, 1, 2], name="CameraSensor")


def test_png_chw_decodes_to_chw_where_mlagents_028_fails():
    obs = png_obs(CHW)
    with pytest.raises(UnityObservationException):  # the known bug this adapter fixes
        _observation_to_np_array(obs, [3, 5, 7])
    out = decode_observation(obs)
    assert out.shape == (3, 5, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, CHW, atol=1e-6)


def test_hwc_players_and_raw_floats_also_come_out_chw():
    np.testing.assert_allclose(decode_observation(png_obs(CHW, "hwc")), CHW, atol=1e-6)
    raw = ObservationProto(shape=[3, 5, 7], dimension_properties=[1, 2, 2], compression_type=0)
    raw.float_data.data.extend(CHW.reshape(-1).tolist())
    np.testing.assert_allclose(decode_observation(raw), CHW, atol=1e-7)
    raw_hwc = ObservationProto(shape=[5, 7, 3], dimension_properties=[2, 2, 1], compression_type=0)
    raw_hwc.float_data.data.extend(CHW.transpose(1, 2, 0).reshape(-1).tolist())
    np.testing.assert_allclose(decode_observation(raw_hwc), CHW, atol=1e-7)


def _spec(visual: bool) -> BehaviorSpec:
    obs = [ObservationSpec((16,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "VectorSensor_size16")]
    if visual:
        obs.insert(0, ObservationSpec((3, 5, 7), (DimensionProperty.NONE, DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
                                                  DimensionProperty.TRANSLATIONAL_EQUIVARIANCE),
                                      ObservationType.DEFAULT, "CameraSensor"))
    return BehaviorSpec(obs, ActionSpec(0, (3, 2)))


def _info(agent_id: int, done: bool = False, mask=(), visual: bool = False, max_step: bool = False) -> AgentInfoProto:
    info = AgentInfoProto(id=agent_id, done=done, reward=0.5, group_id=2, group_reward=-1.0, max_step_reached=max_step)
    if visual:
        info.observations.append(png_obs(CHW))
    v = ObservationProto(shape=[16], dimension_properties=[1])
    v.float_data.data.extend([float(agent_id)] * 16)
    info.observations.append(v)
    info.action_mask.extend(mask)
    return info


def test_steps_split_decisions_terminals_and_keep_unity_mask_convention():
    infos = [_info(7, mask=[False, True, False, True, False]), _info(9, done=True, max_step=True), _info(4)]
    dec, term = steps_from_proto(infos, _spec(False))
    assert list(dec.agent_id) == [7, 4] and list(term.agent_id) == [9]
    assert list(term.interrupted) == [True]
    np.testing.assert_array_equal(dec.action_mask[0], [[False, True, False], [False, False, False]])  # True = masked
    np.testing.assert_array_equal(dec.action_mask[1], [[True, False], [False, False]])
    assert dec.obs[0].shape == (2, 16) and dec.obs[0][1, 0] == 4.0
    assert list(dec.group_id) == [2, 2] and dec.group_reward[0] == -1.0
    dec, term = steps_from_proto([_info(1, visual=True), _info(2, visual=True, done=True)], _spec(True))
    assert dec.obs[0].shape == (1, 3, 5, 7) and term.obs[0].shape == (1, 3, 5, 7)
    np.testing.assert_allclose(dec.obs[0][0], CHW, atol=1e-6)


def test_nan_reward_is_a_one_line_error():
    bad = _info(1)
    bad.reward = float("nan")
    with pytest.raises(UnityEnvError, match="NaN"):
        steps_from_proto([bad], _spec(False))


def _player_reading(*channels) -> StandinPlayer:
    """What the stand-in player (the Unity side) makes of the bytes Python would send."""
    player = StandinPlayer(build_parser().parse_args([]))
    player._read_side_channels(bytes(SideChannelManager(list(channels)).generate_side_channel_messages()))
    return player


def test_engine_and_environment_parameters_reach_the_player_side():
    eng, par = EngineConfigurationChannel(), EnvironmentParametersChannel()
    apply_engine(eng, {"width": 64, "height": 48, "quality_level": 2, "time_scale": 7.5, "target_frame_rate": 30,
                       "capture_frame_rate": 50, "no_graphics": True})
    values = current_values({"ball_touch": 0.25,
                             "speed": {"sampler_type": "uniform", "sampler_parameters": {"min_value": 2, "max_value": 3}},
                             "size": {"sampler_type": "multirangeuniform", "sampler_parameters": {"intervals": [[1, 2], [5, 6]]}},
                             "lesson": {"curriculum": [{"name": "a", "value": 1.0, "completion_criteria": {"behavior": "B"}},
                                                       {"name": "b", "value": 2.0}]}})
    apply_parameters(par, values, seed=3)
    p = _player_reading(eng, par)
    assert p.engine == {"width": 64, "height": 48, "quality_level": 2, "time_scale": 7.5, "target_frame_rate": 30,
                        "capture_frame_rate": 50}
    assert p.params["ball_touch"].sample() == 0.25 and p.params["lesson"].sample() == 1.0
    assert all(2 <= p.params["speed"].sample() <= 3 for _ in range(20))
    draws = [p.params["size"].sample() for _ in range(50)]
    assert all(1 <= d <= 2 or 5 <= d <= 6 for d in draws) and min(draws) < 2 < 5 < max(draws)
    with pytest.raises(UnityEnvError, match="environment_parameters.x"):
        apply_parameters(par, {"x": {"sampler_type": "gaussian", "sampler_parameters": {"mean": 1}}})
    with pytest.raises(UnityEnvError, match="engine_settings"):
        apply_engine(eng, {"resolution": 3})


def test_curriculum_advances_on_smoothed_reward_and_progress():
    cur = Curriculum({"ball_touch": {"curriculum": [
        {"name": "L0", "value": 1.0, "completion_criteria": {"behavior": "SoccerTwos", "measure": "reward",
                                                            "min_lesson_length": 3, "threshold": 0.5,
                                                            "signal_smoothing": False, "require_reset": True}},
        {"name": "L1", "value": 0.5, "completion_criteria": {"behavior": "SoccerTwos", "measure": "progress",
                                                            "threshold": 0.6}},
        {"name": "L2", "value": 0.0}]}, "fixed": 2.0})
    assert cur.values() == {"ball_touch": 1.0, "fixed": 2.0}
    assert not cur.update("SoccerTwos", 1.0) and not cur.update("SoccerTwos", 1.0)  # fewer than min_lesson_length
    assert not cur.update("Other", 5.0)
    assert cur.update("SoccerTwos", 1.0) and cur.must_reset
    assert cur.lesson_numbers() == {"ball_touch": 1} and cur.values()["ball_touch"] == 0.5
    assert not cur.update("SoccerTwos", 0.5, measure="progress")
    assert cur.update("SoccerTwos", 0.7, measure="progress") and not cur.must_reset
    assert cur.values()["ball_touch"] == 0.0 and not cur.update("SoccerTwos", 0.99, measure="progress")

    smooth = Curriculum({"p": {"curriculum": [
        {"name": "a", "value": 0.0, "completion_criteria": {"behavior": "B", "threshold": 0.6, "min_lesson_length": 1}},
        {"name": "b", "value": 1.0}]}})
    assert not smooth.update("B", 0.7)  # 0.25 * 0 + 0.75 * 0.7 = 0.525
    assert smooth.update("B", 0.7)      # 0.25 * 0.525 + 0.75 * 0.7 = 0.656
    with pytest.raises(UnityEnvError, match="completion_criteria.behavior"):
        Curriculum({"p": {"curriculum": [{"name": "a", "value": 0.0}, {"name": "b", "value": 1.0}]}})


def test_restart_limiter_lifetime_and_rate():
    now = [0.0]
    lim = RestartLimiter(max_lifetime_restarts=3, restarts_rate_limit_n=1, restarts_rate_limit_period_s=60,
                         clock=lambda: now[0])
    assert lim.allowed()
    lim.record()
    now[0] = 30.0
    assert not lim.allowed()  # 1 restart within 60 s already
    now[0] = 61.0
    assert lim.allowed()
    lim.record()
    now[0] = 200.0
    lim.record()
    now[0] = 400.0
    assert not lim.allowed() and "max_lifetime_restarts=3" in lim.describe()  # lifetime quota used up
    free = RestartLimiter(-1, -1, 60, clock=lambda: 0.0)
    for _ in range(50):
        assert free.allowed()
        free.record()


def test_action_and_observation_spaces_for_every_action_kind():
    from gymnasium import spaces

    from envs.unity.env import UnityParallelEnv, _action_space, _obs_space

    vec = [ObservationSpec((8,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "v")]
    assert _action_space(BehaviorSpec(vec, ActionSpec(2, ()))) == spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert _action_space(BehaviorSpec(vec, ActionSpec(0, (4,)))) == spaces.Discrete(4)
    assert _action_space(BehaviorSpec(vec, ActionSpec(0, (3, 2)))) == spaces.MultiDiscrete([3, 2])
    hybrid = _action_space(BehaviorSpec(vec, ActionSpec(2, (3, 2))))
    assert hybrid == spaces.Tuple((spaces.MultiDiscrete([3, 2]), spaces.Box(-1.0, 1.0, (2,), np.float32)))
    hwc = ObservationSpec((5, 7, 3), (DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
                                      DimensionProperty.TRANSLATIONAL_EQUIVARIANCE, DimensionProperty.NONE),
                          ObservationType.DEFAULT, "cam")
    assert _obs_space(BehaviorSpec([hwc] + vec, ActionSpec(1, ()))) == spaces.Tuple(
        (spaces.Box(0.0, 1.0, (3, 5, 7), np.float32), spaces.Box(-np.inf, np.inf, (8,), np.float32)))
    # a hybrid action for slot 1: discrete part to the int array, continuous part clipped to [-1, 1]
    env = object.__new__(UnityParallelEnv)
    env._act_spaces = {"B": hybrid}
    d, c = np.zeros((2, 2), np.int32), np.zeros((2, 2), np.float32)
    env._to_action("B", (np.array([2, 1]), np.array([0.5, 7.0])), d, c, 1)
    np.testing.assert_array_equal(d, [[0, 0], [2, 1]])
    np.testing.assert_allclose(c, [[0, 0], [0.5, 1.0]])


def test_curriculum_advances_on_elo_as_it_comes():
    cur = Curriculum({"opp": {"curriculum": [
        {"name": "easy", "value": 0.0, "completion_criteria": {"behavior": "SoccerTwos", "measure": "Elo",
                                                              "threshold": 1250.0, "signal_smoothing": True}},
        {"name": "hard", "value": 1.0}]}})
    assert not cur.update("SoccerTwos", 5000.0, measure="reward")  # another measure: no effect
    assert not cur.update("SoccerTwos", 1249.0, measure="Elo")
    assert cur.update("SoccerTwos", 1251.0, measure="Elo")  # compared as it comes, no smoothing
    assert cur.values() == {"opp": 1.0}
