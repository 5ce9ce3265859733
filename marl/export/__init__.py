"""ONNX export of trained policies as Unity ML-Agents 3.x brains (docs/unity_contract.md).

``export_checkpoint(payload, path)`` turns a checkpoint dict into ``<Behavior>.onnx`` that a
designer drops on an agent's Behavior Parameters; :class:`OnnxPolicy` (``marl.export.onnx_policy``)
plays such a file through the :class:`marl.policy.Policy` contract. The tensor contract is in
:mod:`marl.export.graph`; every export is checked in onnxruntime against the torch policy before
it is written.

Agent ids. A shared actor may take a one-hot agent id (``network_settings.agent_id``: on by default
for PettingZoo/OpenSpiel seats, off for Unity behaviors); a Unity agent feeds only ``obs_i``. An
id-taking policy's graph holds ONE slot's id as a constant (``agent_slot``); :func:`export_all_slots`
(what ``marl-learn`` uses) writes slot 0 at the given path and ``<stem>_agent<i>.onnx`` for the other
slots, and consumers pick the file by slot (``docs/unity_contract.md``, "Agent slots").

Adding a trainer type. Name ``fn(payload, agent_slot) -> ExportPlan`` as the ``exporter`` of its
entry in :mod:`marl.algos.registry` (imported on first use). The plan's ``core`` is an
``nn.Module`` ``core(obs [B, obs_size], memory [B, M] | None) -> (scores [B, sum(branches)] |
None, gaussian mean [B, n_cont] | None, log_std | None, new memory [B, M] | None)`` with the agent
id fixed inside (``obs[:, :1] * 0 + one_hot_row``) and opset-9-exportable ops; ``memory_size=M``
adds ``recurrent_in`` / ``recurrent_out`` ``[batch, 1, M]``; ``stochastic=False`` makes the
sampled outputs greedy (value-based agents); ``reference`` is the trainer's own greedy torch
:class:`marl.policy.Policy` (``hidden=None`` must mean a zero state, as in Unity).
"""
from __future__ import annotations

from marl.export.graph import UnityPolicyGraph
from marl.export.onnx_export import ExportResult, build_graph, export_all_slots, export_bytes, export_checkpoint, verify
from marl.export.registry import ExportError, ExportPlan, get_exporter

__all__ = ["ExportError", "ExportPlan", "ExportResult", "UnityPolicyGraph", "build_graph",
           "export_all_slots", "export_bytes", "export_checkpoint", "get_exporter", "verify"]
