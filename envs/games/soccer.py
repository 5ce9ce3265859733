"""SoccerTwos: the sample two-team game (2 vs 2) as a PettingZoo ``ParallelEnv``.

This is the Python twin of the Unity sample scene in ``unity_project/`` and of the stand-in player
(:mod:`envs.unity.standin`, which serves this very class over the ML-Agents gRPC protocol). The
exact rules are in ``docs/soccer_spec.md``; in short:

* agents ``SoccerTwos?team=0?agent_id=0``, ``...team=0?agent_id=1`` (blue, defends x = -1) and
  ``SoccerTwos?team=1?agent_id=2``, ``...team=1?agent_id=3`` (purple, defends x = +1);
* observation float32 ``[16]`` in the agent's own frame (team 1 sees x and y negated), action
  ``MultiDiscrete([3, 3, 3])`` = (forward/back, lateral, kick), in the agent's own frame;
* a goal gives the scoring team ``1 - step / max_steps`` and the conceding team ``-1`` (ML-Agents'
  ``SimpleMultiAgentGroup`` group reward) and terminates everybody; ``max_steps`` without a goal
  truncates everybody; ``0.2 * ball_touch`` individual reward per step an agent touches the ball.

Decision semantics (the same as a Unity build seen through :mod:`envs.unity`): with
``decision_period > 1`` an agent decides only every ``decision_period`` steps and repeats its last
action in between (ML-Agents' ``DecisionRequester`` with ``TakeActionsBetweenDecisions``). ``step``
returns observations only for agents that must act at the next step (plus the final observation of
agents whose episode ended in this step, flagged in ``terminations`` / ``truncations``); actions
given for other agents are ignored. Rewards are reported every step for every agent alive at the
start of the step (sum them between decisions). ``infos[agent]`` holds ``group_id`` (1 = team 0,
2 = team 1), ``group_reward`` and ``individual_reward`` (``reward = individual + group``).

Test options (constructor kwargs; the stand-in exposes them as command-line flags):
``visual`` adds a top-down image ``[3, 12, 20]`` CHW (own team, opponents, ball; own frame) as a
second sensor, observation = ``Tuple(image, vector)`` (sensor order sorted by name, as Unity:
``CameraSensor`` < ``VectorSensor``); ``death_step`` removes agents 1 and 3 from the field at that
step of every episode (they terminate with no reward); ``stagger`` offsets agent k's decisions by
``k % decision_period`` steps, so agents join the episode at different steps (an agent is in
``agents`` from its first decision of the episode on, as the Unity adapter sees it).

Not modelled (simplifications versus the Unity scene): player-player collisions, rotation (players
move in their own-frame axes directly), goal-post collisions, and sub-steps of the physics engine.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

BEHAVIOR = "SoccerTwos"
AGENTS = tuple(f"{BEHAVIOR}?team={k // 2}?agent_id={k}" for k in range(4))
OBS_SIZE = 16
STATE_SIZE = 25
ACTION_BRANCHES = (3, 3, 3)
IMAGE_SHAPE = (3, 12, 20)  # C, H, W
FIELD_X, FIELD_Y, GOAL_Y = 1.0, 0.6, 0.2
PLAYER_R, BALL_R = 0.05, 0.03
MAX_SPEED, ACCEL, DAMPING, BALL_DAMPING = 0.05, 0.02, 0.8, 0.96
KICK_RANGE, KICK_SPEED = 0.09, (0.0, 0.06, 0.12)
RESTITUTION, PUSH = 0.8, 0.5

_SIGN = np.array([1.0, 1.0, -1.0, -1.0], np.float32)  # own-frame flip per agent
_MATE = np.array([1, 0, 3, 2])
_OPP_A = np.array([2, 2, 0, 0])
_OPP_B = np.array([3, 3, 1, 1])
_GROUP = (1, 1, 2, 2)
# action branch value -> own-frame unit component
_DIR = np.array([0.0, 1.0, -1.0], np.float32)


class SoccerTwosEnv(ParallelEnv):
    """The SoccerTwos game (see the module docstring for rules and decision semantics).

    Args:
        max_steps: episode step limit (truncation), default 400.
        ball_touch: individual reward scale ``0.2 * ball_touch`` per touch (Unity's environment
            parameter of the same name), default 0.
        decision_period: steps between an agent's decisions (>= 1).
        stagger: offset agent k's decisions by ``k % decision_period`` steps.
        death_step: remove agents 1 and 3 at this step of each episode (None = never).
        visual: add the ``[3, 12, 20]`` CHW image observation.

    Raises:
        ValueError: a bad option (one line naming it).
    """

    metadata = {"name": "soccer_twos_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, max_steps: int = 400, ball_touch: float = 0.0, decision_period: int = 1,
                 stagger: bool = False, death_step: int | None = None, visual: bool = False):
        if max_steps < 1:
            raise ValueError(f"SoccerTwos: max_steps must be >= 1, got {max_steps}")
        if decision_period < 1:
            raise ValueError(f"SoccerTwos: decision_period must be >= 1, got {decision_period}")
        if death_step is not None and death_step < 1:
            raise ValueError(f"SoccerTwos: death_step must be >= 1 or None, got {death_step}")
        self.max_steps, self.ball_touch = int(max_steps), float(ball_touch)
        self.decision_period, self.death_step, self.visual = int(decision_period), death_step, bool(visual)
        self.offsets = np.array([k % self.decision_period if stagger else 0 for k in range(4)])
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        vec = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self._obs_space = spaces.Tuple((spaces.Box(0.0, 1.0, IMAGE_SHAPE, np.float32), vec)) if visual else vec
        self._act_space = spaces.MultiDiscrete(list(ACTION_BRANCHES))
        self._state_space = spaces.Box(-np.inf, np.inf, (STATE_SIZE,), np.float32)
        self.rng = np.random.default_rng()
        self.pos = np.zeros((4, 2), np.float32)
        self.vel = np.zeros((4, 2), np.float32)
        self.ball = np.zeros(2, np.float32)
        self.ball_vel = np.zeros(2, np.float32)
        self.alive = np.zeros(4, bool)
        self.joined = np.zeros(4, bool)  # has decided at least once this episode (is in ``agents``)
        self.last_action = np.zeros((4, 3), np.int64)
        self.t = 0
        self._obs = np.zeros((4, OBS_SIZE), np.float32)
        self.goals = np.zeros(2, np.int64)  # goals scored by team 0 / team 1 since construction

    # ------------------------------------------------------------------------------ spaces
    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    @property
    def state_space(self) -> spaces.Box:
        return self._state_space

    # ------------------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode; returns observations of the agents that decide at step 0."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if options and "ball_touch" in options:
            self.ball_touch = float(options["ball_touch"])
        r = self.rng
        self.pos[:] = [[-0.5, 0.2], [-0.5, -0.2], [0.5, 0.2], [0.5, -0.2]]
        self.pos += r.uniform(-0.05, 0.05, (4, 2)).astype(np.float32)
        self.vel[:] = 0.0
        self.ball[:] = (r.uniform(-0.05, 0.05), r.uniform(-0.1, 0.1) + r.uniform(-0.05, 0.05))
        self.ball_vel[:] = 0.0
        self.alive[:] = True
        self.last_action[:] = 0
        self.t = 0
        self._compute_obs()
        deciding = self._deciding()
        self.joined[:] = False
        self.joined[deciding] = True
        self.agents = [AGENTS[k] for k in deciding]
        infos = {AGENTS[k]: self._info(k, 0.0, 0.0) for k in deciding}
        return {AGENTS[k]: self._observation(k) for k in deciding}, infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Advance one physics step.

        Args:
            actions: agent -> int array ``[3]`` for agents that were asked to decide; others ignored
                (they repeat their last action).
        """
        if not self.alive.any():
            raise RuntimeError("SoccerTwos: step() called after the episode ended; call reset()")
        for k in self._deciding():
            a = actions.get(AGENTS[k])
            if a is not None:
                self.last_action[k] = np.asarray(a, np.int64).reshape(3)
        touched = self._physics()
        self.t += 1
        indiv = np.where(touched & self.alive, 0.2 * self.ball_touch, 0.0)
        group = np.zeros(4)
        scored = self._goal()
        if scored >= 0:
            self.goals[scored] += 1
            win = 1.0 - self.t / self.max_steps
            group[:] = [win, win, -1.0, -1.0] if scored == 0 else [-1.0, -1.0, win, win]
        live_before = [k for k in range(4) if self.alive[k] and self.joined[k]]
        term = {AGENTS[k]: False for k in live_before}
        trunc = dict(term)
        ended = []
        if scored >= 0:
            ended = [k for k in range(4) if self.alive[k]]
            for k in live_before:
                term[AGENTS[k]] = True
        elif self.t >= self.max_steps:
            ended = [k for k in range(4) if self.alive[k]]
            for k in live_before:
                trunc[AGENTS[k]] = True
        elif self.death_step is not None and self.t == self.death_step:
            ended = [k for k in (1, 3) if self.alive[k]]
            for k in ended:
                if self.joined[k]:
                    term[AGENTS[k]] = True
        self._compute_obs()
        rewards = {AGENTS[k]: float(indiv[k] + group[k]) for k in live_before}
        infos = {AGENTS[k]: self._info(k, float(indiv[k]), float(group[k])) for k in live_before}
        obs = {AGENTS[k]: self._observation(k) for k in ended if self.joined[k]}
        for k in ended:
            self.alive[k] = False
            self.vel[k] = 0.0
        if self.alive.any():
            for k in self._deciding():
                obs[AGENTS[k]] = self._observation(k)
                if not self.joined[k]:  # first decision of this episode: the agent joins
                    self.joined[k] = True
                    infos[AGENTS[k]] = self._info(k, 0.0, 0.0)
        self.agents = [a for k, a in enumerate(AGENTS) if self.alive[k] and self.joined[k]]
        for a in self.agents:  # agents that joined in this step
            if a not in term:
                term[a] = trunc[a] = False
                rewards[a] = 0.0
        return obs, rewards, term, trunc, infos

    def state(self) -> np.ndarray:
        """Global state float32 ``[25]`` in team 0's (world) frame: per player (id order) position
        x, y and velocity x, y (scaled by 1/0.05); ball position and scaled velocity; alive flags
        ``[4]``; elapsed fraction ``t / max_steps``."""
        s = np.empty(STATE_SIZE, np.float32)
        s[0:16] = np.concatenate([self.pos, self.vel / MAX_SPEED], axis=1).reshape(-1)
        s[16:18], s[18:20] = self.ball, self.ball_vel / MAX_SPEED
        s[20:24] = self.alive
        s[24] = self.t / self.max_steps
        return s

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------------------ internals
    def _deciding(self) -> list[int]:
        due = (self.t - self.offsets) % self.decision_period == 0
        return [k for k in range(4) if self.alive[k] and due[k] and self.t >= self.offsets[k]]

    def _info(self, k: int, indiv: float, group: float) -> dict:
        return {"group_id": _GROUP[k], "group_reward": group, "individual_reward": indiv}

    def _observation(self, k: int) -> Any:
        vec = self._obs[k].copy()
        return (self.image(k), vec) if self.visual else vec

    def _physics(self) -> np.ndarray:
        """One step of movement, kicks and ball flight; returns bool ``[4]`` ball touches."""
        act = self.last_action
        alive = self.alive
        d = np.stack([_DIR[act[:, 0]], _DIR[act[:, 1]]], axis=1) * _SIGN[:, None]  # world frame
        norm = np.sqrt((d * d).sum(1, keepdims=True))
        d = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0)
        v = self.vel * DAMPING + ACCEL * d
        speed = np.sqrt((v * v).sum(1, keepdims=True))
        v *= np.minimum(1.0, MAX_SPEED / np.maximum(speed, 1e-9))
        v[~alive] = 0.0
        p = self.pos + v
        lo = np.array([-FIELD_X + PLAYER_R, -FIELD_Y + PLAYER_R], np.float32)
        hi = -lo
        hit = (p < lo) | (p > hi)
        v[hit] = 0.0
        np.clip(p, lo, hi, out=p)
        self.pos[alive], self.vel[:] = p[alive], v
        # kicks and pushes
        touched = np.zeros(4, bool)
        rel = self.ball - self.pos
        dist = np.sqrt((rel * rel).sum(1))
        for k in np.flatnonzero(alive & (dist < KICK_RANGE)):
            unit = rel[k] / max(dist[k], 1e-6)
            kick = int(act[k, 2])
            if kick:
                self.ball_vel[:] = KICK_SPEED[kick] * unit
                touched[k] = True
            elif dist[k] < PLAYER_R + BALL_R:
                self.ball_vel += PUSH * self.vel[k]
                self.ball[:] = self.pos[k] + unit * (PLAYER_R + BALL_R)
                touched[k] = True
        # ball flight, walls (restitution) and goal mouths
        b, bv = self.ball, self.ball_vel
        b += bv
        bv *= BALL_DAMPING
        if abs(b[1]) > FIELD_Y - BALL_R:
            b[1] = np.sign(b[1]) * (FIELD_Y - BALL_R)
            bv[1] = -bv[1] * RESTITUTION
        if abs(b[0]) > FIELD_X - BALL_R and abs(b[1]) >= GOAL_Y:
            b[0] = np.sign(b[0]) * (FIELD_X - BALL_R)
            bv[0] = -bv[0] * RESTITUTION
        return touched

    def _goal(self) -> int:
        """Team that scored in this step (0 or 1), or -1."""
        if abs(self.ball[1]) < GOAL_Y:
            if self.ball[0] >= FIELD_X:
                return 0  # team 0 attacks +x
            if self.ball[0] <= -FIELD_X:
                return 1
        return -1

    def _compute_obs(self) -> None:
        """All four 16-float observations at once (own frame; see the spec for the order)."""
        o, s = self._obs, _SIGN[:, None]
        p, v = self.pos, self.vel / MAX_SPEED
        o[:, 0:2] = s * p
        o[:, 2:4] = s * v
        o[:, 4:6] = s * (self.ball - p)
        o[:, 6:8] = s * (self.ball_vel / MAX_SPEED)
        o[:, 8:10] = s * (p[_MATE] - p)
        o[:, 10:12] = s * (p[_OPP_A] - p)
        o[:, 12:14] = s * (p[_OPP_B] - p)
        o[:, 14] = 1.0 - o[:, 0]  # opponent goal (+1, 0) in the own frame
        o[:, 15] = -o[:, 1]
        # players off the field: seen at zero relative position
        dead = ~self.alive
        if dead.any():
            o[dead[_MATE], 8:10] = 0.0
            o[dead[_OPP_A], 10:12] = 0.0
            o[dead[_OPP_B], 12:14] = 0.0

    def image(self, k: int) -> np.ndarray:
        """Top-down image float32 ``[3, 12, 20]`` (C, H, W) in agent k's frame: channel 0 own team,
        1 opponents, 2 ball; one pixel per body, values 0 or 1. Row 0 is +y, column 0 is -x."""
        img = np.zeros(IMAGE_SHAPE, np.float32)
        s = _SIGN[k]
        team = k // 2

        def put(c: int, xy: np.ndarray) -> None:
            x, y = s * xy[0], s * xy[1]
            col = int(np.clip((x + FIELD_X) / (2 * FIELD_X) * IMAGE_SHAPE[2], 0, IMAGE_SHAPE[2] - 1))
            row = int(np.clip((FIELD_Y - y) / (2 * FIELD_Y) * IMAGE_SHAPE[1], 0, IMAGE_SHAPE[1] - 1))
            img[c, row, col] = 1.0

        for j in range(4):
            if self.alive[j]:
                put(0 if j // 2 == team else 1, self.pos[j])
        put(2, self.ball)
        return img


def parallel_env(**kwargs: Any) -> SoccerTwosEnv:
    """PettingZoo factory: ``SoccerTwosEnv(**kwargs)``."""
    return SoccerTwosEnv(**kwargs)


def env(**kwargs: Any):
    """AEC version (``pettingzoo.utils.conversions.parallel_to_aec``)."""
    return parallel_to_aec(SoccerTwosEnv(**kwargs))
