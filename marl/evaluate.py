"""Play trained policies without training and report per-behavior returns (``marl-evaluate``).

Episodes run in-process on up to 16 env copies batched into one policy call per behavior and
step. Copy ``e`` plays every 16th episode, so each counted episode is complete and unbiased
by its length. Policies come from files only (:func:`marl.inference.load_policy`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from envs.vector import VecEnv
from marl.checkpoint import CheckpointError
from marl.config import parse_config
from marl.inference import load_policy


def _checkpoint_for(run_dir: Path, behavior: str, checkpoint: str | None) -> Path:
    if checkpoint is None:
        return run_dir / behavior / "checkpoint.pt"
    if checkpoint.isdigit():
        return run_dir / behavior / f"{behavior}-{checkpoint}.pt"
    return Path(checkpoint)


def evaluate_run(run_dir: str | Path, episodes: int = 100, seed: int = 0, stochastic: bool = False,
                 checkpoint: str | None = None, env_path: str | None = None) -> dict:
    """Play ``episodes`` episodes with each behavior's saved policy.

    Args:
        run_dir: ``results/<run-id>`` (its ``configuration.yaml`` names the env).
        episodes: episodes to count (each copy plays its share in full).
        seed: env copy ``e`` is seeded ``seed + e``; torch is seeded with ``seed`` (``--stochastic``).
        stochastic: sample actions instead of taking the most likely one.
        checkpoint: None = ``checkpoint.pt`` (latest); a step number = ``<Behavior>-<step>.pt``;
            a path = that file (single-behavior runs).
        env_path: override the env of the configuration (e.g. another Unity build).

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
    env_id, factory = env_factory(cfg, None)
    probe = factory(0, None)
    spec = probe.spec
    probe.close()
    files = {b.name: _checkpoint_for(run_dir, b.name, checkpoint) for b in spec.behaviors}
    policies = {b: load_policy(p) for b, p in files.items()}
    for b in spec.behaviors:
        pspec = policies[b.name].spec
        if tuple(pspec.obs_shape) != tuple(b.obs_shape) or pspec.n_agents != b.n_agents:
            raise CheckpointError(f"{files[b.name]}: policy for {pspec.n_agents} agents with observations "
                                  f"{pspec.obs_shape} does not fit behavior '{b.name}' ({b.n_agents} agents, {b.obs_shape})")
    n_copies = max(1, min(16, episodes))
    quota = np.array([episodes // n_copies + (e < episodes % n_copies) for e in range(n_copies)])
    done = np.zeros(n_copies, np.int64)
    per_agent = {b.name: [] for b in spec.behaviors}
    team = {b.name: [] for b in spec.behaviors}
    hidden = {b.name: None for b in spec.behaviors}
    slots = {b.name: np.tile(np.arange(b.n_agents), n_copies) for b in spec.behaviors}
    venv = VecEnv(factory, spec, 1, n_copies, seed=seed)
    try:
        arrays = venv.arrays
        while (done < quota).any():
            for b in spec.behaviors:
                obs = arrays[f"{b.name}/obs"].reshape(n_copies * b.n_agents, *b.obs_shape)
                mask = arrays.get(f"{b.name}/mask")
                mask = None if mask is None else mask.reshape(n_copies * b.n_agents, -1)
                d, c, hidden[b.name] = policies[b.name].act(obs, slots[b.name], mask, hidden[b.name],
                                                            deterministic=not stochastic)
                if d is not None:
                    arrays[f"{b.name}/act_d"][...] = d.reshape(n_copies, b.n_agents, -1)
                if c is not None:
                    arrays[f"{b.name}/act_c"][...] = c.reshape(n_copies, b.n_agents, -1) * 3.0  # env layer clips to [-1, 1]
            finished = venv.step()
            ended_rows = np.zeros(n_copies, bool)
            for e, stats in finished:
                ended_rows[e] = True
                if done[e] >= quota[e]:
                    continue
                done[e] += 1
                for name, r in stats.returns.items():
                    r = r[~np.isnan(r)]
                    per_agent[name].extend(r.tolist())
                    team[name].append(float(r.sum()))
            if ended_rows.any():
                for b in spec.behaviors:
                    hidden[b.name] = policies[b.name].reset_hidden(hidden[b.name], np.repeat(ended_rows, b.n_agents))
    finally:
        venv.close()
    out = {"behaviors": {}, "checkpoint": str(files[spec.behaviors[0].name]), "checkpoints": {k: str(v) for k, v in files.items()}}
    for b in spec.behaviors:
        r = np.asarray(per_agent[b.name], np.float64)
        out["behaviors"][b.name] = {"mean_return": float(r.mean()) if r.size else float("nan"),
                                    "std_return": float(r.std()) if r.size else float("nan"),
                                    "team_return": float(np.mean(team[b.name])) if team[b.name] else float("nan"),
                                    "episodes": int(len(team[b.name]))}
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
