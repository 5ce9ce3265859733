"""The Unity adapter against the stand-in player over real gRPC on 127.0.0.1: PettingZoo conformance,
sensors as real scenes send them, agents that die and respawn with fresh ids, decision periods,
several training areas, Unity's step order, action checks in the player, restarts."""
from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
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


def vec(o) -> np.ndarray:
    """The vector sensor of an observation (the last sensor in Unity's order)."""
    return o[-1] if isinstance(o, tuple) else o


def chase(o) -> np.ndarray:
    o = vec(o)
    tx, ty = o[4] - 0.07, o[5]
    a0 = 1 if tx > 0.01 else (2 if tx < -0.01 else 0)
    a1 = 1 if ty > 0.01 else (2 if ty < -0.01 else 0)
    return np.array([a0, a1, 2 if (np.hypot(o[4], o[5]) < 0.09 and o[4] > 0) else 0])


def strict_api_test(env, cycles: int) -> None:
    """PettingZoo's parallel_api_test, with its "live agent not given" / "dead agent given" warnings as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", "Live agent was not given")
        warnings.filterwarnings("error", "Agent was given")
        parallel_api_test(env, num_cycles=cycles)


def test_parallel_api_side_channels_and_player_log(tmp_path):
    env = make(tmp_path, "--max-steps", "40", engine={"time_scale": 5.0, "width": 32, "height": 32},
               environment_parameters={"ball_touch": 0.5})
    try:
        strict_api_test(env, 120)
        assert env.behavior_names == ["SoccerTwos?team=0", "SoccerTwos?team=1"]
        space = env.observation_space(A0)
        assert [s.shape for s in space] == [(192,), (16,)]  # stacked rays, then the vector sensor (name order)
        obs, _ = env.reset()
        names = set(obs)
        stats = {}
        for t in range(1, 41):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})  # nobody moves
            stats.update({k: (v, agg) for k, v, agg in env.drain_stats()})
        assert all(trunc[a] for a in names) and not any(term[a] for a in names)
        # Unity's order: the time-out and the same agents' first decisions of the next episode, in one message
        assert len(env.agents) == 4 and all("?episode=" in a for a in env.agents)
        base = lambda a: a.split("?episode")[0]  # noqa: E731
        assert {base(a) for a in env.agents} == {base(a) for a in names} and not set(env.agents) & names
        assert stats["SoccerTwos/ball_touch"] == (0.5, "MOST_RECENT")  # the player used the parameter we sent
        assert stats["SoccerTwos/Episode Length"] == (40.0, "AVERAGE")
    finally:
        env.close()
    text = (tmp_path / "run_logs" / "Player-0.log").read_text()
    assert "'time_scale': 5.0" in text and "'width': 32" in text and "ball_touch = 0.5" in text
    assert "Action check:" in text and " 0 rejected" in text


def test_parallel_api_with_periods_deaths_respawns_and_areas(tmp_path):
    env = make(tmp_path, "--max-steps", "30", "--decision-period", "2", "--team1-decision-period", "3", "--stagger",
               "--death-step", "7", "--respawn-delay", "2", num_areas=2)
    try:
        strict_api_test(env, 150)
    finally:
        env.close()


@pytest.mark.parametrize("mode", [["--no-rays"], ["--uncompressed-visual"], ["--visual-layout", "hwc"]],
                         ids=["png-chw", "raw-chw", "png-hwc-player"])
def test_visual_observations_arrive_chw(tmp_path, mode):
    env = make(tmp_path, "--visual", *mode)
    try:
        obs, _ = env.reset()
        space = env.observation_space(A0)
        assert space[0].shape == (3, 12, 20) and space[1].shape == (16,)
        for _ in range(5):
            for a in (A0, A3):
                a = next(x for x in env.agents if x.startswith(a))
                img, v = obs[a]
                assert img.shape == (3, 12, 20) and img.dtype == np.float32 and space.contains(obs[a])
                assert img[0].sum() == 2 and img[1].sum() == 2 and img[2].sum() == 1
                x, y = v[0] + v[4], v[1] + v[5]  # ball position in the agent's own frame
                col, row = (x + 1.0) / 2.0 * 20, (0.6 - y) / 1.2 * 12
                r, c = np.argwhere(img[2] == 1.0)[0]
                assert abs(r + 0.5 - row) <= 1.0 and abs(c + 0.5 - col) <= 1.0
            obs, *_ = env.step({a: np.array([1, 1, 0]) for a in env.agents})
    finally:
        env.close()


def test_camera_behavior_png(tmp_path):
    env = make(tmp_path, "--camera", "--camera-size", "24x40")
    try:
        obs, infos = env.reset()
        assert env.behavior_names == ["SoccerTwos?team=0", "SoccerTwosCamera?team=1"]
        cam = "SoccerTwosCamera?team=1?agent_id=2"
        img, v = obs[cam]
        assert img.shape == (3, 24, 40) and v.shape == (16,) and img[2].sum() == 1  # PNG decoded to CHW
        assert [s.shape for s in env.observation_space(A0)] == [(192,), (16,)]
    finally:
        env.close()


def test_action_mask_is_inverted_to_one_allowed(tmp_path):
    env = make(tmp_path, "--mask-kicks")
    seen = set()
    try:
        obs, infos = env.reset()
        for _ in range(150):
            for a, o in obs.items():
                if not infos[a]["deciding"]:
                    continue
                mask = infos[a]["action_mask"]
                assert mask.dtype == np.int8 and mask.shape == (9,)
                assert (mask[:7] == 1).all()
                far = np.hypot(vec(o)[4], vec(o)[5]) > 0.09
                assert list(mask[7:]) == ([0, 0] if far else [1, 1])
                seen.add(bool(far))
            if seen == {True, False}:
                break
            obs, _, _, _, infos = env.step({a: chase(o) for a, o in obs.items() if a in env.agents})
    finally:
        env.close()
    assert seen == {True, False}


def test_the_player_checks_every_action_and_logs_what_it_rejects(tmp_path):
    env = make(tmp_path, "--mask-kicks", "--no-rays")
    try:
        obs, infos = env.reset()
        far = next(a for a in env.agents if infos[a]["action_mask"][8] == 0)
        bad = {a: np.zeros(3, int) for a in env.agents}
        bad[A0 if far != A0 else A1] = np.array([0, 5, 0])  # out of range
        bad[far] = np.array([0, 0, 2])  # a masked hard kick
        env.step(bad)
        env.step({a: np.zeros(3, int) for a in env.agents})
    finally:
        env.close()
    text = (tmp_path / "run_logs" / "Player-0.log").read_text()
    uid = lambda a: a.split("agent_id=")[1]  # noqa: E731
    assert "branch 1 value 5 is out of range 0..2" in text
    assert f"agent {uid(far)}: branch 2 value 2 is masked" in text
    assert "8 actions received, 2 rejected (masked 1, out of range 1)" in text


def test_player_side_checks_missing_and_unasked_actions():
    """What mlagents never sends (it fills missing actions), checked on the player itself."""
    from envs.unity.standin import StandinPlayer, _Area, build_parser
    from envs.games.soccer import SoccerTwosEnv

    logged = []
    player = StandinPlayer(build_parser().parse_args(["--no-rays"]))
    player.log = logged.append
    player.areas = [_Area(0, SoccerTwosEnv())]
    player.areas[0].game.reset(seed=0)
    player.deciders = {"SoccerTwos?team=0": [(0, 0, 0, None), (0, 1, 1, None)], "SoccerTwos?team=1": [(0, 2, 2, None)]}
    msg = UnityMessageProto()
    acts = msg.unity_input.rl_input.agent_actions
    acts["SoccerTwos?team=0"].value.add().discrete_actions.extend([1, 0, 0])  # agent 1's action is missing
    for _ in range(2):  # one more than team 1 asked for
        acts["SoccerTwos?team=1"].value.add().discrete_actions.extend([0, 0, 0])
    acts["Other?team=0"].value.add()
    actions = player._read_actions(msg.unity_input.rl_input)
    assert list(actions[0]) == [A0, A2]
    assert player.rejected == {"missing": 1, "unasked": 1, "unknown behavior": 1}
    assert any("agent 1: no action for its decision request" in m for m in logged)


def test_agents_join_leave_decide_at_their_steps_and_respawn_with_fresh_ids(tmp_path):
    env = make(tmp_path, "--decision-period", "2", "--stagger", "--death-step", "3", "--respawn-delay", "1",
               "--max-steps", "8", "--no-rays")
    try:
        obs, infos = env.reset()
        assert set(obs) == {A0, A2} and env.agents == [A0, A2] and env.possible_agents == [A0, A2]
        obs, rew, term, trunc, infos = env.step({A0: np.array([1, 0, 0]), A2: np.array([0, 0, 0])})
        assert env.agents == [A0, A2, A1, A3] and set(obs) == set(rew) == set(term) == {A0, A1, A2, A3}
        assert [a for a in env.agents if infos[a]["deciding"]] == [A1, A3]  # 1 and 3 join at their first decision
        np.testing.assert_array_equal(obs[A0], env._last_obs[A0])  # waiting: its last observation
        # A0 has no pending decision: its action is ignored and it keeps going forward
        obs, rew, term, trunc, infos = env.step({A1: np.zeros(3, int), A3: np.zeros(3, int), A0: np.array([2, 0, 0])})
        assert {a for a in env.agents if infos[a]["deciding"]} == {A0, A2} and obs[A0][2] > 0
        obs, rew, term, trunc, infos = env.step({A0: np.zeros(3, int), A2: np.zeros(3, int)})
        assert term == {A0: False, A1: True, A2: False, A3: True} and not any(trunc.values())  # early death
        assert env.agents == [A0, A2]
        obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents if infos[a]["deciding"]})
        assert env.agents == [A0, A2]  # back on the field at step 4, but their first decision is at step 5
        obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents if infos[a]["deciding"]})
        new = [a for a in env.agents if a not in (A0, A2)]  # respawned, with fresh Unity ids 4 and 5
        assert sorted(new) == ["SoccerTwos?team=0?agent_id=4", "SoccerTwos?team=1?agent_id=5"]
        assert all(rew[a] == 0.0 and not term[a] and infos[a]["deciding"] for a in new)
        for t in range(6, 9):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents if infos[a]["deciding"]})
        assert all(trunc[a] for a in (A0, A2, *new)) and not any(term.values())
        # the next episode's first decisions came in the same message: same Unity ids, new PettingZoo agents
        assert env.agents == [f"{A0}?episode=1", f"{A2}?episode=1"]  # (ids 4 and 5 decide first at step 1 again)
        obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})
        assert env.agents[2:] == ["SoccerTwos?team=0?agent_id=4?episode=1", "SoccerTwos?team=1?agent_id=5?episode=1"]
    finally:
        env.close()
    assert (tmp_path / "run_logs" / "Player-0.log").read_text().count("RESET received") == 1


def test_training_areas_have_their_own_groups_and_ids(tmp_path):
    env = make(tmp_path, "--no-rays", num_areas=3)
    try:
        obs, infos = env.reset()
        groups = sorted({infos[a]["group_id"] for a in env.agents})
        ids = sorted(infos[a]["agent_id"] for a in env.agents)
        assert groups == [1, 2, 3, 4, 5, 6] and ids == list(range(12))
        assert all(infos[a]["group_id"] == 1 + 2 * (infos[a]["agent_id"] // 4) + (infos[a]["agent_id"] % 4) // 2
                   for a in env.agents)
    finally:
        env.close()


def test_goal_terminates_with_group_rewards(tmp_path):
    env = make(tmp_path, "--no-rays")
    try:
        obs, _ = env.reset()
        total = dict.fromkeys([A0, A1, A2, A3], 0.0)
        stats = {}
        for t in range(1, 401):
            obs, rew, term, trunc, infos = env.step({a: (chase(o) if a in (A0, A1) else np.zeros(3, int))
                                                     for a, o in obs.items() if a in env.agents})
            for a, r in rew.items():
                if a in total:
                    total[a] += r
            stats.update({k: v for k, v, _ in env.drain_stats()})
            if any(term.get(a) for a in total):
                break
        assert all(term[a] for a in total) and not any(trunc[a] for a in total)
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


def test_sensors_that_change_shape_are_one_line_and_close_the_player(tmp_path):
    env = make(tmp_path, "--max-steps", "3", "--change-sensors-after", "1", "--no-rays")
    try:
        env.reset()
        with pytest.raises(Exception) as err:
            for _ in range(10):
                env.step({a: np.zeros(3, int) for a in env.agents})
        msg = str(err.value)
        assert "\n" not in msg and "behavior 'SoccerTwos?team=" in msg and "[17]" in msg and "[16]" in msg
        assert "must keep their shapes" in msg and env._unity is None  # the player was closed
    finally:
        env.close()


def test_buffer_sensor_is_refused_naming_behavior_and_sensor(tmp_path):
    with pytest.raises(Exception) as err:
        env = make(tmp_path, "--buffer-sensor", "--no-rays")
        try:
            env.reset()
        finally:
            env.close()
    msg = str(err.value)
    assert "\n" not in msg and "SoccerTwos?team=0" in msg and "'BufferSensor'" in msg and "variable-length" in msg


def test_crashed_and_killed_players_are_restarted_within_limits(tmp_path):
    marker = tmp_path / "crashed"
    env = make(tmp_path, "--crash-after", "5", "--crash-marker", str(marker), "--max-steps", "1000", "--no-rays",
               restarts_rate_limit_n=2)
    try:
        obs, _ = env.reset()
        for i in range(6):
            obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})
        assert marker.exists() and env.agents == [] and all(trunc.values()) and not any(term.values())
        assert all(infos[a]["player_restarted"] for a in (A0, A1, A2, A3))
        assert env.restart.count == 1
        obs, _ = env.reset()
        assert {a.split("?episode")[0] for a in obs} == {A0, A1, A2, A3}
        env._unity._process.kill()  # a player killed from outside
        obs, rew, term, trunc, infos = env.step({a: np.zeros(3, int) for a in env.agents})
        assert all(trunc.values()) and env.restart.count == 2
        env.reset()
        env.step({a: np.zeros(3, int) for a in env.agents})  # training continues on the new player
    finally:
        env.close()
    assert (tmp_path / "run_logs" / "Player-0.log").read_text().count("Connected:") == 3


def test_dead_player_beyond_the_limits_is_a_one_line_error(tmp_path):
    env = make(tmp_path, "--crash-after", "2", "--no-rays", max_lifetime_restarts=0)
    try:
        env.reset()
        with pytest.raises(UnityPlayerDied) as err:
            for _ in range(3):
                env.step({a: np.zeros(3, int) for a in env.agents})
        msg = str(err.value)
        assert "\n" not in msg and "max_lifetime_restarts=0" in msg and "return code 3" in msg
    finally:
        env.close()


def test_a_hung_player_times_out_and_is_killed(tmp_path):
    env = make(tmp_path, "--hang-after", "2", "--no-rays", timeout_wait=2, max_lifetime_restarts=0)
    proc = env._unity._process
    try:
        env.reset()
        with pytest.raises(UnityPlayerDied, match="took too long"):
            for _ in range(3):
                env.step({a: np.zeros(3, int) for a in env.agents})
        assert proc.wait(timeout=5) is not None  # killed, not left hanging
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
