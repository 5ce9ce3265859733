"""Throughput of ``marl-learn --ray`` as env runners are added, on a local multi-node Ray cluster.

    .venv/bin/python benchmarks/ray_scaling.py [--runners 1 2 4 8 16] [--delay 0.02] [--nodes 4] [--rollouts 12]

The env (``benchmarks/sleep_env.py``) sleeps ``--delay`` seconds per step, as a 50 Hz Unity player
spends 20 ms per step in its own process. Ray runs as ``--nodes`` nodes on this machine
(``ray.cluster_utils.Cluster`` through ``marl.raytools.start_or_connect``), each with
``ceil(max runners / nodes)`` logical CPUs and a 100 MiB object store, so runners spread over nodes as
on a real cluster. Each runner holds one env copy. Every run uses the same MAPPO config (``buffer_size``
1024 experiences = 512 env steps per rollout, split over the runners; 3 epochs of 4 minibatches) and
trains ``--rollouts`` rollouts; the first two (actor start-up, imports) are not timed.

Printed per runner count, in env steps per second:
* end to end: steps of the timed rollouts / wall clock from the first timed rollout's start to the last
  one's start (collection, merging and the learner's update included);
* collection only: the same steps / the seconds the driver waited for the runners' fragments;
* scaling efficiency: end-to-end steps/s / (N x the 1-runner end-to-end steps/s) (target >= 0.8 at 8).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import marl.ray_runners as ray_runners  # noqa: E402
from marl.config import parse_config  # noqa: E402
from marl.raytools import project_runtime_env, shutdown, start_or_connect  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402

STEPS_PER_ROLLOUT = 512  # env steps (1024 experiences of 2 agents)


def config(n: int, rollouts: int, delay: float, results: str, device: str) -> dict:
    return {
        "behaviors": {"agent": {
            "trainer_type": "mappo",
            "hyperparameters": {"buffer_size": 2 * STEPS_PER_ROLLOUT, "batch_size": 256, "num_epoch": 3,
                                "learning_rate": 0.0003},
            "network_settings": {"hidden_units": 64, "num_layers": 2},
            "max_steps": rollouts * STEPS_PER_ROLLOUT, "summary_freq": 10 ** 9, "checkpoint_interval": 10 ** 9,
        }},
        "env_settings": {"env_path": "benchmarks.sleep_env:parallel_env", "env_kwargs": {"delay": delay},
                         "num_envs": n, "num_areas": 1, "seed": 1, "ray": True},
        "torch_settings": {"device": device},
        "checkpoint_settings": {"run_id": f"scale{n}", "results_dir": results, "force": True},
    }


def measure(n: int, a, results: str) -> tuple[float, float]:
    """``(end-to-end, collection-only)`` env steps/s of ``n`` runners over the timed rollouts."""
    log: list[tuple[float, int, float]] = []  # (start of collect, env steps, seconds waiting)
    original = ray_runners.RayRunners.collect

    def timed(self, weights, step, merge):
        t = time.perf_counter()
        out = original(self, weights, step, merge)
        log.append((t, out[0], out[2]))
        return out

    ray_runners.RayRunners.collect = timed
    try:
        cfg = parse_config(config(n, a.rollouts, a.delay, results, a.device), "ray_scaling")
        train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    finally:
        ray_runners.RayRunners.collect = original
    timed_rolls = log[2:]
    steps = sum(s for _, s, _ in timed_rolls[:-1])
    end_to_end = steps / (timed_rolls[-1][0] - timed_rolls[0][0])
    collection = steps / sum(w for _, _, w in timed_rolls[:-1])
    return end_to_end, collection


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--delay", type=float, default=0.02, help="seconds slept per env step")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--rollouts", type=int, default=12, help="rollouts per run (the first two are not timed)")
    p.add_argument("--device", default="cpu", help="the learner's torch device")
    a = p.parse_args()
    if a.rollouts < 4:
        p.error("--rollouts must be >= 4 (two warm-up rollouts, then at least two timed)")
    per_node = math.ceil(max(a.runners) / a.nodes)
    start_or_connect(None, num_cpus=per_node, nodes=a.nodes, object_store_memory=100 * 2 ** 20,
                     runtime_env=project_runtime_env())
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in a.runners:
                e2e, coll = measure(n, a, tmp)
                rows.append((n, e2e, coll))
                print(f"{n:>3} runners: end to end {e2e:7.1f} env steps/s, collection only {coll:7.1f} env steps/s",
                      flush=True)
    finally:
        shutdown()
    one = next((e for n, e, _ in rows if n == 1), None)
    print(f"\nsleep env {a.delay * 1000:.0f} ms/step, {a.nodes} Ray nodes x {per_node} logical CPUs, learner on "
          f"{a.device}, {STEPS_PER_ROLLOUT} env steps per rollout, {a.rollouts - 2} rollouts timed per run")
    print("| runners | end to end (env steps/s) | collection only (env steps/s) | efficiency (end to end) |")
    print("|---:|---:|---:|---:|")
    for n, e2e, coll in rows:
        eff = f"{e2e / (n * one):.2f}" if one else "n/a"
        print(f"| {n} | {e2e:.1f} | {coll:.1f} | {eff} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
