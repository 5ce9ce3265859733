"""Unity ML-Agents builds as PettingZoo envs (mlagents-envs 0.28, wire API 1.5.0).

* :func:`make_unity_env`: one worker's :class:`~envs.unity.env.UnityParallelEnv` with its restart
  quota (step semantics in :mod:`envs.unity.env`).
* :func:`unity_factory`: the picklable ``factory(worker_index, out_arrays) -> ArrayEnv`` that
  ``marl.run`` hands to ``envs.vector.VecEnv`` for ``--env <build>``.
* :class:`~envs.unity.parameters.Curriculum`: lesson switching for ``environment_parameters``.
* :class:`~envs.unity.errors.UnityEnvError`: one-line errors (missing or non-executable build,
  port in use, player never connects, player dead beyond the restart limits).
* ``marl-unity-standin`` (:mod:`envs.unity.standin`): a stand-in player for tests and demos.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

from envs.unity.errors import UnityEnvError, UnityPlayerDied
from envs.unity.parameters import Curriculum

__all__ = ["Curriculum", "UnityEnvError", "UnityPlayerDied", "make_unity_env", "unity_factory"]


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


def _make_array_env(kwargs: dict[str, Any], index: int, out: dict | None):
    from envs.adapter import ArrayEnv

    env = make_unity_env(worker_id=index, **kwargs)
    return ArrayEnv(kwargs["env_path"] or "unity-editor", env=env, out=out)


def unity_factory(cfg: Any, run_dir: Any = None):
    """``factory(worker_index, out_arrays) -> envs.adapter.ArrayEnv`` for ``envs.vector.VecEnv``.

    Reads (duck-typed, no import of ``marl``): ``cfg.env_settings`` (env_path, env_args, base_port,
    timeout_wait, seed, num_areas, max_lifetime_restarts, restarts_rate_limit_n,
    restarts_rate_limit_period_s), ``cfg.engine_settings`` (incl. no_graphics) and
    ``cfg.environment_parameters``. Player logs go to ``<run_dir>/run_logs/Player-<i>.log``.
    The vector env must run one env copy per worker (``num_areas`` is the player's business) and
    worker index i becomes ``worker_id`` i.
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
    return functools.partial(_make_array_env, kwargs)
