"""Env steps per second of SoccerTwos in-process vs. through the gRPC stand-in player.

Both sides run the same game (envs.games.soccer) with the same per-step actions (random, drawn in
advance); the gRPC side goes through everything a Unity build goes through: UnityParallelEnv ->
mlagents_envs UnityEnvironment -> gRPC on 127.0.0.1 -> marl-unity-standin (a separate process).
The ratio is the ML-Agents protocol's overhead for this small game (4 agents, 16 floats each).

    .venv/bin/python benchmarks/unity_protocol_overhead.py [--steps 2000] [--visual]
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import numpy as np

from envs.games.soccer import SoccerTwosEnv
from envs.unity import make_unity_env

STANDIN = os.path.join(os.path.dirname(sys.executable), "marl-unity-standin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(env, actions: np.ndarray) -> float:
    """Steps/s over ``len(actions)`` steps (resets included, as in training)."""
    obs, _ = env.reset()
    t0 = time.perf_counter()
    for i in range(len(actions)):
        obs, *_ = env.step({a: actions[i, k] for k, a in enumerate(sorted(obs))})
        if not env.agents:
            obs, _ = env.reset()
    return len(actions) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--visual", action="store_true", help="add the PNG-compressed CHW camera observation")
    args = p.parse_args()
    actions = np.random.default_rng(0).integers(0, 3, (args.steps, 4, 3))
    local = run(SoccerTwosEnv(visual=args.visual), actions)
    env = make_unity_env(STANDIN, worker_id=0, base_port=free_port(), no_graphics=True, timeout_wait=60,
                         env_args=["--visual"] if args.visual else [], log_dir=None, engine={},
                         environment_parameters=None, seed=0)
    try:
        remote = run(env, actions)
    finally:
        env.close()
    print(f"SoccerTwos{' +visual' if args.visual else ''}: in-process {local:.0f} env steps/s, "
          f"gRPC stand-in {remote:.0f} env steps/s, protocol overhead x{local / remote:.1f} "
          f"({args.steps} steps, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
