"""Env steps per second of SoccerTwos in-process vs. through the gRPC stand-in player.

Both sides run the same game (envs.games.soccer, seed 0, the stand-in's first training area) with the
same per-step actions (random, drawn in advance, one row per body); the gRPC side goes through
everything a Unity build goes through: UnityParallelEnv -> mlagents_envs UnityEnvironment -> gRPC on
127.0.0.1 -> marl-unity-standin (a separate process). The ratio is the ML-Agents protocol's overhead
for this small game (4 agents, the 16-float vector sensor; ``--rays`` adds the stacked 192-float ray
sensor, ``--visual`` a [3, 12, 20] CHW image, PNG-compressed over the wire, on both sides).

Both envs follow the step semantics of ``envs/unity/env.py``: ``step`` returns entries for live agents
and for those that ended in the step (final observations), and a Unity agent's next episode is a new
agent (``...?episode=E``). Actions go to the live agents whose ``infos`` say ``deciding``; the body an
agent drives is its Unity ``agent_id``. Decisions and finished episodes are counted on both sides, so
a run that did not do the same work shows it.

    .venv/bin/python benchmarks/unity_protocol_overhead.py [--steps 2000] [--visual] [--rays] [--debug]
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time

import numpy as np

from envs.games.soccer import SoccerTwosEnv
from envs.unity import make_unity_env

STANDIN = os.path.join(os.path.dirname(sys.executable), "marl-unity-standin")
_ID = re.compile(r"agent_id=(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_of(agent: str) -> int:
    """Body index 0..3 driven by ``agent`` (``...?agent_id=K[?episode=E]``; no respawns here, so K < 4)."""
    m = _ID.search(agent)
    if m is None:
        raise ValueError(f"agent name without agent_id: {agent!r}")
    return int(m.group(1)) % 4


def run(env, actions: np.ndarray) -> tuple[float, int, int]:
    """Drive ``env`` for ``len(actions)`` steps (resets included, as in training).

    Args:
        env: a PettingZoo ``ParallelEnv`` with the Unity adapter's step semantics.
        actions: int ``[steps, 4, 3]``: the MultiDiscrete action of each body at each step.

    Returns:
        ``(env steps/s, decisions acted on, agent episodes finished)``.
    """
    _, infos = env.reset(seed=0)
    decisions = episodes = 0
    t0 = time.perf_counter()
    for i in range(len(actions)):
        act = {a: actions[i, body_of(a)] for a in env.agents if infos.get(a, {}).get("deciding", True)}
        decisions += len(act)
        _, _, terms, truncs, infos = env.step(act)
        episodes += sum(bool(terms.get(a)) or bool(truncs.get(a)) for a in set(terms) | set(truncs))
        if not env.agents:
            _, infos = env.reset()
    return len(actions) / (time.perf_counter() - t0), decisions, episodes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="env steps on each side (> 0)")
    p.add_argument("--visual", action="store_true", help="add the [3, 12, 20] CHW image sensor (PNG over gRPC)")
    p.add_argument("--rays", action="store_true", help="add the stacked ray-perception sensor (the Unity scene's)")
    p.add_argument("--timeout-wait", type=float, default=60.0, help="seconds to wait for the player at each exchange")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    try:
        if args.steps <= 0:
            raise ValueError(f"--steps must be > 0, got {args.steps}")
        if args.visual and args.rays:
            raise ValueError("give --visual or --rays, not both (the game has one extra sensor at most)")
        actions = np.random.default_rng(0).integers(0, 3, (args.steps, 4, 3))
        local, local_dec, local_eps = run(SoccerTwosEnv(visual=args.visual, rays=args.rays), actions)
        flags = ["--visual"] if args.visual else [] if args.rays else ["--no-rays"]
        env = make_unity_env(STANDIN, worker_id=0, base_port=free_port(), no_graphics=True,
                             timeout_wait=args.timeout_wait, env_args=flags, log_dir=None, engine={},
                             environment_parameters=None, seed=0)
        try:
            remote, remote_dec, remote_eps = run(env, actions)
        finally:
            env.close()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, as every command of the project (--debug: the traceback)
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    extra = " +visual" if args.visual else " +rays" if args.rays else ""
    print(f"SoccerTwos{extra}: in-process {local:.0f} env steps/s, gRPC stand-in {remote:.0f} env steps/s, "
          f"protocol overhead x{local / remote:.1f} ({args.steps} steps; decisions {local_dec} / {remote_dec}, "
          f"agent episodes {local_eps} / {remote_eps}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
