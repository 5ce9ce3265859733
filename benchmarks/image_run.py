"""Speed and resident memory of a training run on image observations (cooperative_pong, pistonball).

Runs ``marl-learn CONFIG`` with ``max_steps`` replaced, samples the trainer process's resident set
(``VmRSS``, every 0.5 s; Linux) and reads ``run_logs/timers.json``. Prints per run: env steps/s over the
whole run (start-up included) and over the loop (env steps + updates), the median RSS (the level between
updates) and the peak RSS, with the config's ``buffer_size``.

    .venv/bin/python benchmarks/image_run.py configs/ippo/cooperative_pong.yaml --max-steps 6144 --runs 3
    .venv/bin/python benchmarks/image_run.py configs/ippo/pistonball.yaml --max-steps 20480

Measure on a quiet machine (load under 2): speeds are wall-clock.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def one_run(config: Path, tmp: Path, run_id: str, timeout: float) -> dict:
    """One ``marl-learn`` run; returns its speeds (env steps/s) and RSS figures (MB)."""
    err = open(tmp / f"{run_id}.stderr", "w+")  # a file, not a pipe: nothing blocks on unread warnings
    proc = subprocess.Popen([str(BIN / "marl-learn"), str(config), "--run-id", run_id, "--results-dir", str(tmp),
                             "--force", "--seed", "1"], stdout=subprocess.DEVNULL, stderr=err, text=True)
    samples: list[float] = []
    t0 = time.time()
    try:
        while proc.poll() is None:
            if time.time() - t0 > timeout:
                raise SystemExit(f"marl-learn {config} did not finish within {timeout:.0f} s")
            rss = _rss_mb(proc.pid)
            if rss:
                samples.append(rss)
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    err.seek(0)
    tail = err.read()[-2000:]
    err.close()
    if proc.returncode != 0:
        raise SystemExit(f"marl-learn {config} failed: {tail}")
    timers = json.loads((tmp / run_id / "run_logs" / "timers.json").read_text())
    steps = timers["metadata"]["end_step"]
    loop = timers["children"]["env_step"]["total"] + timers["children"]["trainer_update"]["total"]
    late = samples[len(samples) // 4:] or samples  # after start-up
    return {"steps": steps, "whole": steps / timers["total"], "loop": steps / loop,
            "rss_median": statistics.median(late), "rss_peak": max(samples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path)
    p.add_argument("--max-steps", type=int, default=6144)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    args = p.parse_args()
    data = yaml.safe_load(args.config.read_text())
    buffers = set()
    for b in data["behaviors"].values():
        b["max_steps"] = args.max_steps
        buffers.add((b.get("hyperparameters") or {}).get("buffer_size"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / args.config.name
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        rows = [one_run(cfg, Path(tmp), f"r{i}", args.timeout) for i in range(args.runs)]
    print(f"{args.config} (buffer_size {', '.join(map(str, sorted(b for b in buffers if b)))}), "
          f"{args.max_steps} env steps per run:")
    for i, r in enumerate(rows):
        print(f"  run {i + 1}: {r['whole']:.0f} env steps/s whole run, {r['loop']:.0f} in the loop; "
              f"trainer RSS median {r['rss_median']:.0f} MB, peak {r['rss_peak']:.0f} MB")
    print(json.dumps({"config": str(args.config), "rows": rows}))


if __name__ == "__main__":
    main()
