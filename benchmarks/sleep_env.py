"""A stand-in for a slow game build: a PettingZoo ParallelEnv whose every step sleeps ``delay`` seconds.

    env_settings: {env_path: "benchmarks.sleep_env:parallel_env", env_kwargs: {delay: 0.02}}

A 50 Hz Unity player spends about 20 ms of wall clock per step in its own process, idle from the
trainer's point of view; that is what this env models (``time.sleep`` releases the core). Two agents,
observations float32 ``[8]`` (a random target one-hot in the first 4 entries plus noise), ``Discrete(4)``
actions, reward 1 when an agent picks its target; episodes of ``max_cycles`` steps end by truncation.
Used by ``benchmarks/ray_scaling.py``; not part of the product.
"""
from __future__ import annotations

import time

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class SleepEnv(ParallelEnv):
    """Two agents; ``step`` sleeps ``delay`` seconds (wall clock), then rewards picking the observed target."""

    metadata = {"name": "sleep_env_v0", "render_modes": []}

    def __init__(self, delay: float = 0.02, max_cycles: int = 50):
        self.delay, self.max_cycles = float(delay), int(max_cycles)
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(-np.inf, np.inf, (8,), np.float32)
        self._act_space = spaces.Discrete(4)
        self._rng = np.random.default_rng(0)
        self._targets = np.zeros(2, np.int64)
        self._t = 0

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _obs(self) -> dict[str, np.ndarray]:
        self._targets = self._rng.integers(0, 4, 2)
        out = {}
        for i, a in enumerate(self.agents):
            o = np.zeros(8, np.float32)
            o[self._targets[i]] = 1.0
            o[4:] = self._rng.normal(size=4)
            out[a] = o
        return out

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        time.sleep(self.delay)
        self._t += 1
        rew = {a: float(int(actions.get(a, 0)) == self._targets[i]) for i, a in enumerate(self.agents)}
        done = self._t >= self.max_cycles
        obs = self._obs()
        term = {a: False for a in self.agents}
        trunc = {a: done for a in self.agents}
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rew, term, trunc, infos


def parallel_env(delay: float = 0.02, max_cycles: int = 50) -> SleepEnv:
    """The env (see the module docstring); ``delay`` in seconds per env step."""
    return SleepEnv(delay, max_cycles)
