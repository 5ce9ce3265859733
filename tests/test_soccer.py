"""SoccerTwos (envs.games.soccer) against docs/soccer_spec.md, in-process."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from envs.games import soccer
from envs.games.soccer import AGENTS, SoccerTwosEnv
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
    obs, _ = e.reset(seed=0)
    assert set(obs) == {AGENTS[0], AGENTS[2]} and e.agents == [AGENTS[0], AGENTS[2]]
    obs, rew, *_ = e.step({a: np.array([1, 0, 0]) for a in obs})
    assert set(obs) == {AGENTS[1], AGENTS[3]} and len(e.agents) == 4  # agents 1 and 3 join at step 1
    x0 = e.pos[0, 0]
    obs, *_ = e.step({AGENTS[0]: np.array([2, 0, 0]), AGENTS[1]: np.array([0, 0, 0])})  # 0's action is ignored
    assert e.pos[0, 0] > x0  # agent 0 kept its last action (forward) between decisions


def test_parallel_api_and_visual():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(soccer.parallel_env(max_steps=60), num_cycles=200)
        parallel_api_test(soccer.parallel_env(death_step=5, visual=True, max_steps=40), num_cycles=100)
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
