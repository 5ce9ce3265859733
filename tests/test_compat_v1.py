"""Files written by the v1 code (commit a174fae, before the play-loop/policy/league refactor) still load,
play, resume and rank: the fixtures in ``tests/fixtures/compat_v1/`` (how they were made: its README.md).

Every test works on a copy in ``tmp_path``. The v1 trainer stored paths relative to the cwd of the
training session (``results/<run-id>/...`` in ``training_status.json`` and in the self-play state of
``checkpoint.pt``), so the resume tests run with the copy's root as cwd, as a user resuming in the folder
they trained in. The v1 league store holds absolute policy paths under :data:`BUILD_ROOT`; the league
tests rewrite that prefix to the copy (the files are byte-identical, so the stored sha256 still match).
"""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
import warnings
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compat_v1"
BUILD_ROOT = "/tmp/compat_v1_build/compat_v1"  # where the v1 code wrote the fixtures (absolute paths in league.db)
RUNS = {  # run id -> (behavior, final step)
    "mappo_spread": ("agent", 5000),
    "mappo_spread_continuous": ("agent", 5000),
    "qmix_two_step": ("agent", 2000),
    "selfplay_ttt": ("player", 6192),
}
LEAGUE_PLAYERS = {"random", "ttt-final", "selfplay_ttt/player", "selfplay_ttt/player-3096", "selfplay_ttt/player-6192",
                  *(f"selfplay_ttt/snapshots/player-{s}" for s in (3096, 4128, 5160, 6192))}
LEAGUE_MATCHES = 72  # the v1 round robin: 9 players, 1 game per pair and seat order


def _policy_files() -> list[str]:
    """Every checkpoint, snapshot and ONNX file of the fixture runs, relative to ``results/``."""
    out = []
    for run, (behavior, _) in RUNS.items():
        d = FIXTURES / "results" / run
        files = [d / f"{behavior}.onnx", *sorted((d / behavior).glob("*.pt")), *sorted((d / behavior).glob("*.onnx")),
                 *sorted((d / behavior / "snapshots").glob("*.pt"))]
        out += [str(f.relative_to(FIXTURES / "results")) for f in files]
    return out


POLICY_FILES = _policy_files()


def _copy(dest: Path) -> Path:
    root = dest / "compat_v1"
    shutil.copytree(FIXTURES, root)
    return root


@pytest.fixture(scope="module")
def ro_root(tmp_path_factory) -> Path:
    """One copy shared by the read-only tests (evaluation writes nothing into run folders)."""
    return _copy(tmp_path_factory.mktemp("compat_ro"))


@pytest.fixture()
def root(tmp_path, monkeypatch) -> Path:
    """A private copy, with cwd at its root (where the v1 runs were trained from)."""
    r = _copy(tmp_path)
    monkeypatch.chdir(r)
    return r


@pytest.fixture()
def league_cfg(root) -> str:
    """The copied league config, its store's v1 absolute policy paths moved to the copy."""
    db = root / "league" / "league.db"
    with sqlite3.connect(db) as con:  # the v1 schema (players.policy), before any newer code opens it
        con.execute("UPDATE players SET policy = replace(policy, ?, ?) WHERE policy LIKE ?",
                    (BUILD_ROOT, str(root), BUILD_ROOT + "/%"))
        left = con.execute("SELECT count(*) FROM players WHERE policy NOT LIKE 'bot:%' AND policy NOT LIKE ?",
                           (str(root) + "/%",)).fetchone()[0]
    assert left == 0
    return str(root / "league" / "tic_tac_toe.yaml")


def test_fixture_inventory():
    """The fixtures are what README.md describes (guards against a partial checkout, e.g. a .gitignore'd file)."""
    assert (FIXTURES / "README.md").is_file()
    assert (FIXTURES / "league" / "league.db").is_file()
    for run, (behavior, step) in RUNS.items():
        d = FIXTURES / "results" / run
        for f in ("configuration.yaml", "run_logs/training_status.json", f"{behavior}/checkpoint.pt",
                  f"{behavior}/{behavior}-{step}.pt", f"{behavior}/{behavior}-{step}.onnx", f"{behavior}.onnx"):
            assert (d / f).is_file(), d / f
    assert len(list((FIXTURES / "results" / "selfplay_ttt" / "player" / "snapshots").glob("player-*.pt"))) == 4
    assert len(POLICY_FILES) == 32


@pytest.mark.parametrize("rel", POLICY_FILES)
def test_policy_file_loads_and_plays(ro_root, rel):
    """Each v1 checkpoint / snapshot / ONNX loads with load_policy and plays 3 episodes with finite returns."""
    from marl.evaluate import evaluate_run
    from marl.inference import load_policy

    path = ro_root / "results" / rel
    run_dir = ro_root / "results" / rel.split("/")[0]
    policy = load_policy(path)
    assert policy.spec.n_agents >= 1
    report = evaluate_run(run_dir, episodes=3, seed=0, checkpoint=str(path))
    assert report["behaviors"], report
    for name, r in report["behaviors"].items():
        assert r["episodes"] == 3, (name, r)
        assert math.isfinite(r["mean_return"]) and math.isfinite(r["team_return"]), (name, r)


@pytest.mark.parametrize("run", sorted(RUNS))
def test_run_folder_latest_checkpoint_plays(ro_root, run):
    """``evaluate_run(results/<run-id>)`` with no checkpoint picks ``<Behavior>/checkpoint.pt`` of the v1 run."""
    from marl.evaluate import evaluate_run

    report = evaluate_run(ro_root / "results" / run, episodes=3, seed=1)
    behavior, _ = RUNS[run]
    r = report["behaviors"][behavior]
    assert r["episodes"] == 3 and math.isfinite(r["mean_return"]), r
    assert Path(report["checkpoint"]).name == "checkpoint.pt"


@pytest.mark.parametrize("policy, extra", [
    ("selfplay_ttt", ["--opponent", "random"]),
    ("selfplay_ttt/player/snapshots/player-3096.pt", ["--opponent", "SNAP6192"]),
    ("selfplay_ttt/player.onnx", ["--opponent", "random", "--env", "pettingzoo.classic.tictactoe_v3"]),
])
def test_evaluate_vs_plays_v1_policies(ro_root, capsys, policy, extra):
    """``marl-evaluate-vs`` plays v1 self-play checkpoints, snapshots and ONNX brains (both seats)."""
    from marl.evaluate_vs import main

    snap = ro_root / "results" / "selfplay_ttt" / "player" / "snapshots" / "player-6192.pt"
    extra = [str(snap) if a == "SNAP6192" else a for a in extra]
    capsys.readouterr()
    assert main([str(ro_root / "results" / policy), *extra, "--games", "4", "--json"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert lines, "no JSON report"
    total = json.loads(lines[-1])["total"]
    assert total["games"] == 4 and total["wins"] + total["draws"] + total["losses"] == 4, total


def _raise_max_steps(conf: Path, behavior: str, max_steps: int) -> None:
    data = yaml.safe_load(conf.read_text())
    data["behaviors"][behavior]["max_steps"] = max_steps
    conf.write_text(yaml.safe_dump(data, sort_keys=False))


def _saved_step(run_dir: Path, behavior: str) -> int:
    import torch

    return int(torch.load(run_dir / behavior / "checkpoint.pt", map_location="cpu", weights_only=False)["step"])


def test_mappo_resume_continues_step_count(root):
    """``marl-learn <configuration.yaml> --resume`` continues the v1 MAPPO run from step 5000 for one more rollout."""
    from marl.cli.learn import main

    run_dir = root / "results" / "mappo_spread"
    conf = run_dir / "configuration.yaml"
    _raise_max_steps(conf, "agent", 5200)  # one rollout: buffer_size 600 experiences of 3 agents = 200 env steps
    assert main([str(conf), "--resume", "--results-dir", str(root / "results")]) == 0
    step = _saved_step(run_dir, "agent")
    assert 5000 < step <= 5400, step
    status = json.loads((run_dir / "run_logs" / "training_status.json").read_text())["agent"]
    steps = [c["steps"] for c in status["checkpoints"]]
    assert steps[:3] == [2000, 4000, 5000] and steps[-1] == step, steps
    assert status["final_checkpoint"]["steps"] == step
    for s in (2000, 4000, 5000):  # the v1 snapshots are kept (keep_checkpoints 5)
        assert (run_dir / "agent" / f"agent-{s}.pt").is_file()


def test_selfplay_resume_restores_v1_snapshot_window(root):
    """Resuming the v1 self-play run restores its snapshot window from the stored (cwd-relative) paths."""
    from marl.cli.learn import main

    run_dir = root / "results" / "selfplay_ttt"
    conf = run_dir / "configuration.yaml"
    _raise_max_steps(conf, "player", 7000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(conf), "--resume", "--results-dir", str(root / "results")]) == 0
    lost = [str(w.message) for w in caught if "not restored" in str(w.message)]
    assert not lost, lost
    step = _saved_step(run_dir, "player")
    assert 6192 < step <= 8300, step
    snaps = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "player" / "snapshots").glob("player-*.pt"))
    assert snaps[-1] > 6192 and set(snaps) >= {5160, 6192}, snaps  # window 4: the resumed run adds to the v1 window


def _leaderboard(cfg: str, capsys) -> dict:
    from league.cli import main

    capsys.readouterr()
    assert main(["leaderboard", cfg, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_league_leaderboard_lists_v1_players(league_cfg, capsys):
    """``league leaderboard`` on the v1 store lists every registered player with its v1 games."""
    board = _leaderboard(league_cfg, capsys)
    rows = {p["player"]: p for p in board["players"]}
    assert set(rows) == LEAGUE_PLAYERS, sorted(rows)
    assert sum(p["games"] for p in rows.values()) == 2 * LEAGUE_MATCHES
    for p in rows.values():
        assert math.isfinite(p["rating"]), p


def test_league_init_and_run_on_v1_store(league_cfg, capsys):
    """``league init`` on the v1 store is idempotent and ``league run`` plays more matches with the v1 players."""
    from league.cli import main

    assert main(["init", league_cfg]) == 0  # re-registers the config's players: all are there already
    board = _leaderboard(league_cfg, capsys)
    assert {p["player"] for p in board["players"]} == LEAGUE_PLAYERS
    assert sum(p["games"] for p in board["players"]) == 2 * LEAGUE_MATCHES
    players = "ttt-final,selfplay_ttt/snapshots/player-3096,selfplay_ttt/player-6192,random"
    assert main(["run", league_cfg, "--mode", "round_robin", "--games-per-pair", "1", "--players", players,
                 "--workers", "1", "--seed", "5"]) == 0
    board = _leaderboard(league_cfg, capsys)
    assert sum(p["games"] for p in board["players"]) == 2 * (LEAGUE_MATCHES + 12)


def test_marl_evaluate_random_plays_the_runs_env_with_random_policies(ro_root, capsys):
    """``marl-evaluate RUN --random``: the chance baseline of the run's env, scored as the policies are."""
    from marl.cli.evaluate import main

    run = str(ro_root / "results" / "mappo_spread")
    reports = []
    for extra in (["--random"], ["--random"], []):
        assert main([run, "--episodes", "6", "--json", *extra]) == 0
        reports.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    rand, again, policy = reports
    assert rand["checkpoint"] == "random" and policy["checkpoint"].endswith("checkpoint.pt")
    assert rand["behaviors"]["agent"]["episodes"] == 6
    assert rand == again  # seeded
    assert rand["behaviors"]["agent"]["mean_return"] != policy["behaviors"]["agent"]["mean_return"]
    with pytest.raises(SystemExit):
        main([run, "--random", "--checkpoint", "5000"])
