"""The env layer: arrays per behavior, truncation vs termination, turn-based credit, workers = in-process."""
from __future__ import annotations

import numpy as np
import pytest

from envs.adapter import ArrayEnv
from envs.registry import EnvError, behavior_of, make_env, team_of
from envs.vector import VecEnv, default_factory


def test_behavior_and_team_names():
    assert behavior_of("adversary_0") == "adversary" and behavior_of("agent_12") == "agent"
    assert behavior_of("SoccerTwos?team=1?agent_id=3") == "SoccerTwos" and team_of("SoccerTwos?team=1?agent_id=3") == 1
    env = ArrayEnv("mpe2.simple_adversary_v3", {})
    assert env.spec.names == ["adversary", "agent"] and env.spec.behavior("agent").n_agents == 2


def test_truncation_gives_final_obs_and_resets():
    env = ArrayEnv("envs.games.coordination", {"max_cycles": 3})
    o = env.out
    for t in range(3):
        o["agent/act_d"][:] = 0
        stats = env.step()
    assert stats is not None and stats.length == 3
    assert o["agent/truncated"].all() and not o["agent/terminated"].any()
    assert o["agent/final_obs"][0, -1] == pytest.approx(0.0)        # time left 0 at the end
    assert o["agent/obs"][0, -1] == pytest.approx(1.0)              # already the next episode's first obs
    assert o["agent/active"].all()


def test_early_termination_deactivates_the_agent():
    env = ArrayEnv("envs.games.coordination", {"max_cycles": 5, "die_at": 2})
    o = env.out
    for t in range(2):
        o["agent/act_d"][:] = 0
        env.step()
    assert o["agent/terminated"].tolist() == [False, True]
    assert o["agent/active"].tolist() == [True, False] and o["agent/alive"].tolist() == [True, False]
    o["agent/act_d"][:] = 0
    env.step()
    assert not o["agent/terminated"].any()


def test_turn_based_game_credits_the_loser_on_the_winners_move():
    env = ArrayEnv("pettingzoo.classic.tictactoe_v3", {})
    o = env.out
    assert env.spec.turn_based and o["player/active"].tolist() == [True, False]
    # player_1 plays 0, 1, 2 (top row... in tictactoe_v3 cells are column-major); player_2 plays 3, 4
    stats = None
    for cell in [0, 3, 1, 4, 2]:
        who = int(np.flatnonzero(o["player/active"])[0])
        assert o["player/mask"][who, cell] == 1.0
        o["player/act_d"][who] = cell
        stats = env.step()
    assert stats is not None, "the game should have ended"
    assert stats.returns["player"].tolist() == [1.0, -1.0]
    assert o["player/reward"].tolist() == [1.0, -1.0]            # both credited in the final step
    assert o["player/terminated"].all()


def test_workers_match_in_process_for_the_same_seed():
    kw = {"N": 3, "local_ratio": 0.5, "max_cycles": 25}
    spec = ArrayEnv("mpe2.simple_spread_v3", kw).spec
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, (40, 4, 3, 1))
    traces = []
    for num_envs, num_areas in [(1, 4), (2, 2)]:
        with VecEnv(default_factory("mpe2.simple_spread_v3", kw), spec, num_envs, num_areas, seed=11) as v:
            trace = [v.arrays["agent/obs"].copy()]
            for a in actions:
                v.arrays["agent/act_d"][:] = a
                v.step()
                trace.append(v.arrays["agent/obs"].copy())
            traces.append(np.stack(trace))
    assert np.array_equal(traces[0], traces[1])


def test_bad_env_ids_give_one_line_errors():
    with pytest.raises(EnvError, match="cannot import module 'no_such_module'"):
        make_env("no_such_module")
    with pytest.raises(EnvError, match="Unknown game 'nope'"):
        make_env("openspiel:nope")
    with pytest.raises(EnvError, match="bad env_kwargs"):
        make_env("mpe2.simple_spread_v3", {"bogus": 1})


def test_supersuit_padding_lets_different_agents_share_a_behavior():
    all_one = {"adversary_0": "mpe", "agent_0": "mpe", "agent_1": "mpe"}
    with pytest.raises(EnvError, match="different spaces"):
        ArrayEnv("mpe2.simple_adversary_v3", {}, behavior_map=all_one)
    env = ArrayEnv("mpe2.simple_adversary_v3", {}, behavior_map=all_one, supersuit=["pad_observations_v0"])
    assert env.spec.names == ["mpe"] and env.spec.behavior("mpe").obs_shape == (10,)
    with pytest.raises(EnvError, match=r"env_settings.supersuit\[0\]: unknown SuperSuit wrapper 'nope_v0'"):
        ArrayEnv("mpe2.simple_adversary_v3", {}, supersuit=["nope_v0"])


def test_continuous_actions_are_rescaled_to_the_box():
    env = ArrayEnv("mpe2.simple_spread_v3", {"continuous_actions": True, "max_cycles": 5})
    spec = env.spec.behavior("agent")
    assert spec.action.continuous_size == 5 and spec.action.low[0] == 0.0 and spec.action.high[0] == 1.0
    env.out["agent/act_c"][:] = 5.0   # beyond [-1, 1]: clipped to the top of the Box, never out of bounds
    env.step()
    env.out["agent/act_c"][:] = -1.0
    env.step()


def test_an_error_inside_a_worker_process_reaches_the_user_as_one_line():
    spec = ArrayEnv("envs.games.coordination", {}).spec
    with pytest.raises(EnvError) as err:
        VecEnv(default_factory("envs.games.coordination", {"bogus": 1}), spec, num_envs=2, num_areas=1)
    assert "bad env_kwargs" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("env_id", ["mpe2.simple_spread_v3", "mpe2.simple_adversary_v3"])
def test_mpe_state_built_from_observations_equals_env_state(env_id):
    """The MPE shortcut (state = observations concatenated) gives env.state() exactly, at every
    step and at truncation (``final_state``), for one and for several behaviors."""
    kw = {"max_cycles": 5}
    fast, slow = ArrayEnv(env_id, kw, seed=3), ArrayEnv(env_id, kw, seed=3)
    assert fast._state_from_obs
    slow._state_from_obs = False
    slow.reset(3)
    fast.reset(3)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(12):
        for b in fast.spec.behaviors:
            acts = rng.integers(0, b.action.discrete_branches[0], fast.out[f"{b.name}/act_d"].shape)
            fast.out[f"{b.name}/act_d"][...] = acts
            slow.out[f"{b.name}/act_d"][...] = acts
        np.testing.assert_array_equal(fast.out["state"], slow.env.state())
        ended += fast.step() is not None
        slow.step()
        np.testing.assert_array_equal(fast.out["state"], slow.out["state"])
        np.testing.assert_array_equal(fast.out["final_state"], slow.out["final_state"])
    assert ended == 2 and np.abs(fast.out["final_state"]).sum() > 0


def test_environment_parameters_reach_an_in_process_game_and_are_refused_where_nothing_reads_them():
    """YAML ``environment_parameters`` reach an env that reads them (the SoccerTwos game, as its Unity
    scene does: drawn at each episode start) before its first episode; an env that reads none, or a
    parameter the game does not read, stops with one line naming it."""
    from envs.adapter import ArrayEnv
    from envs.errors import EnvError

    env = ArrayEnv("envs.games.soccer", {"max_steps": 20}, environment_parameters={"ball_touch": 1.0})
    game = env.env.unwrapped if hasattr(env.env, "unwrapped") else env.env
    assert game.ball_touch == 1.0  # the first episode already has it
    env.set_environment_parameters({"ball_touch": {"sampler_type": "uniform",
                                                   "sampler_parameters": {"min_value": 2.0, "max_value": 3.0}}})
    draws = set()
    for _ in range(4):
        env.reset()
        assert 2.0 <= game.ball_touch <= 3.0
        draws.add(game.ball_touch)
    assert len(draws) == 4  # re-drawn at every episode start
    with pytest.raises(EnvError, match=r"environment_parameters.gravity: SoccerTwos reads only ball_touch"):
        env.set_environment_parameters({"gravity": 9.8})
    with pytest.raises(EnvError, match=r"environment_parameters \(ball_touch\): env 'mpe2.simple_spread_v3' reads no "
                                       r"environment parameters"):
        ArrayEnv("mpe2.simple_spread_v3", {}, environment_parameters={"ball_touch": 1.0})


def test_evaluation_plays_without_parameters_nothing_reads_and_bad_intervals_are_one_line():
    from envs.adapter import ArrayEnv
    from envs.errors import EnvError
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = ArrayEnv("mpe2.simple_spread_v3", {}, environment_parameters={"ball_touch": 1.0}, parameters_required=False)
    assert env.spec.behaviors and any("reads no environment parameters" in str(w.message) for w in caught)
    env.close()
    with pytest.raises(EnvError, match=r"multirangeuniform intervals must be \[min, max\] pairs"):
        ArrayEnv("envs.games.soccer", {}, environment_parameters={"ball_touch": {
            "sampler_type": "multirangeuniform", "sampler_parameters": {"intervals": [[1.0, 1.0]]}}})


def test_runs_whose_trainers_read_no_state_do_not_compute_it():
    """IPPO and MA-POCA never read ``env.state()``: their env copies skip it (cooperative_pong renders its
    whole frame for it at every step); MAPPO and QMIX get it."""
    from marl.run import needs_state
    from marl_helpers import cfg_of

    def cfg(kind):
        return cfg_of({"behaviors": {"agent": {"trainer_type": kind}}, "env_settings": {"env_path": "mpe2.simple_spread_v3"}})

    assert [needs_state(cfg(k)) for k in ("ippo", "poca", "mappo", "qmix")] == [False, False, True, True]
    env = ArrayEnv("mpe2.simple_spread_v3", {"max_cycles": 5}, write_state=False)
    for _ in range(6):  # through an episode end
        env.step()
    assert not env.out["state"].any() and not env.out["final_state"].any()
    full = ArrayEnv("mpe2.simple_spread_v3", {"max_cycles": 5})
    full.step()
    assert full.out["state"].any()
