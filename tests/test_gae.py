"""GAE, value normalisation and the rollout buffer against hand-computed values."""
from __future__ import annotations

import numpy as np
import torch

from marl.buffers import RolloutBuffer, gae
from marl.normalization import RunningMeanStd, ValueNorm


def test_gae_matches_hand_computation_with_done_and_bootstrap():
    g, lam = 0.9, 0.5
    r = torch.tensor([1.0, 0.0, 2.0, 1.0])
    v = torch.tensor([0.5, 1.0, 0.2, 0.4])
    done = torch.tensor([0.0, 1.0, 0.0, 0.0])  # episode ends after t=1
    valid = torch.ones(4, dtype=torch.bool)
    boot = torch.tensor(3.0)
    adv, ret = gae(r, v, done, valid, boot, g, lam)
    # t=3: delta = 1 + .9*3 - .4 = 3.3 ; A3 = 3.3
    # t=2: delta = 2 + .9*.4 - .2 = 2.16 ; A2 = 2.16 + .45*3.3 = 3.645
    # t=1: done -> delta = 0 - 1 = -1 ; A1 = -1
    # t=0: delta = 1 + .9*1 - .5 = 1.4 ; A0 = 1.4 + .45*(-1) = 0.95
    assert torch.allclose(adv, torch.tensor([0.95, -1.0, 3.645, 3.3]))
    assert torch.allclose(ret, adv + v)


def test_gae_skips_rows_where_the_agent_did_not_act():
    # one slot acting at t=0 and t=2 only (turn-based): t=1 must be transparent
    g, lam = 0.9, 0.5
    r = torch.tensor([1.0, 0.0, 0.0])
    v = torch.tensor([0.5, 99.0, 2.0])
    valid = torch.tensor([True, False, True])
    adv, _ = gae(r, v, torch.zeros(3), valid, torch.tensor(0.0), g, lam)
    # t=2: delta = 0 + .9*0 - 2 = -2 ; t=0: delta = 1 + .9*2 - .5 = 2.3, A0 = 2.3 + .45*(-2) = 1.4
    assert torch.allclose(adv, torch.tensor([1.4, 0.0, -2.0]))


def test_buffer_credits_rewards_to_the_last_decision_and_bootstraps_truncation():
    buf = RolloutBuffer(4, 1, 2, {"x": ((), np.dtype(np.float32))})
    buf.add_decisions(np.array([[True, False]]), x=np.zeros((1, 2), np.float32))   # agent 0 acts at t=0
    buf.add_reward(np.array([[1.0, 5.0]], np.float32))                               # agent 1 has no open decision
    buf.add_decisions(np.array([[False, True]]), x=np.zeros((1, 2), np.float32))   # agent 1 acts at t=1
    buf.add_reward(np.array([[2.0, 3.0]], np.float32))                               # agent 0's reward goes to t=0
    buf.end_episodes(np.array([[True, True]]), np.array([[0.0, 0.5]], np.float32))  # truncation bootstrap for agent 1
    assert buf.reward[0, 0, 0] == 3.0 and buf.reward[1, 0, 1] == 3.5
    assert buf.done[0, 0, 0] == 1.0 and buf.done[1, 0, 1] == 1.0
    assert buf.valid[:2, 0].tolist() == [[True, False], [False, True]]
    assert buf.count == 2


def test_value_norm_matches_debiased_running_moments():
    vn = ValueNorm(beta=0.5)
    vn.update(torch.tensor([1.0, 3.0]))   # mean 2, mean_sq 5
    vn.update(torch.tensor([5.0, 7.0]))   # mean 6, mean_sq 37
    # running_mean = .5*(.5*0+.5*2) + .5*6 = 3.5 ; debias = .75 -> mean 14/3
    # running_sq = .5*(.5*5) + .5*37 = 19.75 -> 79/3 ; var = 79/3 - (14/3)^2 = 41/9
    mean, var = 14 / 3, 79 / 3 - (14 / 3) ** 2
    x = torch.tensor([2.0, 10.0])
    assert torch.allclose(vn.normalize(x), (x - mean) / np.sqrt(var), atol=1e-5)
    assert torch.allclose(vn.denormalize(vn.normalize(x)), x, atol=1e-5)


def test_running_mean_std_equals_batch_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (1000, 4)).astype(np.float32)
    rms = RunningMeanStd((4,), eps=1e-8)
    for chunk in np.split(data, 10):
        rms.update(torch.from_numpy(chunk))
    assert np.allclose(rms.mean.numpy(), data.mean(0), atol=1e-4)
    assert np.allclose(rms.var.numpy(), data.var(0), atol=1e-3)
