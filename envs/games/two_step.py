"""The two-step cooperative matrix game of the QMIX paper (Rashid et al. 2018, §6.1, Figure 3).

Two agents, two actions each (``A`` = 0, ``B`` = 1). In the first step nobody is rewarded and
``agent_0``'s action alone picks the second state: ``A`` -> state 2A, ``B`` -> state 2B. In the
second step the team receives (each agent gets the same team reward):

* 2A: 7 for every joint action;
* 2B: ``[[0, 1], [1, 8]]`` (row = ``agent_0``'s action, column = ``agent_1``'s).

The optimal joint policy (B, then B/B in 2B) returns 8; a value factorisation that cannot represent
2B's payoffs (VDN's sum) learns to prefer the safe 7. Episodes last exactly 2 steps and end by
termination. Every agent observes the current state as a one-hot over ``(1, 2A, 2B)``, and the
global state (``state()``) is the same one-hot, as in the paper.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

STATE_1, STATE_2A, STATE_2B = 0, 1, 2
PAYOFF_2A = np.full((2, 2), 7.0, np.float32)
PAYOFF_2B = np.array([[0.0, 1.0], [1.0, 8.0]], np.float32)


class TwoStepEnv(ParallelEnv):
    """Two agents, ``Discrete(2)`` actions, observations float32 ``[3]`` (one-hot state)."""

    metadata = {"name": "two_step_v0", "render_modes": []}

    def __init__(self):
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self._act_space = spaces.Discrete(2)
        self.state_space = spaces.Box(0.0, 1.0, (3,), np.float32)  # PettingZoo: goes with state()
        self._state = STATE_1

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def state(self) -> np.ndarray:
        """float32 ``[3]``: one-hot of the current state (1, 2A, 2B)."""
        s = np.zeros(3, np.float32)
        s[self._state] = 1.0
        return s

    def _obs(self) -> dict[str, np.ndarray]:
        return {a: self.state() for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self._state = STATE_1
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        a0, a1 = int(actions.get("agent_0", 0)), int(actions.get("agent_1", 0))
        if self._state == STATE_1:
            self._state = STATE_2A if a0 == 0 else STATE_2B
            r, done = 0.0, False
        else:
            r = float((PAYOFF_2A if self._state == STATE_2A else PAYOFF_2B)[a0, a1])
            done = True
        obs = self._obs()
        rewards = {a: r for a in self.agents}
        terms = {a: done for a in self.agents}
        truncs = {a: False for a in self.agents}
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def parallel_env(**kwargs) -> TwoStepEnv:
    """The PettingZoo entry point (``env_path: envs.games.two_step``); takes no arguments."""
    return TwoStepEnv(**kwargs)
