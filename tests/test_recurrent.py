"""Recurrent (LSTM) policies: sequence chunking, memory reset, learning a memory task, the ONNX memory contract."""
from __future__ import annotations

import numpy as np

from marl.buffers import sequence_chunks


def test_sequence_chunks_cut_at_episode_ends_and_sequence_length():
    # slot 0 decides at t = 0..6 with an episode ending after t=2; slot 1 decides at t = 1, 3, 5
    group = np.array([0, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    t = np.array([0, 1, 1, 2, 3, 3, 4, 5, 5, 6])
    done = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    out = sequence_chunks(group, t, done, seq_len=2)
    rows = [[(int(group[i]), int(t[i])) if i >= 0 else None for i in seq] for seq in out]
    assert rows == [
        [(0, 0), (0, 1)],          # slot 0, episode 1, first 2 decisions
        [(0, 2), None],            # ... its last decision (the episode ended), padded
        [(0, 3), (0, 4)],          # slot 0, episode 2
        [(0, 5), (0, 6)],
        [(1, 1), (1, 3)],          # slot 1: one episode, cut every 2 decisions
        [(1, 5), None],
    ]


def test_sequence_chunks_empty():
    assert sequence_chunks(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 4).shape == (0, 4)


# ------------------------------------------------------------------------------------------ training
import copy  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from marl_helpers import cfg_of  # noqa: E402


def _cue_config(tmp_path, memory: bool, max_steps: int, run_id: str) -> dict:
    data = yaml.safe_load(open("configs/mappo/memory_cue.yaml"))
    b = data["behaviors"]["agent"]
    b["max_steps"] = max_steps
    b["summary_freq"] = 4096
    b["hyperparameters"].update(buffer_size=1024, batch_size=256)
    if not memory:
        b["network_settings"].pop("memory")
    data["env_settings"].update(env_kwargs={"n_agents": 2, "n_cues": 2, "length": 4}, num_areas=16, seed=3)
    data["checkpoint_settings"] = {"run_id": run_id, "results_dir": str(tmp_path)}
    return data


def _train(data):
    from marl.run import prepare_run_dir, train

    cfg = cfg_of(data)
    return train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)


def test_memory_policy_solves_the_cue_game_and_feed_forward_stays_at_chance(tmp_path):
    torch.manual_seed(0)
    lstm = _train(_cue_config(tmp_path, True, 24000, "lstm"))
    ff = _train(_cue_config(tmp_path, False, 24000, "ff"))
    # per-agent return: 1 = always the cued action at the last step, 0.5 = chance
    assert lstm["last_100"]["agent"] > 0.9, lstm["last_100"]
    assert ff["last_100"]["agent"] < 0.7, ff["last_100"]


def test_memory_resets_at_episode_start_and_travels_with_each_decision(tmp_path):
    from envs.vector import VecEnv, default_factory
    from marl.algos.factory import make_trainer

    torch.manual_seed(0)
    cfg = cfg_of(_cue_config(tmp_path, True, 4000, "m"))
    f = default_factory("envs.games.memory_cue", {"n_agents": 2, "n_cues": 2, "length": 4})
    probe = f(0, None)
    spec = probe.spec
    probe.close()
    trainer = make_trainer(spec, cfg, 4, torch.device("cpu"))
    venv = VecEnv(f, spec, 1, 4, seed=1)
    try:
        C = trainer.collector
        C.collect(venv, 0)
        buf = C.buffers["agent"]
        T = buf.t
        mem = buf.data["mem_a"][:T]  # [T, E, A, M]
        starts = np.zeros((T, 4, 2), bool)
        starts[0] = True  # the first rollout starts with fresh episodes
        starts[1:] = buf.done[: T - 1] > 0  # a decision after an episode end starts a new one
        assert starts.sum() >= 8 and (~starts).sum() >= 8
        assert np.abs(mem[starts]).max() == 0.0  # zero memory at every episode start ...
        assert np.abs(mem[~starts]).sum(-1).min() > 0  # ... and the LSTM state carried within an episode
    finally:
        venv.close()


def test_exported_memory_brain_carries_recurrent_in_and_out_like_torch(tmp_path):
    from marl.export import export_all_slots
    from marl.export.onnx_policy import OnnxPolicy
    from marl.inference import load_policy
    from marl.play import play_episodes
    from envs.adapter import ArrayEnv

    torch.manual_seed(0)
    _train(_cue_config(tmp_path, True, 6000, "x"))
    ck = tmp_path / "x" / "agent" / "checkpoint.pt"
    pt = load_policy(ck)
    files = export_all_slots(__import__("marl.checkpoint", fromlist=["load_checkpoint"]).load_checkpoint(ck),
                             tmp_path / "agent.onnx")
    onnx = OnnxPolicy(files[0])
    assert onnx.has_memory and onnx.memory_size == 64

    def env(_c):
        return ArrayEnv("envs.games.memory_cue", {"n_agents": 2, "n_cues": 2, "length": 4})

    runs = {}
    for name, pol in (("pt", pt), ("onnx", onnx)):
        res = play_episodes(env, {"agent": pol}, 12, seed=5, record_actions=True)
        runs[name] = [r.action_hash for r in res], [float(np.nansum(r.returns["agent"])) for r in res]
    assert runs["pt"] == runs["onnx"]
    # and the memory matters: without carrying it the torch policy plays worse or differently
    class Forgetful(type(pt)):
        def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
            d, c, _ = super().act(obs, agent_index, mask, None, deterministic)
            return d, c, None

    forgetful = copy.copy(pt)
    forgetful.__class__ = Forgetful
    res = play_episodes(env, {"agent": forgetful}, 12, seed=5, record_actions=True)
    assert [r.action_hash for r in res] != runs["pt"][0]


def test_qmix_refuses_memory(tmp_path):
    from marl.config import ConfigError, parse_config
    from marl.algos.factory import make_trainer
    from envs.vector import default_factory

    data = yaml.safe_load(open("configs/qmix/two_step.yaml"))
    for b in data["behaviors"].values():
        b.setdefault("network_settings", {})["memory"] = {"memory_size": 32, "sequence_length": 4}
    cfg = parse_config(data, "x")
    f = default_factory(cfg.env_settings.env_path, cfg.env_settings.env_kwargs)
    probe = f(0, None)
    with pytest.raises(ConfigError, match="network_settings.memory: qmix's agent network is recurrent already"):
        make_trainer(probe.spec, cfg, 1, torch.device("cpu"))
    probe.close()
