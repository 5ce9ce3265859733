"""Checkpoint -> ONNX brain, verified in onnxruntime before it is written (atomically).

Export settings are ML-Agents' (``model_serialization.py``, Release 22): opset 9, the legacy
TorchScript exporter (``dynamo=False``), dynamic axis 0 named ``batch``, constants as float
tensors. Our own facts ride along as ONNX ``metadata_props`` (``marl.*`` keys: behavior spec,
trainer type, step, agent slot) so :class:`marl.export.onnx_policy.OnnxPolicy` can rebuild the
behavior spec; Unity ignores them.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from marl.checkpoint import spec_to_dict
from marl.export.graph import (ACTION_MASKS, BATCH, CONTINUOUS_ACTIONS, DETERMINISTIC_CONTINUOUS,
                               DETERMINISTIC_DISCRETE, DISCRETE_ACTIONS, OPSET, RECURRENT_IN, RECURRENT_OUT,
                               UnityPolicyGraph)
from marl.export.registry import ExportError, ExportPlan, get_exporter
from marl.io import atomic_write

# continuous actions of the ONNX graph and the torch policy must agree to this (env scale [-1, 1])
CONTINUOUS_ATOL = 1e-5


@dataclass
class ExportResult:
    """An in-memory export: the serialized model and what was checked.

    Attributes:
        data: the ``.onnx`` bytes.
        graph: the torch module that was exported.
        plan: the trainer's :class:`ExportPlan`.
        seconds: wall time of ``torch.onnx.export`` plus verification (s).
        max_abs_diff: largest ``|onnx - torch|`` over deterministic continuous actions (0 if none).
    """

    data: bytes
    graph: UnityPolicyGraph
    plan: ExportPlan
    seconds: float
    max_abs_diff: float = 0.0


def _sensor_shapes(payload: dict, plan: ExportPlan) -> list[tuple[int, ...]]:
    shapes = plan.sensor_shapes
    if shapes is None:
        shapes = (payload.get("behavior_spec") or {}).get("sensor_shapes") or (payload.get("extra") or {}).get("sensor_shapes")
    if not shapes:
        shapes = [plan.spec.obs_shape]
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if sum(int(np.prod(s)) for s in shapes) != plan.spec.obs_size:
        raise ExportError(f"sensor_shapes {shapes} do not add up to the observation size {plan.spec.obs_size}")
    return shapes


def build_graph(payload: dict, agent_slot: int = 0) -> tuple[UnityPolicyGraph, ExportPlan]:
    """The exportable module for a checkpoint payload, with the agent id fixed to ``agent_slot``.

    Raises:
        ExportError: malformed payload, unknown trainer type, bad ``agent_slot``.
    """
    if not isinstance(payload, dict) or "behavior_spec" not in payload or "trainer_type" not in payload:
        raise ExportError("not a checkpoint payload (missing 'behavior_spec' / 'trainer_type')")
    n_agents = len(payload["behavior_spec"].get("agents", ()))
    if not 0 <= agent_slot < max(n_agents, 1):
        raise ExportError(f"agent slot {agent_slot} is out of range: behavior '{payload.get('behavior')}' "
                          f"has {n_agents} agent slot(s) (0..{n_agents - 1})")
    plan = get_exporter(payload["trainer_type"])(payload, agent_slot)
    a = plan.spec.action
    graph = UnityPolicyGraph(plan.core, _sensor_shapes(payload, plan), a.discrete_branches, a.continuous_size,
                             plan.memory_size, plan.stochastic)
    graph.eval()
    return graph, plan


def _to_onnx(graph: UnityPolicyGraph) -> bytes:
    buf = io.BytesIO()
    dyn = {name: {0: BATCH} for name in graph.input_names}
    for name in (CONTINUOUS_ACTIONS, DETERMINISTIC_CONTINUOUS, DISCRETE_ACTIONS, DETERMINISTIC_DISCRETE, RECURRENT_OUT):
        if name in graph.output_names:
            dyn[name] = {0: BATCH}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, graph.dummy_inputs(), buf, export_params=True, opset_version=OPSET,
                              do_constant_folding=True, input_names=graph.input_names,
                              output_names=graph.output_names, dynamic_axes=dyn, dynamo=False)
        except Exception as exc:  # torch raises many kinds; the user needs one line
            raise ExportError(f"torch.onnx.export failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return buf.getvalue()


def _with_metadata(data: bytes, payload: dict, plan: ExportPlan, agent_slot: int) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    meta = {"marl.format": "marl-arena/1", "marl.behavior": str(payload.get("behavior", plan.spec.name)),
            "marl.trainer_type": str(payload["trainer_type"]), "marl.step": str(int(payload.get("step", 0))),
            "marl.env_id": str(payload.get("env_id", "")), "marl.agent_slot": str(agent_slot),
            "marl.behavior_spec": json.dumps(spec_to_dict(plan.spec)),
            "marl.takes_agent_id": "1" if getattr(plan.reference, "takes_agent_id", False) else "0"}
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    return model.SerializeToString()


def random_masks(rng: np.random.Generator, n: int, branches) -> np.ndarray:
    """Random action masks float32 ``[n, sum(branches)]`` (1 = allowed), at least one allowed per branch."""
    parts = []
    for size in branches:
        m = (rng.random((n, size)) < 0.5).astype(np.float32)
        m[np.arange(n), rng.integers(0, size, n)] = 1.0
        parts.append(m)
    out = np.concatenate(parts, 1)
    out[0] = 1.0  # one row with everything allowed
    return out


def verify(data: bytes, graph: UnityPolicyGraph, plan: ExportPlan, agent_slot: int, batch: int = 16, steps: int = 3,
           seed: int = 0) -> float:
    """Run the export in onnxruntime and compare it with the trainer's torch policy.

    On ``steps`` consecutive steps of random observations (and masks), feeding ``recurrent_out``
    back as ``recurrent_in``: ``deterministic_discrete_actions`` must equal the torch greedy
    actions (a differing row is accepted only when the two actions' masked scores tie within
    1e-5, relative), ``deterministic_continuous_actions`` must be within :data:`CONTINUOUS_ATOL`,
    sampled discrete actions must never be masked, sampled continuous actions must be in [-1, 1].

    Returns:
        the largest absolute difference of continuous actions.

    Raises:
        ExportError: any mismatch (names the output and the first bad row).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot load the export ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    got_in = [i.name for i in sess.get_inputs()]
    got_out = [o.name for o in sess.get_outputs()]
    if got_in != graph.input_names or got_out != graph.output_names:
        raise ExportError(f"exported graph has inputs {got_in} / outputs {got_out}, expected "
                          f"{graph.input_names} / {graph.output_names}")
    rng = np.random.default_rng(seed)
    spec, branches = plan.spec, graph.branches
    ids = np.full(batch, agent_slot, np.int64)
    memory = np.zeros((batch, 1, graph.memory_size), np.float32)
    hidden = None
    worst = 0.0
    for t in range(steps):
        obs = (rng.integers(0, 256, (batch, spec.obs_size)).astype(np.float32) if spec.obs_dtype == "uint8"
               else (rng.standard_normal((batch, spec.obs_size)) * 2.0).astype(np.float32))  # the env's value range
        feeds, start = {}, 0
        for i, shape in enumerate(graph.sensor_shapes):
            size = int(np.prod(shape))
            feeds[graph.input_names[i]] = obs[:, start:start + size].reshape(batch, *shape)
            start += size
        mask = random_masks(rng, batch, branches) if branches else None
        if mask is not None:
            feeds[ACTION_MASKS] = mask
        if graph.memory_size:
            feeds[RECURRENT_IN] = memory
        out = dict(zip(got_out, sess.run(None, feeds)))
        d_ref, c_ref, hidden = plan.reference.act(obs.reshape(batch, *spec.obs_shape), ids, mask, hidden,
                                                  deterministic=True)
        if branches:
            d = out[DETERMINISTIC_DISCRETE]
            if d.dtype != np.int64 or d.shape != (batch, len(branches)):
                raise ExportError(f"{DETERMINISTIC_DISCRETE}: got {d.dtype} {d.shape}, expected int64 {(batch, len(branches))}")
            bad = np.argwhere(d != np.asarray(d_ref))
            if len(bad):
                with torch.no_grad():
                    mem_t = torch.from_numpy(memory.reshape(batch, -1)) if graph.memory_size else None
                    scores = graph.masked_scores(torch.from_numpy(obs), torch.from_numpy(mask), mem_t).numpy()
                offsets = np.concatenate([[0], np.cumsum(branches)[:-1]])
                for row, br in bad:
                    a, b = scores[row, offsets[br] + d[row, br]], scores[row, offsets[br] + d_ref[row, br]]
                    if abs(a - b) > 1e-5 * max(1.0, abs(b)):
                        raise ExportError(f"{DETERMINISTIC_DISCRETE} differs from the torch policy at step {t}, row {row}, "
                                          f"branch {br}: onnx {d[row, br]} vs torch {d_ref[row, br]}")
            sampled = out[DISCRETE_ACTIONS]
            for br, size in enumerate(branches):
                off = int(sum(branches[:br]))
                allowed = mask[np.arange(batch), off + sampled[:, br]] if np.all((sampled[:, br] >= 0) & (sampled[:, br] < size)) else None
                if allowed is None or np.any(allowed < 0.5):
                    raise ExportError(f"{DISCRETE_ACTIONS} picked a masked or out-of-range action in branch {br} at step {t}")
        if spec.action.continuous_size:
            c = out[DETERMINISTIC_CONTINUOUS]
            diff = float(np.max(np.abs(c - np.asarray(c_ref)))) if c.size else 0.0
            worst = max(worst, diff)
            if not diff <= CONTINUOUS_ATOL:
                raise ExportError(f"{DETERMINISTIC_CONTINUOUS} differs from the torch policy by {diff:.3g} "
                                  f"(> {CONTINUOUS_ATOL}) at step {t}")
            s = out[CONTINUOUS_ACTIONS]
            if not np.all(np.isfinite(s)) or np.any(np.abs(s) > 1.0):
                raise ExportError(f"{CONTINUOUS_ACTIONS} are not finite values in [-1, 1] at step {t}")
        if graph.memory_size:
            memory = out[RECURRENT_OUT]
    return worst


@contextlib.contextmanager
def single_thread_torch():
    """Run torch on one intra-op thread for the block (restored after).

    The export works on batches of a few rows: on a loaded machine torch's thread pool makes
    such calls ~1000x slower (0.2 s instead of 0.2 ms per forward measured on 2 busy cores).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def export_bytes(payload: dict, agent_slot: int = 0, check: bool = True) -> ExportResult:
    """Export a checkpoint payload to ONNX bytes (and verify them unless ``check`` is False).

    Raises:
        ExportError: unknown trainer type, bad slot, export failure or verification mismatch.
    """
    t0 = time.perf_counter()
    # tracing runs randn_like / multinomial: keep the caller's (the trainer's) torch RNG stream intact
    with single_thread_torch(), torch.random.fork_rng(devices=[]):
        graph, plan = build_graph(payload, agent_slot)
        data = _with_metadata(_to_onnx(graph), payload, plan, agent_slot)
        worst = verify(data, graph, plan, agent_slot) if check else 0.0
    return ExportResult(data, graph, plan, time.perf_counter() - t0, worst)


def export_checkpoint(payload: dict, path: str | Path, agent_slot: int = 0, check: bool = True) -> Path:
    """Write the ML-Agents 3.x brain of a checkpoint payload to ``path`` (atomically).

    Args:
        payload: a checkpoint dict (:mod:`marl.checkpoint` format), e.g. from ``load_checkpoint``.
        path: destination ``.onnx``.
        agent_slot: the slot whose one-hot agent id is baked into the graph (shared policies).
        check: verify the export against the torch policy in onnxruntime first (default).

    Returns:
        ``path``.

    Raises:
        ExportError: see :func:`export_bytes`; nothing is written then.
    """
    res = export_bytes(payload, agent_slot, check)
    return atomic_write(path, lambda f: f.write(res.data))


def export_all_slots(payload: dict, path: str | Path, check: bool = True) -> list[Path]:
    """The brain of slot 0 at ``path`` and, when the policy takes an agent id (a shared policy of
    several seats), one sibling per further slot, ``<stem>_agent<i>.onnx`` (the slot in each file's
    metadata). Consumers (:class:`marl.export.onnx_policy.OnnxPolicy`, the league, the Unity brain
    importer) pick the file by the agent's slot.

    Returns:
        every file written, ``path`` first.

    Raises:
        ExportError: see :func:`export_bytes`; files already written stay.
    """
    path = Path(path)
    res = export_bytes(payload, 0, check)
    atomic_write(path, lambda f: f.write(res.data))
    out = [path]
    if getattr(res.plan.reference, "takes_agent_id", False):
        for slot in range(1, res.plan.spec.n_agents):
            r = export_bytes(payload, slot, check)
            sib = path.with_name(f"{path.stem}_agent{slot}.onnx")
            atomic_write(sib, lambda f, d=r.data: f.write(d))
            out.append(sib)
    return out
