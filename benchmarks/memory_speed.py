"""The speed cost of memory (an LSTM, ``network_settings.memory``) on MAPPO simple_spread, in one run.

    .venv/bin/python benchmarks/memory_speed.py [--max-steps 100000] [--rounds 3] [--memory-size 64] [--sequence-length 16]

Trains ``configs/mappo/simple_spread.yaml`` for ``--max-steps`` env steps without memory and with
``memory: {memory_size, sequence_length}``, alternating the two ``--rounds`` times (so both see the same
machine load), and prints whole-training env steps/s of each run, the means and the ratio with / without.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl.config import parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402


def run(data: dict, memory: dict | None, results: str, run_id: str) -> tuple[float, float]:
    """``(env steps/s, last-100 mean return)`` of one run."""
    d = yaml.safe_load(yaml.safe_dump(data))
    for b in d["behaviors"].values():
        if memory is not None:
            b.setdefault("network_settings", {})["memory"] = memory
    d["checkpoint_settings"] = {"run_id": run_id, "results_dir": results, "force": True}
    cfg = parse_config(d, "memory_speed")
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    return res["step"] / res["seconds"], float(statistics.mean(res["last_100"].values()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/mappo/simple_spread.yaml")
    p.add_argument("--max-steps", type=int, default=100000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--memory-size", type=int, default=64)
    p.add_argument("--sequence-length", type=int, default=16)
    a = p.parse_args()
    data = yaml.safe_load(open(a.config))
    for b in data["behaviors"].values():
        b["max_steps"] = a.max_steps
    memory = {"memory_size": a.memory_size, "sequence_length": a.sequence_length}
    speeds: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for kind, mem in (("without", None), ("with", memory)):
                sps, ret = run(data, mem, tmp, f"{kind}-{r}")
                speeds[kind].append(sps)
                print(f"round {r + 1} {kind:7s} memory: {sps:7,.0f} env steps/s, last-100 return {ret:.2f}", flush=True)
    m = {k: statistics.mean(v) for k, v in speeds.items()}
    print(f"\n{a.config}, {a.max_steps} env steps, memory_size {a.memory_size}, sequence_length "
          f"{a.sequence_length}: without {m['without']:,.0f}, with {m['with']:,.0f} env steps/s "
          f"(with / without = {m['with'] / m['without']:.0%}, means of {a.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
