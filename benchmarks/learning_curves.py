"""Learning curves of a config (PettingZoo, in-process games) against the random policy, over several seeds.

For each seed: ``marl-learn CONFIG --seed S`` (``max_steps`` replaced by ``--max-steps``), the mean
reward of every summary line (ML-Agents' "Mean Reward": mean per-agent episode return of the
episodes that ended in the summary period, actions sampled), then ``marl-evaluate --stochastic`` of the
final policies and ``marl-evaluate --random`` (the chance baseline, same env settings, same scoring).
Prints one table per behavior and a JSON line.

    .venv/bin/python benchmarks/learning_curves.py configs/mappo/knights_archers_zombies.yaml --seeds 1 2 3
    .venv/bin/python benchmarks/learning_curves.py configs/mappo/pursuit.yaml --seeds 1 2 3 --out /tmp/pursuit

Units: env steps summed over env copies; returns are per agent per episode.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
SUMMARY = re.compile(r"\[INFO\] (\S+)\. Step: (\d+)\..*?Mean Reward: (-?\d+(?:\.\d+)?|nan)")


def _config_copy(config: Path, max_steps: int | None, out: Path) -> Path:
    data = yaml.safe_load(config.read_text())
    if max_steps:  # behaviors that do not train (max_steps below one rollout: a fixed opponent) stay so
        for b in [*data["behaviors"].values(), data.get("default_settings") or {}]:
            if int(b.get("max_steps", 500000)) > 1000:
                b["max_steps"] = int(max_steps)
    path = out / config.name
    text = yaml.safe_dump(data, sort_keys=False)
    if not path.is_file() or path.read_text() != text:  # unchanged: keep its time (finished seeds are reused)
        path.write_text(text)
    return path


def _evaluate(run_dir: Path, episodes: int, extra: list[str], timeout: float) -> dict:
    out = subprocess.run([str(BIN / "marl-evaluate"), str(run_dir), "--episodes", str(episodes), "--json", *extra],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"marl-evaluate {run_dir} {' '.join(extra)} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["behaviors"]


def run_seed(config: Path, seed: int, out: Path, episodes: int, timeout: float) -> dict:
    """Train one seed, then score its final policies and the random baseline. Returns the seed's figures."""
    run_id = f"{config.stem}-s{seed}"
    log = out / f"{run_id}.log"
    t0 = time.time()
    if log.is_file() and "Training finished" in log.read_text() and log.stat().st_mtime > config.stat().st_mtime:
        # trained by an earlier call with this config (a changed config is newer than the log): score it again
        text, seconds = log.read_text(), float("nan")
    else:
        proc = subprocess.run([str(BIN / "marl-learn"), str(config), "--seed", str(seed), "--run-id", run_id,
                               "--results-dir", str(out), "--force"], capture_output=True, text=True, timeout=timeout)
        seconds = time.time() - t0
        text = proc.stdout + proc.stderr
        log.write_text(text)
        if proc.returncode != 0:
            raise SystemExit(f"marl-learn seed {seed} failed (exit {proc.returncode}); see {log}")
    curve: dict[str, list[tuple[int, float]]] = {}
    for name, step, reward in SUMMARY.findall(text):
        curve.setdefault(name, []).append((int(step), float(reward)))
    run_dir = out / run_id
    trained = _evaluate(run_dir, episodes, ["--stochastic", "--seed", str(seed)], timeout)
    rand = _evaluate(run_dir, episodes, ["--random", "--seed", str(seed)], timeout)
    return {"seed": seed, "seconds": round(seconds, 1), "curve": curve,
            "final": {b: r["mean_return"] for b, r in trained.items()},
            "random": {b: r["mean_return"] for b, r in rand.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--max-steps", type=int, default=None, help="replace every behavior's max_steps")
    p.add_argument("--episodes", type=int, default=50, help="episodes per evaluation (default 50)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default /tmp/<config>-curves)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per marl-learn run")
    args = p.parse_args()
    out = args.out or Path(f"/tmp/{args.config.stem}-curves")
    out.mkdir(parents=True, exist_ok=True)
    config = _config_copy(args.config, args.max_steps, out)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    rows = [run_seed(config, s, out, args.episodes, args.timeout) for s in args.seeds]
    for name in rows[0]["final"]:
        print(f"\n{name} ({args.config}): mean reward per agent per episode")
        print("| seed | first summary | last summary | final policy (sampled) | random | seconds |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            c = r["curve"].get(name, [])
            first = f"{c[0][1]:.3f} @ {c[0][0]}" if c else "-"
            last = f"{c[-1][1]:.3f} @ {c[-1][0]}" if c else "-"
            print(f"| {r['seed']} | {first} | {last} | {r['final'][name]:.3f} | {r['random'][name]:.3f} | {r['seconds']} |")
        for r in rows:
            pts = ", ".join(f"{s // 1000}k {v:.2f}" for s, v in r["curve"].get(name, []))
            print(f"seed {r['seed']} curve: {pts}")
    print(json.dumps({"config": str(args.config), "rows": rows}))


if __name__ == "__main__":
    main()
