"""Play trained policies without training and report per-behavior returns (``marl-evaluate``).

Episodes run through the one play loop (:func:`marl.play.play_episodes`) on up to 16 env copies
(one for a Unity build), with the run's own env settings (``env_kwargs``, ``behavior_map``,
``supersuit``), one batched policy call per behavior and step. Policies come from files only
(:func:`marl.inference.load_policy`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from envs.registry import is_executable_path
from marl.checkpoint import CheckpointError
from marl.config import parse_config
from marl.inference import load_policy
from marl.play import play_episodes
from marl.policy import PolicyError, RandomPolicy


def _checkpoint_for(run_dir: Path, behavior: str, checkpoint: str | None) -> Path:
    if checkpoint is None:
        return run_dir / behavior / "checkpoint.pt"
    if checkpoint.isdigit():
        return run_dir / behavior / f"{behavior}-{checkpoint}.pt"
    return Path(checkpoint)


def evaluate_run(run_dir: str | Path, episodes: int = 100, seed: int = 0, stochastic: bool = False,
                 checkpoint: str | None = None, env_path: str | None = None, random_baseline: bool = False) -> dict:
    """Play ``episodes`` episodes with each behavior's saved policy.

    Args:
        run_dir: ``results/<run-id>`` (its ``configuration.yaml`` names the env).
        episodes: episodes to count (each copy plays its share in full).
        seed: env copy ``e`` is seeded ``seed + e``; torch is seeded with ``seed`` (``--stochastic``).
        stochastic: sample actions instead of taking the most likely one.
        checkpoint: None = ``checkpoint.pt`` (latest); a step number = ``<Behavior>-<step>.pt``;
            a path = that file (single-behavior runs).
        env_path: override the env of the configuration (e.g. another Unity build).
        random_baseline: play uniformly random legal actions (:class:`marl.policy.RandomPolicy`) for every
            behavior instead of the saved policies: the chance baseline of the run's env, scored the same way.

    Returns:
        ``{"behaviors": {name: {"mean_return", "std_return", "team_return", "episodes"}},
        "checkpoint": path of the first behavior's file, "checkpoints": {name: path}}``;
        ``mean_return``/``std_return`` are over per-agent episode returns, ``team_return`` is the
        mean over episodes of the behavior's agents' summed return.

    Raises:
        CheckpointError: missing run folder, configuration or checkpoint.
    """
    run_dir = Path(run_dir)
    conf = run_dir / "configuration.yaml"
    if not conf.is_file():
        raise CheckpointError(f"{run_dir}: not a run folder (no configuration.yaml); expected results/<run-id>")
    cfg = parse_config(yaml.safe_load(conf.read_text()), str(conf))
    if env_path:
        cfg.env_settings.env_path = env_path
    from marl.run import env_factory

    torch.manual_seed(seed)
    env_id, factory = env_factory(cfg, None, parameters_required=False)
    policies: dict[str, object] = {}
    files: dict[str, Path] = {}

    def seating(spec):
        for b in spec.behaviors:
            if random_baseline:
                files[b.name] = Path("random")
                policies[b.name] = RandomPolicy(b, seed=seed)
                continue
            files[b.name] = _checkpoint_for(run_dir, b.name, checkpoint)
            policies[b.name] = load_policy(files[b.name])
        return policies

    copies = 1 if is_executable_path(env_id) else None
    try:
        results = play_episodes(lambda e: factory(e, None), seating, episodes, seed=seed,
                                deterministic=not stochastic, copies=copies)
    except PolicyError as exc:
        raise CheckpointError(str(exc)) from None
    names = list(files)
    per_agent: dict[str, list[float]] = {b: [] for b in names}
    team: dict[str, list[float]] = {b: [] for b in names}
    for res in results:
        for name, r in res.returns.items():
            r = r[~np.isnan(r)]
            per_agent[name].extend(r.tolist())
            team[name].append(float(r.sum()))

    out = {"behaviors": {}, "checkpoint": str(files[names[0]]), "checkpoints": {k: str(v) for k, v in files.items()}}
    for name in names:
        r = np.asarray(per_agent[name], np.float64)
        out["behaviors"][name] = {"mean_return": float(r.mean()) if r.size else float("nan"),
                                  "std_return": float(r.std()) if r.size else float("nan"),
                                  "team_return": float(np.mean(team[name])) if team[name] else float("nan"),
                                  "episodes": int(len(team[name]))}
    return out


def print_report(report: dict, console=None, as_json: bool = False) -> None:
    """Human-readable lines per behavior; with ``as_json`` the last line is the JSON report."""
    emit = console.print if console is not None else print
    for name, r in report["behaviors"].items():
        line = (f"{name}: mean return per agent {r['mean_return']:.3f} ± {r['std_return']:.3f} (std), "
                f"team return {r['team_return']:.3f}, {r['episodes']} episodes")
        emit(line) if console is None else console.print(line, markup=False, highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps({"behaviors": report["behaviors"], "checkpoint": report["checkpoint"]}), flush=True)
