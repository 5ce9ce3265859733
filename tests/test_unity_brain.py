"""A brain acts in Unity exactly as in training.

The exported ONNX file is run in onnxruntime for every agent of a stand-in player (several training
areas, agents that die and respawn into reused slots, masked kicks), fed exactly what the Unity
package feeds it: one ``obs_i`` per sensor with the arrays the agent's sensors sent (rays, then the
vector, as they arrived over gRPC), and ``action_masks`` = 1 - Unity's "masked" flags. Its
deterministic actions must equal the greedy actions of the torch policy that plays the same steps
through the env layer (the actions actually sent to the player). With ``network_settings.agent_id:
true`` every agent is given ``<Behavior>_agent<i>.onnx`` by its team and its index in its group, the
rule of ``unity_project/Assets/Editor/BrainImporter.cs``, and that file must act as its training slot.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from envs.unity import UnityArrayEnvFactory
from marl.algos.factory import make_trainer
from marl.checkpoint import FORMAT, spec_to_dict
from marl.config import parse_config
from marl.export import export_all_slots
from unity_helpers import STANDIN, free_port, time_limit

_time_limit = time_limit(120)
PLAYERS_PER_GROUP = 2  # SoccerSpec.PlayersPerTeam


def _setup(tmp_path, agent_id: bool | None, num_areas: int, *args: str):
    kw = dict(env_path=STANDIN, base_port=free_port(), no_graphics=True, timeout_wait=20, env_args=list(args),
              log_dir=str(tmp_path / "run_logs"), engine={}, environment_parameters={"ball_touch": 1.0}, seed=5,
              num_areas=num_areas)
    env = UnityArrayEnvFactory(kw)(0, None)
    net = {"hidden_units": 32, "num_layers": 2, **({} if agent_id is None else {"agent_id": agent_id})}
    cfg = parse_config({"behaviors": {"SoccerTwos": {"trainer_type": "mappo", "network_settings": net, "max_steps": 1000,
                                                      "hyperparameters": {"buffer_size": 64, "batch_size": 32}}},
                        "env_settings": {"env_path": STANDIN}})
    torch.manual_seed(0)
    trainer = make_trainer(env.spec, cfg, 1, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the near-uniform initialisation: actions depend on the observation
        for p in trainer.actor("SoccerTwos").parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    s = cfg.behavior_settings("SoccerTwos")
    payload = {"format": FORMAT, "behavior": "SoccerTwos", "trainer_type": "mappo", "step": 1, "env_id": env.spec.env_id,
               "behavior_spec": spec_to_dict(env.spec.behavior("SoccerTwos")), "state_shape": list(env.spec.state_shape),
               "network_settings": s.network_settings.model_dump(), "trainer": trainer.state_dict("SoccerTwos"), "extra": {}}
    files = export_all_slots(payload, tmp_path / "SoccerTwos.onnx")
    return env, trainer.actor("SoccerTwos"), files


def _unity_inputs(env, agent: str) -> dict[str, np.ndarray]:
    """What the Unity package feeds a brain for one agent: its sensors' arrays (as received) and the mask."""
    unity = env.env
    obs = unity._last_obs[agent]
    feeds = {f"obs_{i}": np.asarray(o, np.float32)[None] for i, o in enumerate(obs if isinstance(obs, tuple) else (obs,))}
    feeds["action_masks"] = unity._last_info[agent]["action_mask"].astype(np.float32)[None]
    return feeds


def _greedy(actor, obs_row: np.ndarray, mask_row: np.ndarray, slot: int, n_slots: int) -> np.ndarray:
    ids = torch.nn.functional.one_hot(torch.tensor([slot]), n_slots).float()[:, : actor.n_agents]
    with torch.no_grad():
        d, _, _ = actor.act(torch.from_numpy(obs_row[None]), ids, torch.from_numpy(mask_row[None]), deterministic=True)
    return d.numpy()[0]


def _importer_slot(infos: dict, agent: str, teams: list[int]) -> int:
    """BrainImporter.cs's slot of an agent: index of its team among the behavior's teams times the
    players per group, plus its index in its group (agents of a group in registration = agent-id order)."""
    me = infos[agent]
    group = sorted(i["agent_id"] for i in infos.values() if isinstance(i, dict) and i.get("group_id") == me["group_id"])
    team = int(agent.split("?team=")[1].split("?")[0])
    return teams.index(team) * PLAYERS_PER_GROUP + group.index(me["agent_id"])


def _play(env, actor, sessions, steps: int, per_slot: bool) -> tuple[int, set]:
    """Step the env with the torch policy; every deciding agent's ONNX answer must equal it."""
    b = env.spec.behavior("SoccerTwos")
    o, unity = env.out, env.env
    compared, trajs = 0, set()
    teams = sorted(set(b.teams))
    for _ in range(steps):
        infos = unity._last_info
        for agent, (name, slot) in env._slot.items():
            if not o["SoccerTwos/active"][slot]:
                continue
            want = _greedy(actor, o["SoccerTwos/obs"][slot], o["SoccerTwos/mask"][slot], slot, b.n_agents)
            if per_slot:
                file_slot = _importer_slot(infos, agent, teams)
                assert file_slot == slot  # the importer's rule names the slot the agent trained in
                session = sessions[file_slot]
            else:
                session = sessions[0]
            got = session.run(["deterministic_discrete_actions"], _unity_inputs(env, agent))[0][0]
            np.testing.assert_array_equal(got, want, err_msg=agent)
            o["SoccerTwos/act_d"][slot] = want
            compared += 1
            trajs.add(int(o["SoccerTwos/traj_id"][slot]))
        env.step()
    return compared, trajs


def test_exported_brain_acts_in_unity_as_trained_for_every_agent(tmp_path):
    env, actor, files = _setup(tmp_path, None, 2, "--mask-kicks", "--max-steps", "25", "--death-step", "7",
                               "--respawn-delay", "0", "--team1-decision-period", "2")
    try:
        assert [f.name for f in files] == ["SoccerTwos.onnx"] and actor.n_agents == 0  # no id input: one brain
        session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["obs_0", "obs_1", "action_masks"]
        assert [tuple(i.shape[1:]) for i in session.get_inputs()[:2]] == [(192,), (16,)]
        compared, trajs = _play(env, actor, [session], 40, per_slot=False)
        assert compared > 200 and len(trajs) > 16  # 8 players, respawns and a new episode: more lives than slots
    finally:
        env.close()
    assert " 0 rejected" in (tmp_path / "run_logs" / "Player-0.log").read_text()  # masks were honoured


def test_per_slot_brains_are_assigned_by_team_and_index_in_group(tmp_path):
    env, actor, files = _setup(tmp_path, True, 1, "--mask-kicks", "--max-steps", "15")
    try:
        assert [f.name for f in files] == ["SoccerTwos.onnx", *(f"SoccerTwos_agent{i}.onnx" for i in (1, 2, 3))]
        sessions = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for f in files]
        compared, _ = _play(env, actor, sessions, 20, per_slot=True)
        assert compared >= 60
        # the files differ where the id matters: slot 0's brain does not act as slot 1 on the same inputs
        differ = 0
        unity = env.env
        for agent, (_, slot) in env._slot.items():
            feeds = _unity_inputs(env, agent)
            answers = {tuple(s.run(["deterministic_discrete_actions"], feeds)[0][0]) for s in sessions}
            differ += len(answers) > 1
        assert differ >= 1
    finally:
        env.close()
