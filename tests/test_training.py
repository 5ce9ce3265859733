"""End-to-end MAPPO/IPPO runs on the tiny coordination game: learning, resume, rotation, Ctrl-C, evaluation."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from marl.checkpoint import CheckpointError, load_checkpoint
from marl.evaluate import evaluate_run
from marl.run import RunError, prepare_run_dir, train
from marl_helpers import cfg_of, coordination_config

RANDOM_RETURN = 5 / 9  # 5 steps x P(both right) = 1/9


def run(data, **kw):
    cfg = cfg_of(data)
    return train(cfg, prepare_run_dir(cfg), console=None, tensorboard=kw.get("tensorboard", False))


@pytest.mark.parametrize("trainer_type", ["mappo", "ippo"])
def test_learning_beats_random_by_a_wide_margin(tmp_path, trainer_type):
    out = run(coordination_config(tmp_path, max_steps=8000, trainer_type=trainer_type))
    report = evaluate_run(tmp_path / "t", episodes=200, seed=1)
    mean = report["behaviors"]["agent"]["mean_return"]
    assert mean > 4.0 * RANDOM_RETURN + 1.0, (mean, out["history"])   # random ~0.56, optimum 5
    assert report["behaviors"]["agent"]["episodes"] == 200
    assert report["behaviors"]["agent"]["team_return"] == pytest.approx(2 * mean, rel=1e-6)


def test_results_layout_and_checkpoint_rotation(tmp_path):
    run(coordination_config(tmp_path, max_steps=3200, checkpoint_interval=800, keep_checkpoints=2), tensorboard=True)
    d = tmp_path / "t"
    snaps = sorted(p.name for p in (d / "agent").glob("agent-*.pt"))
    assert len(snaps) == 2 and snaps[-1] == "agent-3200.pt", snaps
    assert (d / "agent" / "checkpoint.pt").is_file() and (d / "configuration.yaml").is_file()
    assert list((d / "agent").glob("events.out.tfevents.*")), "TensorBoard events missing"
    status = json.loads((d / "run_logs" / "training_status.json").read_text())
    assert [c["steps"] for c in status["agent"]["checkpoints"]] == [2400, 3200]
    assert status["agent"]["final_checkpoint"]["steps"] == 3200
    assert json.loads((d / "run_logs" / "timers.json").read_text())["metadata"]["end_step"] == 3200
    assert not list(d.rglob("*.tmp")), "temp files left behind"


def test_tensorboard_uses_mlagents_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(coordination_config(tmp_path, max_steps=2000), tensorboard=True)
    acc = EventAccumulator(str(tmp_path / "t" / "agent"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ["Environment/Cumulative Reward", "Environment/Episode Length", "Policy/Entropy", "Policy/Learning Rate",
                "Policy/Extrinsic Value Estimate", "Losses/Policy Loss", "Losses/Value Loss"]:
        assert tag in tags, (tag, tags)


def test_resume_continues_step_count_and_optimizer_state(tmp_path):
    data = coordination_config(tmp_path, max_steps=2000)
    run(data)
    first = load_checkpoint(tmp_path / "t" / "agent" / "checkpoint.pt")
    adam_steps = first["trainer"]["actor_opt"]["state"][0]["step"].item()
    assert first["step"] == 2000 and adam_steps > 0
    data["behaviors"]["agent"]["max_steps"] = 4000
    data["checkpoint_settings"]["resume"] = True
    out = run(data)
    assert out["step"] == 4000
    second = load_checkpoint(tmp_path / "t" / "agent" / "checkpoint.pt")
    # Adam's step counter continued from the first run rather than restarting at 0
    assert second["trainer"]["actor_opt"]["state"][0]["step"].item() == 2 * adam_steps
    # loading a checkpoint reproduces its optimiser state exactly
    from marl.algos.mappo import PPOTrainer
    from envs.adapter import ArrayEnv

    spec = ArrayEnv("envs.games.coordination", {"n_targets": 3, "max_cycles": 5}).spec
    tr = PPOTrainer(spec, cfg_of(data), 8, torch.device("cpu"))
    tr.load_state_dict("agent", second["trainer"])
    got, want = tr.learners["agent"].actor_opt.state_dict(), second["trainer"]["actor_opt"]
    for k, st in want["state"].items():
        for name, v in st.items():
            assert torch.equal(got["state"][k][name], v)


def test_initialize_from_loads_weights_and_restarts_steps(tmp_path):
    run(coordination_config(tmp_path, run_id="base", max_steps=2000))
    data = coordination_config(tmp_path, run_id="child", max_steps=800)
    data["checkpoint_settings"]["initialize_from"] = "base"
    out = run(data)
    assert out["step"] == 800  # counted from 0, not from base's 2000
    base = load_checkpoint(tmp_path / "base" / "agent" / "checkpoint.pt")["trainer"]["actor"]
    child0 = load_checkpoint(tmp_path / "child" / "agent" / "agent-800.pt")
    assert child0["step"] == 800 and set(base) == set(child0["trainer"]["actor"])


def test_existing_run_id_is_refused_with_the_mlagents_hint(tmp_path):
    data = coordination_config(tmp_path, max_steps=1000)
    run(data)
    with pytest.raises(RunError, match="use --resume to resume this run, or use the --force parameter"):
        prepare_run_dir(cfg_of(data))
    data["checkpoint_settings"]["force"] = True
    assert prepare_run_dir(cfg_of(data)).is_dir()
    missing = coordination_config(tmp_path, run_id="never", max_steps=1000)
    missing["checkpoint_settings"]["resume"] = True
    with pytest.raises(RunError, match="was not found"):
        prepare_run_dir(cfg_of(missing))


def test_corrupt_checkpoint_gives_a_one_line_error(tmp_path):
    p = tmp_path / "bad.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(p)
    assert "corrupt" in str(err.value) and "\n" not in str(err.value)


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "marl.cli.learn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _as_background_job():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to `marl-learn ... &`


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT-background-job", "SIGTERM"])
def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, signum):
    """Ctrl-C (even for a background job, which starts with SIGINT ignored) and SIGTERM save and stop."""
    import yaml

    data = coordination_config(tmp_path, max_steps=10_000_000, summary_freq=1000)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    proc = _cli(str(cfg_path), preexec_fn=_as_background_job)
    lines, seen = [], 0
    for line in proc.stdout:  # wait for the first summary line: training is under way
        lines.append(line)
        if "Step: " in line:
            seen = int(line.split("Step: ")[1].split(".")[0])
            break
    proc.send_signal(signum)
    time.sleep(0.05)
    proc.send_signal(signum)  # an impatient second Ctrl-C must not cut the checkpoint save short
    rest, _ = proc.communicate(timeout=300)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "Training interrupted at step" in out and "--resume" in out
    ck = load_checkpoint(tmp_path / "t" / "agent" / "checkpoint.pt")
    assert seen > 0 and ck["step"] >= seen
    # a plain rerun is refused, --resume is accepted and continues from the saved step
    again = _cli(str(cfg_path))
    out2, _ = again.communicate(timeout=300)
    assert again.returncode == 2 and "--resume" in out2 and "Traceback" not in out2


def test_cli_errors_are_one_line(tmp_path):
    p = _cli(str(tmp_path / "missing.yaml"))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 2 and out.strip() == f"error: {tmp_path / 'missing.yaml'}: config file not found"


def test_evaluate_cli_json_last_line(tmp_path):
    run(coordination_config(tmp_path, max_steps=1000))
    p = subprocess.run([sys.executable, "-m", "marl.cli.evaluate", str(tmp_path / "t"), "--episodes", "7", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["behaviors"]["agent"]["episodes"] == 7
    assert set(report["behaviors"]["agent"]) == {"mean_return", "std_return", "team_return", "episodes"}
    assert report["checkpoint"].endswith("checkpoint.pt")


def test_curriculum_advances_lessons_sends_values_and_survives_resume(tmp_path):
    data = coordination_config(tmp_path, max_steps=1600)
    data["environment_parameters"] = {"reward_scale": {"curriculum": [
        {"name": "easy", "value": 1.0,
         "completion_criteria": {"behavior": "agent", "measure": "reward", "min_lesson_length": 20, "threshold": 0.1}},
        {"name": "scaled", "value": 100.0}]}}
    out = run(data)
    status = json.loads((tmp_path / "t" / "run_logs" / "training_status.json").read_text())
    assert status["metadata"]["lessons"] == {"reward_scale": 1}
    assert out["last_100"]["agent"] > 5.0  # impossible at scale 1 (max 5): the env got the new lesson's value
    data["behaviors"]["agent"]["max_steps"] = 2400
    data["checkpoint_settings"]["resume"] = True
    out = run(data)
    assert out["last_100"]["agent"] > 5.0  # resumed in lesson 1, not back to lesson 0


def test_critic_update_in_a_second_thread_gives_the_serial_result(tmp_path, monkeypatch):
    """The critic's epochs run beside the actor's on a multi-core CPU; the weights after training
    must be those of running them one after the other (same minibatches, no shared parameters)."""
    import envs.vector
    import marl.algos.mappo as mappo

    with monkeypatch.context() as m:  # the threaded path even on a one-core machine
        m.setattr(envs.vector, "cpu_count", lambda: 2)
        assert mappo._update_pool() is not None
        run(coordination_config(tmp_path, run_id="par", max_steps=2400))
    monkeypatch.setattr(mappo, "_update_pool", lambda: None)
    run(coordination_config(tmp_path, run_id="ser", max_steps=2400))
    par = load_checkpoint(tmp_path / "par" / "agent" / "checkpoint.pt")["trainer"]
    ser = load_checkpoint(tmp_path / "ser" / "agent" / "checkpoint.pt")["trainer"]
    for net in ("actor", "critic"):
        for k, v in ser[net].items():
            assert torch.equal(par[net][k], v), (net, k)


def test_an_elo_lesson_needs_self_play_and_advances_with_the_learners_elo(tmp_path):
    from marl.config import ConfigError
    from marl.run import _CurriculumLink, check_curricula

    data = coordination_config(tmp_path, max_steps=1600)
    data["environment_parameters"] = {"reward_scale": {"curriculum": [
        {"name": "easy", "value": 1.0, "completion_criteria": {"behavior": "agent", "measure": "Elo", "threshold": 1300}},
        {"name": "scaled", "value": 100.0}]}}
    with pytest.raises(ConfigError, match=r"environment_parameters.reward_scale.curriculum\[0\].completion_criteria"
                                          r".measure: Elo needs self_play on behavior 'agent'"):
        run(data)  # refused before any env process starts

    class Status:
        data: dict = {}

        def save(self):
            pass

    class Venv:
        sent: list = []

        def set_environment_parameters(self, values):
            self.sent.append(dict(values))

        def reset(self):
            pass

    data["behaviors"]["agent"]["self_play"] = {"save_steps": 1000}
    cfg = cfg_of(data)
    check_curricula(cfg)  # accepted with self-play
    link = _CurriculumLink(cfg, Status(), Venv(), resume=False)
    link.after_rollout(800, {"agent": 1250.0})
    assert Venv.sent == []
    scalars = link.after_rollout(1600, {"agent": 1301.0})
    assert Venv.sent == [{"reward_scale": 100.0}]
    assert scalars["agent"]["Environment/Lesson Number/reward_scale"] == 1.0


def test_large_observations_gathered_per_minibatch_train_exactly_as_copied_ones(tmp_path, monkeypatch):
    """Image-sized observations are gathered from the rollout buffer minibatch by minibatch (no copy of the
    whole rollout); the weights after training must equal those of the eager copy."""
    import marl.algos.mappo as mappo

    monkeypatch.setattr(mappo, "_update_pool", lambda: None)
    for trainer_type in ("ippo", "mappo"):
        run(coordination_config(tmp_path, run_id=f"eager-{trainer_type}", max_steps=1600, trainer_type=trainer_type))
        with monkeypatch.context() as m:
            m.setattr(mappo, "LAZY_OBS_FLOATS", 0)  # every observation "large"
            run(coordination_config(tmp_path, run_id=f"lazy-{trainer_type}", max_steps=1600, trainer_type=trainer_type))
        eager = load_checkpoint(tmp_path / f"eager-{trainer_type}" / "agent" / "checkpoint.pt")["trainer"]
        lazy = load_checkpoint(tmp_path / f"lazy-{trainer_type}" / "agent" / "checkpoint.pt")["trainer"]
        for net in ("actor", "critic"):
            for k, v in eager[net].items():
                assert torch.allclose(lazy[net][k], v, atol=1e-6), (trainer_type, net, k)
