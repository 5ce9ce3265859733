"""marl-learn --ray: env runners as Ray actors on a local instance (loopback), faults, teardown."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from marl_helpers import cfg_of

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


def test_self_play_is_refused_on_ray_in_one_line(tmp_path):
    from marl.config import ConfigError
    from marl.run import prepare_run_dir, train

    data = yaml.safe_load(open("configs/selfplay/tic_tac_toe.yaml"))
    data["env_settings"]["ray"] = True
    data["checkpoint_settings"] = {"run_id": "sp", "results_dir": str(tmp_path)}
    cfg = cfg_of(data)
    with pytest.raises(ConfigError, match="self_play: self-play does not run on Ray env runners yet"):
        train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
