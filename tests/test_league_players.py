"""Player lifecycle (issue 19, item 3): `league add` checks that a player acts in the league's env
before recording it, loads `.pt` files weights-only, copies files (and their per-slot ONNX siblings)
into the league folder; `league retire` and `league remove`. Every bad input: one line, exit 2, no
traceback, nothing recorded."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from league.cli import main
from league.config import load_config
from league.league import League
from league.policies import make_player
from league.synthetic import fake_result
from test_league_match import export_column_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT = os.path.join(ROOT, "tests", "fixtures", "compat_v1", "results")
TTT = "pettingzoo.classic.tictactoe_v3"


def _league(tmp_path, env: str, players=(), name="lg") -> str:
    folder = tmp_path / name
    folder.mkdir()
    cfg = folder / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"name": name, "env": {"id": env}, "players": list(players),
                                   "ratings": {"bootstrap": 0}}))
    return str(cfg)


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def c4(tmp_path, capsys):
    cfg = _league(tmp_path, "openspiel:connect_four", [{"name": "random", "policy": "bot:random"}])
    assert main(["init", cfg]) == 0
    capsys.readouterr()
    return cfg


@pytest.fixture()
def ttt_run(tmp_path):
    """A copy of a trained tic-tac-toe run (compat fixture), its snapshot exported as one brain per slot."""
    from marl.checkpoint import load_checkpoint
    from marl.export import export_all_slots

    run = tmp_path / "results" / "selfplay_ttt"
    (run / "player").mkdir(parents=True)
    shutil.copy(os.path.join(COMPAT, "selfplay_ttt", "configuration.yaml"), run / "configuration.yaml")
    shutil.copy(os.path.join(COMPAT, "selfplay_ttt", "player", "player-3096.pt"), run / "player" / "player-3096.pt")
    files = export_all_slots(load_checkpoint(run / "player" / "player-3096.pt"), run / "player" / "player-3096.onnx",
                             check=False)
    assert [f.name for f in files] == ["player-3096.onnx", "player-3096_agent1.onnx"]
    return run


def _players(cfg):
    return {p.name: p for p in League(load_config(cfg)).store.players()}


# ----------------------------------------------------------------------------------- bad inputs
def test_add_refuses_a_brain_of_another_env(c4, tmp_path, capsys):
    spread = tmp_path / "spread.onnx"  # a simple_spread brain, taken out of its run folder
    shutil.copy(os.path.join(COMPAT, "mappo_spread", "agent", "agent-2000.onnx"), spread)
    line = _one_line_error(capsys, main(["add", c4, str(spread)]), "player 'spread' not added",
                           "cannot act in this league's env 'openspiel:connect_four'", "observations")
    assert str(spread) in line
    assert "spread" not in _players(c4) and not os.path.exists(os.path.join(os.path.dirname(c4), "policies"))


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_add_refuses_a_truncated_file(c4, tmp_path, capsys, suffix):
    src = os.path.join(COMPAT, "selfplay_ttt", "player", f"player-3096{suffix}")
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(open(src, "rb").read()[:2000])
    _one_line_error(capsys, main(["add", c4, str(bad)]), "player 'cut' not added", "cannot load" if suffix == ".pt"
                    else "not a loadable ONNX model")
    assert "cut" not in _players(c4)


class _Marker:
    """Unpickling this calls os.getcwd (harmless), standing for any code a pickle can run."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_add_loads_pt_weights_only_and_refuses_pickled_code(c4, tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "marl-arena/1", "trainer_type": "ippo", "x": _Marker()}, evil)
    _one_line_error(capsys, main(["add", c4, str(evil)]), "refused", "weights-only")
    assert "evil" not in _players(c4)


def test_add_refuses_a_bot_that_cannot_play_the_env(tmp_path, capsys):
    cfg = _league(tmp_path, TTT)
    assert main(["init", cfg]) == 0
    capsys.readouterr()
    _one_line_error(capsys, main(["add", cfg, "bot:mcts?simulations=2"]), "not added", "OpenSpiel")
    assert not _players(cfg)


def test_config_player_that_cannot_act_stops_init(tmp_path, capsys):
    spread = tmp_path / "spread.onnx"
    shutil.copy(os.path.join(COMPAT, "mappo_spread", "agent", "agent-2000.onnx"), spread)
    cfg = _league(tmp_path, "openspiel:connect_four", [{"name": "sp", "policy": str(spread)}])
    _one_line_error(capsys, main(["init", cfg]), "players: 'sp'", "cannot act")


def test_retire_and_remove_bad_inputs(c4, capsys):
    _one_line_error(capsys, main(["retire", c4, "ghost"]), "unknown player 'ghost'")
    _one_line_error(capsys, main(["remove", c4, "ghost"]), "unknown player 'ghost'")
    assert main(["add", c4, "bot:mcts?simulations=2", "--name", "m2"]) == 0
    lg = League(load_config(c4))
    lg.store.record_match(fake_result("g1", "m2", "random", 1.0))
    capsys.readouterr()
    _one_line_error(capsys, main(["remove", c4, "m2"]), "has 1 matches", "--force")
    assert main(["remove", c4, "m2", "--force"]) == 0
    capsys.readouterr()
    _one_line_error(capsys, main(["add", c4, "bot:random", "--name", "m2"]), "reserved")
    _one_line_error(capsys, main(["retire", c4, "m2"]), "was removed")
    _one_line_error(capsys, main(["remove", c4, "m2"]), "already removed")


# ----------------------------------------------------------------------------------- what works
def test_add_copies_files_with_slot_siblings_and_checkpoints_load_weights_only(tmp_path, ttt_run, capsys):
    cfg = _league(tmp_path, TTT, [{"name": "random", "policy": "bot:random"}])
    assert main(["init", cfg]) == 0
    pt = ttt_run / "player" / "player-3096.pt"
    assert main(["add", cfg, str(pt), "--name", "ttt-pt"]) == 0
    assert main(["add", cfg, str(ttt_run)]) == 0  # the run folder: its .onnx snapshot, with lineage/tags
    assert main(["add", cfg, str(pt), "--name", "ttt-pt"]) == 0  # same file again: a no-op
    assert "already registered: ttt-pt" in capsys.readouterr().out
    ps = _players(cfg)
    league_dir = os.path.dirname(cfg)
    for name, files in (("ttt-pt", ["ttt-pt.pt", "ttt-pt.onnx", "ttt-pt_agent1.onnx"]),
                        ("selfplay_ttt/player-3096", ["selfplay_ttt/player-3096.onnx",
                                                      "selfplay_ttt/player-3096_agent1.onnx"])):
        p = ps[name]
        assert p.policy == os.path.join(league_dir, "policies", files[0])  # registered at the copy
        for f in files:
            assert os.path.isfile(os.path.join(league_dir, "policies", f)), f
    assert ps["ttt-pt"].tags == ("snapshot", "selfplay_ttt")  # a file inside a run is tagged with the run
    shutil.rmtree(ttt_run)  # training rotates its checkpoints away: the league keeps playing its copies
    for name in ("ttt-pt", "selfplay_ttt/player-3096"):
        make_player(ps[name].policy, ps[name].policy_hash)
    assert main(["run", cfg, "--mode", "round_robin", "--games-per-pair", "1", "--workers", "1"]) == 0
    assert len(League(load_config(cfg)).games()) == 6


def test_our_checkpoints_with_numpy_arrays_load_weights_only(tmp_path):
    """QMIX with save_replay_buffer keeps numpy arrays in its checkpoint; a weights-only load reads them."""
    from marl.checkpoint import FORMAT, load_checkpoint

    payload = {"format": FORMAT, "trainer": {"buffer": {"data": {"obs": np.zeros((2, 3), np.float32),
                                                                 "filled": np.ones(4, np.bool_)},
                                                        "length": np.arange(3, dtype=np.int64)},
                                             "rng": np.random.default_rng(0).bit_generator.state,
                                             "scale": np.float64(1.5)}}
    torch.save(payload, tmp_path / "q.pt")
    ck = load_checkpoint(tmp_path / "q.pt", weights_only=True)
    assert ck["trainer"]["buffer"]["data"]["obs"].shape == (2, 3) and ck["trainer"]["scale"] == 1.5
    torch.save({"format": FORMAT, "x": np.array([_Marker()], dtype=object)}, tmp_path / "obj.pt")
    from marl.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="Weights only"):
        load_checkpoint(tmp_path / "obj.pt", weights_only=True)


def test_config_players_are_copied_into_the_league(tmp_path, capsys):
    brain = export_column_policy(tmp_path / "col3.onnx", [3, 2, 4, 1, 5, 0, 6])
    cfg = _league(tmp_path, "openspiel:connect_four", [{"name": "col3", "policy": brain},
                                                       {"name": "random", "policy": "bot:random"}])
    assert main(["init", cfg]) == 0
    assert main(["init", cfg]) == 0  # idempotent
    p = _players(cfg)["col3"]
    assert p.policy == os.path.join(os.path.dirname(cfg), "policies", "col3.onnx") and os.path.isfile(p.policy)


def test_retire_keeps_history_and_leaves_matchmaking_and_leaderboard(c4, capsys):
    import json

    for n in ("m2", "m3"):
        assert main(["add", c4, f"bot:mcts?simulations={n[1]}", "--name", n]) == 0
    lg = League(load_config(c4))
    for i in range(4):
        lg.store.record_match(fake_result(f"g{i}", "m2", "m3", 1.0))
    capsys.readouterr()
    assert main(["retire", c4, "m3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"player": "m3", "active": False}
    assert lg.active_names() == ["random", "m2"]
    with pytest.raises(Exception, match="retired"):
        lg.active_names(["m2", "m3"])
    assert main(["leaderboard", c4, "--json"]) == 0
    assert [p["player"] for p in json.loads(capsys.readouterr().out)["players"]] == ["m2", "random"]
    assert main(["leaderboard", c4, "--json", "--all"]) == 0
    rows = {p["player"]: p for p in json.loads(capsys.readouterr().out)["players"]}
    assert not rows["m3"]["active"] and rows["m3"]["games"] == 4  # its games are kept
    assert len(lg.games()) == 4
    assert main(["retire", c4, "m3", "--undo"]) == 0
    assert "m3" in lg.active_names()


def test_remove_without_matches_deletes_and_with_force_keeps_matches(c4, tmp_path, capsys):
    brain = export_column_policy(tmp_path / "col0.onnx", [0, 1, 2, 3, 4, 5, 6])
    assert main(["add", c4, brain, "--name", "fresh"]) == 0
    copy = os.path.join(os.path.dirname(c4), "policies", "fresh.onnx")
    assert os.path.isfile(copy)
    assert main(["remove", c4, "fresh"]) == 0
    assert "fresh" not in _players(c4) and not os.path.exists(copy) and os.path.isfile(brain)
    assert main(["add", c4, brain, "--name", "fresh"]) == 0  # the name is free again
    assert main(["add", c4, "bot:mcts?simulations=3", "--name", "m3"]) == 0
    lg = League(load_config(c4))
    for i in range(6):
        lg.store.record_match(fake_result(f"a{i}", "fresh", "random", 1.0 if i < 5 else -1.0))
        lg.store.record_match(fake_result(f"b{i}", "m3", "random", 1.0 if i < 2 else -1.0))
    before = lg.ratings("elo")
    assert main(["remove", c4, "fresh", "--force"]) == 0
    assert "stay in the others' ratings" in capsys.readouterr().out
    after = lg.ratings("elo")
    assert after["random"].rating == pytest.approx(before["random"].rating)  # its matches still count
    assert len(lg.games()) == 12 and not os.path.exists(copy)
    assert "fresh" not in lg.active_names()
    from league.leaderboard import leaderboard

    assert "fresh" not in [r.player for r in leaderboard(lg, "elo", include_inactive=True)]


def test_add_path_errors(c4, tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    _one_line_error(capsys, main(["add", c4, str(tmp_path / "empty_run")]), "has no snapshots")
    (tmp_path / "notes.txt").write_text("x")
    _one_line_error(capsys, main(["add", c4, str(tmp_path / "notes.txt")]), "expected a .onnx/.pt file")
    _one_line_error(capsys, main(["add", c4, str(tmp_path / "nothing.onnx")]), "does not exist")
    brain = export_column_policy(tmp_path / "col1.onnx", [1, 0, 2, 3, 4, 5, 6])
    capsys.readouterr()  # torch's export warnings
    (tmp_path / "lg" / "policies").write_text("a file where the league's policies folder should be")
    _one_line_error(capsys, main(["add", c4, brain]), "cannot copy", "league folder")
    assert "col1" not in _players(c4)
