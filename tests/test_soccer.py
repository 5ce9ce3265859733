"""SoccerTwos (envs.games.soccer) against docs/soccer_spec.md, in-process."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from envs.games import soccer
from envs.games.soccer import (AGENTS, CAMERA_SHAPE, RAY_ANGLES, RAY_LENGTH, RAY_SIZE, RAY_STACKS, RAY_TAGS,
                               SoccerTwosEnv, ray_frames)
from envs.registry import behavior_of, team_of


def chase(o: np.ndarray) -> np.ndarray:
    """Scripted attacker: get just behind the ball (own frame attacks +x) and kick hard."""
    tx, ty = o[4] - 0.07, o[5]
    a0 = 1 if tx > 0.01 else (2 if tx < -0.01 else 0)
    a1 = 1 if ty > 0.01 else (2 if ty < -0.01 else 0)
    return np.array([a0, a1, 2 if (np.hypot(o[4], o[5]) < 0.09 and o[4] > 0) else 0])


def test_names_spaces_and_state():
    e = soccer.parallel_env()
    assert e.possible_agents == ["SoccerTwos?team=0?agent_id=0", "SoccerTwos?team=0?agent_id=1",
                                 "SoccerTwos?team=1?agent_id=2", "SoccerTwos?team=1?agent_id=3"]
    assert {behavior_of(a) for a in AGENTS} == {"SoccerTwos"} and [team_of(a) for a in AGENTS] == [0, 0, 1, 1]
    obs, infos = e.reset(seed=0)
    assert set(obs) == set(AGENTS)
    for a in AGENTS:
        assert obs[a].shape == (16,) and obs[a].dtype == np.float32 and e.observation_space(a).contains(obs[a])
        assert list(e.action_space(a).nvec) == [3, 3, 3]
    assert [infos[a]["group_id"] for a in AGENTS] == [1, 1, 2, 2]
    s = e.state()
    assert s.shape == (25,) and s.dtype == np.float32
    np.testing.assert_allclose(s[0:2], e.pos[0])  # absolute, team-0 frame
    np.testing.assert_allclose(s[20:24], 1.0)


def test_own_frame_is_mirrored_for_team_1():
    e = SoccerTwosEnv()
    e.reset(seed=3)
    # a point-symmetric layout: agent 2 mirrors agent 0, 3 mirrors 1, ball at the centre spot
    e.pos[:] = [[-0.4, 0.1], [-0.3, -0.2], [0.4, -0.1], [0.3, 0.2]]
    e.vel[:] = [[0.01, 0.02], [0.0, 0.0], [-0.01, -0.02], [0.0, 0.0]]
    e.ball[:] = 0.0
    e.ball_vel[:] = [0.01, -0.005]
    e._compute_obs()
    o = e._obs
    np.testing.assert_allclose(o[2, :8], o[0, :8] * [1, 1, 1, 1, 1, 1, -1, -1], atol=1e-6)  # ball velocity flips
    np.testing.assert_allclose(o[2, 8:], o[0, 8:], atol=1e-6)
    np.testing.assert_allclose(o[0, 14:16], [1 - (-0.4), -0.1], atol=1e-6)  # opponent goal relative to self
    np.testing.assert_allclose(o[0, 2:4], [0.2, 0.4], atol=1e-6)  # velocity scaled by 1/0.05


def test_goal_rewards_group_and_terminates_everyone():
    e = SoccerTwosEnv()
    obs, _ = e.reset(seed=1)
    for t in range(1, 401):
        acts = {a: (chase(o) if team_of(a) == 0 else np.zeros(3, int)) for a, o in obs.items()}
        obs, rew, term, trunc, infos = e.step(acts)
        if not e.agents:
            break
    assert list(e.goals) == [1, 0]
    win = 1 - t / 400
    assert rew == pytest.approx({AGENTS[0]: win, AGENTS[1]: win, AGENTS[2]: -1.0, AGENTS[3]: -1.0})
    assert all(term.values()) and not any(trunc.values())
    assert infos[AGENTS[0]]["group_reward"] == pytest.approx(win) and infos[AGENTS[0]]["individual_reward"] == 0.0
    assert set(obs) == set(AGENTS)  # final observations of the ended agents


def test_truncation_at_max_steps_and_ball_touch_reward():
    e = SoccerTwosEnv(max_steps=7, ball_touch=0.5)
    obs, _ = e.reset(seed=0)
    e.ball[:] = e.pos[0] + [0.04, 0.0]  # in reach of agent 0: a kick counts as a touch
    total = dict.fromkeys(AGENTS, 0.0)
    for t in range(7):
        obs, rew, term, trunc, _ = e.step({a: np.array([0, 0, 1]) for a in obs})
        for a, r in rew.items():
            total[a] += r
    assert all(trunc.values()) and not any(term.values()) and e.agents == []
    assert total[AGENTS[0]] == pytest.approx(0.2 * 0.5)  # one kick, then the ball is gone
    with pytest.raises(RuntimeError, match="reset"):
        e.step({})


def test_death_step_and_decision_period_with_stagger():
    e = SoccerTwosEnv(death_step=2)
    obs, _ = e.reset(seed=0)
    e.step({a: np.zeros(3, int) for a in obs})
    obs, rew, term, trunc, _ = e.step({a: np.zeros(3, int) for a in e.agents})
    assert term == {AGENTS[0]: False, AGENTS[1]: True, AGENTS[2]: False, AGENTS[3]: True}
    assert e.agents == [AGENTS[0], AGENTS[2]] and set(obs) == set(AGENTS)
    obs, *_ = e.step({a: np.zeros(3, int) for a in e.agents})
    assert set(obs) == {AGENTS[0], AGENTS[2]}
    np.testing.assert_allclose(obs[AGENTS[0]][8:10], 0.0)  # dead teammate seen at zero

    e = SoccerTwosEnv(decision_period=2, stagger=True)
    obs, infos = e.reset(seed=0)
    assert set(obs) == {AGENTS[0], AGENTS[2]} and e.agents == [AGENTS[0], AGENTS[2]]
    obs, rew, term, trunc, infos = e.step({a: np.array([1, 0, 0]) for a in obs})
    assert len(e.agents) == 4 and set(obs) == set(AGENTS) == set(rew) == set(term)  # 1 and 3 join at step 1
    assert {a for a in obs if infos[a]["deciding"]} == {AGENTS[1], AGENTS[3]}
    x0 = e.pos[0, 0]
    last0 = obs[AGENTS[0]]
    obs, _, _, _, infos = e.step({AGENTS[0]: np.array([2, 0, 0]), AGENTS[1]: np.array([0, 0, 0])})  # 0's action is ignored
    assert e.pos[0, 0] > x0  # agent 0 kept its last action (forward) between decisions
    assert infos[AGENTS[0]]["deciding"] and not infos[AGENTS[1]]["deciding"]
    assert obs[AGENTS[0]] is not last0


def test_non_deciding_agents_keep_their_last_observation_and_team1_period():
    e = SoccerTwosEnv(team1_decision_period=3)
    obs, _ = e.reset(seed=2)
    first = {a: o.copy() for a, o in obs.items()}
    for t in range(1, 7):
        obs, rew, term, trunc, infos = e.step({a: np.array([1, 1, 0]) for a in e.agents})
        deciding = {a for a in obs if infos[a]["deciding"]}
        assert deciding == ({*AGENTS} if t % 3 == 0 else {AGENTS[0], AGENTS[1]}), t
        if t < 3:  # team 1 has not decided since the reset: it is shown what it last sent
            np.testing.assert_array_equal(obs[AGENTS[2]], first[AGENTS[2]])
        else:
            assert not np.array_equal(obs[AGENTS[2]], first[AGENTS[2]])  # team 1 decided: a new observation


def test_respawned_agents_get_fresh_ids_and_join_at_their_first_decision():
    e = SoccerTwosEnv(death_step=3, respawn_delay=2, rays=True)
    assert e.possible_agents[4:] == ["SoccerTwos?team=0?agent_id=4", "SoccerTwos?team=1?agent_id=5"]
    obs, _ = e.reset(seed=0)
    seen = []
    for t in range(1, 8):
        obs, rew, term, trunc, infos = e.step({a: np.zeros(3, int) for a in e.agents})
        seen.append(list(e.agents))
        if t == 3:
            assert term[AGENTS[1]] and term[AGENTS[3]] and len(obs[AGENTS[1]]) == 2  # final (rays, vector)
    assert seen[2] == seen[3] == [AGENTS[0], AGENTS[2]]
    assert seen[4] == [AGENTS[0], "SoccerTwos?team=0?agent_id=4", AGENTS[2], "SoccerTwos?team=1?agent_id=5"]
    # the newcomer's ray stack starts empty: only its newest frame is filled
    e2 = SoccerTwosEnv(death_step=1, respawn_delay=0, rays=True)
    e2.reset(seed=1)
    obs, rew, term, trunc, infos = e2.step({a: np.zeros(3, int) for a in e2.agents})
    new = "SoccerTwos?team=0?agent_id=4"
    assert term[AGENTS[1]] and new in obs and infos[new]["deciding"] and rew[new] == 0.0  # same step: leave and join
    rays = obs[new][0].reshape(RAY_STACKS, -1)
    assert not rays[:-1].any() and rays[-1].any()


def test_rays_see_the_ball_goals_and_walls():
    e = SoccerTwosEnv(rays=True)
    e.reset(seed=0)
    e.pos[:] = [[-0.5, 0.0], [-0.5, -0.4], [0.5, 0.4], [0.5, -0.4]]
    e.ball[:] = [-0.2, 0.0]
    frames = ray_frames(e.pos, e.alive, e.ball).reshape(4, len(RAY_ANGLES), len(RAY_TAGS) + 2)
    fwd, back = frames[0, 0], frames[0, RAY_ANGLES.index(180.0)]
    assert fwd[RAY_TAGS.index("ball")] == 1 and fwd[-1] == pytest.approx((0.3 - 0.03) / RAY_LENGTH, abs=1e-5)
    assert back[RAY_TAGS.index("ownGoal")] == 1 and back[-1] == pytest.approx(0.5 / RAY_LENGTH, abs=1e-5)
    down = frames[0, RAY_ANGLES.index(-90.0)]  # teammate below at distance 0.4 - radius
    assert down[RAY_TAGS.index("teammate")] == 1 and down[-1] == pytest.approx(0.35 / RAY_LENGTH, abs=1e-5)
    up = frames[0, RAY_ANGLES.index(90.0)]
    assert up[RAY_TAGS.index("wall")] == 1
    # team 1 sees in its own frame: body 3 at world (0.5, -0.4) looks "forward" toward world -x
    own3 = frames[3, RAY_ANGLES.index(180.0)]  # own -x = world +x: its own goal at x = +1 is 0.5 away
    assert own3[RAY_TAGS.index("ownGoal")] == 0 and own3[RAY_TAGS.index("wall")] == 1  # y = -0.4 is outside the mouth
    diag = frames[2, RAY_ANGLES.index(135.0)]  # body 2 at world (0.5, 0.4) = own (-0.5, -0.4): up-left to x = -1,
    assert diag[RAY_TAGS.index("ownGoal")] == 1  # reached at y = 0.1, inside its own goal mouth
    assert diag[-1] == pytest.approx(0.5 * 2 ** 0.5 / RAY_LENGTH, abs=1e-5)


def test_camera_behavior_for_team_1():
    e = SoccerTwosEnv(camera=True, rays=True)
    assert [behavior_of(a) for a in e.possible_agents] == ["SoccerTwos", "SoccerTwos", "SoccerTwosCamera", "SoccerTwosCamera"]
    obs, _ = e.reset(seed=0)
    img, vec = obs["SoccerTwosCamera?team=1?agent_id=2"]
    assert img.shape == CAMERA_SHAPE and vec.shape == (16,) and img[2].sum() == 1
    rays, vec0 = obs[AGENTS[0]]
    assert rays.shape == (RAY_SIZE,) and vec0.shape == (16,)
    assert e.sensor_names("SoccerTwosCamera") == ("CameraSensor", "VectorSensor_size16")
    assert e.sensor_names("SoccerTwos") == ("StackingSensor_size3_RayPerceptionSensor", "VectorSensor_size16")
    with pytest.raises(ValueError, match="camera_shape"):
        SoccerTwosEnv(camera=True, camera_shape=(3, 1, 5))


def test_parallel_api_and_visual():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(soccer.parallel_env(max_steps=60), num_cycles=200)
        parallel_api_test(soccer.parallel_env(death_step=5, visual=True, max_steps=40), num_cycles=100)
    for kw in ({"rays": True, "death_step": 5, "respawn_delay": 2, "decision_period": 2, "team1_decision_period": 3,
                "stagger": True, "max_steps": 40}, {"camera": True, "camera_shape": (3, 12, 20), "max_steps": 30}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", "Live agent was not given")
            warnings.filterwarnings("error", "Agent was given")
            parallel_api_test(soccer.parallel_env(**kw), num_cycles=200)
    e = SoccerTwosEnv(visual=True)
    obs, _ = e.reset(seed=0)
    img, vec = obs[AGENTS[3]]
    assert img.shape == (3, 12, 20) and vec.shape == (16,)
    assert img[0].sum() == 2 and img[1].sum() == 2 and img[2].sum() == 1
    # team 1 attacks +x in its own frame: its own players are on the left half of its image
    assert np.nonzero(img[0])[1].max() < 10 and np.nonzero(img[1])[1].min() >= 10


def test_seeded_reset_is_deterministic():
    a, b = SoccerTwosEnv(), SoccerTwosEnv()
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    for _ in range(20):
        acts = {k: np.array([1, 2, 1]) for k in oa}
        oa, *_ = a.step(acts)
        ob, *_ = b.step(acts)
    np.testing.assert_array_equal(a.state(), b.state())
