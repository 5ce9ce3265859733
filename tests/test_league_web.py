"""`league serve`: JSON API (FastAPI TestClient) and the HTML page rendered in headless Chromium."""
from __future__ import annotations

import html
import json
import os
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


def test_history_units_and_openskill_interval(league):
    """Each system's history is in its own units and ends at the displayed rating; OpenSkill's interval is the
    interval of mu (shown beside it), and its conservative rating mu - 3 sigma lies below it."""
    from league.ratings import bradley_terry_ratings

    c = TestClient(create_app(league))
    games = league.games()
    for system in ("elo", "openskill", "bt"):
        board = {p["player"]: p for p in c.get("/api/leaderboard", params={"system": system}).json()["players"]}
        last = c.get("/api/history/alpha", params={"system": system}).json()
        assert last["units"] == {"elo": "Elo points", "openskill": "OpenSkill mu - 3 sigma (mu0 = 25)",
                                 "bt": "Bradley-Terry, Elo scale (points)"}[system]
        assert last["points"][-1]["rating"] == pytest.approx(board["alpha"]["rating"], abs=1e-6), system
    os_board = c.get("/api/leaderboard", params={"system": "openskill"}).json()
    assert "interval of mu" in os_board["definition"]["interval"]
    for p in os_board["players"]:
        assert p["lower"] <= p["estimate"] <= p["upper"] and p["rating"] < p["lower"]
    # Bradley-Terry history: the fit recomputed on prefixes (every history_every matches and at tournament
    # ends), without bootstrap
    league.config.ratings.history_every = 6
    assert [p["n_matches"] for p in c.get("/api/history/alpha", params={"system": "bt"}).json()["points"]] == [6, 12, 18]
    pts = c.get("/api/history/gamma", params={"system": "bt"}).json()["points"]
    assert [p["n_matches"] for p in pts] == [12, 18]  # gamma plays from match 7 on (alpha-gamma)
    prefix = bradley_terry_ratings(games[:12], league.config.ratings.settings().__class__(bootstrap=0))
    assert pts[0]["rating"] == pytest.approx(prefix["gamma"].rating, abs=1e-3)
    player = c.get("/api/player/alpha", params={"system": "elo"}).json()
    assert {r["opponent"]: r["games"] for r in player["h2h"]} == {"beta": 6, "gamma": 6}
    assert player["h2h"][0]["wins"] + player["h2h"][1]["wins"] == 11 and len(player["matches"]) == 12
    assert c.get("/api/player/nobody").status_code == 404 and c.get("/player/nobody").status_code == 404


def _serve(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, th, port


def _render(browser: str, url: str, profile, screenshot: str | None) -> subprocess.Popen:
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--window-size=1280,1600", "--virtual-time-budget=4000"]
    if screenshot:  # LEAGUE_SCREENS=folder: also save what the page looks like (for a person to look at)
        subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=90)
    return subprocess.Popen([*flags, "--dump-dom", url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_pages_render_in_headless_chromium(league, tmp_path):
    """The overview (leaderboard, heatmap with counts and legend, history with axes), the tag filter and the
    player view, rendered by Chromium: the elements exist and have sizes (``body[data-layout]``)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (.ci/system-deps installs Debian's chromium)")
    league.store.add_player("delta", policy="bot:random", env_id=league.config.env.id, tags=["run7"])
    league.store.record_match(__import__("league.synthetic", fromlist=["x"]).fake_result("d1", "delta", "alpha", -1.0))
    shots = os.environ.get("LEAGUE_SCREENS")
    server, th, port = _serve(create_app(league))
    base = f"http://127.0.0.1:{port}"
    pages = {"overview": "/?system=bt", "filtered": "/?system=elo&tag=run7", "player": "/player/alpha?system=elo"}
    try:
        procs = {k: _render(browser, base + u, tmp_path / f"chrome-{k}", shots and os.path.join(shots, f"{k}.png"))
                 for k, u in pages.items()}
        try:
            doms = {k: p.communicate(timeout=90)[0] for k, p in procs.items()}
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
                p.communicate()
            pytest.skip("chromium did not finish within 90 s")
    finally:
        server.should_exit = True
        th.join(5)
    if any("<html" not in d for d in doms.values()):
        pytest.skip("chromium could not render pages here (no output)")
    layout = {}
    for k, dom in doms.items():
        assert 'data-rendered="1"' in dom, k  # the script ran to the end without errors
        layout[k] = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    dom = doms["overview"]
    rows = re.findall(r'<tr class="player-row">(.*?)</tr>', dom)
    assert len(rows) == 5 and 'alpha</a>' in rows[0]
    assert len(re.findall(r'class="h2h-cell"', dom)) == 25  # 5 x 5 heatmap
    counts = re.findall(r'class="h2h-count"[^>]*>n=(\d+)<', dom)
    assert sorted(map(int, counts)).count(6) == 6 and len(counts) == 8  # every played pair shows its games
    assert 'id="heatmap-legend"' in dom and dom.count('class="legend-bar"') == 1
    assert re.search(r'<g class="x-axis">.*class="tick".*class="axis-label"[^>]*>matches played in the league<', dom)
    assert re.search(r'class="y-axis">.*class="axis-label"[^>]*>Bradley-Terry, Elo scale \(points\)<', dom)
    assert len(re.findall(r'<g class="tick">', dom)) >= 8
    assert len(re.findall(r'class="history-line"', dom)) == 4  # every player with games gets a rating line
    assert re.search(r'<option value="run7"', dom) and 'src="http' not in dom  # filter; no external script
    for part in ("#leaderboard", "#heatmap-svg", "#heatmap-legend", "#history-svg", "#history-svg .x-axis",
                 "#history-svg .y-axis", "#tag-filter"):
        w, h = layout["overview"][part]
        assert w > 20 and h > 10, (part, w, h)
    lw = layout["overview"]["#heatmap-legend"][0]
    assert layout["overview"]["#heatmap-svg"][0] >= lw  # the legend is not clipped
    dom = doms["filtered"]  # ?tag=run7: the filter applies to the table, heatmap and history
    assert len(re.findall(r'<tr class="player-row">', dom)) == 1 and len(re.findall(r'class="h2h-cell"', dom)) == 1
    assert re.search(r'<option value="run7" selected', dom) or re.search(r'value="run7"[^>]*selected', dom) or \
        "run7" in re.search(r'<select id="tag-filter">(.*?)</select>', dom).group(1)
    dom = doms["player"]
    assert 'id="player-view"' in dom and len(re.findall(r'class="h2h-row"', dom)) == 3  # beta, gamma, delta
    assert len(re.findall(r'class="match-row"', dom)) == 13 and len(re.findall(r'class="history-line"', dom)) == 1
    assert re.search(r'class="y-axis">.*class="axis-label"[^>]*>Elo points<', dom)
    for part in ("#player-cards", "#history-svg", "#player-h2h", "#player-matches"):
        w, h = layout["player"][part]
        assert w > 20 and h > 10, (part, w, h)
