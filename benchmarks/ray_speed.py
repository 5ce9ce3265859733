"""Env steps/s of marl-learn with local env workers against the same run with --ray env runners.

    python benchmarks/ray_speed.py --max-steps 100000 --num-envs 2          # simple_spread MAPPO

Both runs use the same config, seed and number of workers/runners, back to back; the figure is
whole-training env steps per second (collection + updates) and the ratio ray / local.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl.config import parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402


def run(data: dict, ray: bool, results: str, run_id: str) -> float:
    d = yaml.safe_load(yaml.safe_dump(data))
    d["env_settings"]["ray"] = ray
    d["checkpoint_settings"] = {"run_id": run_id, "results_dir": results, "force": True}
    cfg = parse_config(d, "ray_speed")
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    return res["step"] / res["seconds"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/mappo/simple_spread.yaml")
    p.add_argument("--max-steps", type=int, default=100000)
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    data = yaml.safe_load(open(a.config))
    for b in data["behaviors"].values():
        b["max_steps"] = a.max_steps
    data["env_settings"].update(num_envs=a.num_envs, seed=a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        local = run(data, False, tmp, "local")
        ray = run(data, True, tmp, "ray")
    print(f"{a.config}: {a.max_steps} env steps, {a.num_envs} workers/runners: local {local:,.0f} env steps/s, "
          f"ray {ray:,.0f} env steps/s, ratio {ray / local:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
