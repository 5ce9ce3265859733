"""ONNX export speed (1M-parameter policy) and per-agent onnxruntime inference latency.

Run: ``.venv/bin/python benchmarks/export_speed.py [--repeats 5] [--runs 3000]``

Prints one line per measurement:

* export: wall seconds of ``marl.export.export_checkpoint`` (torch.onnx.export, opset 9 legacy
  exporter + onnxruntime verification against torch + atomic write), cold (first call in the
  process) and the median of warm calls; also the bare ``torch.onnx.export`` part.
* inference: median and p90 microseconds of one onnxruntime ``run`` for ONE agent (batch 1,
  one intra-op thread: a Unity agent's decision), for the raw session and through
  :class:`marl.export.onnx_policy.OnnxPolicy.act` (numpy glue included); and per agent in a
  batch of 64.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from envs.spec import ActionSpec, BehaviorSpec
from marl.checkpoint import FORMAT, spec_to_dict
from marl.config import NetworkSettings
from marl.export import build_graph, export_checkpoint
from marl.export.onnx_export import _to_onnx, single_thread_torch
from marl.export.onnx_policy import OnnxPolicy
from marl.networks import Actor, count_parameters


def payload_for(obs_size: int, n_agents: int, action: ActionSpec, hidden: int, layers: int, normalize: bool) -> dict:
    spec = BehaviorSpec("agent", tuple(f"a{i}" for i in range(n_agents)), (obs_size,), action)
    net = NetworkSettings(hidden_units=hidden, num_layers=layers, normalize=normalize)
    actor = Actor(obs_size, n_agents, action, net)
    return {"format": FORMAT, "behavior": "agent", "trainer_type": "mappo", "step": 0, "env_id": "bench",
            "behavior_spec": spec_to_dict(spec), "state_shape": [obs_size * n_agents],
            "network_settings": net.model_dump(), "trainer": {"actor": actor.state_dict()}, "extra": {}}, actor


def latency_us(fn, runs: int) -> tuple[float, float]:
    for _ in range(min(200, runs)):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        ts.append((time.perf_counter_ns() - t) / 1000)
    ts.sort()
    return statistics.median(ts), ts[int(0.9 * len(ts))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3000)
    args = ap.parse_args()
    import onnxruntime as ort

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, torch threads {torch.get_num_threads()}")
    cases = {
        "1M-param (obs 64, 3x704 MLP, 5 actions, normalize)": payload_for(64, 3, ActionSpec((5,)), 704, 3, True),
        "simple_spread-size (obs 18, 2x64 MLP, 5 actions)": payload_for(18, 3, ActionSpec((5,)), 64, 2, False),
        "hybrid (obs 64, 2x256, branches 3x3 + 2 continuous)": payload_for(64, 4, ActionSpec((3, 3), 2, (-1, -1), (1, 1)),
                                                                           256, 2, False),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label, (payload, actor) in cases.items():
            path = Path(tmp) / "agent.onnx"
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                export_checkpoint(payload, path)
                times.append(time.perf_counter() - t)
            with single_thread_torch():
                graph, _ = build_graph(payload)
                t = time.perf_counter()
                _to_onnx(graph)
                bare = time.perf_counter() - t
            print(f"export   {label}: {count_parameters(actor):,} params, {path.stat().st_size / 1e6:.2f} MB; "
                  f"export_checkpoint cold {times[0]:.3f} s, warm median {statistics.median(times[1:] or times):.3f} s "
                  f"(torch.onnx.export alone {bare:.3f} s)")

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            spec = spec_of = payload["behavior_spec"]
            obs_size = spec_of["obs_shape"][0]
            mask_size = sum(spec["action"]["discrete_branches"])

            def feeds(b):
                f = {"obs_0": np.random.default_rng(0).standard_normal((b, obs_size)).astype(np.float32)}
                if mask_size:
                    f["action_masks"] = np.ones((b, mask_size), np.float32)
                return f

            f1, f64 = feeds(1), feeds(64)
            want = [o.name for o in sess.get_outputs() if o.name.startswith("deterministic")]
            med, p90 = latency_us(lambda: sess.run(want, f1), args.runs)
            med64, _ = latency_us(lambda: sess.run(want, f64), max(200, args.runs // 10))
            pol = OnnxPolicy(path)
            idx = np.zeros(1, np.int64)
            pmed, pp90 = latency_us(lambda: pol.act(f1["obs_0"], idx), args.runs)
            print(f"infer    {label}: batch 1 onnxruntime run median {med:.1f} us (p90 {p90:.1f} us); "
                  f"OnnxPolicy.act median {pmed:.1f} us (p90 {pp90:.1f} us); batch 64: {med64 / 64:.2f} us/agent")


if __name__ == "__main__":
    main()
