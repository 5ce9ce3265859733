"""MA-POCA (marl/algos/poca.py): the attention critic, counterfactual baselines, lambda-returns, learning, resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from envs.spec import ActionSpec, BehaviorSpec
from marl.algos.poca import POCACritic, one_hot_actions
from marl.buffers import gae
from marl.config import NetworkSettings
from marl_helpers import cfg_of

SPEC = BehaviorSpec("agent", tuple(f"agent_{i}" for i in range(4)), (6,), ActionSpec((3,)))


def _critic():
    torch.manual_seed(0)
    return POCACritic(SPEC, 4, NetworkSettings(hidden_units=32, num_layers=2))


def test_attention_critic_is_invariant_to_member_order_and_ignores_absent_members():
    critic = _critic()
    obs = torch.randn(5, 4, 6)
    present = torch.tensor([[1, 1, 1, 0]] * 5, dtype=torch.bool)
    v = critic.value(obs, present)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(critic.value(obs[:, perm], present[:, perm]), v, atol=1e-5)  # order does not matter
    junk = obs.clone()
    junk[:, 3] = 1e3  # whatever an absent member's slot holds is ignored
    assert torch.allclose(critic.value(junk, present), v, atol=1e-5)
    fewer = present.clone()
    fewer[:, 2] = False
    assert not torch.allclose(critic.value(obs, fewer), v)  # a member leaving changes V


def test_baseline_equals_value_when_the_other_members_are_absent_and_depends_on_their_actions():
    critic = _critic()
    obs = torch.randn(5, 4, 6)
    acts = one_hot_actions(SPEC, torch.randint(0, 3, (5, 4, 1)), None)
    alone = torch.zeros(5, 4, dtype=torch.bool)
    alone[:, 1] = True
    member = torch.full((5,), 1)
    assert torch.allclose(critic.baseline(obs, acts, alone, member), critic.value(obs, alone), atol=1e-6)
    everyone = torch.ones(5, 4, dtype=torch.bool)
    other = acts.clone()
    other[:, 2] = one_hot_actions(SPEC, (torch.argmax(acts[:, 2], -1, keepdim=True) + 1) % 3, None)
    assert not torch.allclose(critic.baseline(obs, acts, everyone, member), critic.baseline(obs, other, everyone, member))
    own = acts.clone()
    own[:, 1] = other[:, 2]  # member 1's own action is not an input of its baseline
    assert torch.allclose(critic.baseline(obs, acts, everyone, member), critic.baseline(obs, own, everyone, member), atol=1e-6)


def test_lambda_returns_and_advantages_match_hand_computed_values():
    # one slot, 3 decisions, episode continues: ML-Agents' lambda_return with value_next = bootstrap
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    gamma, lam, boot = 0.9, 0.8, torch.tensor([2.0])
    _, ret = gae(r, v, torch.zeros(3, 1), torch.ones(3, 1, dtype=torch.bool), boot, gamma, lam)
    g2 = 2.0 + gamma * 2.0                                        # 3.8
    g1 = 0.0 + gamma * ((1 - lam) * 1.5 + lam * g2)               # 0.9 * (0.3 + 3.04) = 3.006
    g0 = 1.0 + gamma * ((1 - lam) * 1.0 + lam * g1)               # 1 + 0.9 * (0.2 + 2.4048) = 3.34432
    assert ret[:, 0].tolist() == pytest.approx([g0, g1, g2], abs=1e-5)
    baseline = torch.tensor([1.0, 2.0, 3.0])
    assert (ret[:, 0] - baseline).tolist() == pytest.approx([g0 - 1.0, g1 - 2.0, g2 - 3.0], abs=1e-5)


def _sacrifice(tmp_path, trainer_type: str, steps: int, run_id: str) -> dict:
    data = yaml.safe_load(open("configs/poca/sacrifice.yaml"))
    b = data["behaviors"]["agent"]
    b["trainer_type"] = trainer_type
    b["max_steps"] = steps
    b["summary_freq"] = 4000
    data["checkpoint_settings"] = {"run_id": run_id, "results_dir": str(tmp_path)}
    return data


def _train(data):
    from marl.run import prepare_run_dir, train

    cfg = cfg_of(data)
    return train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)


def test_poca_learns_the_sacrifice_mappo_does_not(tmp_path):
    torch.manual_seed(1)
    poca = _train(_sacrifice(tmp_path, "poca", 20000, "poca"))
    mappo = _train(_sacrifice(tmp_path, "mappo", 20000, "mappo"))
    # mean per-agent return: 0.5 = one agent sacrificed, the other was paid (optimal); 0 = nobody sacrificed
    assert poca["last_100"]["agent"] > 0.45, poca["last_100"]
    assert mappo["last_100"]["agent"] < 0.25, mappo["last_100"]


def test_resume_keeps_step_count_and_optimiser_state(tmp_path):
    from marl.checkpoint import load_checkpoint

    data = _sacrifice(tmp_path, "poca", 2048, "r")
    data["behaviors"]["agent"]["hyperparameters"].update(buffer_size=512, batch_size=256)
    _train(data)
    first = load_checkpoint(tmp_path / "r" / "agent" / "checkpoint.pt")
    assert first["trainer_type"] == "poca" and first["step"] >= 2048
    assert first["trainer"]["opt"]["state"]  # Adam moments saved
    data["behaviors"]["agent"]["max_steps"] = 4096
    data["checkpoint_settings"]["resume"] = True
    res = _train(data)
    second = load_checkpoint(tmp_path / "r" / "agent" / "checkpoint.pt")
    assert res["step"] >= 4096 and second["step"] > first["step"]
    steps = [s["step"] for s in second["trainer"]["opt"]["state"].values()]
    assert min(float(x) for x in steps) > min(float(s["step"]) for s in first["trainer"]["opt"]["state"].values())


def test_poca_policy_exports_as_the_shared_actor(tmp_path):
    from marl.checkpoint import load_checkpoint
    from marl.export import export_all_slots
    from marl.export.onnx_policy import OnnxPolicy
    from marl.inference import load_policy

    data = _sacrifice(tmp_path, "poca", 1024, "e")
    data["behaviors"]["agent"]["hyperparameters"].update(buffer_size=512, batch_size=256)
    _train(data)
    ck = tmp_path / "e" / "agent" / "checkpoint.pt"
    files = export_all_slots(load_checkpoint(ck), tmp_path / "agent.onnx")
    assert len(files) == 1  # no agent-id input: one brain for every agent
    onnx, pt = OnnxPolicy(files[0]), load_policy(ck)
    obs = np.eye(4, dtype=np.float32)[:2]
    obs[:, 2] = 1.0
    np.testing.assert_array_equal(onnx.act(obs, np.arange(2))[0], pt.act(obs, np.arange(2))[0])
