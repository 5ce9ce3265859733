"""Unity ML-Agents builds as PettingZoo envs (mlagents-envs 0.28, wire API 1.5.0).

* :func:`make_unity_env`: one worker's :class:`~envs.unity.env.UnityParallelEnv` with its restart
  quota (step semantics in :mod:`envs.unity.env`).
* :func:`unity_spec`: the trainer's :class:`envs.spec.EnvSpec` of a connected player: behaviors
  (``Name`` for ``Name?team=N``), their sensors and actions, and how many agent slots each team gets.
* :func:`unity_factory`: the picklable ``factory(worker_index, out_arrays) -> ArrayEnv`` that
  ``marl.run`` hands to ``envs.vector.VecEnv`` for ``--env <build>``. Its first call (the spec probe
  in the trainer's process) sizes the slots; every worker then uses that spec, so all arrays agree.
* :class:`~envs.unity.parameters.Curriculum`: lesson switching for ``environment_parameters``.
* :class:`~envs.unity.errors.UnityEnvError`: one-line errors (missing or non-executable build,
  port in use, player never connects, player dead beyond the restart limits, sensors that change).
* ``marl-unity-standin`` (:mod:`envs.unity.standin`): a stand-in player for tests and demos.
"""
from __future__ import annotations

from typing import Any, Sequence

from envs.unity.errors import UnityEnvError, UnityPlayerDied
from envs.unity.parameters import Curriculum

__all__ = ["Curriculum", "UnityArrayEnvFactory", "UnityEnvError", "UnityPlayerDied", "make_unity_env", "unity_factory",
           "unity_spec"]

DISCOVERY_STEPS = 16
"""Steps the spec probe plays (first allowed action of every deciding agent) to see the scene's
agents: enough for agents whose decision period or offset keeps them silent at the first step."""
ADAPTER_KWARGS = ("agent_slots", "discovery_steps")
"""``env_settings.env_kwargs`` keys a Unity build takes (it has no Python factory to pass them to)."""


def make_unity_env(env_path: str | None, *, worker_id: int, base_port: int, no_graphics: bool, timeout_wait: float,
                   env_args: Sequence[str] | None, log_dir: str | None, engine: dict | None,
                   environment_parameters: dict | None, seed: int, num_areas: int = 1,
                   max_lifetime_restarts: int = 10, restarts_rate_limit_n: int = 1,
                   restarts_rate_limit_period_s: float = 60, editor_port: int = 5004,
                   bind_address: str = "127.0.0.1"):
    """Launch (or wait for) one Unity player and wrap it as a PettingZoo ``ParallelEnv``.

    Args:
        env_path: build executable, or None for the Editor (which listens on ``editor_port``, 5004,
            as mlagents-learn; ``base_port`` is then unused).
        worker_id: worker index i; the player listens on ``base_port + i``; its log is
            ``<log_dir>/Player-<i>.log`` (ML-Agents: ``results/<run-id>/run_logs``).
        base_port, no_graphics, timeout_wait, env_args, num_areas: mlagents-learn's flags.
        engine: ``engine_settings`` (the CLI engine flags already merged in).
        environment_parameters: YAML ``environment_parameters`` (curricula start at lesson 0; push
            later lessons with ``env.set_environment_parameters(curriculum.values())``).
        seed: seed sent to the player (use a non-negative run seed).
        max_lifetime_restarts, restarts_rate_limit_n, restarts_rate_limit_period_s: restart quota of
            this worker (ML-Agents' flags; -1 = unlimited). A dead player within quota is relaunched
            and the running episode ends in truncation (``infos[a]["player_restarted"]``).

    Returns:
        :class:`envs.unity.env.UnityParallelEnv`, connected, not yet reset.

    Raises:
        UnityEnvError: see :class:`envs.unity.env.UnityParallelEnv`.
    """
    from envs.unity.env import UnityParallelEnv
    from envs.unity.restart import RestartLimiter

    restart = RestartLimiter(max_lifetime_restarts, restarts_rate_limit_n, restarts_rate_limit_period_s)
    return UnityParallelEnv(env_path, worker_id=worker_id, base_port=base_port, editor_port=editor_port,
                            no_graphics=no_graphics, timeout_wait=timeout_wait, env_args=env_args, log_dir=log_dir,
                            engine=engine, environment_parameters=environment_parameters, seed=seed,
                            num_areas=num_areas, restart=restart, bind_address=bind_address)


def _first_allowed(space, info: dict) -> Any:
    """An action a probe can send without breaking a mask: the first allowed value of every branch
    (zeros for continuous actions)."""
    import numpy as np
    from gymnasium import spaces

    mask = info.get("action_mask")

    def disc(sp, offset: int = 0):
        sizes = [int(sp.n)] if isinstance(sp, spaces.Discrete) else [int(n) for n in np.asarray(sp.nvec).ravel()]
        out = []
        for n in sizes:
            allowed = np.flatnonzero(mask[offset:offset + n]) if mask is not None else [0]
            out.append(int(allowed[0]) if len(allowed) else 0)
            offset += n
        return out[0] if isinstance(sp, spaces.Discrete) else np.asarray(out, np.int64)

    if isinstance(space, spaces.Tuple):
        return (disc(space.spaces[0]), np.zeros(space.spaces[1].shape, np.float32))
    if isinstance(space, spaces.Box):
        return np.zeros(space.shape, np.float32)
    return disc(space)


def unity_spec(env, env_id: str, agent_slots: dict[str, int] | None = None, steps: int = DISCOVERY_STEPS):
    """The :class:`envs.spec.EnvSpec` of a connected Unity player, found by playing ``steps`` steps.

    Behaviors: Unity's ``Name?team=N`` of every team become one trainer behavior ``Name`` (their
    sensors and actions must agree). Slots: per behavior and team, the most agents seen live at once
    (over all training areas), raised to ``agent_slots[Name]`` when given (agents that appear later,
    e.g. spawned mid-game, get their slots from it, or when the run grows the slots: ``marl.grow``,
    :meth:`UnityArrayEnvFactory.with_agent_slots`); team-major order; labels ``Name?team=N?slot=i``. State: the
    slots' observations concatenated (Unity has no global state). The probe acts with the first
    allowed action of every branch, so a masked scene sees no invalid action.

    Args:
        env: a connected :class:`envs.unity.env.UnityParallelEnv` (it is reset and stepped here).
        env_id: recorded in the spec.
        agent_slots: behavior -> minimum slots per team (``env_settings.env_kwargs.agent_slots``).
        steps: steps to play.

    Raises:
        UnityEnvError: no agent asked for a decision, teams of one behavior disagree on their spaces,
            ``agent_slots`` names a behavior the scene does not have, or a sensor is not supported.
    """
    import numpy as np

    from envs.adapter import _action_spec, _obs_parts
    from envs.registry import EnvError, behavior_of, team_of
    from envs.spec import BehaviorSpec, EnvSpec

    agent_slots = dict(agent_slots or {})
    most: dict[tuple[str, int], int] = {}
    unity_of: dict[str, dict[int, str]] = {}  # trainer behavior -> team -> Unity behavior

    def count() -> None:
        live: dict[tuple[str, int], int] = {}
        for a in env.agents:
            key = (behavior_of(a), team_of(a))
            live[key] = live.get(key, 0) + 1
            unity_of.setdefault(key[0], {}).setdefault(key[1], a.split("?agent_id=", 1)[0])
        for key, n in live.items():
            most[key] = max(most.get(key, 0), n)

    obs, infos = env.reset()
    count()
    for _ in range(max(0, int(steps))):
        if not env.agents:
            obs, infos = env.reset()
        actions = {a: _first_allowed(env.action_space(a), infos.get(a, {})) for a in env.agents
                   if infos.get(a, {}).get("deciding", True)}
        obs, _, _, _, infos = env.step(actions)
        count()
    if not most:
        raise UnityEnvError(f"{env_id}: no agent asked for a decision in the first {steps} steps; does the scene's "
                            "Behavior Type say Default and do its agents request decisions (DecisionRequester)?")
    unknown = sorted(set(agent_slots) - set(unity_of))
    if unknown:
        raise UnityEnvError(f"env_settings.env_kwargs.agent_slots: the scene has no behavior '{unknown[0]}' "
                            f"(it has: {', '.join(sorted(unity_of))})")
    behaviors = []
    for name in sorted(unity_of):
        teams = sorted(unity_of[name])
        spaces_of = {t: (env.observation_space(f"{unity_of[name][t]}?agent_id=0"),
                         env.action_space(f"{unity_of[name][t]}?agent_id=0")) for t in teams}
        try:
            layouts = {t: (_obs_parts(o, "chw"), _action_spec(a)) for t, (o, a) in spaces_of.items()}
        except EnvError as exc:
            raise UnityEnvError(f"behavior '{name}': {exc}") from None
        first = layouts[teams[0]]
        for t in teams[1:]:
            if layouts[t] != first:
                raise UnityEnvError(f"behavior '{name}': team {teams[0]} and team {t} have different sensors or "
                                    f"actions ({spaces_of[teams[0]]} vs {spaces_of[t]}); give them different behavior "
                                    "names in Unity")
        layout, action = first
        labels, slot_teams = [], []
        for t in teams:
            for _ in range(max(most.get((name, t), 0), int(agent_slots.get(name, 0)))):
                labels.append(f"{unity_of[name][t]}?slot={len(labels)}")
                slot_teams.append(t)
        sensors = layout.sensors if len(layout.sensors) > 1 else ()
        behaviors.append(BehaviorSpec(name, tuple(labels), layout.shape, action, tuple(slot_teams), sensors))
    state = sum(b.n_agents * int(np.prod(b.obs_shape)) for b in behaviors)
    return EnvSpec(env_id, tuple(behaviors), (state,), state_is_obs=True)  # a player has no state(): observations


class UnityArrayEnvFactory:
    """``factory(worker_index, out_arrays) -> envs.adapter.ArrayEnv`` for ``envs.vector.VecEnv`` (picklable).

    The first call (``marl.run``'s spec probe, worker 0, in the trainer's process) connects a player,
    finds the spec with :func:`unity_spec` and keeps it; later calls (the workers, which receive a
    pickled copy made after the probe) build their ``ArrayEnv`` with that spec. A failure after the
    player connected closes it before the error propagates.

    Args:
        kwargs: keyword arguments of :func:`make_unity_env` (all but ``worker_id``).
        env_kwargs: ``env_settings.env_kwargs``: ``agent_slots`` ({behavior: slots per team}) and
            ``discovery_steps`` (see :func:`unity_spec`).

    Raises:
        UnityEnvError: an unknown ``env_kwargs`` key (at construction), or any player/spec problem.
    """

    def __init__(self, kwargs: dict[str, Any], env_kwargs: dict | None = None):
        env_kwargs = dict(env_kwargs or {})
        unknown = sorted(set(env_kwargs) - set(ADAPTER_KWARGS))
        if unknown:
            raise UnityEnvError(f"env_settings.env_kwargs.{unknown[0]}: a Unity build takes only "
                                f"{', '.join(ADAPTER_KWARGS)} (its options go in --env-args)")
        slots = env_kwargs.get("agent_slots") or {}
        if not isinstance(slots, dict) or not all(isinstance(v, int) and v >= 1 for v in slots.values()):
            raise UnityEnvError(f"env_settings.env_kwargs.agent_slots: expected {{behavior: slots per team >= 1}}, "
                                f"got {slots!r}")
        self.kwargs, self.agent_slots = dict(kwargs), dict(slots)
        self.discovery_steps = int(env_kwargs.get("discovery_steps", DISCOVERY_STEPS))
        self.env_id = kwargs["env_path"] or "unity-editor"
        self.spec = None

    def with_agent_slots(self, agent_slots: dict[str, int]) -> "UnityArrayEnvFactory":
        """A new factory for the same player whose ``agent_slots`` are raised to ``agent_slots`` (behavior ->
        slots per team; behaviors not named keep theirs). Its first call probes a player again
        (:func:`unity_spec`), so a scene whose agents outnumbered the slots gets a spec with room for them
        (slot growth: ``marl.grow``; ``--resume`` after growth). This factory is left unchanged.

        Raises:
            UnityEnvError: a value that is not an int >= 1.
        """
        bad = {k: v for k, v in agent_slots.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise UnityEnvError(f"agent slots: expected {{behavior: slots per team >= 1}}, got {bad!r}")
        slots = dict(self.agent_slots)
        for name, n in agent_slots.items():
            slots[name] = max(int(slots.get(name, 0)), int(n))
        return UnityArrayEnvFactory(self.kwargs, {"agent_slots": slots, "discovery_steps": self.discovery_steps})

    def __call__(self, index: int, out: dict | None):
        from envs.adapter import ArrayEnv

        env = make_unity_env(worker_id=index, **self.kwargs)
        try:
            if self.spec is None:
                self.spec = unity_spec(env, self.env_id, self.agent_slots, self.discovery_steps)
            return ArrayEnv(self.env_id, env=env, out=out, spec=self.spec)
        except BaseException:
            env.close()
            raise


def unity_factory(cfg: Any, run_dir: Any = None) -> UnityArrayEnvFactory:
    """``factory(worker_index, out_arrays) -> envs.adapter.ArrayEnv`` for ``envs.vector.VecEnv``.

    Reads (duck-typed, no import of ``marl``): ``cfg.env_settings`` (env_path, env_args, env_kwargs,
    base_port, timeout_wait, seed, num_areas, max_lifetime_restarts, restarts_rate_limit_n,
    restarts_rate_limit_period_s), ``cfg.engine_settings`` (incl. no_graphics) and
    ``cfg.environment_parameters``. Player logs go to ``<run_dir>/run_logs/Player-<i>.log``.
    The vector env must run one env copy per worker (``num_areas`` goes to the player, which holds
    that many training areas) and worker index i becomes ``worker_id`` i.

    Raises:
        UnityEnvError: bad ``env_settings.env_kwargs``.
    """
    es, eng = cfg.env_settings, cfg.engine_settings
    engine = eng.model_dump() if hasattr(eng, "model_dump") else dict(eng)
    params = cfg.environment_parameters
    if params is not None:
        params = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in params.items()}
    kwargs = dict(env_path=es.env_path, base_port=es.base_port, no_graphics=bool(engine.get("no_graphics")),
                  timeout_wait=es.timeout_wait, env_args=list(es.env_args or []),
                  log_dir=str(run_dir) + "/run_logs" if run_dir is not None else None, engine=engine,
                  environment_parameters=params, seed=max(0, int(es.seed)), num_areas=es.num_areas,
                  max_lifetime_restarts=es.max_lifetime_restarts, restarts_rate_limit_n=es.restarts_rate_limit_n,
                  restarts_rate_limit_period_s=es.restarts_rate_limit_period_s)
    return UnityArrayEnvFactory(kwargs, getattr(es, "env_kwargs", None))
