"""Learning check: marl-learn on SoccerTwos through the gRPC stand-in (--num-envs 2), reward per summary.

With ``ball_touch`` > 0 each touch pays ``0.2 * ball_touch``, so a learning policy shows a rising
mean reward (both teams are one behavior ``SoccerTwos`` with team ids; goals are zero-sum between
the teams and average out). Prints the summary lines and first-vs-last mean reward.

    .venv/bin/python benchmarks/unity_soccer_learning.py [--steps 30000]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

STANDIN = os.path.join(os.path.dirname(sys.executable), "marl-unity-standin")
CONFIG = """
behaviors:
  SoccerTwos:
    trainer_type: mappo
    hyperparameters: {{batch_size: 1024, buffer_size: 4096, learning_rate: 0.001, num_epoch: 4, beta: 0.005}}
    network_settings: {{hidden_units: 64, num_layers: 2}}
    max_steps: {steps}
    summary_freq: {freq}
    checkpoint_interval: 1000000
env_settings: {{seed: 1, timeout_wait: 60}}
environment_parameters: {{ball_touch: 1.0}}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--base-port", type=int, default=25500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "soccer.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(steps=args.steps, freq=max(1000, args.steps // 6)))
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "marl.cli.learn", cfg, "--env", STANDIN, "--num-envs", "2",
                              "--no-graphics", "--run-id", "bench", "--results-dir", os.path.join(tmp, "results"),
                              "--base-port", str(args.base_port)], capture_output=True, text=True)
        lines = [l for l in (out.stdout + out.stderr).splitlines() if "Mean Reward" in l]
        print("\n".join(lines) or (out.stdout + out.stderr)[-2000:])
        rewards = [float(m.group(1)) for l in lines if (m := re.search(r"Mean Reward: (-?\d+(?:\.\d+)?)", l))]
        if len(rewards) >= 2:
            print(f"SoccerTwos via gRPC stand-in, --num-envs 2: mean reward {rewards[0]:.3f} -> {rewards[-1]:.3f} "
                  f"over {args.steps} env steps in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
