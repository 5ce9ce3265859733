"""Env steps/s and final return of marl-learn with local env workers against the same run with --ray runners.

    python benchmarks/ray_speed.py --max-steps 200000 --num-envs 2 --seeds 1 2 3     # simple_spread MAPPO

For each seed, both runs use the same config, seed and number of workers/runners, back to back (so
they see the same machine load). Printed per run:

* whole run: env steps / wall clock of ``train()`` (start-up of the workers or of Ray and its actors,
  collection, updates and checkpoints);
* loop: env steps / (collection + update seconds from ``run_logs/timers.json``), i.e. without start-up
  and checkpoint writing;
* the mean episode return of the last 100 episodes.

Then the means over seeds and the ratios ray / local (target >= 80% on simple_spread).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl.config import parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402


def run(data: dict, ray: bool, results: str, run_id: str) -> tuple[float, float, float]:
    """``(whole-run env steps/s, loop env steps/s, last-100 mean return)`` of one run."""
    d = yaml.safe_load(yaml.safe_dump(data))
    d["env_settings"]["ray"] = ray
    d["checkpoint_settings"] = {"run_id": run_id, "results_dir": results, "force": True}
    cfg = parse_config(d, "ray_speed")
    run_dir = prepare_run_dir(cfg)
    res = train(cfg, run_dir, console=None, tensorboard=False)
    timers = json.loads((run_dir / "run_logs" / "timers.json").read_text())["children"]
    loop = timers["env_step"]["total"] + timers["trainer_update"]["total"]
    returns = [v for v in res["last_100"].values()]
    return res["step"] / res["seconds"], res["step"] / loop, float(statistics.mean(returns))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/mappo/simple_spread.yaml")
    p.add_argument("--max-steps", type=int, default=100000)
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    a = p.parse_args()
    data = yaml.safe_load(open(a.config))
    for b in data["behaviors"].values():
        b["max_steps"] = a.max_steps
    data["env_settings"]["num_envs"] = a.num_envs
    rows = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            data["env_settings"]["seed"] = seed
            for kind in ("local", "ray"):
                whole, loop, ret = run(data, kind == "ray", tmp, f"{kind}-{seed}")
                rows[kind].append((whole, loop, ret))
                print(f"seed {seed} {kind:5s}: whole run {whole:7,.0f} env steps/s, loop {loop:7,.0f} env steps/s, "
                      f"last-100 return {ret:.2f}", flush=True)
    m = {k: [statistics.mean(r[i] for r in v) for i in range(3)] for k, v in rows.items()}
    sd = {k: statistics.stdev([r[2] for r in v]) if len(v) > 1 else 0.0 for k, v in rows.items()}
    print(f"\n{a.config}: {a.max_steps} env steps, {a.num_envs} workers/runners, seeds {a.seeds} (means):")
    print(f"  whole run: local {m['local'][0]:,.0f}, ray {m['ray'][0]:,.0f} env steps/s, ratio {m['ray'][0] / m['local'][0]:.0%}")
    print(f"  loop:      local {m['local'][1]:,.0f}, ray {m['ray'][1]:,.0f} env steps/s, ratio {m['ray'][1] / m['local'][1]:.0%}")
    print(f"  last-100 return: local {m['local'][2]:.2f} (sd {sd['local']:.2f}), ray {m['ray'][2]:.2f} (sd {sd['ray']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
