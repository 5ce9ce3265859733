"""End to end: ``marl-learn --env <stand-in>`` as a subprocess (its own timeout is the bound).

* trains SoccerTwos over gRPC with two workers and survives a player crash (restart);
* no hang, ever: an exception in the trainer, a player that stops answering, sensors that change
  shape, a scene behavior the YAML does not list, Ctrl-C while the player starts: each ends the run
  with one ``error:`` line (``--timeout-wait 5``) and leaves no player process behind;
* an image smaller than the encoder's minimum warns in one line and trains; ``default_settings``
  trains a behavior the YAML does not list.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
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
SMALL = """
behaviors:
  SoccerTwos:
    trainer_type: mappo
    hyperparameters: {batch_size: 64, buffer_size: 256, num_epoch: 1}
    network_settings: {hidden_units: 16, num_layers: 1}
    max_steps: 300
    summary_freq: 300
    checkpoint_interval: 100000
env_settings: {seed: 3}
"""
INJECT = """
import sys
import marl.algos.mappo as m

def boom(self, step, rollout):
    raise RuntimeError("injected trainer failure")

m.PPOLearner.update = boom
from marl.cli.learn import main
sys.exit(main(sys.argv[1:]))
"""


def free_base_port(n: int) -> int:
    return free_port(n, 31000, 33000)


def learn(tmp_path: Path, config: str, *args: str, env_args: tuple = (), timeout: float = 120, script: str | None = None,
          run_id: str = "run", interrupt_on_start: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    """Run marl-learn on the stand-in; returns the finished process and the token its players carry.
    ``interrupt_on_start``: send SIGINT (Ctrl-C) as soon as the first player process exists."""
    cfg = tmp_path / f"{run_id}.yaml"
    cfg.write_text(config)
    token = uuid.uuid4().hex
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "marl.cli.learn"]
    cmd = [*head, str(cfg), "--env", STANDIN, "--no-graphics", "--run-id", run_id, "--results-dir",
           str(tmp_path / "results"), "--base-port", str(free_base_port(3)), *args,
           "--env-args", "--test-token", token, *env_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    if interrupt_on_start:
        deadline = time.monotonic() + timeout
        while not players_left(token, grace=0, exclude=proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"marl-learn did not end within {timeout} s:\n{out[-1500:]}\n{err[-1500:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), token


def players_left(token: str, grace: float = 5.0, exclude: int | None = None) -> list[int]:
    """Processes whose command line holds ``token`` (the stand-in players of one run; ``exclude``: the
    trainer, whose own command line holds it too), after ``grace`` s."""
    deadline = time.monotonic() + grace
    while True:
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
            except OSError:
                continue
            if token.encode() in cmdline and state != "Z" and int(pid) != exclude:
                pids.append(int(pid))
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The run failed and said so in exactly one line (and nothing else on stderr)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr[-3000:]
    return lines[0]


def test_marl_learn_on_the_standin_restarts_a_crashed_player(tmp_path: Path):
    marker = tmp_path / "crashed"
    proc, token = learn(tmp_path, CONFIG, "--num-envs", "2", env_args=("--crash-after", "400", "--crash-marker",
                                                                      str(marker)), timeout=400, run_id="soccer")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert marker.exists()  # a player crashed mid-run ...
    logs = tmp_path / "results" / "soccer" / "run_logs"
    texts = [(logs / f"Player-{i}.log").read_text() for i in (0, 1)]
    assert sum(t.count("Simulated crash") for t in texts) == 1
    # ... and was relaunched: 2 workers + the spec probe (worker 0) + 1 restart
    assert sum(t.count("Connected:") for t in texts) == 4
    assert all("ball_touch = 0.5" in t and "'time_scale': 20.0" in t for t in texts)
    assert all(" 0 rejected" in t for t in texts)  # every action the players got fitted its request
    assert (tmp_path / "results" / "soccer" / "SoccerTwos").is_dir()
    assert "SoccerTwos. Step:" in proc.stdout + proc.stderr
    assert not players_left(token)


def test_an_exception_in_the_trainer_closes_every_player(tmp_path: Path):
    proc, token = learn(tmp_path, SMALL, "--num-envs", "2", "--timeout-wait", "5", script=INJECT,
                        env_args=("--no-rays",))
    assert "injected trainer failure" in one_error_line(proc)
    assert not players_left(token)
    logs = tmp_path / "results" / "run" / "run_logs"
    assert all("Connected:" in (logs / f"Player-{i}.log").read_text() for i in (0, 1))  # both workers had players


def test_a_player_that_stops_answering_ends_the_run(tmp_path: Path):
    proc, token = learn(tmp_path, SMALL, "--timeout-wait", "5", "--max-lifetime-restarts", "0",
                        env_args=("--no-rays", "--hang-after", "60"))
    line = one_error_line(proc)
    assert "took too long" in line and "may not be restarted" in line
    assert not players_left(token)


def test_sensors_that_change_shape_stop_the_run_in_one_line(tmp_path: Path):
    proc, token = learn(tmp_path, SMALL, "--timeout-wait", "5",
                        env_args=("--no-rays", "--max-steps", "20", "--change-sensors-after", "2"))
    line = one_error_line(proc)
    assert "behavior 'SoccerTwos?team=" in line and "must keep their shapes" in line
    assert not players_left(token)


def test_a_scene_behavior_missing_from_the_yaml_is_refused_unless_default_settings(tmp_path: Path):
    proc, token = learn(tmp_path, SMALL, "--timeout-wait", "5", env_args=("--camera",))
    line = one_error_line(proc)
    assert "behaviors.SoccerTwosCamera" in line and "default_settings" in line
    assert not players_left(token)
    # with default_settings the camera behavior trains with them; its 12x20 camera is below the CNN's
    # 20 pixels: one warning line, flattened into the dense layers
    default = SMALL + """default_settings:
  trainer_type: mappo
  hyperparameters: {batch_size: 64, buffer_size: 256, num_epoch: 1}
  network_settings: {hidden_units: 16, num_layers: 1, vis_encode_type: simple}
  max_steps: 300
"""
    proc, token = learn(tmp_path, default, "--timeout-wait", "5", env_args=("--camera", "--camera-size", "12x20"),
                        run_id="default")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [line for line in (proc.stdout + proc.stderr).splitlines() if "smaller than vis_encode_type" in line]
    assert len(warned) == 1 and "[3, 12, 20]" in warned[0], proc.stderr[-2000:]
    assert (tmp_path / "results" / "default" / "SoccerTwosCamera.onnx").is_file()
    assert not players_left(token)


def test_ctrl_c_while_the_player_starts(tmp_path: Path):
    proc, token = learn(tmp_path, SMALL, "--timeout-wait", "10", env_args=("--no-rays", "--connect-delay", "4"),
                        interrupt_on_start=True, timeout=90)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
    assert not players_left(token)
