"""Trainer registry: ``trainer_type`` -> trainer class.

A trainer drives all behaviors of one env and exposes::

    collect_and_train(venv, step, on_episode) -> (env_steps_taken, {behavior: scalars})
    state_dict(behavior) -> dict ; load_state_dict(behavior, state, weights_only=False)
    actor(behavior) -> torch.nn.Module   # what is exported / evaluated

Every behavior of a run must use trainers of one class (e.g. ``mappo`` and ``ippo`` mix, since
both are :class:`marl.algos.mappo.PPOTrainer`).
"""
from __future__ import annotations

import importlib

from marl.config import ConfigError

TRAINERS: dict[str, str] = {
    "mappo": "marl.algos.mappo:PPOTrainer",
    "ippo": "marl.algos.mappo:PPOTrainer",
    "qmix": "marl.algos.qmix:QMIXTrainer",
    "vdn": "marl.algos.qmix:QMIXTrainer",
}


def trainer_class(trainer_type: str):
    """Import and return the trainer class for ``trainer_type``.

    Raises:
        ConfigError: unknown trainer type.
    """
    if trainer_type not in TRAINERS:
        raise ConfigError(f"trainer_type '{trainer_type}' has no trainer (have: {', '.join(sorted(TRAINERS))})")
    module, _, cls = TRAINERS[trainer_type].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_trainer(spec, cfg, n_envs: int, device):
    """Build the trainer for all behaviors of ``spec``.

    Raises:
        ConfigError: behaviors ask for trainers that cannot run together.
    """
    classes = {b.name: trainer_class(cfg.behavior_settings(b.name).trainer_type) for b in spec.behaviors}
    if len(set(classes.values())) > 1:
        raise ConfigError("behaviors: all behaviors of one run must use compatible trainer types, got "
                          + ", ".join(f"{b}={cfg.behavior_settings(b).trainer_type}" for b in classes))
    return next(iter(classes.values()))(spec, cfg, n_envs, device)
