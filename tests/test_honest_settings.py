"""Honest settings: mlagents-learn's flag precedence, defaults written once, device checked before the
run, one-line errors from every CLI, ML-Agents keys that work / match / are refused, typed
hyperparameters, a fully resolved configuration.yaml, and normal file permissions."""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marl.cli import learn
from marl.cli.learn import FLAG_TARGETS, build_parser, flag_name, resolve_config
from marl.algos import registry
from marl.config import (ConfigError, PPOHyperparameters, QMIXHyperparameters,
                         RunConfig, load_config, parse_config)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mlagents_ppo_configuration.yaml"
BASE = {"behaviors": {"agent": {"trainer_type": "mappo", "hyperparameters": {"batch_size": 64, "buffer_size": 256}}},
        "env_settings": {"env_path": "mpe2.simple_spread_v3", "num_envs": 4, "seed": 7},
        "checkpoint_settings": {"run_id": "from_yaml", "force": False}}


def write(tmp_path, data, name="run.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def resolve(argv):
    return resolve_config(build_parser().parse_args([str(a) for a in argv]))


# ------------------------------------------------------------------------------ 1. precedence
def test_typed_flag_beats_yaml_even_at_its_default(tmp_path):
    path = write(tmp_path, BASE)
    assert resolve([path]).env_settings.num_envs == 4                        # untyped: the YAML's value
    assert resolve([path, "--num-envs", "1"]).env_settings.num_envs == 1      # typed, equal to the default
    assert resolve([path, "--num-envs=1"]).env_settings.num_envs == 1
    assert resolve([path, "--num-e", "1"]).env_settings.num_envs == 1         # an abbreviation argparse accepts
    assert resolve([path, "--seed", "-1"]).env_settings.seed == -1
    assert resolve([path, "--run-id", "ppo"]).checkpoint_settings.run_id == "ppo"
    cfg = resolve([path, "--force"])
    assert cfg.checkpoint_settings.force and cfg.env_settings.num_envs == 4 and cfg.env_settings.seed == 7
    assert resolve([path, "--env-args", "-batchmode", "--x=1"]).env_settings.env_args == ["-batchmode", "--x=1"]


def test_untyped_store_true_flag_leaves_yaml_true(tmp_path):
    data = copy.deepcopy(BASE)
    data["checkpoint_settings"]["force"] = True
    data["engine_settings"] = {"no_graphics": True}
    cfg = resolve([write(tmp_path, data)])
    assert cfg.checkpoint_settings.force and cfg.engine_settings.no_graphics


def test_no_yaml_gives_the_model_defaults():
    assert resolve([]).model_dump() == parse_config({}).model_dump()


def test_bad_flag_value_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"^--num-envs 0: .*greater than or equal to 1"):
        resolve([write(tmp_path, BASE), "--num-envs", "0"])


# ------------------------------------------------------------------------ 2. defaults written once
def test_flags_take_default_type_and_help_from_the_config_models():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    cfg = RunConfig()
    for dest, (section, key) in FLAG_TARGETS.items():
        a = actions[dest]
        assert a.default is argparse.SUPPRESS, dest
        assert flag_name(dest) in a.option_strings
        default = getattr(cfg if section is None else getattr(cfg, section), key)
        if default not in (None, False):
            assert f"(default: {default})" in a.help, (dest, a.help)
    assert "--torch-device" in actions["device"].option_strings and "--env" in actions["env_path"].option_strings


# ------------------------------------------------------------------------------- 3. device
def _learn(argv, capsys):
    rc = learn.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, err


def _one_error_line(err: str, start: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), err
    assert "Traceback" not in err


@pytest.mark.parametrize("device, why", [("cuda", "CPU-only build"), ("tpu", "not a torch device")])
def test_bad_device_is_one_line_before_the_run(tmp_path, capsys, monkeypatch, device, why):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    rc, err = _learn([write(tmp_path, BASE), "--torch-device", device, "--results-dir", tmp_path / "r"], capsys)
    assert rc == 2
    _one_error_line(err, f"error: --torch-device {device}: ")
    assert why in err and not (tmp_path / "r").exists()


def test_device_index_beyond_the_visible_gpus(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    rc, err = _learn([write(tmp_path, BASE), "--torch-device", "cuda:7", "--results-dir", tmp_path / "r"], capsys)
    assert rc == 2
    _one_error_line(err, "error: --torch-device cuda:7: only 2 CUDA GPUs visible (cuda:0..cuda:1)")
    data = copy.deepcopy(BASE)
    data["torch_settings"] = {"device": "cuda:2"}
    rc, err = _learn([write(tmp_path, data)], capsys)
    _one_error_line(err, f"error: {tmp_path / 'run.yaml'}: torch_settings.device: only 2 CUDA GPUs")


# ------------------------------------------------------------------------ 4. one-line errors
@pytest.fixture
def binary_file(tmp_path) -> Path:
    p = tmp_path / "program"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    return p


def test_learn_binary_yaml_is_one_line(binary_file, capsys):
    rc, err = _learn([binary_file], capsys)
    assert rc == 2
    _one_error_line(err, f"error: {binary_file}: not a YAML text file")


def test_learn_unexpected_error_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise KeyError("surprise\nsecond line")

    monkeypatch.setattr(learn, "resolve_config", boom)
    rc, err = _learn([write(tmp_path, BASE)], capsys)
    assert rc == 1
    _one_error_line(err, "error: unexpected KeyError: ")
    assert "run with --debug for the traceback" in err
    with pytest.raises(KeyError):
        learn.main([str(write(tmp_path, BASE)), "--debug"])


def test_league_binary_config_is_one_line(binary_file, capsys):
    from league.cli import main

    assert main(["leaderboard", str(binary_file)]) == 2
    _one_error_line(capsys.readouterr().err, "league leaderboard: error: ")
    with pytest.raises(Exception, match="not a YAML text file"):
        main(["--debug", "leaderboard", str(binary_file)])


def test_league_unexpected_error_is_one_line(tmp_path, capsys, monkeypatch):
    import league.cli as cli

    monkeypatch.setattr(cli, "cmd_leaderboard", lambda a: 1 / 0)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_fn(parser(), "leaderboard", cli.cmd_leaderboard))
    assert cli.main(["leaderboard", str(tmp_path / "x.yaml")]) == 1
    err = capsys.readouterr().err
    _one_error_line(err, "league leaderboard: error: unexpected ZeroDivisionError")
    assert "run with --debug for the traceback" in err


def _with_fn(parser, cmd, fn):
    sub = next(a for a in parser._actions if a.dest == "cmd")
    sub.choices[cmd].set_defaults(fn=fn)
    return parser


def test_evaluate_and_export_unexpected_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import marl.checkpoint
    import marl.evaluate
    from marl.cli import evaluate, export

    monkeypatch.setattr(marl.evaluate, "evaluate_run", lambda *a, **k: 1 / 0)
    assert evaluate.main([str(tmp_path)]) == 1
    _one_error_line(capsys.readouterr().err, "error: unexpected ZeroDivisionError")
    with pytest.raises(ZeroDivisionError):
        evaluate.main([str(tmp_path), "--debug"])
    ck = tmp_path / "A-10.pt"
    ck.write_bytes(b"x")
    monkeypatch.setattr(marl.checkpoint, "load_checkpoint", lambda p: {}.__getitem__("trainer_type"))
    assert export.main([str(ck)]) == 1
    _one_error_line(capsys.readouterr().err, "error: unexpected KeyError")


def test_learn_subprocess_binary_yaml_no_traceback(binary_file):
    res = subprocess.run([sys.executable, "-m", "marl.cli.learn", str(binary_file)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 2
    _one_error_line(res.stderr, f"error: {binary_file}: not a YAML text file")


# -------------------------------------------------------------------------- 5. honest keys
def test_mlagents_resolved_configuration_loads_unchanged():
    cfg = load_config(FIXTURE)
    b = cfg.behaviors["3DBall"]
    assert b.trainer_type == "ippo" and isinstance(b.hp, PPOHyperparameters)
    assert b.hp.buffer_size == 12000 and b.hp.lambd == 0.99 and b.network_settings.normalize
    assert b.network_settings.goal_conditioning_type == "hyper" and b.time_horizon == 1000
    assert cfg.checkpoint_settings.run_id == "3DBall"


def test_mlagents_poca_self_play_block_loads():
    data = yaml.safe_load(FIXTURE.read_text())
    b = data["behaviors"].pop("3DBall")
    b["trainer_type"] = "poca"
    del b["hyperparameters"]["shared_critic"]  # POCA has no such key
    b["self_play"] = {"save_steps": 50000, "team_change": 200000, "swap_steps": 2000, "window": 10,
                      "play_against_latest_model_ratio": 0.5, "initial_elo": 1200.0}
    data["behaviors"]["SoccerTwos"] = b
    assert parse_config(data).behaviors["SoccerTwos"].self_play.window == 10


@pytest.mark.parametrize("where, value, key, why", [
    ("init_path", "results/old/A/checkpoint.pt", "behaviors.agent.init_path", "--initialize-from"),
    ("threaded", True, "behaviors.agent.threaded", "our own thread pool"),
    ("network_settings.memory", {"memory_size": 63}, "behaviors.agent.network_settings.memory.memory_size",
     "memory_size must be even"),
    ("network_settings.deterministic", True, "behaviors.agent.network_settings.deterministic", "not supported"),
    ("hyperparameters.shared_critic", True, "behaviors.agent.hyperparameters.shared_critic", "separate networks"),
    ("reward_signals.curiosity", {"gamma": 0.99, "strength": 0.02}, "behaviors.agent.reward_signals.curiosity",
     "curiosity reward signal is not supported"),
    ("reward_signals.gail", {"demo_path": "x.demo"}, "behaviors.agent.reward_signals.gail", "gail reward signal"),
    ("reward_signals.rnd", {"strength": 0.01}, "behaviors.agent.reward_signals.rnd", "rnd reward signal"),
    ("behavioral_cloning", {"demo_path": "x.demo", "strength": 0.5}, "behaviors.agent.behavioral_cloning",
     "behavioral cloning"),
    ("/checkpoint_settings.load_model", True, "checkpoint_settings.load_model", "use resume: true"),
    ("/checkpoint_settings.train_model", True, "checkpoint_settings.train_model", "--inference"),
    ("/engine_settings.no_graphics_monitor", True, "engine_settings.no_graphics_monitor", "not supported yet"),
    ("network_settings.goal_conditioning_type", "film", "behaviors.agent.network_settings.goal_conditioning_type",
     "'hyper' or 'none'"),
])
def test_unsupported_mlagents_values_are_refused_in_one_line(tmp_path, where, value, key, why):
    data = copy.deepcopy(BASE)
    node = data if where.startswith("/") else data["behaviors"]["agent"]
    *parents, leaf = where.lstrip("/").split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}: ") and why in msg and "\n" not in msg, msg


@pytest.mark.parametrize("trainer", ["qmix", "vdn"])
def test_self_play_refused_on_trainers_without_it(trainer):
    data = {"behaviors": {"A": {"trainer_type": trainer, "self_play": {"window": 5}}}}
    with pytest.raises(ConfigError, match=rf"^x\.yaml: behaviors\.A\.self_play: trainer_type {trainer} does not "
                                          r"support self-play; use ippo/mappo/poca/ppo"):
        parse_config(data, "x.yaml")
    data = {"default_settings": {"trainer_type": trainer, "self_play": {}}}
    with pytest.raises(ConfigError, match=r"default_settings\.self_play: trainer_type"):
        parse_config(data, "x.yaml")
    assert {n for n, a in registry.ALGORITHMS.items() if a.self_play} == {"mappo", "ippo", "poca"}


def test_accepted_values_that_match_what_we_do():
    b = parse_config({"behaviors": {"A": {"network_settings": {"goal_conditioning_type": "none", "memory": None},
                                          "threaded": False, "init_path": None, "even_checkpoints": False,
                                          "behavioral_cloning": None}}}).behaviors["A"]
    assert b.network_settings.goal_conditioning_type == "none" and b.checkpoint_interval == 500000


def test_even_checkpoints_spreads_keep_checkpoints_over_max_steps():
    b = parse_config({"behaviors": {"A": {"even_checkpoints": True, "max_steps": 100000, "keep_checkpoints": 4,
                                          "checkpoint_interval": 7}}}).behaviors["A"]
    assert b.checkpoint_interval == 25000


# -------------------------------------------------- 6. typed hyperparameters, resolved configuration
def test_hyperparameters_are_stored_as_the_trainers_model():
    cfg = parse_config({"behaviors": {"A": {"trainer_type": "vdn", "hyperparameters": {"batch_size": 8}},
                                      "B": {"hyperparameters": {"beta": 0.01}}}})
    a, b = cfg.behaviors["A"], cfg.behaviors["B"]
    assert isinstance(a.hp, QMIXHyperparameters) and a.hp is a.hp and a.hp.batch_size == 8
    assert type(b.hp) is registry.get("mappo").load("hyperparameters") and b.hp.beta == 0.01
    dumped = cfg.model_dump(mode="json")["behaviors"]
    assert dumped["A"]["hyperparameters"]["double_q"] is True and dumped["B"]["hyperparameters"]["num_epoch"] == 3


def test_resolved_for_lists_the_trained_behaviors_and_round_trips(tmp_path):
    data = {"default_settings": {"trainer_type": "ippo", "max_steps": 4000, "hyperparameters": {"beta": 0.02},
                                 "even_checkpoints": True, "keep_checkpoints": 2},
            "behaviors": {"B": {"max_steps": 9000}},
            "env_settings": {"env_path": "mpe2.simple_spread_v3"}}
    cfg = load_config(write(tmp_path, data))
    assert "behaviors: {}" in cfg.model_copy(update={"behaviors": {}}).to_yaml()  # what was written before
    resolved = cfg.resolved_for(["A", "B"])
    assert list(resolved.behaviors) == ["A", "B"] and resolved.default_settings is None
    out = tmp_path / "configuration.yaml"
    out.write_text(resolved.to_yaml())
    back = load_config(out)
    assert back.model_dump() == resolved.model_dump()
    assert back.behaviors["A"].hp.beta == 0.02 and back.behaviors["A"].checkpoint_interval == 2000
    assert back.behaviors["B"].max_steps == 9000 and back.behaviors["B"].checkpoint_interval == 4500
    with pytest.raises(ConfigError, match="behaviors.C"):
        parse_config({"behaviors": {"B": {}}}).resolved_for(["C"])


# --------------------------------------------------------------------------- 7. permissions
def test_written_files_get_normal_permissions(tmp_path):
    from league.config import LeagueConfig, write_config
    from marl.io import atomic_copy, atomic_write, atomic_write_text

    old = os.umask(0o022)
    try:
        a = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
        t = atomic_write_text(tmp_path / "d" / "t.yaml", "k: 1\n")
        c = atomic_copy(a, tmp_path / "c.onnx")
        write_config(LeagueConfig.model_validate({"env": {"id": "openspiel:tic_tac_toe"}}), str(tmp_path / "l.yaml"))
        for p in (a, t, c, tmp_path / "l.yaml"):
            assert oct(os.stat(p).st_mode & 0o777) == "0o644", p
        os.umask(0o027)
        assert os.stat(atomic_write_text(tmp_path / "g.txt", "")).st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    assert c.read_bytes() == b"x" and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
