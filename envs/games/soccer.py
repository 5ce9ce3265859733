"""SoccerTwos: the sample two-team game (2 vs 2) as a PettingZoo ``ParallelEnv``.

This is the Python twin of the Unity sample scene in ``unity_project/`` and of the stand-in player
(:mod:`envs.unity.standin`, which serves this very class over the ML-Agents gRPC protocol). The
exact rules are in ``docs/soccer_spec.md``; in short:

* agents ``SoccerTwos?team=0?agent_id=0``, ``...team=0?agent_id=1`` (blue, defends x = -1) and
  ``SoccerTwos?team=1?agent_id=2``, ``...team=1?agent_id=3`` (purple, defends x = +1);
* sensors, in Unity's order (sorted by sensor name): with ``rays=True`` (the Unity scene) a stacked
  ray-perception sensor ``StackingSensor_size3_RayPerceptionSensor`` float32 ``[192]`` (8 rays x
  (6 tags + 2) x 3 decisions) then the vector sensor ``VectorSensor_size16`` float32 ``[16]``,
  observation ``Tuple(rays, vector)``; by default (``rays=False``, kept for quick tests) the vector
  sensor alone, observation ``Box([16])``. All in the agent's own frame (team 1 sees x and y negated);
* action ``MultiDiscrete([3, 3, 3])`` = (forward/back, lateral, kick), in the agent's own frame;
* a goal gives the scoring team ``1 - step / max_steps`` and the conceding team ``-1`` (ML-Agents'
  ``SimpleMultiAgentGroup`` group reward) and terminates everybody; ``max_steps`` without a goal
  truncates everybody; ``0.2 * ball_touch`` individual reward per step an agent touches the ball.

Decision semantics (the same as a Unity build seen through :mod:`envs.unity`): with
``decision_period > 1`` an agent decides only every ``decision_period`` steps and repeats its last
action in between (ML-Agents' ``DecisionRequester`` with ``TakeActionsBetweenDecisions``). An agent
is in ``agents`` from its first decision of the episode until its episode ends. ``step`` returns an
entry in every dict for every live agent: ``infos[agent]["deciding"]`` says whether it must act at the
next step; a live agent that is not deciding gets the observation of its last decision (what a Unity
agent last sent) and its action is ignored. Agents whose episode ended in this step appear with their
final observation, flagged in ``terminations`` / ``truncations``. Rewards are reported every step
(sum them between decisions). ``infos[agent]`` also holds ``group_id`` (1 = team 0, 2 = team 1),
``group_reward`` and ``individual_reward`` (``reward = individual + group``).

Test options (constructor kwargs; the stand-in exposes them as command-line flags):

* ``visual``: adds a top-down image ``[3, 12, 20]`` CHW (own team, opponents, ball; own frame) as a
  sensor of every agent, observation ``Tuple(image, vector)`` (``CameraSensor`` sorts first);
* ``camera``: team 1 (purple) becomes another behavior, ``SoccerTwosCamera``, whose agents have a
  camera ``CameraSensor`` ``camera_shape`` CHW and the vector sensor (no rays): ``Tuple(image, vector)``;
* ``death_step``: agents 1 and 3 (bodies 1 and 3) leave the field at that step of every episode
  (they terminate with no reward); with ``respawn_delay`` = d they come back d steps later as NEW
  agents with fresh ids (4 for body 1, 5 for body 3: ``possible_agents`` lists them), at their start
  positions, and join at their first decision;
* ``decision_period`` (every agent) and ``team1_decision_period`` (team 1 only, default: the same);
  ``stagger`` offsets body k's decisions by ``k % period`` steps, so agents join at different steps.

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
CAMERA_BEHAVIOR = "SoccerTwosCamera"
AGENTS = tuple(f"{BEHAVIOR}?team={k // 2}?agent_id={k}" for k in range(4))
OBS_SIZE = 16
STATE_SIZE = 25
ACTION_BRANCHES = (3, 3, 3)
IMAGE_SHAPE = (3, 12, 20)  # C, H, W of the ``visual`` option
CAMERA_SHAPE = (3, 24, 40)  # C, H, W of the ``camera`` behavior's sensor (default)
FIELD_X, FIELD_Y, GOAL_Y = 1.0, 0.6, 0.2
PLAYER_R, BALL_R = 0.05, 0.03
MAX_SPEED, ACCEL, DAMPING, BALL_DAMPING = 0.05, 0.02, 0.8, 0.96
KICK_RANGE, KICK_SPEED = 0.09, (0.0, 0.06, 0.12)
RESTITUTION, PUSH = 0.8, 0.5

# Ray-perception sensor (ML-Agents' RayPerceptionSensor layout: per ray, a one-hot of the detected
# tag, then 1 if nothing was hit, then the hit distance as a fraction of the ray length).
RAY_TAGS = ("ball", "ownGoal", "opponentGoal", "wall", "teammate", "opponent")
RAY_ANGLES = (0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0)  # degrees, own frame; 0 = +x, + = toward +y
RAY_LENGTH = 1.5
RAY_STACKS = 3
RAY_FRAME = len(RAY_ANGLES) * (len(RAY_TAGS) + 2)  # 64 floats per decision
RAY_SIZE = RAY_FRAME * RAY_STACKS  # 192
RAYS_SENSOR = f"StackingSensor_size{RAY_STACKS}_RayPerceptionSensor"
VECTOR_SENSOR = f"VectorSensor_size{OBS_SIZE}"
CAMERA_SENSOR = "CameraSensor"

_SIGN = np.array([1.0, 1.0, -1.0, -1.0], np.float32)  # own-frame flip per body
_MATE = np.array([1, 0, 3, 2])
_OPP_A = np.array([2, 2, 0, 0])
_OPP_B = np.array([3, 3, 1, 1])
_GROUP = (1, 1, 2, 2)
_START = np.array([[-0.5, 0.2], [-0.5, -0.2], [0.5, 0.2], [0.5, -0.2]], np.float32)
_DYING = (1, 3)  # bodies that leave at death_step
# action branch value -> own-frame unit component
_DIR = np.array([0.0, 1.0, -1.0], np.float32)
_RAY_DIRS = np.stack([np.cos(np.radians(RAY_ANGLES)), np.sin(np.radians(RAY_ANGLES))], 1).astype(np.float32)


def agent_name(behavior: str, team: int, agent_id: int) -> str:
    """``<behavior>?team=<team>?agent_id=<id>`` (ML-Agents' naming, as the Unity adapter reports it)."""
    return f"{behavior}?team={team}?agent_id={agent_id}"


def ray_frames(pos: np.ndarray, alive: np.ndarray, ball: np.ndarray) -> np.ndarray:
    """One ray-perception frame of every body: float32 ``[4, RAY_FRAME]`` (see ``docs/soccer_spec.md``).

    Rays start at the body's centre and run ``RAY_LENGTH`` along ``RAY_ANGLES`` in its own frame. They
    hit the ball, the other players on the field (radius ``PLAYER_R``) and the field's boundary: a goal
    mouth (``|y| < GOAL_Y`` on an end line) is ``ownGoal`` / ``opponentGoal``, the rest ``wall``. Per
    ray: one-hot over ``RAY_TAGS`` of the nearest hit, ``1`` if nothing lies within the ray length,
    and the hit distance divided by ``RAY_LENGTH`` (1 when nothing was hit). Rows of bodies off the
    field are computed all the same (callers ignore them).
    """
    n_tags, d = len(RAY_TAGS), _RAY_DIRS  # d: [R, 2]
    s = _SIGN[:, None]
    o = s * pos  # [4, 2] each body in its own frame
    objects = np.concatenate([ball[None], pos], 0)  # [5, 2]: ball, bodies 0..3 (world frame)
    c = s[:, None, :] * objects[None]  # [4, 5, 2] in each body's own frame
    radii = np.array([BALL_R] + [PLAYER_R] * 4, np.float32)
    team = np.arange(4) // 2
    tags = np.concatenate([np.zeros((4, 1), np.int64),
                           np.where(team[None, :] == team[:, None], 4, 5)], 1)  # [4, 5]
    valid = np.concatenate([np.ones((4, 1), bool), alive[None, :] & ~np.eye(4, dtype=bool)], 1)  # [4, 5]
    oc = c - o[:, None, :]  # [4, 5, 2]
    proj = np.einsum("kjc,rc->krj", oc, d)  # [4, R, 5]
    oc2 = (oc * oc).sum(-1)[:, None, :]  # [4, 1, 5]
    disc = (radii * radii)[None, None, :] - (oc2 - proj * proj)
    t = np.where(oc2 <= radii * radii, 0.0, proj - np.sqrt(np.maximum(disc, 0.0)))
    hit = (disc >= 0) & (t >= 0) & valid[:, None, :]
    t = np.where(hit, t, np.inf)
    j = t.argmin(-1)  # [4, R] nearest object
    best_t = np.take_along_axis(t, j[..., None], -1)[..., 0]
    best_tag = np.take_along_axis(np.broadcast_to(tags[:, None, :], t.shape), j[..., None], -1)[..., 0]
    # boundary (own frame: own goal at x = -1, opponent goal at x = +1)
    dx, dy = d[None, :, 0], d[None, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(dx > 0, (FIELD_X - o[:, :1]) / dx, np.where(dx < 0, (-FIELD_X - o[:, :1]) / dx, np.inf))
        ty = np.where(dy > 0, (FIELD_Y - o[:, 1:]) / dy, np.where(dy < 0, (-FIELD_Y - o[:, 1:]) / dy, np.inf))
    tb = np.minimum(tx, ty)  # [4, R]
    yb = o[:, 1:] + tb * dy
    btag = np.where((tx <= ty) & (np.abs(yb) < GOAL_Y), np.where(dx > 0, 2, 1), 3)
    wall_first = tb < best_t
    best_t = np.where(wall_first, tb, best_t)
    best_tag = np.where(wall_first, btag, best_tag)
    out = np.zeros((4, len(d), n_tags + 2), np.float32)
    within = best_t <= RAY_LENGTH
    kk, rr = np.nonzero(within)
    out[kk, rr, best_tag[kk, rr]] = 1.0
    out[..., n_tags] = np.where(within, 0.0, 1.0)
    out[..., n_tags + 1] = np.where(within, best_t / RAY_LENGTH, 1.0)
    return out.reshape(4, -1)


def top_down_image(pos: np.ndarray, alive: np.ndarray, ball: np.ndarray, k: int,
                   shape: tuple[int, int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Top-down image float32 ``shape`` = (3, H, W) CHW in body k's frame: channel 0 own team, 1
    opponents, 2 ball; one pixel per body (values 0 or 1). Row 0 is +y, column 0 is -x."""
    img = np.zeros(shape, np.float32)
    s = _SIGN[k]
    team = k // 2
    h, w = shape[1], shape[2]

    def put(c: int, xy: np.ndarray) -> None:
        x, y = s * xy[0], s * xy[1]
        col = int(np.clip((x + FIELD_X) / (2 * FIELD_X) * w, 0, w - 1))
        row = int(np.clip((FIELD_Y - y) / (2 * FIELD_Y) * h, 0, h - 1))
        img[c, row, col] = 1.0

    for j in range(4):
        if alive[j]:
            put(0 if j // 2 == team else 1, pos[j])
    put(2, ball)
    return img


class SoccerTwosEnv(ParallelEnv):
    """The SoccerTwos game (see the module docstring for rules and decision semantics).

    Args:
        max_steps: episode step limit (truncation), default 400.
        ball_touch: individual reward scale ``0.2 * ball_touch`` per touch (Unity's environment
            parameter of the same name), default 0.
        decision_period: steps between an agent's decisions (>= 1).
        stagger: offset body k's decisions by ``k % period`` steps.
        death_step: remove bodies 1 and 3 at this step of each episode (None = never).
        visual: add the ``[3, 12, 20]`` CHW image sensor to every agent.
        rays: add the stacked ray-perception sensor (the Unity scene's sensors).
        camera: team 1 becomes behavior ``SoccerTwosCamera`` with a camera (``camera_shape``) and the
            vector sensor.
        camera_shape: (3, H, W) of that camera, H, W >= 2.
        respawn_delay: steps after ``death_step`` at which the dead bodies return as new agents
            (None = they stay out until the episode ends).
        team1_decision_period: decision period of team 1 (None = ``decision_period``).

    Raises:
        ValueError: a bad option (one line naming it).
    """

    metadata = {"name": "soccer_twos_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, max_steps: int = 400, ball_touch: float = 0.0, decision_period: int = 1,
                 stagger: bool = False, death_step: int | None = None, visual: bool = False, rays: bool = False,
                 camera: bool = False, camera_shape: tuple[int, int, int] = CAMERA_SHAPE,
                 respawn_delay: int | None = None, team1_decision_period: int | None = None):
        if max_steps < 1:
            raise ValueError(f"SoccerTwos: max_steps must be >= 1, got {max_steps}")
        for key, value in (("decision_period", decision_period), ("team1_decision_period", team1_decision_period)):
            if value is not None and value < 1:
                raise ValueError(f"SoccerTwos: {key} must be >= 1, got {value}")
        if death_step is not None and death_step < 1:
            raise ValueError(f"SoccerTwos: death_step must be >= 1 or None, got {death_step}")
        if respawn_delay is not None and (respawn_delay < 0 or death_step is None):
            raise ValueError(f"SoccerTwos: respawn_delay needs death_step and must be >= 0, got {respawn_delay}")
        camera_shape = tuple(int(x) for x in camera_shape)
        if len(camera_shape) != 3 or camera_shape[0] != 3 or min(camera_shape[1:]) < 2:
            raise ValueError(f"SoccerTwos: camera_shape must be (3, H, W) with H, W >= 2, got {camera_shape}")
        if camera and visual:
            raise ValueError("SoccerTwos: give camera (a camera behavior for team 1) or visual (an image for every "
                             "agent), not both")
        self.max_steps, self.ball_touch = int(max_steps), float(ball_touch)
        self.parameters: dict = {}  # environment_parameters (set_environment_parameters)
        self.death_step, self.visual, self.rays, self.camera = death_step, bool(visual), bool(rays), bool(camera)
        self.camera_shape, self.respawn_delay = camera_shape, respawn_delay
        p1 = int(team1_decision_period or decision_period)
        self.periods = np.array([decision_period, decision_period, p1, p1], np.int64)
        self.decision_period = int(decision_period)
        self.offsets = np.array([k % int(self.periods[k]) if stagger else 0 for k in range(4)])
        self.behaviors = (BEHAVIOR, BEHAVIOR, CAMERA_BEHAVIOR if camera else BEHAVIOR,
                          CAMERA_BEHAVIOR if camera else BEHAVIOR)
        first = [agent_name(self.behaviors[k], k // 2, k) for k in range(4)]
        reborn = [agent_name(self.behaviors[k], k // 2, 4 + j) for j, k in enumerate(_DYING)]
        self.possible_agents = first + (reborn if respawn_delay is not None else [])
        self._first_names = tuple(first)
        self._reborn_names = dict(zip(_DYING, reborn))
        self.names = list(first)  # current agent name of each body
        self.agents: list[str] = []
        vec = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        if visual:
            main = spaces.Tuple((spaces.Box(0.0, 1.0, IMAGE_SHAPE, np.float32), vec))
        elif rays:
            main = spaces.Tuple((spaces.Box(0.0, 1.0, (RAY_SIZE,), np.float32), vec))
        else:
            main = vec
        cam = spaces.Tuple((spaces.Box(0.0, 1.0, camera_shape, np.float32), vec))
        self._obs_spaces = {BEHAVIOR: main, CAMERA_BEHAVIOR: cam}
        self._act_space = spaces.MultiDiscrete(list(ACTION_BRANCHES))
        self._state_space = spaces.Box(-np.inf, np.inf, (STATE_SIZE,), np.float32)
        self.rng = np.random.default_rng()
        self.pos = np.zeros((4, 2), np.float32)
        self.vel = np.zeros((4, 2), np.float32)
        self.ball = np.zeros(2, np.float32)
        self.ball_vel = np.zeros(2, np.float32)
        self.alive = np.zeros(4, bool)
        self.joined = np.zeros(4, bool)  # has decided at least once in its life (is in ``agents``)
        self.last_action = np.zeros((4, 3), np.int64)
        self.stacks = np.zeros((4, RAY_STACKS, RAY_FRAME), np.float32)  # oldest first
        self.last_obs: list[Any] = [None] * 4
        self.t = 0
        self.died_at: int | None = None
        self._obs = np.zeros((4, OBS_SIZE), np.float32)
        self._frames: np.ndarray | None = None  # this step's ray frames, computed on first use
        self._deciders: list[int] = []
        self.goals = np.zeros(2, np.int64)  # goals scored by team 0 / team 1 since construction

    # ------------------------------------------------------------------------------ spaces
    def behavior_of_body(self, k: int) -> str:
        """Behavior name of body ``k`` (0..3)."""
        return self.behaviors[k]

    def sensor_names(self, behavior: str) -> tuple[str, ...]:
        """Unity sensor names of a behavior's agents, in sensor order (what the stand-in announces)."""
        if behavior == CAMERA_BEHAVIOR:
            return (CAMERA_SENSOR, VECTOR_SENSOR)
        if self.visual:
            return (CAMERA_SENSOR, VECTOR_SENSOR)
        return (RAYS_SENSOR, VECTOR_SENSOR) if self.rays else (VECTOR_SENSOR,)

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[CAMERA_BEHAVIOR if agent.startswith(CAMERA_BEHAVIOR + "?") else BEHAVIOR]

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    @property
    def state_space(self) -> spaces.Box:
        return self._state_space

    # ------------------------------------------------------------------------------ API
    ENVIRONMENT_PARAMETERS = ("ball_touch",)
    """The ``environment_parameters`` the game reads (the Unity scene reads the same one)."""

    def set_environment_parameters(self, values: dict) -> None:
        """ML-Agents' ``environment_parameters`` (YAML section; curricula pass their current lesson): each
        value a float or a sampler dict, drawn at every episode start from the next one on, as the Unity
        scene reads ``Academy.Instance.EnvironmentParameters.GetWithDefault("ball_touch", 0)``.

        Raises:
            ValueError: a parameter the game does not read, or a malformed value (one line naming it).
        """
        from envs.unity.parameters import draw_value

        for key, value in values.items():
            if key not in self.ENVIRONMENT_PARAMETERS:
                raise ValueError(f"environment_parameters.{key}: SoccerTwos reads only "
                                 f"{', '.join(self.ENVIRONMENT_PARAMETERS)}")
            draw_value(key, value, np.random.default_rng(0))  # check it now, draw it at each reset
        self.parameters = {**self.parameters, **dict(values)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode; returns observations of the agents that decide at step 0."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if options and "ball_touch" in options:
            self.ball_touch = float(options["ball_touch"])
        elif "ball_touch" in self.parameters:  # read at each episode start, as the Unity scene does
            from envs.unity.parameters import draw_value

            self.ball_touch = draw_value("ball_touch", self.parameters["ball_touch"], self.rng)
        r = self.rng
        self.pos[:] = _START
        self.pos += r.uniform(-0.05, 0.05, (4, 2)).astype(np.float32)
        self.vel[:] = 0.0
        self.ball[:] = (r.uniform(-0.05, 0.05), r.uniform(-0.1, 0.1) + r.uniform(-0.05, 0.05))
        self.ball_vel[:] = 0.0
        self.alive[:] = True
        self.last_action[:] = 0
        self.stacks[:] = 0.0
        self.names = list(self._first_names)
        self.t = 0
        self.died_at = None
        self._compute_obs()
        self.joined[:] = False
        obs, infos = {}, {}
        self._deciders = self._deciding()
        for k in self._deciders:
            self.joined[k] = True
            obs[self.names[k]] = self._decide(k)
            infos[self.names[k]] = self._info(k, 0.0, 0.0, True)
        self.agents = [self.names[k] for k in self._deciders]
        return obs, infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Advance one physics step.

        Args:
            actions: agent -> int array ``[3]`` for agents that were asked to decide; others are
                ignored (they repeat their last action).
        """
        if not self.alive.any():
            raise RuntimeError("SoccerTwos: step() called after the episode ended; call reset()")
        for k in self._deciders:
            a = actions.get(self.names[k])
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
        names_before = list(self.names)
        term = {names_before[k]: False for k in live_before}
        trunc = dict(term)
        ended = []
        if scored >= 0:
            ended = [k for k in range(4) if self.alive[k]]
            for k in live_before:
                term[names_before[k]] = True
        elif self.t >= self.max_steps:
            ended = [k for k in range(4) if self.alive[k]]
            for k in live_before:
                trunc[names_before[k]] = True
        elif self.death_step is not None and self.t == self.death_step:
            ended = [k for k in _DYING if self.alive[k]]
            self.died_at = self.t
            for k in ended:
                if self.joined[k]:
                    term[names_before[k]] = True
        self._compute_obs()
        rewards = {names_before[k]: float(indiv[k] + group[k]) for k in live_before}
        infos = {names_before[k]: self._info(k, float(indiv[k]), float(group[k]), False) for k in live_before}
        obs = {names_before[k]: self._decide(k) for k in ended if self.joined[k]}  # final observations
        for k in ended:
            self.alive[k] = False
            self.joined[k] = False
            self.vel[k] = 0.0
        game_over = scored >= 0 or self.t >= self.max_steps
        if ended and not game_over:
            self._compute_obs()  # the others see the bodies that left at zero relative position
        if (not game_over and self.respawn_delay is not None and self.died_at is not None
                and self.t == self.died_at + self.respawn_delay):
            for k in _DYING:  # fresh agents with new ids at the bodies' start positions
                self.alive[k], self.joined[k] = True, False
                self.names[k] = self._reborn_names[k]
                self.pos[k] = _START[k] + self.rng.uniform(-0.05, 0.05, 2).astype(np.float32)
                self.vel[k] = 0.0
                self.last_action[k] = 0
                self.stacks[k] = 0.0
            self._compute_obs()
        self._deciders = self._deciding() if self.alive.any() and not game_over else []
        for k in range(4):
            if not self.alive[k] or game_over:
                continue
            name = self.names[k]
            deciding = k in self._deciders
            if deciding:
                if not self.joined[k]:  # first decision of its life: the agent joins
                    self.joined[k] = True
                    rewards[name], term[name], trunc[name] = 0.0, False, False
                    infos[name] = self._info(k, 0.0, 0.0, True)
                obs[name] = self._decide(k)
            elif self.joined[k]:
                obs[name] = self.last_obs[k]
            if self.joined[k]:
                infos.setdefault(name, self._info(k, 0.0, 0.0, deciding))["deciding"] = deciding
        if game_over:
            self.alive[:] = False
        self.agents = [self.names[k] for k in range(4) if self.alive[k] and self.joined[k]]
        return obs, rewards, term, trunc, infos

    def state(self) -> np.ndarray:
        """Global state float32 ``[25]`` in team 0's (world) frame: per body (index order) position
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
        due = (self.t - self.offsets) % self.periods == 0
        return [k for k in range(4) if self.alive[k] and due[k] and self.t >= self.offsets[k]]

    def _info(self, k: int, indiv: float, group: float, deciding: bool) -> dict:
        return {"group_id": _GROUP[k], "group_reward": group, "individual_reward": indiv, "deciding": deciding}

    def _decide(self, k: int) -> Any:
        """Body k's observation at a decision (or at its episode end): the stacked sensors advance."""
        vec = self._obs[k].copy()
        if self.behaviors[k] == CAMERA_BEHAVIOR:
            ob: Any = (top_down_image(self.pos, self.alive, self.ball, k, self.camera_shape), vec)
        elif self.visual:
            ob = (self.image(k), vec)
        elif self.rays:
            self.stacks[k, :-1] = self.stacks[k, 1:]
            if self._frames is None:
                self._frames = ray_frames(self.pos, self.alive, self.ball)
            self.stacks[k, -1] = self._frames[k]
            ob = (self.stacks[k].reshape(-1).copy(), vec)
        else:
            ob = vec
        self.last_obs[k] = ob
        return ob

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
        self._frames = None
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
        """The ``visual`` option's image float32 ``[3, 12, 20]`` of body k (:func:`top_down_image`)."""
        return top_down_image(self.pos, self.alive, self.ball, k, IMAGE_SHAPE)


def parallel_env(**kwargs: Any) -> SoccerTwosEnv:
    """PettingZoo factory: ``SoccerTwosEnv(**kwargs)``."""
    return SoccerTwosEnv(**kwargs)


def env(**kwargs: Any):
    """AEC version (``pettingzoo.utils.conversions.parallel_to_aec``)."""
    return parallel_to_aec(SoccerTwosEnv(**kwargs))
