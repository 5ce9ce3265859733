"""Per-``trainer_type`` exporters: how a checkpoint becomes a policy core for :class:`UnityPolicyGraph`.

An exporter is ``fn(payload: dict, agent_slot: int) -> ExportPlan`` registered with
:func:`register_exporter`. Exporters of trainer types that live elsewhere are imported lazily
from :data:`EXPORTER_MODULES` (the module registers itself when imported), so ``marl.export``
never imports a trainer it does not need.
"""
from __future__ import annotations

import importlib
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

EXPORTERS: dict[str, Exporter] = {}

# trainer_type -> module whose import registers its exporter
EXPORTER_MODULES: dict[str, str] = {
    "mappo": "marl.export.ppo",
    "ippo": "marl.export.ppo",
    "qmix": "marl.algos.qmix",
    "vdn": "marl.algos.qmix",
}


def register_exporter(*trainer_types: str) -> Callable[[Exporter], Exporter]:
    """Decorator: ``@register_exporter("qmix", "vdn")`` registers ``fn(payload, agent_slot) -> ExportPlan``."""

    def deco(fn: Exporter) -> Exporter:
        for t in trainer_types:
            EXPORTERS[t] = fn
        return fn

    return deco


def get_exporter(trainer_type: str) -> Exporter:
    """The exporter for ``trainer_type``.

    Raises:
        ExportError: no exporter is registered for it.
    """
    if trainer_type not in EXPORTERS and trainer_type in EXPORTER_MODULES:
        module = EXPORTER_MODULES[trainer_type]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # the trainer is not written yet; any other import error is a bug
            if exc.name is None or not module.startswith(exc.name):
                raise
    if trainer_type not in EXPORTERS:
        raise ExportError(f"no ONNX exporter for trainer_type '{trainer_type}' "
                          f"(have: {', '.join(sorted(set(EXPORTERS) | {'mappo', 'ippo'}))})")
    return EXPORTERS[trainer_type]
