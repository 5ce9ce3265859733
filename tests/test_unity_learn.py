"""End to end: ``marl-learn --env <stand-in> --num-envs 2`` trains SoccerTwos over gRPC and survives
a player crash (the player is restarted and the run finishes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from unity_helpers import STANDIN, free_port

pytestmark = pytest.mark.slow

CONFIG = """
behaviors:
  SoccerTwos:
    trainer_type: mappo
    hyperparameters: {batch_size: 256, buffer_size: 1024, learning_rate: 0.0003, num_epoch: 2}
    network_settings: {hidden_units: 32, num_layers: 1}
    max_steps: 2400
    summary_freq: 800
    checkpoint_interval: 100000
env_settings: {seed: 3, timeout_wait: 30}
engine_settings: {time_scale: 20}
environment_parameters: {ball_touch: 0.5}
"""


def free_base_port(n: int) -> int:
    return free_port(n, 31000, 33000)


def test_marl_learn_on_the_standin_restarts_a_crashed_player(tmp_path: Path):
    cfg = tmp_path / "soccer.yaml"
    cfg.write_text(CONFIG)
    marker = tmp_path / "crashed"
    cmd = [sys.executable, "-m", "marl.cli.learn", str(cfg), "--env", STANDIN, "--num-envs", "2", "--no-graphics",
           "--run-id", "soccer", "--results-dir", str(tmp_path / "results"), "--base-port", str(free_base_port(2)),
           "--env-args", "--crash-after", "400", "--crash-marker", str(marker)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert marker.exists()  # a player crashed mid-run ...
    logs = tmp_path / "results" / "soccer" / "run_logs"
    texts = [(logs / f"Player-{i}.log").read_text() for i in (0, 1)]
    assert sum(t.count("Simulated crash") for t in texts) == 1
    # ... and was relaunched: 2 workers + the spec probe (worker 0) + 1 restart
    assert sum(t.count("Connected:") for t in texts) == 4
    assert all("ball_touch = 0.5" in t and "'time_scale': 20.0" in t for t in texts)
    assert (tmp_path / "results" / "soccer" / "SoccerTwos").is_dir()
    assert "SoccerTwos. Step:" in proc.stdout + proc.stderr
