"""What an algorithm's exporter hands to the ONNX exporter, and how it is found.

An exporter is ``fn(payload: dict, agent_slot: int) -> ExportPlan``, named by the ``exporter`` part
of its algorithm's registry entry (:mod:`marl.algos.registry`) and imported on first use, so
``marl.export`` never imports a trainer it does not need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from envs.spec import BehaviorSpec
from marl.checkpoint import CheckpointError


class ExportError(CheckpointError):
    """A checkpoint that cannot be exported, or an export that failed verification (one-line message)."""


@dataclass
class ExportPlan:
    """What a trainer exporter hands to the generic ONNX exporter.

    Attributes:
        core: ``nn.Module`` ``core(obs [B, obs_size], memory [B, M] | None) -> (logits | None,
            mean | None, log_std | None, memory_out | None)`` (see :class:`UnityPolicyGraph`);
            the agent id (fixed to the exported slot) and any observation normaliser are inside it.
        spec: the behavior's :class:`BehaviorSpec`.
        reference: the trainer's own torch policy (a :class:`marl.inference.Policy`); the export
            is verified against ``reference.act(..., deterministic=True)``.
        memory_size: recurrent state size ``M`` (0 = stateless).
        stochastic: sampled outputs are samples (``True``) or equal the greedy ones (``False``,
            e.g. QMIX/VDN agents).
        sensor_shapes: shapes of the ``obs_i`` inputs whose flattened concatenation is the
            observation (default: one input with ``spec.obs_shape``).
    """

    core: nn.Module
    spec: BehaviorSpec
    reference: object
    memory_size: int = 0
    stochastic: bool = True
    sensor_shapes: Sequence[Sequence[int]] | None = None


Exporter = Callable[[dict, int], ExportPlan]


def get_exporter(trainer_type: str) -> Exporter:
    """The exporter of ``trainer_type``'s registry entry (:mod:`marl.algos.registry`).

    Raises:
        ExportError: no algorithm of that name.
    """
    from marl.algos import registry

    try:
        return registry.get(trainer_type).load("exporter")
    except registry.UnknownAlgorithm:
        raise ExportError(f"no ONNX exporter for trainer_type '{trainer_type}' (have: {', '.join(registry.names())})") from None
