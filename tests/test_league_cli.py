"""The `league` CLI end to end (init, add, run, leaderboard --json, matches, export), config, training link."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from league.cli import main
from league.config import load_config
from league.errors import ConfigError, IncompatibleEnvError
from league.league import League
from league.store import LeagueStore, sqlite_url
from league.training import LeagueLink, LeagueLinkSettings
from test_league_match import export_column_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture()
def cfg(tmp_path):
    return _write(tmp_path / "c4.yaml", {
        "name": "c4", "env": {"id": "openspiel:connect_four"},
        "players": [{"name": "random", "policy": "bot:random"},
                    {"name": "mcts-4", "policy": "bot:mcts?simulations=4"},
                    {"name": "mcts-60", "policy": "bot:mcts?simulations=60"}],
        "ratings": {"bootstrap": 50},
        "match": {"opening_moves": 1},
        "tournament": {"games_per_pair": 3, "seed": 1},
        "runner": {"workers": 2}})


@pytest.fixture()
def run_dir(tmp_path):
    """A fake results/<run-id>/ with three ONNX snapshots of behavior ConnectFour."""
    d = tmp_path / "results" / "c4sp" / "ConnectFour"
    d.mkdir(parents=True)
    for step, col in ((1000, 0), (2000, 3), (3000, 2)):
        export_column_policy(d / f"ConnectFour-{step}.onnx", [col, 3, 2, 4, 1, 5, 6])
    (tmp_path / "results" / "c4sp" / "configuration.yaml").write_text(
        yaml.safe_dump({"env_settings": {"env_path": "openspiel:connect_four"}}))
    return str(tmp_path / "results" / "c4sp")


def test_cli_round_robin_ranks_mcts_by_simulations(cfg, capsys, tmp_path):
    assert main(["init", cfg]) == 0
    assert os.path.exists(tmp_path / "league.db")  # default store: league.db beside the config
    assert main(["run", cfg, "--mode", "round_robin"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", cfg, "--system", "bt", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    board = json.loads(out[-1])
    names = [p["player"] for p in board["players"]]
    assert names == ["mcts-60", "mcts-4", "random"], board
    assert all(p["games"] == 12 for p in board["players"])  # 2 opponents x 3 games x 2 seats
    top = board["players"][0]
    assert top["lower"] <= top["rating"] <= top["upper"]
    assert main(["matches", cfg, "--limit", "5", "--json"]) == 0
    ms = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["matches"]
    assert len(ms) == 5 and all(len(m["seats"]) == 2 for m in ms)
    # every rating system is recomputable from the stored log alone
    lg = League(load_config(cfg))
    assert len(lg.games()) == 18
    assert {p for g in lg.games() for t in g.teams for p in t} == {"random", "mcts-4", "mcts-60"}
    for system in ("elo", "openskill"):
        r = lg.ratings(system)
        assert r["mcts-60"].rating > r["random"].rating
    assert lg.store.rating_history("mcts-60", "bt")  # snapshot written after the run


def test_cli_add_results_dir_lineage_gauntlet_and_export(cfg, run_dir, capsys, tmp_path):
    assert main(["init", cfg]) == 0
    assert main(["add", cfg, run_dir]) == 0
    lg = League(load_config(cfg))
    p3 = lg.player("c4sp/ConnectFour-3000")
    assert p3.version == 3000 and p3.parent == "c4sp/ConnectFour-2000" and "snapshot" in p3.tags
    assert main(["run", cfg, "--mode", "gauntlet", "--challenger", "c4sp/ConnectFour-3000",
                 "--players", "random,mcts-4", "--games-per-pair", "1"]) == 0
    assert len(lg.games()) == 4
    dest = tmp_path / "unity_project" / "Brains"
    assert main(["export", cfg, "--top", "2", "--to", str(dest), "--system", "elo"]) == 0
    manifest = json.loads((dest / "league_manifest.json").read_text())
    assert len(manifest["players"]) == 2 and manifest["env_id"] == "openspiel:connect_four"
    for e in manifest["players"]:
        assert (dest / e["file"]).exists() and e["player"].startswith("c4sp/")
    capsys.readouterr()
    # clear one-line errors, exit code 2
    assert main(["run", cfg, "--mode", "gauntlet", "--challenger", "ghost"]) == 2
    assert "unknown player 'ghost'" in capsys.readouterr().err
    assert main(["add", cfg, str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    other = tmp_path / "results" / "tic"
    (other / "B").mkdir(parents=True)
    export_column_policy(other / "B" / "B-5.onnx", [0])
    (other / "configuration.yaml").write_text(yaml.safe_dump({"env_settings": {"env_path": "openspiel:tic_tac_toe"}}))
    assert main(["add", cfg, str(other)]) == 2
    assert "trained on env 'openspiel:tic_tac_toe'" in capsys.readouterr().err


def test_config_errors_name_file_and_key(tmp_path, capsys):
    bad = _write(tmp_path / "bad.yaml", {"env": {"id": "openspiel:connect_four"}, "tournament": {"gamez": 3}})
    with pytest.raises(ConfigError, match=r"bad.yaml': key 'tournament.gamez'"):
        load_config(bad)
    assert main(["leaderboard", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "new.yaml"), "--env", "openspiel:tic_tac_toe"]) == 0
    assert load_config(str(tmp_path / "new.yaml")).env.id == "openspiel:tic_tac_toe"


def test_connect_four_config_registers_its_baselines(tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "league", "connect_four.yaml"))
    lg = League(cfg, LeagueStore(sqlite_url(tmp_path / "c4.db")))
    lg.register_config_players()
    names = [p.name for p in lg.store.players()]
    assert names[:5] == ["random", "mcts-10", "mcts-50", "mcts-200", "mcts-800"]


def test_training_link_registers_snapshots_and_samples_pfsp(cfg, run_dir, tmp_path):
    main(["init", cfg])
    link = LeagueLink(LeagueLinkSettings(config=os.path.basename(cfg), pfsp_from_league=True), "live",
                      base_dir=os.path.dirname(cfg))
    snap = os.path.join(run_dir, "ConnectFour", "ConnectFour-1000.onnx")
    assert link.register_snapshot(snap, "ConnectFour", 1000) == "live/ConnectFour-1000"
    assert link.register_snapshot(os.path.join(run_dir, "ConnectFour", "ConnectFour-2000.onnx"), "ConnectFour", 2000)
    lg = League(load_config(cfg))
    assert lg.player("live/ConnectFour-2000").parent == "live/ConnectFour-1000"
    from league.synthetic import fake_result

    for i in range(10):  # the snapshot always loses to mcts-60 and always beats random
        lg.store.record_match(fake_result(f"a{i}", "live/ConnectFour-2000", "mcts-60", -1.0))
        lg.store.record_match(fake_result(f"b{i}", "live/ConnectFour-2000", "random", 1.0))
    p = link.opponent_probabilities("live/ConnectFour-2000", ["mcts-60", "random"])
    assert p[0] > 0.95
    with pytest.raises(IncompatibleEnvError):
        lg.add_policy(snap, name="x", env_id="openspiel:go")
