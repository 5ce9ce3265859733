"""The Unity adapter against the stand-in player over real gRPC on 127.0.0.1."""
from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from envs.unity import UnityPlayerDied, make_unity_env
from unity_helpers import STANDIN, free_port, time_limit

A0, A1, A2, A3 = (f"SoccerTwos?team={k // 2}?agent_id={k}" for k in range(4))


_time_limit = time_limit(90)


def make(tmp_path, *args: str, **kw):
    base = dict(worker_id=0, base_port=free_port(), no_graphics=True, timeout_wait=20, env_args=list(args),
                log_dir=str(tmp_path / "run_logs"), engine={}, environment_parameters=None, seed=1)
    base.update(kw)
    return make_unity_env(STANDIN, **base)


def chase(o: np.ndarray) -> np.ndarray:
    tx, ty = o[4] - 0.07, o[5]
    a0 = 1 if tx > 0.01 else (2 if tx < -0.01 else 0)
    a1 = 1 if ty > 0.01 else (2 if ty < -0.01 else 0)
    return np.array([a0, a1, 2 if (np.hypot(o[4], o[5]) < 0.09 and o[4] > 0) else 0])


def test_parallel_api_side_channels_and_player_log(tmp_path):
    env = make(tmp_path, "--max-steps", "40", engine={"time_scale": 5.0, "width": 32, "height": 32},
               environment_parameters={"ball_touch": 0.5})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parallel_api_test(env, num_cycles=120)
        assert env.possible_agents == [A0, A1, A2, A3]
        assert env.behavior_names == ["SoccerTwos?team=0", "SoccerTwos?team=1"]
        obs, _ = env.reset()
        for t in range(1, 41):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})  # nobody moves
            assert (env.agents == []) == (t == 40)
        assert all(trunc.values()) and not any(term.values())
        stats = {k: (v, agg) for k, v, agg in infos["unity_stats"]}
        assert stats["SoccerTwos/ball_touch"] == (0.5, "MOST_RECENT")  # the player used the parameter we sent
        assert stats["SoccerTwos/Episode Length"] == (40.0, "AVERAGE")
    finally:
        env.close()
    text = (tmp_path / "run_logs" / "Player-0.log").read_text()
    assert "'time_scale': 5.0" in text and "'width': 32" in text and "ball_touch = 0.5" in text


@pytest.mark.parametrize("mode", [[], ["--uncompressed-visual"], ["--visual-layout", "hwc"]],
                         ids=["png-chw", "raw-chw", "png-hwc-player"])
def test_visual_observations_arrive_chw(tmp_path, mode):
    env = make(tmp_path, "--visual", *mode)
    try:
        obs, _ = env.reset()
        space = env.observation_space(A0)
        assert space[0].shape == (3, 12, 20) and space[1].shape == (16,)
        for _ in range(5):
            for a in (A0, A3):
                img, vec = obs[a]
                assert img.shape == (3, 12, 20) and img.dtype == np.float32 and space.contains(obs[a])
                assert img[0].sum() == 2 and img[1].sum() == 2 and img[2].sum() == 1
                x, y = vec[0] + vec[4], vec[1] + vec[5]  # ball position in the agent's own frame
                col, row = (x + 1.0) / 2.0 * 20, (0.6 - y) / 1.2 * 12
                r, c = np.argwhere(img[2] == 1.0)[0]
                assert abs(r + 0.5 - row) <= 1.0 and abs(c + 0.5 - col) <= 1.0
            obs, *_ = env.step({a: np.array([1, 1, 0]) for a in env.agents})
    finally:
        env.close()


def test_action_mask_is_inverted_to_one_allowed(tmp_path):
    env = make(tmp_path, "--mask-kicks")
    seen = set()
    try:
        obs, infos = env.reset()
        for _ in range(150):
            for a, o in obs.items():
                mask = infos[a]["action_mask"]
                assert mask.dtype == np.int8 and mask.shape == (9,)
                assert (mask[:7] == 1).all()
                far = np.hypot(o[4], o[5]) > 0.09
                assert list(mask[7:]) == ([0, 0] if far else [1, 1])
                seen.add(bool(far))
            if seen == {True, False}:
                break
            obs, _, _, _, infos = env.step({a: chase(o) for a, o in obs.items()})
            if not env.agents:
                obs, infos = env.reset()
    finally:
        env.close()
    assert seen == {True, False}


def test_agents_join_leave_decide_at_their_steps_and_truncate(tmp_path):
    env = make(tmp_path, "--decision-period", "2", "--stagger", "--death-step", "3", "--max-steps", "8")
    try:
        obs, infos = env.reset()
        assert set(obs) == {A0, A2} and env.agents == [A0, A2] and env.possible_agents == [A0, A2]
        obs, rew, term, trunc, infos = env.step({A0: np.array([1, 0, 0]), A2: np.array([0, 0, 0])})
        assert set(obs) == {A1, A3} and env.agents == [A0, A2, A1, A3]  # 1 and 3 join at their first decision
        assert env.possible_agents == [A0, A2, A1, A3] and set(rew) == {A0, A1, A2, A3}
        # A0 has no pending decision: its action is ignored and it keeps going forward
        obs, rew, term, trunc, infos = env.step({A1: np.zeros(3, int), A3: np.zeros(3, int), A0: np.array([2, 0, 0])})
        assert set(obs) == {A0, A2} and obs[A0][2] > 0  # own-frame x velocity still positive
        obs, rew, term, trunc, infos = env.step({A0: np.zeros(3, int), A2: np.zeros(3, int)})
        assert term == {A0: False, A1: True, A2: False, A3: True} and not any(trunc.values())  # early death
        assert set(obs) == {A1, A3} and env.agents == [A0, A2]  # final observations of the leavers
        for t in range(4, 9):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in obs if a in env.agents})
            assert A1 not in rew and A3 not in rew
        assert trunc == {A0: True, A2: True} and term == {A0: False, A2: False} and env.agents == []
        obs, _ = env.reset()  # the player already began the next episode: no RESET is sent
        assert set(obs) == {A0, A2}
    finally:
        env.close()
    assert (tmp_path / "run_logs" / "Player-0.log").read_text().count("RESET received") == 1


def test_goal_terminates_with_group_rewards(tmp_path):
    env = make(tmp_path)
    try:
        obs, _ = env.reset()
        total = dict.fromkeys([A0, A1, A2, A3], 0.0)
        for t in range(1, 401):
            obs, rew, term, trunc, infos = env.step({a: (chase(o) if a in (A0, A1) else np.zeros(3, int))
                                                     for a, o in obs.items()})
            for a, r in rew.items():
                total[a] += r
            if not env.agents:
                break
        assert all(term.values()) and not any(trunc.values())
        stats = {k: v for k, v, _ in infos["unity_stats"]}
        scorer = 0 if stats["SoccerTwos/Goals Blue"] == 1.0 else 1
        assert stats["SoccerTwos/Goals Blue"] + stats["SoccerTwos/Goals Purple"] == 1.0
        win = 1 - t / 400
        winners, losers = ((A0, A1), (A2, A3)) if scorer == 0 else ((A2, A3), (A0, A1))
        for a in winners:
            assert infos[a]["group_reward"] == pytest.approx(win) and infos[a]["group_id"] == 1 + scorer
        for a in losers:
            assert infos[a]["group_reward"] == -1.0 and total[a] == -1.0
    finally:
        env.close()


def test_crashed_and_killed_players_are_restarted_within_limits(tmp_path):
    marker = tmp_path / "crashed"
    env = make(tmp_path, "--crash-after", "5", "--crash-marker", str(marker), "--max-steps", "1000",
               restarts_rate_limit_n=2)
    try:
        obs, _ = env.reset()
        for i in range(6):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})
        assert marker.exists() and env.agents == [] and all(trunc.values()) and not any(term.values())
        assert all(infos[a]["player_restarted"] for a in (A0, A1, A2, A3))
        assert env.restart.count == 1
        obs, _ = env.reset()
        assert set(obs) == {A0, A1, A2, A3}
        env._unity._process.kill()  # a player killed from outside
        obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})
        assert all(trunc.values()) and env.restart.count == 2
        env.reset()
        env.step({a: np.zeros(3, int) for a in env.agents})  # training continues on the new player
    finally:
        env.close()
    assert (tmp_path / "run_logs" / "Player-0.log").read_text().count("Connected:") == 3


def test_dead_player_beyond_the_limits_is_a_one_line_error(tmp_path):
    env = make(tmp_path, "--crash-after", "2", max_lifetime_restarts=0)
    try:
        env.reset()
        with pytest.raises(UnityPlayerDied) as err:
            for _ in range(3):
                env.step({a: np.zeros(3, int) for a in env.agents})
        msg = str(err.value)
        assert "\n" not in msg and "max_lifetime_restarts=0" in msg and "return code 3" in msg
    finally:
        env.close()


def test_editor_mode_waits_for_a_player_on_the_editor_port(tmp_path):
    port = free_port()
    player = subprocess.Popen([STANDIN, "--mlagents-port", str(port), "--connect-timeout", "30"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = make_unity_env(None, worker_id=0, base_port=5005, no_graphics=False, timeout_wait=20, env_args=[],
                             log_dir=None, engine={}, environment_parameters=None, seed=0, editor_port=port)
        obs, _ = env.reset()
        assert set(obs) == {A0, A1, A2, A3}
        env.step({a: np.zeros(3, int) for a in obs})
        env.close()
        assert player.wait(timeout=20) == 0
    finally:
        player.kill()
