"""Honest output and errors (issue 19, item 4): read-only commands never create a database; path and port
errors are one line; `--json` prints only JSON on stdout; `serve` says it serves only once it listens;
exported files have normal permissions."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
import yaml

from league.cli import main
from league.config import load_config
from league.league import League
from league.synthetic import fake_result
from test_league_match import export_column_policy


@pytest.fixture()
def cfg(tmp_path):
    p = tmp_path / "c4.yaml"
    p.write_text(yaml.safe_dump({"name": "c4", "env": {"id": "openspiel:connect_four"},
                                 "players": [{"name": "random", "policy": "bot:random"}],
                                 "ratings": {"bootstrap": 20}}))
    return str(p)


@pytest.fixture()
def played(cfg, tmp_path, capsys):
    """An initialised league with an ONNX player and a few recorded matches."""
    assert main(["init", cfg]) == 0
    brain = export_column_policy(tmp_path / "col3.onnx", [3, 2, 4, 1, 5, 0, 6])
    assert main(["add", cfg, brain]) == 0
    lg = League(load_config(cfg))
    for i in range(4):
        lg.store.record_match(fake_result(f"m{i}", "col3", "random", 1.0 if i else -1.0))
    capsys.readouterr()
    return cfg


def _one_line(capsys, code, *needles) -> str:
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2, out
    assert len(lines) == 1 and "Traceback" not in out.err, out.err
    for n in needles:
        assert n in lines[0], lines[0]
    return out.out


@pytest.mark.parametrize("argv", [["leaderboard"], ["matches"], ["export", "--top", "1", "--to", "out"],
                                  ["serve", "--port", "0"], ["add", "bot:random"], ["retire", "random"],
                                  ["remove", "random"], ["leaderboard", "--json"]])
def test_commands_on_a_missing_league_create_nothing(cfg, tmp_path, capsys, argv):
    code = main([argv[0], cfg, *argv[1:]])
    _one_line(capsys, code, "no league at", "league.db", "league init")
    assert sorted(os.listdir(tmp_path)) == ["c4.yaml"]  # no league.db (nor -wal/-shm files), no out/ folder


def test_a_file_that_is_not_a_league_database(cfg, tmp_path, capsys):
    (tmp_path / "league.db").write_text("not a database, just text")
    _one_line(capsys, main(["leaderboard", cfg]), "league.db")
    assert (tmp_path / "league.db").read_text() == "not a database, just text"


def test_init_path_errors(tmp_path, capsys):
    _one_line(capsys, main(["init", str(tmp_path / "n.yaml"), "--env", "openspiel:connect_four", "--db",
                            f"sqlite:///{tmp_path}/missing/league.db"]), "folder", "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line(capsys, main(["init", str(blocker / "n.yaml"), "--env", "openspiel:connect_four"]),
              "cannot write league config")
    _one_line(capsys, main(["init", str(tmp_path), "--env", "openspiel:connect_four"]), "is a folder")


def test_export_path_errors_and_file_permissions(played, tmp_path, capsys):
    target = tmp_path / "brains.onnx"
    target.write_text("existing file")
    _one_line(capsys, main(["export", played, "--top", "1", "--to", str(target)]), "is a file")
    assert target.read_text() == "existing file"
    _one_line(capsys, main(["export", played, "--top", "1", "--to", str(target / "sub")]), "cannot create the folder")
    dest = tmp_path / "Brains"
    assert main(["export", played, "--top", "1", "--to", str(dest)]) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    for f in os.listdir(dest):
        assert os.stat(dest / f).st_mode & 0o777 == 0o666 & ~umask, f  # not mkstemp's 0600


def test_json_prints_only_json_on_stdout(played, tmp_path, capsys):
    for argv in (["leaderboard", played, "--json", "--system", "openskill"], ["matches", played, "--json"],
                 ["add", played, "bot:mcts?simulations=2", "--name", "m2", "--json"],
                 ["retire", played, "m2", "--json"], ["remove", played, "m2", "--json"],
                 ["export", played, "--top", "1", "--to", str(tmp_path / "B"), "--json"], ["init", played, "--json"]):
        assert main(argv) == 0, argv
        out = capsys.readouterr()
        obj = json.loads(out.out)  # the whole of stdout is one JSON document
        assert isinstance(obj, dict) and out.out.count("\n") == 1, argv
        assert out.err.strip(), argv  # the human-readable lines went to stderr
    board = json.loads((main(["leaderboard", played, "--json"]), capsys.readouterr().out)[1])
    assert board["units"] and board["definition"]["rating"] and board["players"][0]["player"] == "col3"


def test_serve_port_and_host_errors(played, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = _one_line(capsys, main(["serve", played, "--port", str(port)]), f"cannot listen on 127.0.0.1:{port}",
                        "another --port")
        assert "serving" not in out
    _one_line(capsys, main(["serve", played, "--port", "70000"]), "--port 70000")
    _one_line(capsys, main(["serve", played, "--host", "no-such-host.invalid", "--port", "0"]), "--host")


def test_serve_reports_success_once_listening(played):
    """`serving ... on http://host:port/` appears only when the port answers (checked right after the line)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "league.cli", "serve", played, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # blocks until the announcement (or EOF if serve died)
        assert line.startswith("serving league 'c4' on http://127.0.0.1:"), (line, proc.stderr.read() if
                                                                              proc.poll() is not None else "")
        url = line.split(" on ")[1].split(" ")[0]
        with urllib.request.urlopen(url + "api/leaderboard?system=elo", timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["players"][0]["player"] == "col3"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_openskill_interval_is_about_what_is_shown(played, capsys):
    assert main(["leaderboard", played, "--system", "openskill", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    for p in board["players"]:
        assert p["lower"] <= p["estimate"] <= p["upper"]  # the interval of mu, shown beside mu
        assert p["rating"] < p["lower"]  # mu - 3 sigma: a conservative bound, defined as such
    assert "mu - 3 sigma" in board["definition"]["rating"]
    assert main(["leaderboard", played, "--system", "openskill"]) == 0
    table = capsys.readouterr().out
    assert "mu-3sigma" in table and "95% interval of mu" in table
