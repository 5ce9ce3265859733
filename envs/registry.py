"""Turn an env id from a YAML file or ``--env`` into a PettingZoo environment.

Env ids (``env_settings.env_path`` in the YAML, or ``--env``):

* ``mpe2.simple_spread_v3`` / ``pettingzoo.classic.tictactoe_v3``: any importable module that has
  ``parallel_env(**kwargs)`` and/or ``env(**kwargs)`` (the PettingZoo convention);
* ``openspiel:<game>``: an OpenSpiel game through ``shimmy.OpenSpielCompatibilityV0`` (AEC);
* ``package.module:factory``: any callable returning a PettingZoo ``ParallelEnv`` or ``AECEnv``;
* a path to an executable file: a Unity build (handled by :mod:`envs.unity`).

Errors are :class:`EnvError` with one line that names the id and what was expected.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from pettingzoo import AECEnv, ParallelEnv


class EnvError(ValueError):
    """A bad env id or env arguments; the message is one line meant for the user."""


def is_executable_path(env_id: str) -> bool:
    """True when ``env_id`` looks like a path to a build rather than a Python module."""
    return os.sep in env_id or env_id.endswith((".x86_64", ".exe", ".app"))


def make_env(env_id: str, kwargs: dict[str, Any] | None = None, *, prefer: str = "parallel") -> AECEnv | ParallelEnv:
    """Build one PettingZoo env.

    Args:
        env_id: see the module docstring.
        kwargs: keyword arguments for the env factory (``env_settings.env_kwargs`` in the YAML).
        prefer: ``"parallel"`` or ``"aec"``: which API to build when a module offers both.

    Returns:
        A fresh (not yet reset) ``ParallelEnv`` or ``AECEnv``.

    Raises:
        EnvError: unknown module or factory, or the factory rejected ``kwargs``.
    """
    kwargs = dict(kwargs or {})
    if env_id.startswith("openspiel:"):
        game = env_id.split(":", 1)[1]
        try:
            import pyspiel
            from shimmy import OpenSpielCompatibilityV0

            return OpenSpielCompatibilityV0(env=pyspiel.load_game(game, kwargs) if kwargs else pyspiel.load_game(game))
        except (pyspiel.SpielError, RuntimeError) as exc:
            raise EnvError(f"env '{env_id}': OpenSpiel cannot load game '{game}' with {kwargs}: {str(exc).splitlines()[0]}") from None
    if is_executable_path(env_id):
        raise EnvError(f"env '{env_id}' is a build path: use the Unity adapter (envs.unity) for executables")
    module_name, _, attr = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvError(f"env '{env_id}': cannot import module '{module_name}' ({exc}); expected e.g. "
                       "'mpe2.simple_spread_v3', 'openspiel:connect_four' or 'package.module:factory'") from None
    if attr:
        factory = getattr(module, attr, None)
        if factory is None:
            raise EnvError(f"env '{env_id}': module '{module_name}' has no attribute '{attr}'")
    else:
        order = ["parallel_env", "env"] if prefer == "parallel" else ["env", "parallel_env"]
        factory = next((getattr(module, n) for n in order if hasattr(module, n)), None)
        if factory is None:
            raise EnvError(f"env '{env_id}': module has neither parallel_env() nor env()")
    try:
        env = factory(**kwargs)
    except TypeError as exc:
        raise EnvError(f"env '{env_id}': bad env_kwargs {kwargs}: {exc}") from None
    if not isinstance(env, (AECEnv, ParallelEnv)) and not hasattr(env, "possible_agents"):
        raise EnvError(f"env '{env_id}': factory returned {type(env).__name__}, expected a PettingZoo env")
    return env


SUPERSUIT_WRAPPERS = {"pad_observations_v0", "pad_action_space_v0", "agent_indicator_v0", "black_death_v3",
                      "frame_stack_v1", "frame_stack_v2", "frame_skip_v0", "flatten_v0", "dtype_v0", "clip_reward_v0",
                      "clip_actions_v0", "color_reduction_v0", "resize_v1", "reshape_v0", "normalize_obs_v0",
                      "sticky_actions_v0", "delay_observations_v0", "max_observation_v0", "scale_actions_v0"}


def apply_supersuit(env, wrappers: list, source: str = "env_settings.supersuit"):
    """Apply SuperSuit wrappers in order (YAML ``env_settings.supersuit``).

    Each item is a wrapper name (``pad_observations_v0``) or a one-key mapping
    ``{frame_stack_v1: {stack_size: 4}}`` giving its keyword arguments. Typical uses: padding so
    agents with different spaces can share a behavior (``pad_observations_v0``,
    ``pad_action_space_v0``), frame stacking, reward clipping.

    Raises:
        EnvError: unknown wrapper or bad arguments (names the list index).
    """
    import supersuit

    for i, item in enumerate(wrappers or []):
        name, kwargs = (item, {}) if isinstance(item, str) else next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None)
        if name not in SUPERSUIT_WRAPPERS:
            raise EnvError(f"{source}[{i}]: unknown SuperSuit wrapper {item!r}; expected one of {sorted(SUPERSUIT_WRAPPERS)}")
        try:
            env = getattr(supersuit, name)(env, **(kwargs or {}))
        except (TypeError, ValueError, AssertionError) as exc:
            raise EnvError(f"{source}[{i}]: {name}{kwargs or ''} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return env


def behavior_of(agent: str) -> str:
    """Behavior name of a PettingZoo agent name.

    ``adversary_0`` -> ``adversary``; ``SoccerTwos?team=1?agent_id=3`` -> ``SoccerTwos``;
    ``player_1`` -> ``player``. A YAML ``env_settings.behavior_map`` overrides this.
    """
    base = agent.split("?", 1)[0]
    head, sep, tail = base.rpartition("_")
    return head if sep and tail.isdigit() and head else base


def team_of(agent: str) -> int:
    """Team id from a ``Name?team=N`` agent name (ML-Agents' convention); 0 when absent."""
    for part in agent.split("?")[1:]:
        key, _, value = part.partition("=")
        if key == "team" and value.lstrip("-").isdigit():
            return int(value)
    return 0
