"""A cooperative game that needs credit for a departed agent: one member must leave early for the group to win.

``n_agents`` agents (default 2) play ``length`` steps (default 6). Each agent observes its role
(one-hot of its index) and the time. At the first step each agent either stays (action 0) or
sacrifices itself (action 1): a sacrificing agent leaves the episode at once (terminated, reward 0).
At the last step every agent still in the game receives ``1`` when exactly one agent sacrificed
itself, else ``0``; no other step pays anything. The group optimum is one sacrifice: per-agent
returns ``0`` for the sacrificed agent and ``1`` for the others (mean per-agent return
``(n - 1) / n``, 0.5 for two agents; group return ``n - 1``).

A learner that gives a departed agent no credit for what its group earns later (absorbing-state
handling: MAPPO/IPPO's death masking) sees sacrificing pay 0 against staying's chance of 1, so it
never sacrifices and the group scores 0; MA-POCA bootstraps the departing agent from the value of
the remaining group and learns the sacrifice.

Observation float32 ``[n_agents + 2]`` (role one-hot, first-step flag, last-step flag); action
``Discrete(2)``.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class SacrificeEnv(ParallelEnv):
    """See the module docstring. ``parallel_env(n_agents=2, length=6)``."""

    metadata = {"name": "sacrifice_v0", "render_modes": []}

    def __init__(self, n_agents: int = 2, length: int = 6):
        if n_agents < 2 or length < 2:
            raise ValueError(f"sacrifice: need n_agents >= 2 and length >= 2 (got {n_agents}, {length})")
        self.n, self.length = n_agents, length
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self._obs_space = spaces.Box(0.0, 1.0, (n_agents + 2,), np.float32)
        self._act_space = spaces.Discrete(2)
        self.state_space = spaces.Box(0.0, 1.0, (n_agents * (n_agents + 2),), np.float32)

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _obs_of(self, i: int) -> np.ndarray:
        o = np.zeros(self.n + 2, np.float32)
        o[i] = 1.0
        o[self.n] = float(self.t == 0)
        o[self.n + 1] = float(self.t == self.length - 1)
        return o

    def state(self) -> np.ndarray:
        """Every agent's observation concatenated (zeros for agents that left)."""
        return np.concatenate([self._obs_of(i) if a in getattr(self, "agents", []) else np.zeros(self.n + 2, np.float32)
                               for i, a in enumerate(self.possible_agents)])

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        self.sacrificed = 0
        return {a: self._obs_of(i) for i, a in enumerate(self.possible_agents)}, {a: {} for a in self.agents}

    def step(self, actions):
        terms = {a: False for a in self.agents}
        rewards = {a: 0.0 for a in self.agents}
        if self.t == 0:
            for a in self.agents:
                if int(actions.get(a, 0)) == 1:
                    terms[a] = True
                    self.sacrificed += 1
        last = self.t == self.length - 1
        if last:
            win = float(self.sacrificed == 1)
            for a in self.agents:
                if not terms[a]:
                    rewards[a] = win
        self.t += 1
        truncs = {a: False for a in self.agents}
        if last:
            terms = {a: True for a in self.agents}  # the game ends by its rules
        idx = {a: i for i, a in enumerate(self.possible_agents)}
        obs = {a: self._obs_of(idx[a]) for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not terms[a]]
        return obs, rewards, terms, truncs, infos


def parallel_env(**kwargs) -> SacrificeEnv:
    """PettingZoo factory (``--env envs.games.sacrifice``)."""
    return SacrificeEnv(**kwargs)
