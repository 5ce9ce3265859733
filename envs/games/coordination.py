"""A tiny cooperative coordination game, for fast learning tests and demos.

Each step both agents see the same random target ``t`` in ``0..n_targets-1`` (one-hot) and the
time left; the team scores 1 (each agent receives it) only when ``agent_0`` plays ``t`` and
``agent_1`` plays ``(t + 1) % n_targets``. Uniform random play scores ``1 / n_targets**2`` per
step; the optimum is 1 per step. Episodes last ``max_cycles`` steps and end by truncation.
Optionally ``agent_1`` dies (terminates) after ``die_at`` steps, to exercise early termination.
Environment parameter (as a Unity game would take through its side channel, e.g. from a
curriculum): ``reward_scale`` multiplies every reward (default 1).
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class CoordinationEnv(ParallelEnv):
    """Two agents, ``Discrete(n_targets)`` actions, observations float32 ``[n_targets + 1]``."""

    metadata = {"name": "coordination_v0", "render_modes": []}

    def __init__(self, n_targets: int = 3, max_cycles: int = 5, die_at: int | None = None):
        self.n, self.max_cycles, self.die_at = n_targets, max_cycles, die_at
        self.possible_agents = ["agent_0", "agent_1"]
        self._obs_space = spaces.Box(0.0, 1.0, (n_targets + 1,), np.float32)
        self._act_space = spaces.Discrete(n_targets)
        self.state_space = spaces.Box(0.0, 1.0, (n_targets + 1,), np.float32)  # PettingZoo: goes with state()
        self.rng = np.random.default_rng()
        self.reward_scale = 1.0

    def set_environment_parameters(self, values: dict) -> None:
        """Take ``environment_parameters`` (``reward_scale``); other keys are ignored."""
        if "reward_scale" in values:
            self.reward_scale = float(values["reward_scale"])

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _obs(self):
        o = np.zeros(self.n + 1, np.float32)
        o[self.target] = 1.0
        o[-1] = 1.0 - self.t / self.max_cycles
        return {a: o.copy() for a in self.agents}

    def state(self):
        s = np.zeros(self.n + 1, np.float32)
        s[self.target] = 1.0
        s[-1] = 1.0 - self.t / self.max_cycles
        return s

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.target = int(self.rng.integers(self.n))
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        a0 = actions.get("agent_0")
        a1 = actions.get("agent_1", (self.target + 1) % self.n)  # a dead agent_1 counts as cooperating
        r = float(a0 == self.target and a1 == (self.target + 1) % self.n) * self.reward_scale
        rewards = {a: r for a in self.agents}
        self.t += 1
        trunc = self.t >= self.max_cycles
        terms = {a: False for a in self.agents}
        if self.die_at is not None and self.t == self.die_at and "agent_1" in self.agents:
            terms["agent_1"] = True
        truncs = {a: trunc for a in self.agents}
        self.target = int(self.rng.integers(self.n))
        obs = self._obs()
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


def parallel_env(**kwargs) -> CoordinationEnv:
    return CoordinationEnv(**kwargs)
