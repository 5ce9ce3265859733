"""Helpers (no tests here): checkpoint payloads built directly, without training, for the ONNX export tests."""
from __future__ import annotations

import pytest
import torch

from envs.spec import ActionSpec, BehaviorSpec
from marl.checkpoint import FORMAT, spec_to_dict
from marl.config import NetworkSettings
from marl.networks import Actor


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small batches: torch's thread pool only adds contention on the shared 2-core machine.
    (Autouse in every test module that imports it.)"""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_actor_payload(action: ActionSpec, trainer_type: str = "mappo", n_agents: int = 3, obs_shape=(18,),
                       normalize: bool = False, hidden_units: int = 32, num_layers: int = 2, seed: int = 0,
                       behavior: str = "agent", extra: dict | None = None,
                       vis_encode_type: str = "simple") -> tuple[dict, Actor]:
    """A PPO-family checkpoint payload and its :class:`Actor`.

    Weights are perturbed away from the orthogonal init (whose policy head has gain 0.01, so
    near-uniform logits) to make actions depend clearly on observations and agent id; with
    ``normalize`` the observation normaliser gets statistics far from (0, 1).
    """
    torch.manual_seed(seed)
    spec = BehaviorSpec(behavior, tuple(f"a{i}" for i in range(n_agents)), tuple(obs_shape), action)
    net = NetworkSettings(hidden_units=hidden_units, num_layers=num_layers, normalize=normalize,
                          vis_encode_type=vis_encode_type)
    actor = Actor(spec.obs_size, spec.n_agents, spec.action, net, spec.obs_shape)
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        if normalize:
            actor.obs_norm.update(torch.randn(500, spec.obs_size) * 4.0 + 3.0)
    actor.eval()
    payload = {"format": FORMAT, "behavior": behavior, "trainer_type": trainer_type, "step": 1000, "env_id": "test",
               "behavior_spec": spec_to_dict(spec), "state_shape": [spec.obs_size * n_agents],
               "network_settings": net.model_dump(), "trainer": {"actor": actor.state_dict()}, "extra": extra or {}}
    return payload, actor


def continuous(n: int) -> ActionSpec:
    return ActionSpec((), n, (-1.0,) * n, (1.0,) * n)


def hybrid(branches: tuple[int, ...], n: int) -> ActionSpec:
    return ActionSpec(branches, n, (-1.0,) * n, (1.0,) * n)
