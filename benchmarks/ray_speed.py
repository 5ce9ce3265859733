"""Env steps/s and final return of marl-learn with local env workers against the same run with --ray runners.

    python benchmarks/ray_speed.py --max-steps 200000 --num-envs 2 --seeds 1 2 3     # simple_spread MAPPO

For each seed, both runs use the same config, seed and number of workers/runners, back to back (so
they see the same machine load). Printed per run:

* whole run: env steps / wall clock of ``train()`` (start-up of the workers or of Ray and its actors,
  collection, updates and checkpoints);
* loop: env steps / (collection + update seconds from ``run_logs/timers.json``), i.e. without start-up
  and checkpoint writing;
* CPU: env steps per CPU-second of the whole process tree (this process, env workers, Ray's processes
  and runners), sampled every 0.25 s: the rate each path would reach on cores of its own, which a
  loaded machine disturbs far less than wall-clock rates;
* the mean episode return of the last 100 episodes.

Then the means over seeds and the ratios ray / local (target >= 80% on simple_spread).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl.config import parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402


class TreeCPU:
    """CPU seconds (user + system) used by this process and its descendants while it runs, sampled every
    ``period`` seconds from ``/proc`` (a process that ends between samples loses at most one period)."""

    def __init__(self, period: float = 0.25):
        import os

        self.period, self.tick, self.me = period, os.sysconf("SC_CLK_TCK"), os.getpid()
        self.seen: dict[tuple[int, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import os

        stats = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        text = f.read()
                    rest = text.rsplit(")", 1)[1].split()
                    stats[int(d)] = (int(rest[1]), rest[19], (int(rest[11]) + int(rest[12])) / self.tick)
                except (OSError, IndexError, ValueError):
                    pass
        mine, todo = {self.me}, [self.me]
        while todo:
            parent = todo.pop()
            for pid, (ppid, _, _) in stats.items():
                if ppid == parent and pid not in mine:
                    mine.add(pid)
                    todo.append(pid)
        for pid in mine:
            if pid in stats:
                self.seen[(pid, stats[pid][1])] = stats[pid][2]  # keyed by (pid, start time): pids are reused

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self) -> "TreeCPU":
        self._sample()
        self.start = sum(self.seen.values())
        self.seen.clear()
        self._sample()
        self.base = dict(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(v - self.base.get(k, 0.0) for k, v in self.seen.items())


def run(data: dict, ray: bool, results: str, run_id: str) -> tuple[float, float, float, float]:
    """``(whole-run env steps/s, loop env steps/s, env steps per CPU-second, last-100 mean return)``."""
    d = yaml.safe_load(yaml.safe_dump(data))
    d["env_settings"]["ray"] = ray
    d["checkpoint_settings"] = {"run_id": run_id, "results_dir": results, "force": True}
    cfg = parse_config(d, "ray_speed")
    run_dir = prepare_run_dir(cfg)
    with TreeCPU() as cpu:
        res = train(cfg, run_dir, console=None, tensorboard=False)
    timers = json.loads((run_dir / "run_logs" / "timers.json").read_text())["children"]
    loop = timers["env_step"]["total"] + timers["trainer_update"]["total"]
    returns = [v for v in res["last_100"].values()]
    return (res["step"] / res["seconds"], res["step"] / loop, res["step"] / max(cpu.seconds, 1e-9),
            float(statistics.mean(returns)))


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
                whole, loop, per_cpu, ret = run(data, kind == "ray", tmp, f"{kind}-{seed}")
                rows[kind].append((whole, loop, per_cpu, ret))
                print(f"seed {seed} {kind:5s}: whole run {whole:7,.0f} env steps/s, loop {loop:7,.0f} env steps/s, "
                      f"{per_cpu:6,.0f} env steps per CPU-second, last-100 return {ret:.2f}", flush=True)
    m = {k: [statistics.mean(r[i] for r in v) for i in range(4)] for k, v in rows.items()}
    sd = {k: statistics.stdev([r[3] for r in v]) if len(v) > 1 else 0.0 for k, v in rows.items()}
    print(f"\n{a.config}: {a.max_steps} env steps, {a.num_envs} workers/runners, seeds {a.seeds} (means):")
    print(f"  whole run: local {m['local'][0]:,.0f}, ray {m['ray'][0]:,.0f} env steps/s, ratio {m['ray'][0] / m['local'][0]:.0%}")
    print(f"  loop:      local {m['local'][1]:,.0f}, ray {m['ray'][1]:,.0f} env steps/s, ratio {m['ray'][1] / m['local'][1]:.0%}")
    print(f"  per CPU-s: local {m['local'][2]:,.0f}, ray {m['ray'][2]:,.0f} env steps, ratio {m['ray'][2] / m['local'][2]:.0%}")
    print(f"  last-100 return: local {m['local'][3]:.2f} (sd {sd['local']:.2f}), ray {m['ray'][3]:.2f} (sd {sd['ray']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
