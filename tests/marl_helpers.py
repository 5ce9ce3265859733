"""Shared helpers for the trainer tests: small configs on the tiny coordination game."""
from __future__ import annotations

import copy

from marl.config import parse_config


def coordination_config(tmp_path, run_id="t", max_steps=6000, **behavior) -> dict:
    """A MAPPO config dict on ``envs.games.coordination`` (2 agents, 5-step episodes) in ``tmp_path``."""
    b = {"trainer_type": "mappo",
         "hyperparameters": {"buffer_size": 800, "batch_size": 400, "num_epoch": 4, "learning_rate": 0.003,
                             "learning_rate_schedule": "constant", "beta": 0.01},
         "network_settings": {"hidden_units": 32, "num_layers": 2},
         "max_steps": max_steps, "summary_freq": 1000, "checkpoint_interval": 2000, "keep_checkpoints": 2}
    for k, v in behavior.items():
        if isinstance(v, dict) and isinstance(b.get(k), dict):
            b[k] = {**b[k], **v}
        else:
            b[k] = v
    return {"behaviors": {"agent": b},
            "env_settings": {"env_path": "envs.games.coordination", "env_kwargs": {"n_targets": 3, "max_cycles": 5},
                             "num_envs": 1, "num_areas": 8, "seed": 3},
            "checkpoint_settings": {"run_id": run_id, "results_dir": str(tmp_path)}}


def cfg_of(data: dict):
    return parse_config(copy.deepcopy(data), "test.yaml")
