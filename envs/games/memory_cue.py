"""A small cooperative memory game: a cue seen only at the first step decides which action pays at the last.

``n_agents`` agents play episodes of ``length`` steps. At step 0 every agent sees the same random
cue ``k`` in ``0..n_cues-1`` (one-hot); at every later step the cue part of the observation is zero
and only a phase signal is shown (``[first step, last step]`` flags). At the last step each agent
receives 1 when its action equals ``k`` (else 0); every other step pays 0 whatever is played. So a
feed-forward policy can do no better than chance at the last step (return ``1 / n_cues`` per agent),
while a policy that remembers the cue reaches the optimum 1 per agent. The global state is the
agents' observations concatenated (no privileged cue), so a centralised critic needs memory too.

Observation float32 ``[n_cues + 2]``; action ``Discrete(n_cues)``; episodes end by termination.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class MemoryCueEnv(ParallelEnv):
    """See the module docstring. ``parallel_env(n_agents=2, n_cues=2, length=8)``."""

    metadata = {"name": "memory_cue_v0", "render_modes": []}

    def __init__(self, n_agents: int = 2, n_cues: int = 2, length: int = 8):
        if length < 2 or n_cues < 2 or n_agents < 1:
            raise ValueError(f"memory_cue: need length >= 2, n_cues >= 2, n_agents >= 1 (got {length}, {n_cues}, {n_agents})")
        self.n_cues, self.length = n_cues, length
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self._obs_space = spaces.Box(0.0, 1.0, (n_cues + 2,), np.float32)
        self._act_space = spaces.Discrete(n_cues)
        self.state_space = spaces.Box(0.0, 1.0, (n_agents * (n_cues + 2),), np.float32)  # PettingZoo: goes with state()
        self.rng = np.random.default_rng()

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _obs(self) -> dict[str, np.ndarray]:
        o = np.zeros(self.n_cues + 2, np.float32)
        if self.t == 0:
            o[self.cue] = 1.0
            o[self.n_cues] = 1.0
        if self.t == self.length - 1:
            o[self.n_cues + 1] = 1.0
        return {a: o.copy() for a in self.agents}

    def state(self) -> np.ndarray:
        """The agents' current observations concatenated (no privileged cue after the first step)."""
        o = np.zeros(self.n_cues + 2, np.float32)
        if getattr(self, "t", 1) == 0:
            o[self.cue] = 1.0
            o[self.n_cues] = 1.0
        if getattr(self, "t", 0) == self.length - 1:
            o[self.n_cues + 1] = 1.0
        return np.tile(o, len(self.possible_agents))

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.cue = int(self.rng.integers(self.n_cues))
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        last = self.t == self.length - 1
        rewards = {a: float(last and int(actions.get(a, -1)) == self.cue) for a in self.agents}
        self.t += 1
        done = self.t >= self.length
        terms = {a: done for a in self.agents}  # the game ends by its rules: no bootstrapping past it
        truncs = {a: False for a in self.agents}
        obs = self._obs() if not done else {a: np.zeros(self.n_cues + 2, np.float32) for a in self.agents}
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def parallel_env(**kwargs) -> MemoryCueEnv:
    """PettingZoo factory (``--env envs.games.memory_cue``)."""
    return MemoryCueEnv(**kwargs)
