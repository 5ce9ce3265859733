"""The algorithm registry: one entry per ``trainer_type``, the only place that names an algorithm's parts.

An entry says where each part lives (as ``"module:attribute"`` strings, imported on first use,
so reading a config never imports torch-heavy trainer code) and what the algorithm can do:

* ``hyperparameters``: the pydantic model of ``behaviors.<name>.hyperparameters``;
* ``trainer``: a :class:`marl.algos.base.Trainer` subclass, ``cls(spec, cfg, n_envs, device)``;
* ``policy_loader``: ``fn(checkpoint: dict, path: Path) -> marl.policy.Policy`` (evaluation,
  league, self-play opponents, export references);
* ``exporter``: ``fn(payload: dict, agent_slot: int) -> marl.export.ExportPlan`` (ONNX brains);
* ``self_play``: whether the self-play (ghost) wrapper can drive it;
* ``action_spaces``: subset of ``{"discrete", "multi_discrete", "continuous", "hybrid"}``.

Adding an algorithm: write its module (settings model, trainer, policy loader, exporter) and add
ONE :func:`register` call below (or from your own package before the CLI parses a config). The
README's "Adding an algorithm" section walks through it; ``docs/trainer_plugins.md`` gives the
interfaces.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


class UnknownAlgorithm(ValueError):
    """A ``trainer_type`` that no registry entry (or alias) names."""


@dataclass(frozen=True)
class Algorithm:
    """One algorithm's registry entry (see the module docstring)."""

    name: str
    hyperparameters: Any
    trainer: Any
    policy_loader: Any
    exporter: Any
    self_play: bool = False
    action_spaces: frozenset[str] = frozenset({"discrete", "multi_discrete", "continuous", "hybrid"})
    aliases: tuple[str, ...] = ()
    summary: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def load(self, part: str) -> Any:
        """Import and return one part (``"hyperparameters"``, ``"trainer"``, ``"policy_loader"``, ``"exporter"``)."""
        ref = getattr(self, part)
        if not isinstance(ref, str):  # an object given directly (tests, plugins built at run time)
            return ref
        if part not in self._cache:
            module, _, attr = ref.partition(":")
            self._cache[part] = getattr(importlib.import_module(module), attr)
        return self._cache[part]


ALGORITHMS: dict[str, Algorithm] = {}
ALIASES: dict[str, str] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add (or replace) an entry; its aliases map to it. Returns the entry."""
    ALGORITHMS[algorithm.name] = algorithm
    for a in algorithm.aliases:
        ALIASES[a] = algorithm.name
    return algorithm


def unregister(name: str) -> None:
    """Remove an entry and its aliases (tests)."""
    ALGORITHMS.pop(name, None)
    for a in [a for a, n in ALIASES.items() if n == name]:
        ALIASES.pop(a)


def canonical(trainer_type: str) -> str:
    """The registered name for ``trainer_type`` (resolving aliases such as ML-Agents' ``ppo``).

    Raises:
        UnknownAlgorithm: nothing registered under that name.
    """
    name = ALIASES.get(trainer_type, trainer_type)
    if name not in ALGORITHMS:
        raise UnknownAlgorithm(f"trainer_type '{trainer_type}' is not one of {names()}")
    return name


def get(trainer_type: str) -> Algorithm:
    """The entry for ``trainer_type`` (aliases allowed). Raises :class:`UnknownAlgorithm`."""
    return ALGORITHMS[canonical(trainer_type)]


def names() -> list[str]:
    """Every accepted ``trainer_type`` (names and aliases), sorted."""
    return sorted(set(ALGORITHMS) | set(ALIASES))


# ------------------------------------------------------------------------------ built-in algorithms
_PPO = dict(trainer="marl.algos.mappo:PPOTrainer", policy_loader="marl.algos.mappo:load_policy",
            exporter="marl.export.ppo:export_ppo", hyperparameters="marl.config:PPOHyperparameters", self_play=True)
register(Algorithm("mappo", **_PPO, summary="MAPPO: shared actor, centralised critic on the global state (Yu et al. 2022)"))
register(Algorithm("ippo", **_PPO, aliases=("ppo",),
                   summary="IPPO: shared actor, decentralised critic on each agent's observation (de Witt et al. 2020)"))
_Q = dict(trainer="marl.algos.qmix:QMIXTrainer", policy_loader="marl.algos.qmix:QPolicy",
          exporter="marl.algos.qmix:export_q", hyperparameters="marl.config:QMIXHyperparameters", self_play=False,
          action_spaces=frozenset({"discrete"}))
register(Algorithm("qmix", **_Q, summary="QMIX: monotonic mixer from state hypernetworks (Rashid et al. 2018)"))
register(Algorithm("vdn", **_Q, summary="VDN: sum of agent Q-values (Sunehag et al. 2018)"))
register(Algorithm("poca", trainer="marl.algos.poca:POCATrainer", policy_loader="marl.algos.mappo:load_policy",
                   exporter="marl.export.ppo:export_ppo", hyperparameters="marl.config:POCAHyperparameters",
                   self_play=True,
                   summary="MA-POCA: attention critic over the group's present members, counterfactual baselines "
                           "(Cohen et al. 2022; ML-Agents' poca trainer)"))
