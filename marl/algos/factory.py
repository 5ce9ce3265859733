"""Build a run's trainer from its registry entries (:mod:`marl.algos.registry`); trainers
implement :class:`marl.algos.base.Trainer`.

Every behavior of a run must use trainers of one class (e.g. ``mappo`` and ``ippo`` mix, since
both are :class:`marl.algos.mappo.PPOTrainer`). Self-play behaviors are driven by the ghost
wrapper (:mod:`marl.selfplay`) around that trainer.
"""
from __future__ import annotations

from marl.algos import registry
from marl.config import ConfigError


def trainer_class(trainer_type: str):
    """Import and return the trainer class for ``trainer_type``.

    Raises:
        ConfigError: unknown trainer type.
    """
    try:
        return registry.get(trainer_type).load("trainer")
    except registry.UnknownAlgorithm as exc:
        raise ConfigError(str(exc)) from None


def action_kind(action) -> str:
    """``"discrete"`` (one branch), ``"multi_discrete"``, ``"continuous"`` or ``"hybrid"`` for an :class:`envs.spec.ActionSpec`."""
    if action.discrete_branches and action.continuous_size:
        return "hybrid"
    if action.continuous_size:
        return "continuous"
    return "discrete" if len(action.discrete_branches) == 1 else "multi_discrete"


MIXING = ("qmix", "vdn")


def _check_fit_for_mixing(spec, cfg, b, trainer_type: str) -> None:
    """QMIX/VDN learn one team value mixed from the agents' Q-values on the team reward: refuse a behavior of
    one agent (nothing to mix) and a zero-sum game (its team reward is always 0), in one line.

    Raises:
        ConfigError: see above.
    """
    from envs.registry import declared_zero_sum

    name = registry.get(trainer_type).name
    if name not in MIXING:
        return
    if b.n_agents < 2:
        raise ConfigError(f"behaviors.{b.name}.trainer_type: {trainer_type} mixes the Q-values of a behavior's agents "
                          f"into one team value, and behavior '{b.name}' has one agent; use ippo (or mappo)")
    if declared_zero_sum(spec.env_id, cfg.env_settings.env_kwargs):
        raise ConfigError(f"behaviors.{b.name}.trainer_type: {trainer_type} learns from the team reward, which is "
                          f"always 0 in the zero-sum game '{spec.env_id}'; use ippo or mappo with self_play")


def make_trainer(spec, cfg, n_envs: int, device):
    """Build the trainer for all behaviors of ``spec``, wrapped in self-play when a behavior has ``self_play``.

    Raises:
        ConfigError: behaviors ask for trainers that cannot run together, self-play for a trainer
            that does not support it, or QMIX/VDN for a one-agent behavior or a zero-sum game.
    """
    classes = {b.name: trainer_class(cfg.behavior_settings(b.name).trainer_type) for b in spec.behaviors}
    if len(set(classes.values())) > 1:
        raise ConfigError("behaviors: all behaviors of one run must use compatible trainer types, got "
                          + ", ".join(f"{b}={cfg.behavior_settings(b).trainer_type}" for b in classes))
    for b in spec.behaviors:
        t = cfg.behavior_settings(b.name).trainer_type
        kind = action_kind(b.action)
        if kind not in registry.get(t).action_spaces:
            raise ConfigError(f"behaviors.{b.name}.trainer_type: {t} does not handle {kind.replace('_', '-')} actions "
                              f"(it handles: {', '.join(sorted(registry.get(t).action_spaces))}); behavior '{b.name}' "
                              f"has {list(b.action.discrete_branches)} discrete branches and "
                              f"{b.action.continuous_size} continuous values")
        _check_fit_for_mixing(spec, cfg, b, t)
    trainer = next(iter(classes.values()))(spec, cfg, n_envs, device)
    from marl.selfplay import wrap_self_play

    return wrap_self_play(trainer, spec, cfg)
