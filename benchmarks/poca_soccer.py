"""MA-POCA against MAPPO on SoccerTwos with respawns (``configs/poca/soccer_2v2.yaml``), in one run.

    .venv/bin/python benchmarks/poca_soccer.py [--steps 500000] [--seeds 1 2 3] [--games 200] [--out DIR]

For each seed, trains the config twice with the same settings and env steps, ``trainer_type: poca``
then ``trainer_type: mappo`` (both with self-play), back to back, and prints:

* speed: whole-training env steps/s of each (collection + updates; the attention critic's cost);
* Elo: ``Self-play/ELO`` at the first summary, its maximum and its last value (TensorBoard events);
* POCA against MAPPO: ``--games`` games (half on each team, actions sampled as Unity samples them by
  default, no touch reward: goals decide) with ``marl.evaluate_vs.play_games``; score = (wins + draws / 2) / games with a 95%
  normal-approximation interval over the per-game scores (1, 0.5, 0).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.selfplay_report import elo_curve  # noqa: E402
from marl.config import parse_config  # noqa: E402
from marl.run import prepare_run_dir, train  # noqa: E402

BEHAVIOR = "SoccerTwos"


def train_one(data: dict, algo: str, seed: int, steps: int, results: str) -> tuple[Path, float, list]:
    d = yaml.safe_load(yaml.safe_dump(data))
    b = d["behaviors"][BEHAVIOR]
    b["trainer_type"], b["max_steps"] = algo, steps
    d["env_settings"]["seed"] = seed
    d["checkpoint_settings"] = {"run_id": f"{algo}-{seed}", "results_dir": results, "force": True}
    cfg = parse_config(d, "poca_soccer")
    run_dir = prepare_run_dir(cfg)
    res = train(cfg, run_dir, console=None, tensorboard=True)
    return run_dir, res["step"] / res["seconds"], elo_curve(run_dir, BEHAVIOR)


def head_to_head(poca_run: Path, mappo_run: Path, games: int, seed: int) -> tuple[int, int, int]:
    """W/D/L of the POCA run's final policy against the MAPPO run's, both sampling their actions."""
    from marl.evaluate_vs import env_maker, make_opponent, play_games
    from marl.inference import load_policy

    _, make_env = env_maker(poca_run, overrides={"ball_touch": 0.0})  # goals decide the games, not touches

    policy = load_policy(poca_run, BEHAVIOR)
    opponent = make_opponent(str(mappo_run), seed + 1000)
    rep = play_games(make_env, BEHAVIOR, policy, opponent, games, seed=seed, stochastic=True, opponent_name="mappo")
    t = rep.total
    return t.wins, t.draws, t.losses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/poca/soccer_2v2.yaml")
    p.add_argument("--steps", type=int, default=500000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--games", type=int, default=200)
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    a = p.parse_args()
    data = yaml.safe_load(open(a.config))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        results = a.out or tmp
        for seed in a.seeds:
            runs = {}
            for algo in ("poca", "mappo"):
                run_dir, speed, elo = train_one(data, algo, seed, a.steps, results)
                runs[algo] = run_dir
                first, top, last = (elo[0][1], max(v for _, v in elo), elo[-1][1]) if elo else (math.nan,) * 3
                print(f"seed {seed} {algo:5s}: {speed:7.0f} env steps/s, Self-play/ELO first {first:.0f}, "
                      f"max {top:.0f}, last {last:.0f}", flush=True)
                rows.append((seed, algo, speed, first, top, last))
            w, d, l = head_to_head(runs["poca"], runs["mappo"], a.games, seed)
            n = w + d + l
            score = (w + d / 2) / n
            var = (w * (1 - score) ** 2 + d * (0.5 - score) ** 2 + l * score ** 2) / max(1, n - 1)
            half = 1.96 * math.sqrt(var / n)
            print(f"seed {seed} POCA vs MAPPO: {n} games, W/D/L {w}/{d}/{l}, score {score:.3f} "
                  f"[{score - half:.3f}, {score + half:.3f}] (95%)", flush=True)
    speeds = {algo: [r[2] for r in rows if r[1] == algo] for algo in ("poca", "mappo")}
    mean = {k: sum(v) / len(v) for k, v in speeds.items()}
    print(f"\nmean env steps/s over {len(a.seeds)} seed(s): POCA {mean['poca']:.0f}, MAPPO {mean['mappo']:.0f}, "
          f"POCA / MAPPO = {mean['poca'] / mean['mappo']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
