"""``marl-export``: run folders and checkpoints to brains, ``--to-unity``, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.spec import ActionSpec
from marl.cli.export import main, unity_file_name
from marl.inference import TorchActorPolicy, load_policy
from marl.io import atomic_torch_save
from test_export_helpers import make_actor_payload, one_torch_thread  # noqa: F401 (autouse)


@pytest.fixture
def run_dir(tmp_path):
    """results/<run>/ with two behaviors, as marl-learn leaves it (checkpoint.pt + a kept snapshot)."""
    run = tmp_path / "results" / "r1"
    for name, seed in (("Striker", 1), ("Goalie", 2)):
        payload, _ = make_actor_payload(ActionSpec((3, 3)), behavior=name, n_agents=2, seed=seed)
        atomic_torch_save(payload, run / name / "checkpoint.pt")
        atomic_torch_save(payload, run / name / f"{name}-1000.pt")
    return run


def test_run_folder_exports_every_behavior_and_copies_to_unity(run_dir, tmp_path, capsys):
    project = tmp_path / "unity_project"
    (project / "Assets").mkdir(parents=True)
    assert main([str(run_dir), "--to-unity", str(project)]) == 0
    out = capsys.readouterr().out
    assert "Exported Striker (mappo, step 1000, agent slot 0)" in out and "verified in onnxruntime" in out
    for name in ("Striker", "Goalie"):
        brain = run_dir / f"{name}.onnx"
        copy = project / "Assets" / "Brains" / f"{name}.onnx"
        assert brain.read_bytes() == copy.read_bytes()
        onnx_pol = load_policy(copy)
        torch_pol = TorchActorPolicy(torch.load(run_dir / name / "checkpoint.pt", weights_only=False), run_dir)
        obs = np.random.default_rng(0).standard_normal((32, 18)).astype(np.float32)
        idx = np.zeros(32, np.int64)
        np.testing.assert_array_equal(onnx_pol.act(obs, idx)[0], torch_pol.act(obs, idx)[0])


def test_checkpoint_file_out_slots_and_behavior(run_dir, tmp_path):
    ck = run_dir / "Goalie" / "Goalie-1000.pt"
    assert main([str(ck)]) == 0
    assert load_policy(run_dir / "Goalie" / "Goalie-1000.onnx").metadata["marl.behavior"] == "Goalie"
    out = tmp_path / "brains" / "g.onnx"
    assert main([str(run_dir), "--behavior", "Goalie", "--out", str(out), "--agent-slot", "1", "--all-slots"]) == 0
    assert load_policy(out).agent_slot == 1
    assert [load_policy(tmp_path / "brains" / f"g_agent{i}.onnx").agent_slot for i in (0, 1)] == [0, 1]


@pytest.mark.parametrize("args, message", [
    (["{run}", "--to-unity", "{tmp}"], "not a Unity project (no Assets/ folder)"),
    (["{run}", "--behavior", "Nobody"], "no checkpoint for behavior 'Nobody' (found: Goalie, Striker)"),
    (["{run}", "--out", "{tmp}/x.onnx"], "--out needs --behavior"),
    (["{tmp}/missing.pt"], "no such file or folder"),
    (["{tmp}/corrupt.pt"], "the file is corrupt or not a checkpoint"),
    (["{run}/Goalie/Goalie-1000.pt", "--agent-slot", "5"], "agent slot 5 is out of range"),
    (["{tmp}"], "no <Behavior>/checkpoint.pt in this folder"),
])
def test_errors_are_one_line(run_dir, tmp_path, capsys, args, message):
    (tmp_path / "corrupt.pt").write_bytes(b"\x00not a torch file")
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unity_file_names_are_windows_safe():
    assert unity_file_name("Soccer?team=1") == "Soccer_team1.onnx"
    assert unity_file_name("Walker", "_agent2") == "Walker_agent2.onnx"
