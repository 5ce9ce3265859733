"""QMIX / VDN: mixer monotonicity, masked ε-greedy, TD(λ) targets, episode recording, checkpoints,
and the two-step game of the QMIX paper (QMIX greedy return 8, VDN 7)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.vector import VecEnv, default_factory
from marl.algos.qmix import QMixer, QMIXTrainer, VDNMixer, epsilon_at, epsilon_greedy, td_lambda_targets
from marl.checkpoint import load_checkpoint
from marl.config import ConfigError, parse_config
from marl.evaluate import evaluate_run
from marl.run import prepare_run_dir, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ------------------------------------------------------------------------------------ pieces
@pytest.mark.parametrize("layers", [1, 2])
def test_qmix_mixer_is_monotonic_in_every_agent_q(layers):
    torch.manual_seed(0)
    mixer = QMixer(n_agents=4, state_size=10, embed_dim=8, hypernet_layers=layers, hypernet_embed=16)
    states = torch.randn(512, 10) * 3
    qs = (torch.randn(512, 4) * 10).requires_grad_(True)
    mixer(qs, states).sum().backward()
    grad = qs.grad
    assert (grad >= 0).all(), grad.min()
    assert (grad > 0).float().mean() > 0.5  # not trivially flat
    # the bias (and the weights) depend on the state: same agent Qs, different states, different Q_tot
    with torch.no_grad():
        zero = mixer(torch.zeros(512, 4), states)
    assert zero.std() > 1e-3


def test_vdn_mixer_is_the_sum():
    qs = torch.tensor([[1.0, 2.0, -4.0], [0.5, 0.5, 0.5]])
    assert torch.equal(VDNMixer()(qs, None), torch.tensor([-1.0, 1.5]))


def test_epsilon_greedy_never_picks_a_masked_action():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4000, 5, generator=g)
    mask = (torch.rand(4000, 5, generator=g) < 0.5).float()
    mask[torch.arange(4000), torch.randint(0, 5, (4000,), generator=g)] = 1.0
    q = torch.where(mask > 0, q, q + 100.0)  # masked actions have by far the highest Q
    for eps in (0.0, 0.5, 1.0):
        a = epsilon_greedy(q, mask, eps, generator=g)
        assert (mask[torch.arange(4000), a] == 1).all(), eps
    greedy = epsilon_greedy(q, mask, 0.0)
    assert torch.equal(greedy, q.masked_fill(mask < 0.5, float("-inf")).argmax(-1))
    # exploration is uniform over the allowed actions: a row allowing {1, 3} picks each about half the time
    row_mask = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]]).repeat(2000, 1)
    a = epsilon_greedy(torch.zeros(2000, 5), row_mask, 1.0, generator=g)
    assert set(a.tolist()) == {1, 3} and 0.4 < (a == 1).float().mean() < 0.6
    # no mask: everything is allowed; a row with nothing allowed counts as all allowed
    assert epsilon_greedy(torch.tensor([[0.0, 3.0, 1.0]]), None, 0.0).item() == 1
    assert epsilon_greedy(torch.tensor([[0.0, 3.0, 1.0]]), torch.zeros(1, 3), 0.0).item() == 1


def test_epsilon_schedule_is_linear_in_env_steps():
    from marl.config import QMIXHyperparameters

    hp = QMIXHyperparameters(epsilon_start=1.0, epsilon_finish=0.1, epsilon_anneal_steps=1000)
    assert [epsilon_at(hp, s) for s in (0, 500, 1000, 5000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_td_lambda_targets_match_hand_computed_values():
    # episode 0: 3 steps, terminated after the last; episode 1: 2 steps then truncated (padded row 2)
    rewards = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]])
    terminated = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    filled = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    next_q = torch.tensor([[10.0, 20.0, 30.0], [4.0, 6.0, 99.0]])  # 99 is padding and must not leak in
    # G_t = r_t + g (1 - d_t) [(1 - l) Q_{t+1} + l G_{t+1}], G_{t+1} := Q_{t+1} after the last step
    # g = l = 0.5: ep0 G2 = 3, G1 = 2 + .5 (10 + 1.5) = 7.75, G0 = 1 + .5 (5 + 3.875) = 5.4375;
    #              ep1 G1 = 1 + .5 (3 + 3) = 4, G0 = 1 + .5 (2 + 2) = 3
    got = td_lambda_targets(rewards, terminated, filled, next_q, gamma=0.5, lam=0.5)
    assert torch.allclose(got, torch.tensor([[5.4375, 7.75, 3.0], [3.0, 4.0, 0.0]]))
    # lambda = 0: one-step targets r + g Q'
    got = td_lambda_targets(rewards, terminated, filled, next_q, gamma=0.5, lam=0.0)
    assert torch.allclose(got, torch.tensor([[6.0, 12.0, 3.0], [3.0, 4.0, 0.0]]))
    # lambda = 1: discounted returns, bootstrapped only at the truncation
    got = td_lambda_targets(rewards, terminated, filled, next_q, gamma=0.5, lam=1.0)
    assert torch.allclose(got, torch.tensor([[2.75, 3.5, 3.0], [3.0, 4.0, 0.0]]))


# ------------------------------------------------------------------------------------ config
def _qmix_config(tmp_path, env_path="envs.games.two_step", env_kwargs=None, run_id="q", **hp):
    hyper = {"buffer_size": 200, "batch_size": 16, "epsilon_start": 1.0, "epsilon_finish": 1.0,
             "epsilon_anneal_steps": 0, "target_update_interval": 25, "mixing_embed_dim": 8,
             "hypernet_layers": 1, "update_interval": 4, "learning_rate": 0.001}
    hyper.update(hp)
    return {"behaviors": {"agent": {"trainer_type": "qmix", "hyperparameters": hyper, "max_steps": 800,
                                    "summary_freq": 400, "checkpoint_interval": 400, "keep_checkpoints": 2}},
            "env_settings": {"env_path": env_path, "env_kwargs": env_kwargs or {}, "num_envs": 1, "num_areas": 4,
                             "seed": 5},
            "checkpoint_settings": {"run_id": run_id, "results_dir": str(tmp_path)}}


def test_config_rejects_batch_larger_than_buffer_and_unknown_keys(tmp_path):
    data = _qmix_config(tmp_path, batch_size=300)
    with pytest.raises(ConfigError, match=r"behaviors\.agent\.hyperparameters.*batch_size \(300 episodes\) must be <= "
                                          r"buffer_size \(200 episodes\)"):
        parse_config(data, "x.yaml")
    data = _qmix_config(tmp_path, mixing_embedding=4)
    with pytest.raises(ConfigError, match=r"x\.yaml: behaviors\.agent\.hyperparameters\.mixing_embedding: unknown key"):
        parse_config(data, "x.yaml")
    for name in ("qmix", "vdn"):
        cfg = parse_config(yaml_load(CONFIGS / name / "simple_spread.yaml"), "ss.yaml")
        assert cfg.behaviors["agent"].trainer_type == name


def yaml_load(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


def test_continuous_actions_are_refused_with_a_clear_error(tmp_path):
    data = _qmix_config(tmp_path, env_path="mpe2.simple_spread_v3",
                        env_kwargs={"N": 2, "max_cycles": 5, "continuous_actions": True})
    cfg = parse_config(data, "x.yaml")
    with pytest.raises(ConfigError, match="qmix does not handle continuous actions"):
        train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)


# ------------------------------------------------------------------------------------ recording
def _trainer(tmp_path, env_path, env_kwargs, n_copies, **hp):
    cfg = parse_config(_qmix_config(tmp_path, env_path, env_kwargs, **hp), "x.yaml")
    factory = default_factory(env_path, env_kwargs)
    spec = factory(0, None).spec
    return QMIXTrainer(spec, cfg, n_copies, torch.device("cpu")), VecEnv(factory, spec, 1, n_copies, seed=0)


def test_episodes_are_recorded_whole_padded_and_masked(tmp_path):
    # coordination game: agent_1 dies (terminates) after 2 steps, agent_0 is truncated after 5
    trainer, venv = _trainer(tmp_path, "envs.games.coordination", {"n_targets": 3, "max_cycles": 5, "die_at": 2}, 3,
                             buffer_size=100, batch_size=100)
    with venv:  # collects until the buffer holds batch_size episodes
        steps, _ = trainer.collect_and_train(venv, 0)
    buf = trainer.learners["agent"].buffer
    assert buf.count == 100 and buf.added == steps // 5 == 102
    n = buf.count
    assert (buf.length[:n] == 5).all()
    act, obs = buf.data["active"][:n], buf.data["obs"][:n]
    assert (act[:, :5, 0] == 1).all() and (act[:, :2, 1] == 1).all() and (act[:, 2:, 1] == 0).all()
    assert (obs[:, 2:, 1] == 0).all() and (obs[:, :2, 1].sum(-1) > 0).all()  # dead agent's rows are zeroed
    # bootstrap row 5: agent_0 was truncated -> its final observation (time left 0), agent_1 absent
    assert (act[:, 5] == [1, 0]).all() and np.allclose(obs[:, 5, 0, -1], 0.0) and (obs[:, 5, 0, :3].sum(-1) == 1).all()
    assert (buf.data["terminated"][:n] == 0).all()  # truncation: bootstrap
    assert set(np.unique(buf.data["reward"][:n, :5])) <= {0.0, 0.5, 1.0}  # mean over participants


def test_two_step_episodes_terminate_and_carry_the_team_reward(tmp_path):
    trainer, venv = _trainer(tmp_path, "envs.games.two_step", {}, 2, buffer_size=50, batch_size=50)
    with venv:
        trainer.collect_and_train(venv, 0)
    buf = trainer.learners["agent"].buffer
    d = buf.data
    assert buf.count == 50 and (buf.length == 2).all()
    assert (d["terminated"][:, :2] == [0, 1]).all() and (d["reward"][:, 0] == 0).all()
    a0, a1 = d["action"][:, 0, 0], d["action"][:, 1]
    expect = np.where(a0 == 0, 7.0, np.array([[0, 1], [1, 8]])[a1[:, 0], a1[:, 1]])
    assert np.array_equal(d["reward"][:, 1], expect)
    assert np.array_equal(d["state"][:, 1].argmax(-1), 1 + a0)  # state 2A / 2B follows agent_0's first action
    assert (d["obs"][:, 1, 0] == d["state"][:, 1]).all()


def test_long_episodes_are_cut_into_segments_that_bootstrap(tmp_path):
    trainer, venv = _trainer(tmp_path, "envs.games.coordination", {"n_targets": 3, "max_cycles": 5}, 1,
                             buffer_size=30, batch_size=30, max_episode_length=2)
    with venv:
        trainer.collect_and_train(venv, 0)
    buf = trainer.learners["agent"].buffer
    assert list(buf.length[:6]) == [2, 2, 1, 2, 2, 1]
    d = buf.data
    # a segment's bootstrap row is the next segment's first row; only the real episode end is truncated
    assert np.array_equal(d["obs"][0, 2], d["obs"][1, 0]) and np.array_equal(d["state"][1, 2], d["state"][2, 0])
    assert (d["active"][[0, 1], 2] == 1).all() and (d["terminated"] == 0).all()


# ------------------------------------------------------------------------------------ two-step game
def _run_two_step(tmp_path, name, seed, max_steps):
    data = yaml_load(CONFIGS / name / "two_step.yaml")
    data["env_settings"]["seed"] = seed
    data["behaviors"]["agent"]["max_steps"] = max_steps
    data["checkpoint_settings"] = {"run_id": f"{name}{seed}", "results_dir": str(tmp_path)}
    cfg = parse_config(data, f"{name}/two_step.yaml")
    train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    return tmp_path / f"{name}{seed}"


@pytest.mark.parametrize("name,optimum", [("qmix", 8.0), ("vdn", 7.0)])
def test_two_step_game_qmix_finds_8_and_vdn_settles_at_7(tmp_path, name, optimum):
    for seed in (1, 2):
        run = _run_two_step(tmp_path, name, seed, 4000 if seed == 1 else 3000)
        report = evaluate_run(run, episodes=8, seed=0)["behaviors"]["agent"]
        assert report["mean_return"] == optimum and report["std_return"] == 0.0, (seed, report)
    # the exported ONNX brain (recurrent, masked greedy) plays the same policy
    onnx = evaluate_run(run, episodes=8, checkpoint=str(run / "agent.onnx"))["behaviors"]["agent"]
    assert onnx["mean_return"] == optimum


def test_checkpoint_holds_targets_optimizer_and_buffer_and_resume_continues(tmp_path):
    data = _qmix_config(tmp_path, save_replay_buffer=True, standardise_rewards=True)
    cfg = parse_config(copy.deepcopy(data), "x.yaml")
    train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    first = load_checkpoint(tmp_path / "q" / "agent" / "checkpoint.pt")
    st = first["trainer"]
    assert first["step"] == 800 and st["updates"] > 0
    assert st["reward_norm"]["count"] > 1000 and st["reward_norm"]["var"] > 0  # statistics of the sampled rewards
    assert {"agent", "mixer", "target_agent", "target_mixer", "optimizer", "buffer"} <= set(st)
    assert st["buffer"]["count"] == 200 and st["buffer"]["pos"] == 400 % 200 and st["buffer"]["data"] is not None
    # loading restores everything exactly
    factory = default_factory("envs.games.two_step", {})
    trainer = QMIXTrainer(factory(0, None).spec, cfg, 4, torch.device("cpu"))
    trainer.load_state_dict("agent", st)
    L = trainer.learners["agent"]
    assert L.updates == st["updates"] and L.buffer.count == 200 and L.buffer.added == st["buffer"]["added"]
    for k, v in L.target_mixer.state_dict().items():
        assert torch.equal(v, st["target_mixer"][k])
    # --resume continues the step count, the update counter and Adam's state
    data["behaviors"]["agent"]["max_steps"] = 1600
    data["checkpoint_settings"]["resume"] = True
    out = train(parse_config(data, "x.yaml"), tmp_path / "q", console=None, tensorboard=False)
    second = load_checkpoint(tmp_path / "q" / "agent" / "checkpoint.pt")["trainer"]
    assert out["step"] == 1600
    assert second["updates"] == 2 * st["updates"]
    assert second["optimizer"]["state"][0]["step"].item() == 2 * st["optimizer"]["state"][0]["step"].item()
    assert second["buffer"]["added"] == 2 * st["buffer"]["added"]
    # without save_replay_buffer the checkpoint keeps the counters but not the episodes
    L.hp.save_replay_buffer = False
    assert L.state_dict()["buffer"].get("data") is None
