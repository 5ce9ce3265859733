"""marl-learn --ray: env runners as Ray actors on a local instance (loopback), faults, teardown; self-play
(opponents planned by the driver, swapped inside rollouts on the runners, Elo from every game, resume),
curricula applied on the runners, and the Unity stand-in player trained through ``--ray --num-envs 2``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from marl_helpers import cfg_of, coordination_config
from unity_helpers import STANDIN, free_port

ray = pytest.importorskip("ray")


def _spread(tmp_path, run_id: str, max_steps: int) -> dict:
    data = yaml.safe_load(open("configs/mappo/simple_spread.yaml"))
    b = data["behaviors"]["agent"]
    b["max_steps"] = max_steps
    b["summary_freq"] = 2400
    b["network_settings"]["hidden_units"] = 32
    b["hyperparameters"].update(buffer_size=1200, batch_size=600, num_epoch=2)
    data["env_settings"].update(num_envs=2, num_areas=4, seed=1, ray=True)
    data["checkpoint_settings"] = {"run_id": run_id, "results_dir": str(tmp_path)}
    return data


def test_ray_runners_train_resume_and_tear_down(tmp_path):
    from marl.run import prepare_run_dir, train

    cfg = cfg_of(_spread(tmp_path, "r", 4800))
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    assert res["step"] >= 4800 and not res["interrupted"]
    assert np.isfinite(res["last_100"]["agent"])  # episodes came back from the runners
    assert (tmp_path / "r" / "agent" / "checkpoint.pt").is_file() and (tmp_path / "r" / "agent.onnx").is_file()
    assert not ray.is_initialized()  # the local instance this run started is gone
    data = _spread(tmp_path, "r", 7200)
    data["checkpoint_settings"]["resume"] = True
    cfg = cfg_of(data)
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    assert res["step"] >= 7200


def crashing_spread(arm: str, **kwargs):
    """simple_spread whose env process dies (as a runner does when its node is lost) on the first step taken
    after the file ``arm`` appears; exactly once (an exclusive marker file)."""
    import os

    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(**kwargs)
    step = env.step

    def dying_step(actions):
        if os.path.exists(arm):
            try:
                os.close(os.open(arm + ".done", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return step(actions)
            os._exit(1)
        return step(actions)

    env.step = dying_step
    return env


def test_a_runner_killed_mid_rollout_is_replaced_and_the_run_finishes(tmp_path, monkeypatch):
    import os

    from marl.run import prepare_run_dir, train

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    arm = tmp_path / "arm"
    data = _spread(tmp_path, "k", 7200)
    data["env_settings"].update(env_path="test_ray_learn:crashing_spread",
                                env_kwargs={"arm": str(arm), "N": 3, "local_ratio": 0.5, "max_cycles": 25})
    cfg = cfg_of(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False,
                    between_rollouts=lambda step: arm.touch())  # the next rollout loses one runner mid-way
    assert (tmp_path / "arm.done").exists() and res["step"] >= 7200 and not res["interrupted"]
    lost = [w for w in caught if "lost mid-rollout" in str(w.message)]
    assert len(lost) == 1, [str(w.message) for w in caught]  # one line, one fragment dropped, the run went on


STANDIN_CONFIG = """
behaviors:
  SoccerTwos:
    trainer_type: mappo
    hyperparameters: {batch_size: 64, buffer_size: 256, num_epoch: 1}
    network_settings: {hidden_units: 16, num_layers: 1}
    max_steps: 600
    summary_freq: 300
    checkpoint_interval: 100000
env_settings: {seed: 3}
environment_parameters:
  ball_touch:
    curriculum:
      - name: soft
        value: 0.5
        completion_criteria: {behavior: SoccerTwos, measure: progress, threshold: 0.3}
      - name: hard
        value: 0.9
"""


def processes_with(token: str, exclude: int, grace: float = 5.0) -> list[int]:
    """Live processes (other than ``exclude``) whose command line holds ``token``, after up to ``grace`` s."""
    deadline = time.monotonic() + grace
    while True:
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
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


def test_the_unity_standin_trains_through_ray_runners_with_a_curriculum(tmp_path):
    """marl-learn --ray --num-envs 2 on the stand-in: one player per runner, logs under the run's run_logs
    (a relative --results-dir, as by default), the lesson change reaches both players, none is left."""
    (tmp_path / "u.yaml").write_text(STANDIN_CONFIG)
    token = uuid.uuid4().hex
    cmd = [sys.executable, "-m", "marl.cli.learn", "u.yaml", "--env", STANDIN, "--ray", "--num-envs", "2",
           "--no-graphics", "--base-port", str(free_port(2, 33000, 35000)), "--run-id", "u", "--results-dir", "results",
           "--env-args", "--test-token", token]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"marl-learn --ray did not end within 180 s:\n{out[-1500:]}\n{err[-1500:]}")
    finally:
        left = processes_with(token, exclude=proc.pid)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    assert not left, f"stand-in players left behind: {left}"
    run = tmp_path / "results" / "u"
    assert "Training finished at step" in out and (run / "SoccerTwos" / "checkpoint.pt").is_file()
    logs = sorted(p.name for p in (run / "run_logs").glob("Player-*.log"))
    assert logs == ["Player-0.log", "Player-1.log"], logs  # runner i's player is worker i (port base + i)
    for name in logs:
        text = (run / "run_logs" / name).read_text()
        assert "Connected:" in text and " 0 rejected" in text, text[-1500:]
        touches = [line.split("ball_touch = ")[1] for line in text.splitlines() if "EnvironmentParameters: ball_touch" in line]
        assert touches[0] == "0.5" and float(touches[-1]) == pytest.approx(0.9), (name, touches)  # lesson 1 reached it
    status = json.loads((run / "run_logs" / "training_status.json").read_text())
    assert status["metadata"]["lessons"] == {"ball_touch": 1}


def test_settle_scores_runner_games_in_step_order_and_commits_the_swaps_reached(tmp_path):
    """Without Ray: the driver's plan swaps at the vector steps a local run with all copies would, and the
    runners' games update Elo in (step, runner, copy) order against the opponent each was played against."""
    import torch

    from envs.adapter import ArrayEnv
    from marl.algos.factory import make_trainer
    from marl.selfplay import elo_update

    data = _tic_tac_toe(tmp_path, "unit", 1000)
    data["behaviors"]["player"]["self_play"].update(swap_steps=100, play_against_latest_model_ratio=1.0,
                                                    random_opponent_ratio=0.0)
    cfg = cfg_of(data)
    spec = ArrayEnv("openspiel:tic_tac_toe").spec
    ghost = make_trainer(spec, cfg, 8, torch.device("cpu")).ghosts["player"]
    ghost.begin_rollout(0)
    plan = ghost.plan_rollout(0, copies=8, horizon=40)
    # swaps are due once (t + 1) * 8 env steps are 100 past the last: t = 12 (104), 25 (208), 38 (312)
    assert [t for t, _ in plan["swaps"]] == [12, 25, 38]
    assert len(plan["actors"]) == 2 and plan["opponents"] == [0, 1, 1, 1]  # the latest weights travel once
    reports = [(30, [(5, 0, 1.0, 0), (12, 1, 0.0, 0), (20, 0, 1.0, 1), (27, 2, 0.5, 2)]),
               (26, [(5, 0, 0.0, 0), (25, 3, 1.0, 1)])]
    entries = ghost._planned[0]
    # by hand: every opponent is "the latest policy", rated as the learner when its swap is reached
    elo, opp = 1200.0, [1200.0, None, None]
    for t, s, k in [(5, 1.0, 0), (5, 0.0, 0), (12, 0.0, 0), (20, 1.0, 1), (25, 1.0, 1), (27, 0.5, 2)]:
        if opp[k] is None:
            opp[k] = elo
        elo, opp[k] = elo_update(elo, opp[k], s, 16.0)
    ghost.settle_rollout(reports)
    assert ghost.elo == pytest.approx(elo) and ghost.games == 6
    assert [e[0].elo for e in entries[:3]] == pytest.approx(opp)
    assert ghost.last_swap == 208 and ghost.opponent is entries[2][0]  # 38 is past both runners' 30 and 26 steps
    assert ghost.opponent_is_latest and not ghost.opponent_is_random


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (marl.raytools) for the tests below, torn down at the end even on failure."""
    from marl.raytools import project_runtime_env, ray_session

    with ray_session(runtime_env=project_runtime_env()):
        yield


def _tic_tac_toe(tmp_path, run_id: str, max_steps: int) -> dict:
    return {"behaviors": {"player": {
                "trainer_type": "ippo",
                "hyperparameters": {"buffer_size": 512, "batch_size": 256, "num_epoch": 2, "learning_rate": 0.003,
                                    "learning_rate_schedule": "constant", "beta": 0.01},
                "network_settings": {"hidden_units": 32, "num_layers": 2},
                "max_steps": max_steps, "summary_freq": 1000, "checkpoint_interval": 100000, "keep_checkpoints": 2,
                "self_play": {"save_steps": 300, "team_change": 500, "swap_steps": 100, "window": 3,
                              "play_against_latest_model_ratio": 0.3, "random_opponent_ratio": 0.2}}},
            "env_settings": {"env_path": "openspiel:tic_tac_toe", "num_envs": 2, "num_areas": 4, "seed": 5, "ray": True},
            "checkpoint_settings": {"run_id": run_id, "results_dir": str(tmp_path)}}


def test_self_play_on_ray_runners_swaps_inside_rollouts_scores_every_game_and_resumes(tmp_path, monkeypatch, local_ray):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import marl.ray_runners as rr
    from marl.checkpoint import load_checkpoint
    from marl.run import prepare_run_dir, train
    from marl.selfplay import BehaviorGhost

    rollouts: list[dict] = []
    plan_rollout, settle_rollout, collect, put = (BehaviorGhost.plan_rollout, BehaviorGhost.settle_rollout,
                                                  rr.RayRunners.collect, ray.put)

    def planned(self, step, copies, horizon):
        plan = plan_rollout(self, step, copies, horizon)
        rollouts.append({"plan": plan, "elo_before": self.elo, "copies": copies, "puts": 0})
        return plan

    def settled(self, reports):
        rollouts[-1]["reports"] = reports
        return settle_rollout(self, reports)

    def collected(self, *args):
        out = collect(self, *args)
        rollouts[-1]["episodes"] = len(out[3])
        return out

    def counted_put(value, *a, **k):
        rollouts[-1]["puts"] += 1
        return put(value, *a, **k)

    monkeypatch.setattr(BehaviorGhost, "plan_rollout", planned)
    monkeypatch.setattr(BehaviorGhost, "settle_rollout", settled)
    monkeypatch.setattr(rr.RayRunners, "collect", collected)
    monkeypatch.setattr(ray, "put", counted_put)
    cfg = cfg_of(_tic_tac_toe(tmp_path, "sp", 1000))  # 2 rollouts of ~520 env steps (2 runners x 4 copies x 65)
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=True)
    assert res["step"] >= 1000 and not res["interrupted"]
    run = tmp_path / "sp"
    extra = load_checkpoint(run / "player" / "checkpoint.pt")["extra"]
    state = extra["selfplay"]
    # Elo: one game per finished episode of every runner, and it moved
    assert state["games"] == sum(r["episodes"] for r in rollouts) > 50
    assert extra["elo"] != 1200.0
    assert json.loads((run / "run_logs" / "training_status.json").read_text())["player"]["elo"] == pytest.approx(extra["elo"])
    acc = EventAccumulator(str(run / "player"))
    acc.Reload()
    assert len(acc.Scalars("Self-play/ELO")) >= 1
    # snapshots: saved by the driver, the window's files on disk
    files = sorted(p.name for p in (run / "player" / "snapshots").glob("player-*.pt"))
    assert len(files) == 3 and files == sorted(Path(s["path"]).name for s in state["snapshots"])
    # the learning team changed (every team_change env steps, at rollout boundaries)
    assert {r["plan"]["team"] for r in rollouts} == {0, 1}
    swapped_inside = 0
    for r in rollouts:
        assert r["puts"] == 1  # weights, opponents and parameters: one object-store put per rollout
        assert len(r["reports"]) == 2
        swaps = r["plan"]["swaps"]
        for rows, games in r["reports"]:
            for t, _, _, entry in games:  # every runner played, at step t, the entry the plan gives for t
                assert entry == max([k for ts, k in swaps if ts < t], default=0), (t, entry, swaps)
        used = {g[3] for _, games in r["reports"] for g in games}
        swapped_inside += len(used) > 1
    assert swapped_inside == len(rollouts)  # swaps every 100 env steps happen inside the ~520-step rollouts
    # --resume: Elo, counters and the window come back, and training goes on from them
    data = _tic_tac_toe(tmp_path, "sp", 1500)
    data["checkpoint_settings"]["resume"] = True
    first = len(rollouts)
    cfg = cfg_of(data)
    res = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    assert res["step"] >= 1500
    assert rollouts[first]["elo_before"] == pytest.approx(extra["elo"])
    state2 = load_checkpoint(run / "player" / "checkpoint.pt")["extra"]["selfplay"]
    assert state2["games"] == state["games"] + sum(r["episodes"] for r in rollouts[first:])
    assert max(s["step"] for s in state2["snapshots"]) > max(s["step"] for s in state["snapshots"])
    assert all(Path(s["path"]).is_file() for s in state2["snapshots"])


def test_a_curriculum_lesson_reaches_the_runners_envs_and_survives_resume(tmp_path, local_ray):
    """The coordination game takes ``reward_scale`` as a Unity game takes a parameter: returns above 5
    (the most one episode can score at scale 1) prove the runners' env copies got lesson 1."""
    from marl.run import prepare_run_dir, train

    data = coordination_config(tmp_path, max_steps=1600)
    data["env_settings"].update(num_envs=2, num_areas=4, ray=True)
    data["environment_parameters"] = {"reward_scale": {"curriculum": [
        {"name": "easy", "value": 1.0,
         "completion_criteria": {"behavior": "agent", "measure": "reward", "min_lesson_length": 20, "threshold": 0.1}},
        {"name": "scaled", "value": 100.0}]}}
    cfg = cfg_of(data)
    out = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    status = json.loads((tmp_path / "t" / "run_logs" / "training_status.json").read_text())
    assert status["metadata"]["lessons"] == {"reward_scale": 1}
    assert out["last_100"]["agent"] > 5.0
    data["behaviors"]["agent"]["max_steps"] = 2400
    data["checkpoint_settings"]["resume"] = True
    cfg = cfg_of(data)
    out = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    assert out["last_100"]["agent"] > 5.0  # new runners start in lesson 1, not back at lesson 0
