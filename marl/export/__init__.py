"""ONNX export of trained policies as Unity ML-Agents 3.x brains (DESIGN.md §5).

``export_checkpoint(payload, path)`` turns a checkpoint dict into ``<Behavior>.onnx`` that a
designer drops on an agent's Behavior Parameters; :class:`OnnxPolicy` (``marl.export.onnx_policy``)
plays such a file through the :class:`marl.inference.Policy` contract. Trainer types plug in with
:func:`register_exporter` (see :mod:`marl.export.registry`).
"""
from __future__ import annotations

from marl.export.graph import UnityPolicyGraph
from marl.export.onnx_export import ExportResult, build_graph, export_bytes, export_checkpoint, verify
from marl.export.registry import EXPORTERS, ExportError, ExportPlan, get_exporter, register_exporter

__all__ = ["EXPORTERS", "ExportError", "ExportPlan", "ExportResult", "UnityPolicyGraph", "build_graph",
           "export_bytes", "export_checkpoint", "get_exporter", "register_exporter", "verify"]
