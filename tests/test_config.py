"""Config validation: ML-Agents YAML schema, one-line errors naming file and key, CLI precedence."""
from __future__ import annotations

import pytest
import yaml

from marl.cli.learn import build_parser, resolve_config
from marl.config import ConfigError, load_config, parse_config


def write(tmp_path, data, name="run.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


BASE = {"behaviors": {"agent": {"trainer_type": "mappo", "hyperparameters": {"batch_size": 64, "buffer_size": 256}}},
        "env_settings": {"env_path": "mpe2.simple_spread_v3"}}


def test_valid_config_and_default_settings_merge(tmp_path):
    data = {**BASE, "default_settings": {"max_steps": 1234, "hyperparameters": {"learning_rate": 0.01}}}
    cfg = load_config(write(tmp_path, data))
    s = cfg.behavior_settings("agent")
    assert s.max_steps == 1234
    assert s.hp.learning_rate == 0.01 and s.hp.batch_size == 64
    # a behavior the YAML does not list falls back to default_settings
    assert cfg.behavior_settings("other").max_steps == 1234


def test_aliases_of_mlagents_trainer_types():
    assert parse_config({"behaviors": {"a": {"trainer_type": "ppo"}}}).behaviors["a"].trainer_type == "ippo"
    assert parse_config({"behaviors": {"a": {"trainer_type": "poca"}}}).behaviors["a"].trainer_type == "poca"  # MA-POCA


@pytest.mark.parametrize("mutate, key, expected", [
    (lambda d: d["behaviors"]["agent"].__setitem__("max_stepz", 10), "behaviors.agent.max_stepz", "unknown key"),
    (lambda d: d["behaviors"]["agent"]["hyperparameters"].__setitem__("batch_size", "big"),
     "behaviors.agent.hyperparameters.batch_size", "valid integer"),
    (lambda d: d["behaviors"]["agent"]["hyperparameters"].__setitem__("batch_size", 512),
     "behaviors.agent.hyperparameters", "batch_size (512) must be <= buffer_size (256)"),
    (lambda d: d["behaviors"]["agent"]["hyperparameters"].__setitem__("lambd", 2.0),
     "behaviors.agent.hyperparameters.lambd", "less than or equal to 1"),
    (lambda d: d["env_settings"].__setitem__("num_envs", 0), "env_settings.num_envs", "greater than or equal to 1"),
    (lambda d: d["behaviors"]["agent"].__setitem__("trainer_type", "sac"), "behaviors.agent", "trainer_type 'sac'"),
    (lambda d: d.__setitem__("env_setings", {}), "env_setings", "unknown key"),
])
def test_bad_config_gives_one_line_naming_file_and_key(tmp_path, mutate, key, expected):
    import copy

    data = copy.deepcopy(BASE)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {key}"), msg
    assert expected in msg, msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("behaviors:\n  agent: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d+"):
        load_config(bad)


def test_cli_precedence_typed_flag_beats_yaml_beats_default(tmp_path):
    data = {**BASE, "env_settings": {"env_path": "mpe2.simple_spread_v3", "num_envs": 3, "seed": 7},
            "checkpoint_settings": {"run_id": "from_yaml"}}
    path = write(tmp_path, data)
    parser = build_parser()
    cfg = resolve_config(parser.parse_args([str(path), "--num-envs", "2"]), parser)
    assert cfg.env_settings.num_envs == 2          # CLI (non-default) wins
    assert cfg.env_settings.seed == 7              # YAML wins over the default -1
    assert cfg.checkpoint_settings.run_id == "from_yaml"  # an untyped --run-id does not override
    cfg = resolve_config(parser.parse_args([str(path), "--run-id", "cli"]), parser)
    assert cfg.checkpoint_settings.run_id == "cli"
    cfg = resolve_config(parser.parse_args([str(path), "--num-envs", "1"]), parser)
    assert cfg.env_settings.num_envs == 1          # typed at its default: still wins (mlagents-learn)


def test_every_shipped_config_is_valid():
    """Each YAML under configs/ passes its schema: trainer configs (marl) and league configs (league)."""
    import glob
    import os

    from league.config import load_config as load_league_config

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    paths = sorted(p for p in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
                   if os.sep + "ray" + os.sep not in p)  # configs/ray: Ray cluster launcher YAML (tests/test_docker.py)
    assert len(paths) >= 10
    for p in paths:
        data = yaml.safe_load(open(p))
        if "behaviors" in data:
            cfg = load_config(p)
            assert cfg.behaviors, p
        else:
            assert load_league_config(p).env.id, p
