"""Turn an env id from a YAML file or ``--env`` into a PettingZoo environment.

Env ids (``env_settings.env_path`` in the YAML, or ``--env``):

* ``mpe2.simple_spread_v3`` / ``pettingzoo.classic.tictactoe_v3``: any importable module that has
  ``parallel_env(**kwargs)`` and/or ``env(**kwargs)`` (the PettingZoo convention);
* ``openspiel:<game>``: an OpenSpiel game through our own AEC adapter on ``pyspiel``
  (:mod:`envs.openspiel`: chance nodes, imperfect information and simultaneous moves; games it
  cannot play are refused at start-up);
* ``package.module:factory``: any callable returning a PettingZoo ``ParallelEnv`` or ``AECEnv``;
* a path to an executable file: a Unity build (handled by :mod:`envs.unity`).

Errors are :class:`EnvError` with one line that names the id and what was expected. An env whose
optional package is missing (PettingZoo's butterfly, sisl and classic families) names the package and
the install line for this checkout (:func:`install_hint`).
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from pettingzoo import AECEnv, ParallelEnv

from envs.errors import EnvError  # noqa: F401 - re-exported: callers catch envs.registry.EnvError


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
        from envs.openspiel import make_openspiel_env

        return make_openspiel_env(env_id, kwargs)
    if is_executable_path(env_id):
        raise EnvError(f"env '{env_id}' is a build path: use the Unity adapter (envs.unity) for executables")
    module_name, _, attr = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and not module_name.startswith(missing) and not missing.startswith(module_name):
            raise EnvError(missing_package_message(env_id, missing)) from None  # a dependency, not the env
        raise EnvError(f"env '{env_id}': cannot import module '{module_name}' ({exc}){_similar_modules(module_name)}; "
                       "expected e.g. 'mpe2.simple_spread_v3', 'openspiel:connect_four' or "
                       "'package.module:factory'") from None
    except Exception as exc:  # noqa: BLE001 - e.g. gymnasium's DependencyNotInstalled raised at import
        if type(exc).__name__ == "DependencyNotInstalled":
            raise EnvError(missing_package_message(env_id, _package_in(str(exc)))) from None
        raise
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
    except ImportError as exc:  # a factory that imports its engine lazily
        raise EnvError(missing_package_message(env_id, getattr(exc, "name", None) or str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - gymnasium's DependencyNotInstalled (pygame, ...)
        if type(exc).__name__ == "DependencyNotInstalled":
            raise EnvError(missing_package_message(env_id, _package_in(str(exc)))) from None
        raise
    if not isinstance(env, (AECEnv, ParallelEnv)) and not hasattr(env, "possible_agents"):
        raise EnvError(f"env '{env_id}': factory returned {type(env).__name__}, expected a PettingZoo env")
    return env


# import name of a missing package -> the extra of pyproject.toml that installs it
PACKAGE_EXTRAS = {"pymunk": "butterfly", "Box2D": "sisl", "box2d": "sisl", "rlcard": "classic", "chess": "classic"}
# PettingZoo env family -> extra (the family decides when a package serves several: pymunk is butterfly's and sisl's)
FAMILY_EXTRAS = {"pettingzoo.butterfly": "butterfly", "pettingzoo.sisl": "sisl", "pettingzoo.classic": "classic"}


def checkout_root() -> Path:
    """The folder this project is installed from (``pip install -e .``): the parent of ``envs/``."""
    return Path(__file__).resolve().parents[1]


def install_hint(extra: str | None, package: str | None = None) -> str:
    """The command that installs an optional extra (or a bare package) into the interpreter running now.

    With the checkout's own virtualenv (``<checkout>/.venv``) it reads as typed in the checkout,
    ``.venv/bin/pip install -e ".[butterfly]"``; with another interpreter it names that
    interpreter and the checkout's path. The project is installed from its checkout, never from a
    package index, so an extra is always installed with ``-e <checkout>``.
    """
    root = checkout_root()
    prefix = Path(sys.prefix).resolve()
    local = prefix == root / ".venv"
    pip = ".venv/bin/pip" if local else f"{sys.executable} -m pip"
    if extra:
        target = f'".[{extra}]"' if local else f'"{root}[{extra}]"'
        return f"{pip} install -e {target}"
    return f"{pip} install {package}"


def missing_package_message(env_id: str, package: str) -> str:
    """One line for an env whose optional package is missing: which package, and the install command.

    The extra comes from the env's PettingZoo family (``pettingzoo.butterfly.*`` -> ``butterfly``) or
    from the package (:data:`PACKAGE_EXTRAS`); a package no extra covers is named with a plain
    ``pip install``.
    """
    top = (package or "").split(".")[0]
    family = next((extra for prefix, extra in FAMILY_EXTRAS.items() if env_id.startswith(prefix + ".")), None)
    extra = family or PACKAGE_EXTRAS.get(top)
    where = f" (run in {checkout_root()})" if Path(sys.prefix).resolve() == checkout_root() / ".venv" else ""
    return (f"env '{env_id}' needs the optional package '{top or package}', which is not installed; install it "
            f"with: {install_hint(extra, top or package)}{where}")


def _package_in(text: str) -> str:
    """The package a ``DependencyNotInstalled`` message names (its first word), e.g. ``pygame``."""
    words = text.replace("`", " ").replace("'", " ").split()
    return words[0] if words else "?"


def _similar_modules(module_name: str) -> str:
    """``"; did you mean a.b_v11"`` when the module's package has modules of the same name with another
    version suffix (``knights_archers_zombies_v10`` -> ``_v11``), else ``""``."""
    import pkgutil

    parent, _, leaf = module_name.rpartition(".")
    stem = leaf.rsplit("_v", 1)[0] if "_v" in leaf else leaf
    try:
        pkg = importlib.import_module(parent) if parent else None
    except Exception:  # noqa: BLE001 - the parent itself is missing or broken: nothing to suggest
        return ""
    paths = getattr(pkg, "__path__", None)
    if not paths:
        return ""
    found = sorted(f"{parent}.{m.name}" for m in pkgutil.iter_modules(paths) if m.name != leaf and "_v" in m.name
                   and m.name.rsplit("_v", 1)[0] == stem and m.name.rsplit("_v", 1)[1].isdigit())
    return f"; did you mean {', '.join(found)}" if found else ""


SUPERSUIT_WRAPPERS = {"pad_observations_v0", "pad_action_space_v0", "agent_indicator_v0", "black_death_v3",
                      "frame_stack_v1", "frame_stack_v2", "frame_skip_v0", "flatten_v0", "dtype_v0", "clip_reward_v0",
                      "clip_actions_v0", "color_reduction_v0", "resize_v1", "reshape_v0", "normalize_obs_v0",
                      "sticky_actions_v0", "delay_observations_v0", "max_observation_v0", "scale_actions_v0"}


SUPERSUIT_PRESETS: dict[str, list] = {
    # the usual Atari-style preprocessing (Mnih et al. 2015): grayscale, 84x84, 4 frames stacked. Frames stay
    # uint8 (stored as such, a quarter of float32's memory); the networks scale them to [0, 1] at their input
    "atari_preprocessing": [{"color_reduction_v0": {"mode": "full"}}, {"resize_v1": {"x_size": 84, "y_size": 84}},
                            {"frame_stack_v1": {"stack_size": 4}}],
}
"""Named wrapper lists usable as one item of ``env_settings.supersuit`` (e.g. ``[atari_preprocessing]``)."""


def apply_supersuit(env, wrappers: list, source: str = "env_settings.supersuit"):
    """Apply SuperSuit wrappers in order (YAML ``env_settings.supersuit``).

    Each item is a wrapper name (``pad_observations_v0``) or a one-key mapping
    ``{frame_stack_v1: {stack_size: 4}}`` giving its keyword arguments. Typical uses: padding so
    agents with different spaces can share a behavior (``pad_observations_v0``,
    ``pad_action_space_v0``), frame stacking, reward clipping. A preset name from
    :data:`SUPERSUIT_PRESETS` (``atari_preprocessing``) stands for its list of wrappers.

    Raises:
        EnvError: unknown wrapper or bad arguments (names the list index).
    """
    import supersuit

    expanded = []
    for item in wrappers or []:
        expanded.extend(SUPERSUIT_PRESETS.get(item, [item]) if isinstance(item, str) else [item])
    for i, item in enumerate(expanded):
        name, kwargs = (item, {}) if isinstance(item, str) else next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None)
        if name not in SUPERSUIT_WRAPPERS:
            raise EnvError(f"{source}[{i}]: unknown SuperSuit wrapper {item!r}; expected one of {sorted(SUPERSUIT_WRAPPERS)}")
        try:
            env = getattr(supersuit, name)(env, **(kwargs or {}))
        except (TypeError, ValueError, AssertionError) as exc:
            raise EnvError(f"{source}[{i}]: {name}{kwargs or ''} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return env


def declared_zero_sum(env_id: str, env_kwargs: dict | None = None) -> bool | None:
    """Whether the env id names a game whose players' rewards always sum to a constant.

    * ``openspiel:<game>``: OpenSpiel's game type (``Utility.ZERO_SUM`` or ``CONSTANT_SUM``);
    * ``pettingzoo.classic.*``: True except Hanabi (every other classic game is a competitive
      game scored +1 / -1 or by chips won and lost);
    * anything else: None (not declared; nothing is assumed).

    Used by the QMIX/VDN fitness check (a team reward of a zero-sum game is always 0).

    Raises:
        EnvError: an ``openspiel:`` id that does not load.
    """
    if env_id.startswith("openspiel:"):
        from envs.openspiel import is_zero_sum

        return is_zero_sum(env_id, env_kwargs)
    if env_id.startswith("pettingzoo.classic."):
        return "hanabi" not in env_id
    return None


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
