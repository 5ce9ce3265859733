"""The actor's sampling: frequencies follow the policy and masked actions are never drawn."""
import torch

from envs.spec import ActionSpec
from marl.config import NetworkSettings
from marl.networks import Actor


def test_sampled_actions_follow_the_policy_and_never_a_zero_probability_one():
    torch.manual_seed(0)
    actor = Actor(4, 0, ActionSpec((6,)), NetworkSettings(hidden_units=8, num_layers=1))
    p = torch.tensor([0.0, 0.2, 0.0, 0.5, 0.3, 0.0])
    with torch.no_grad():  # logits = log p whatever the input: zero weights, bias log p
        actor.logits.weight.zero_()
        actor.logits.bias.copy_(p.clamp_min(1e-30).log())
    n = 200_000
    mask = (p > 0).float().expand(n, 6)
    with torch.no_grad():
        d, _, logp = actor.act(torch.randn(n, 4), torch.zeros(n, 0), mask)
    freq = torch.bincount(d[:, 0], minlength=6).float() / n
    assert freq[[0, 2, 5]].sum() == 0
    assert torch.allclose(freq, p, atol=0.005), freq
    assert torch.allclose(logp, p.clamp_min(1e-30).log()[d[:, 0]], atol=1e-5)


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
