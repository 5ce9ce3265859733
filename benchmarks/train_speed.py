"""Training speed and learning quality of a trainer on a config, against the env's own step rate.

Prints, for each seed: whole-training throughput (env steps per second of wall time, env
stepping + inference + updates), the raw step rate of ONE env process under random actions
measured in the same run (the ceiling: sampled before, after, and for 0.5 s every 10 s between
rollouts, time left out of the training figure), their ratio, the mean per-agent episode return over the
last 100 training episodes (the ``Environment/Cumulative Reward`` figure) at fixed step counts
and the best such figure reached within them (one summary every 20,000 env steps),
and peak resident memory (trainer process, largest env worker). Then a summary over seeds.

Usage (defaults reproduce the foundation issue's figures)::

    python benchmarks/train_speed.py                                   # MAPPO simple_spread, 3 seeds x 1M
    python benchmarks/train_speed.py --config configs/ippo/simple_spread.yaml --seeds 1 --max-steps 300000
    python benchmarks/train_speed.py --config configs/qmix/simple_spread.yaml

Any trainer type works: the script drives :func:`marl.run.train` like ``marl-learn`` does.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.registry import make_env  # noqa: E402
from marl.config import ConfigError, parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402


class RawRate:
    """Joint env steps per second of one bare PettingZoo env in this process, random actions.

    Actions are drawn up front (``Discrete``/``Box`` via numpy) so the figure is the env's own
    cost, the ceiling any trainer on one env process can reach. :meth:`sample` steps it for a
    while and adds to the tally; sampling before, during (between rollouts, left out of the
    training time) and after training makes the ratio robust to a shared VM's speed drifting by
    +-20% within minutes.
    """

    def __init__(self, env_id: str, env_kwargs: dict, seed: int = 0):
        self.env = make_env(env_id, env_kwargs)
        self.rng = np.random.default_rng(seed)
        self.env.reset(seed=seed)
        self.spaces = {a: self.env.action_space(a) for a in self.env.possible_agents}
        self.steps, self.seconds = 0, 0.0

    def sample(self, seconds: float) -> None:
        env, rng, steps, t0 = self.env, self.rng, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                if not env.agents:
                    env.reset()
                acts = {}
                for a in env.agents:
                    sp = self.spaces[a]
                    acts[a] = int(rng.integers(sp.n)) if hasattr(sp, "n") else rng.uniform(sp.low, sp.high).astype(np.float32)
                env.step(acts)
                steps += 1
        self.steps += steps
        self.seconds += time.perf_counter() - t0

    @property
    def rate(self) -> float:
        return self.steps / max(self.seconds, 1e-9)


def at_step(history: list, target: int) -> float | None:
    """Last-100-episode mean at the first summary at or after ``target`` env steps."""
    for step, _, last100 in history:
        if step >= target:
            return last100
    return None


def best_within(history: list, target: int) -> float | None:
    """Best last-100-episode mean over the summaries up to the one :func:`at_step` reports for
    ``target`` ("reaches X within N")."""
    vals = []
    for step, _, last100 in history:
        vals.append(last100)
        if step >= target:
            break
    return max(vals) if vals else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/mappo/simple_spread.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--max-steps", type=int, default=1_000_000)
    p.add_argument("--report-steps", type=int, nargs="+", default=[300_000, 1_000_000])
    p.add_argument("--num-envs", type=int, default=None, help="override env_settings.num_envs")
    p.add_argument("--num-areas", type=int, default=None, help="override env_settings.num_areas")
    p.add_argument("--raw-seconds", type=float, default=4.0, help="raw-rate sampling before and after training")
    p.add_argument("--raw-every", type=float, default=10.0,
                   help="also sample the raw rate for 0.5 s every this many seconds of training (0 = never)")
    p.add_argument("--json", action="store_true", help="also print one JSON line per seed")
    args = p.parse_args()

    try:  # bad input: one line naming the file, as marl-learn gives it
        data = yaml.safe_load(Path(args.config).read_text())
        parse_config(data, args.config)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    except (OSError, yaml.YAMLError) as exc:
        sys.exit(f"error: {args.config}: {getattr(exc, 'strerror', None) or exc}")
    es = data.setdefault("env_settings", {})
    if args.num_envs:
        es["num_envs"] = args.num_envs
    if args.num_areas:
        es["num_areas"] = args.num_areas
    for b in data["behaviors"].values():
        b["max_steps"] = args.max_steps
        b["summary_freq"] = 20_000
        b["checkpoint_interval"] = 10 ** 12
    env_id, env_kwargs = es["env_path"], es.get("env_kwargs", {})
    print(f"config {args.config}: env {env_id} {env_kwargs}, num_envs {es.get('num_envs', 1)}, "
          f"num_areas {es.get('num_areas', 1)}, max_steps {args.max_steps}, seeds {args.seeds}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            raw_rate = RawRate(env_id, env_kwargs, seed)
            raw_rate.sample(args.raw_seconds / 2)
            es["seed"] = seed
            data["checkpoint_settings"] = {"run_id": f"bench-{seed}", "results_dir": tmp, "force": True}
            cfg = parse_config(data, args.config)
            last = [time.perf_counter()]

            def sample_raw(step: int) -> None:  # between rollouts; train() leaves this time out
                if args.raw_every > 0 and time.perf_counter() - last[0] >= args.raw_every:
                    raw_rate.sample(0.5)
                    last[0] = time.perf_counter()

            out = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False, between_rollouts=sample_raw)
            sps = out["step"] / out["seconds"]
            raw_rate.sample(args.raw_seconds / 2)
            raw = raw_rate.rate
            rss_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            returns = {b: {s: at_step(h, s) for s in args.report_steps} for b, h in out["history"].items()}
            best = {b: {s: best_within(h, s) for s in args.report_steps} for b, h in out["history"].items()}
            row = {"seed": seed, "train_steps_per_s": sps, "raw_steps_per_s": raw, "ratio": sps / raw,
                   "wall_s": out["seconds"], "steps": out["step"], "returns_last100": returns, "best_last100_within": best,
                   "peak_rss_mb": {"trainer": rss_main, "largest_worker": rss_child}}
            rows.append(row)
            ret = "; ".join(f"{b}: " + ", ".join(f"{s // 1000}k {v:.2f}" if v is not None else f"{s // 1000}k n/a"
                                                 for s, v in r.items()) for b, r in returns.items())
            reach = "; ".join(f"{b}: " + ", ".join(f"{s // 1000}k {v:.2f}" for s, v in r.items() if v is not None)
                              for b, r in best.items())
            print(f"seed {seed}: train {sps:,.0f} env steps/s, raw env {raw:,.0f} steps/s, ratio {sps / raw:.0%}, "
                  f"wall {out['seconds']:.0f} s, peak RSS {rss_main:.0f} MB trainer / {rss_child:.0f} MB worker; "
                  f"return (last 100 episodes) at {ret}; best reached within {reach}", flush=True)
            if args.json:
                print(json.dumps(row), flush=True)
    ratios = [r["ratio"] for r in rows]
    print(f"summary: ratio mean {np.mean(ratios):.0%} (min {min(ratios):.0%}) over {len(rows)} seeds", flush=True)
    for b in rows[0]["returns_last100"]:
        for s in args.report_steps:
            vals = [r["returns_last100"][b][s] for r in rows if r["returns_last100"][b][s] is not None]
            if vals:
                print(f"summary: {b} return at {s // 1000}k: mean {np.mean(vals):.2f}, worst {min(vals):.2f}, "
                      f"per seed {[round(v, 2) for v in vals]}", flush=True)
            best_vals = [r["best_last100_within"][b][s] for r in rows if r["best_last100_within"][b][s] is not None]
            if best_vals:
                print(f"summary: {b} best return reached within {s // 1000}k: worst seed {min(best_vals):.2f}, "
                      f"per seed {[round(v, 2) for v in best_vals]}", flush=True)


if __name__ == "__main__":
    main()
