"""Agents that come and go, seen by the env layer (envs.adapter.ArrayEnv): slots per behavior and team,
reused when an agent leaves and a new one arrives, trajectory and group ids that survive the reuse,
episodes per group of a Unity player with several training areas, slots sized from the first player
(env_settings.env_kwargs.agent_slots preallocates more), and the generic PettingZoo path keyed on
agent names."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from envs.adapter import ArrayEnv
from envs.unity import UnityArrayEnvFactory, UnityEnvError
from unity_helpers import STANDIN, free_port, time_limit

_time_limit = time_limit(90)


def factory(tmp_path, *args: str, num_areas: int = 1, env_kwargs: dict | None = None) -> UnityArrayEnvFactory:
    kw = dict(env_path=STANDIN, base_port=free_port(), no_graphics=True, timeout_wait=20, env_args=list(args),
              log_dir=str(tmp_path / "run_logs"), engine={}, environment_parameters=None, seed=3,
              num_areas=num_areas)
    return UnityArrayEnvFactory(kw, env_kwargs)


def test_respawns_reuse_slots_trajectories_survive_and_areas_are_episodes(tmp_path):
    f = factory(tmp_path, "--no-rays", "--max-steps", "12", "--death-step", "5", "--respawn-delay", "0", num_areas=2)
    env = f(0, None)
    try:
        (b,) = env.spec.behaviors
        assert b.name == "SoccerTwos" and b.n_agents == 8 and b.teams == (0, 0, 0, 0, 1, 1, 1, 1)
        o = env.out
        assert o["SoccerTwos/active"].all() and sorted(o["SoccerTwos/group_id"].tolist()) == [1, 1, 2, 2, 3, 3, 4, 4]
        seen_traj = set(o["SoccerTwos/traj_id"].tolist())
        assert len(seen_traj) == 8
        stats = []
        for t in range(1, 13):
            before = o["SoccerTwos/traj_id"].copy()
            groups = o["SoccerTwos/group_id"].copy()
            o["SoccerTwos/act_d"][...] = 0
            s = env.step()
            if s is not None:
                stats.append((t, s))
            if t == 5:  # bodies 1 and 3 of both areas die; their replacements arrive in the same message
                died = o["SoccerTwos/terminated"]
                assert died.sum() == 4 and not o["SoccerTwos/truncated"].any()
                assert o["SoccerTwos/alive"][died].all() and o["SoccerTwos/active"][died].all()  # slots reused at once
                assert (o["SoccerTwos/traj_id"][died] != before[died]).all()  # new trajectories ...
                assert (o["SoccerTwos/group_id"][died] == groups[died]).all()  # ... in the same group (same area)
                assert (o["SoccerTwos/traj_id"][~died] == before[~died]).all()
            new = set(o["SoccerTwos/traj_id"].tolist()) - seen_traj
            assert not (new & set(before.tolist()))
            seen_traj |= set(o["SoccerTwos/traj_id"].tolist())
        # both areas time out together at step 12: one report of the two groups' episodes (all 8 slots)
        assert [t for t, _ in stats] == [12]
        (t, s), = stats
        assert s.length == 12 and not np.isnan(s.returns["SoccerTwos"]).any()
        assert "unity_stats" in s.info and {k for k, _, _ in s.info["unity_stats"]} >= {"SoccerTwos/Episode Length"}
        assert o["SoccerTwos/truncated"].all() and o["SoccerTwos/active"].all()  # the next episode already began
    finally:
        env.close()


def test_slots_come_from_the_first_player_and_agent_slots_preallocates(tmp_path):
    args = ("--no-rays", "--decision-period", "2", "--stagger", "--max-steps", "6")
    f = factory(tmp_path, *args, env_kwargs={"discovery_steps": 0})  # sees only the agents deciding at step 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = f(0, None)
        try:
            assert env.spec.behaviors[0].teams == (0, 1)
            for _ in range(4):
                env.step()
        finally:
            env.close()
    msgs = [str(w.message) for w in caught if "slots" in str(w.message)]
    assert len(msgs) == 2 and all("2 agents at once but 1 slots" in m and "agent_slots" in m for m in msgs), msgs
    f = factory(tmp_path, *args, env_kwargs={"discovery_steps": 0, "agent_slots": {"SoccerTwos": 2}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message=".*slots")  # no agent left out
        env = f(0, None)
        try:
            assert env.spec.behaviors[0].teams == (0, 0, 1, 1)
            env.step()
            assert env.out["SoccerTwos/alive"].all()
            worker = f(1, None)  # a worker: the spec of the first player, its own player
            assert worker.spec is env.spec
            worker.close()
        finally:
            env.close()
    with pytest.raises(UnityEnvError, match="agent_slots: the scene has no behavior 'Nope'"):
        factory(tmp_path, *args, env_kwargs={"agent_slots": {"Nope": 3}})(0, None)
    with pytest.raises(UnityEnvError, match="env_kwargs.max_steps: a Unity build takes only"):
        factory(tmp_path, env_kwargs={"max_steps": 3})


def test_generic_pettingzoo_env_keys_slots_on_agent_names():
    """The in-process game: respawned agents are other PettingZoo agents (possible_agents lists them)."""
    env = ArrayEnv("envs.games.soccer", {"death_step": 2, "respawn_delay": 1, "max_steps": 6, "decision_period": 2,
                                         "team1_decision_period": 3})
    b = env.spec.behaviors[0]
    assert b.agents[4:] == ("SoccerTwos?team=0?agent_id=4", "SoccerTwos?team=1?agent_id=5") and b.n_agents == 6
    o = env.out
    actives = []
    for t in range(1, 7):
        o["SoccerTwos/act_d"][...] = 1
        s = env.step()
        actives.append(o["SoccerTwos/active"].copy())
        if t == 2:
            assert o["SoccerTwos/terminated"].tolist() == [False, True, False, True, False, False]
    # decisions: team 0 every 2 steps, team 1 every 3; the newcomers (slots 4, 5) from their first decision
    assert [a.astype(int).tolist() for a in actives[:5]] == [
        [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]]
    assert s is not None and s.length == 6 and list(np.isnan(s.returns["SoccerTwos"])) == [False] * 6
