"""Exporter for MAPPO / IPPO actors (:class:`marl.networks.Actor`).

Agent id: a shared actor that takes a one-hot agent id gets the id of one slot as a constant
(``agent_slot``): every agent that runs the file acts as that slot, so :func:`marl.export.export_all_slots`
writes one file per slot. An actor without an id input (Unity behaviors by default) ignores ``agent_slot``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from marl.export.registry import ExportError, ExportPlan
from marl.networks import lstm_step


class ActorCore(nn.Module):
    """``Actor`` with the agent id fixed to ``agent_slot``: ``obs [B, obs_size] -> (logits, mean, log_std, None)``.

    The id row is added as ``obs[:, :1] * 0 + id`` (broadcast, no ``Expand``), ML-Agents' trick
    for runtimes without runtime broadcasting of batch sizes. The observation normaliser, if the
    actor has one, runs inside ``Actor.features`` and so is baked into the graph.
    """

    def __init__(self, actor: nn.Module, agent_slot: int):
        super().__init__()
        self.actor = actor
        n = actor.n_agents
        one_hot = torch.zeros(1, n)
        if n:
            one_hot[0, agent_slot] = 1.0
        self.register_buffer("agent_id", one_hot)

    def forward(self, obs: torch.Tensor, memory: torch.Tensor | None = None):
        ids = obs[:, :1] * 0.0 + self.agent_id
        h = self.actor.features(obs, ids)
        memory_out = None
        if self.actor.lstm is not None:  # one LSTM step; memory = concat(h, c) as ML-Agents packs it
            h, memory_out = lstm_step(self.actor.lstm, h, memory)
        logits = self.actor.logits(h) if self.actor.logits is not None else None
        mean = self.actor.mu(h) if self.actor.mu is not None else None
        return logits, mean, self.actor.log_std, memory_out


def export_ppo(payload: dict, agent_slot: int) -> ExportPlan:
    """The registry's exporter for PPO-family checkpoints (``payload["trainer"]["actor"]`` is the actor state dict).

    Raises:
        ExportError: the actor state does not match the behavior spec / network settings.
    """
    from marl.algos.mappo import TorchActorPolicy

    try:
        policy = TorchActorPolicy(payload, Path(f"<{payload.get('behavior', '?')} checkpoint>"))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ExportError(f"actor state does not match its behavior spec ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return ExportPlan(core=ActorCore(policy.actor, agent_slot), spec=policy.spec, reference=policy,
                      memory_size=policy.actor.memory_size)
