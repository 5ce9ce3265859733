"""The actor's sampling: frequencies follow the policy and masked actions are never drawn."""
import torch

from envs.spec import ActionSpec
from marl.config import NetworkSettings
from marl.networks import Actor, _sample


def test_sampler_draws_each_action_with_its_probability_and_never_a_zero_one():
    torch.manual_seed(0)
    p = torch.tensor([0.0, 0.2, 0.0, 0.5, 0.3, 0.0])
    logp = torch.where(p > 0, p.clamp_min(1e-30).log(), torch.full_like(p, -1e8))
    logp = torch.log_softmax(logp, -1).expand(200_000, 6)
    freq = torch.bincount(_sample(logp), minlength=6).float() / 200_000
    assert freq[[0, 2, 5]].sum() == 0
    assert torch.allclose(freq, p, atol=0.005), freq


def test_sampled_actions_respect_masks_per_branch():
    torch.manual_seed(1)
    actor = Actor(4, 2, ActionSpec((3, 4)), NetworkSettings(hidden_units=16, num_layers=1))
    n = 5000
    mask = torch.ones(n, 7)
    mask[: n // 2, [0, 2]] = 0.0  # first half: branch 0 may only pick action 1
    mask[:, 3 + 3] = 0.0          # everyone: branch 1 never picks action 3
    with torch.no_grad():
        d, _, logp = actor.act(torch.randn(n, 4), torch.eye(2)[torch.randint(2, (n,))], mask)
    assert (d[: n // 2, 0] == 1).all()
    assert set(d[n // 2:, 0].tolist()) == {0, 1, 2}
    assert set(d[:, 1].tolist()) == {0, 1, 2}
    assert torch.isfinite(logp).all()
