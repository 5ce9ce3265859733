"""`league serve`: JSON API (FastAPI TestClient) and the HTML page rendered in headless Chromium."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from league.config import EnvBlock, LeagueConfig, RatingsBlock
from league.league import League
from league.store import LeagueStore, sqlite_url
from league.synthetic import fake_result
from league.web import create_app

PLAYERS = ["alpha", "beta", "gamma"]


@pytest.fixture()
def league(tmp_path):
    cfg = LeagueConfig(name="web", env=EnvBlock(id="openspiel:connect_four"), ratings=RatingsBlock(bootstrap=30))
    lg = League(cfg, LeagueStore(sqlite_url(tmp_path / "w.db")))
    for p in PLAYERS + ["</script><b>x"]:
        lg.add_policy("bot:random", name=p)
    k = 0
    for a, b, wins in (("alpha", "beta", 5), ("alpha", "gamma", 6), ("beta", "gamma", 4)):
        for i in range(6):
            lg.store.record_match(fake_result(f"m{k}", a, b, 1.0 if i < wins else -1.0, seed=k))
            k += 1
    lg.snapshot_ratings()
    return lg


def test_json_api(league):
    c = TestClient(create_app(league))
    board = c.get("/api/leaderboard", params={"system": "elo"}).json()
    assert [p["player"] for p in board["players"] if p["player"] in PLAYERS] == PLAYERS
    assert next(p for p in board["players"] if p["player"] == "alpha")["wins"] == 11
    assert c.get("/api/leaderboard", params={"system": "glicko"}).status_code == 400
    h2h = c.get("/api/head_to_head").json()
    i, j = h2h["players"].index("alpha"), h2h["players"].index("beta")
    assert h2h["win_rate"][i][j] == pytest.approx(5 / 6, abs=1e-3) and h2h["games"][i][j] == 6
    hist = c.get("/api/history/alpha", params={"system": "elo"}).json()["points"]
    assert len(hist) == 12 and hist[-1]["n_matches"] == 12  # alpha plays matches 1..12 of 18
    assert len(c.get("/api/history/alpha", params={"system": "bt"}).json()["points"]) == 1
    assert c.get("/api/history/nobody").status_code == 404
    assert len(c.get("/api/matches", params={"limit": 4}).json()["matches"]) == 4
    page = c.get("/").text
    blob = page.split('id="league-data" type="application/json">')[1].split("</script>")[0]
    data = __import__("json").loads(blob)  # a player named "</script>..." cannot close the data block early
    assert "</script><b>x" in [p["player"] for p in data["leaderboard"]]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_page_renders_in_headless_chromium(league, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (.ci/system-deps installs Debian's chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(league), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=3000", "--dump-dom",
               f"http://127.0.0.1:{port}/?system=bt"]
        try:
            dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        except subprocess.TimeoutExpired:
            pytest.skip("chromium did not finish within 60 s")
    finally:
        server.should_exit = True
        th.join(5)
    if "<html" not in dom:
        pytest.skip("chromium could not render pages here (no output)")
    assert 'data-rendered="1"' in dom  # the script ran to the end without errors
    rows = re.findall(r'<tr class="player-row">(.*?)</tr>', dom)
    assert len(rows) == 4 and ">alpha<" in rows[0]
    assert len(re.findall(r'class="h2h-cell"', dom)) == 16  # 4 x 4 heatmap
    assert len(re.findall(r'class="history-line"', dom)) == 3  # players with games get a rating line
    assert re.search(r'<polyline[^>]*points="[\d.]+,[\d.]+ [\d.]+,[\d.]+', dom)
