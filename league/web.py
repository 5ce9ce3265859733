"""``league serve``: a FastAPI app with a JSON API and one self-contained HTML page (no CDN, no build step).

JSON API:
    GET /api/leaderboard?system=bt      leaderboard rows (see :func:`league.leaderboard.rows_json`)
    GET /api/head_to_head               players, win-rate matrix (row beats column), game counts
    GET /api/history/{player}?system=   rating history points
    GET /api/matches?limit=50&player=   recent matches, newest first
    GET /api/players                    registered players
HTML: GET /?system=bt draws the leaderboard table, the head-to-head heatmap (SVG), rating history lines
per player (SVG) and the recent matches; the data is embedded in the page and rendered by inline JS.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from league.errors import LeagueError, UnknownPlayerError
from league.leaderboard import head_to_head, history, leaderboard, rows_json
from league.league import League
from league.ratings import SYSTEMS


def _system(system: str) -> str:
    if system not in SYSTEMS:
        raise HTTPException(400, f"unknown rating system '{system}'; expected one of {', '.join(SYSTEMS)}")
    return system


def page_data(league: League, system: str, top_history: int = 8, n_matches: int = 30) -> dict:
    """Everything the HTML page shows, as one JSON-ready dict."""
    games = league.games()
    rows = leaderboard(league, system, games)
    hist_system = system if system != "bt" else "elo"
    return {"league": league.config.name, "env": league.config.env.id, "system": system,
            "history_system": hist_system,
            "leaderboard": rows_json(rows, system)["players"],
            "head_to_head": head_to_head(league, games, [r.player for r in rows]),
            "history": {r.player: history(league, r.player, hist_system, games) for r in rows[:top_history]},
            "matches": league.store.recent_matches(n_matches)}


def create_app(league: League) -> FastAPI:
    """The FastAPI app for ``league`` (errors become 400/404 JSON responses)."""
    app = FastAPI(title=f"League {league.config.name}")

    @app.get("/api/leaderboard")
    def api_leaderboard(system: str = Query(league.config.ratings.default_system)):
        return rows_json(leaderboard(league, _system(system)), system)

    @app.get("/api/head_to_head")
    def api_h2h():
        return head_to_head(league)

    @app.get("/api/history/{player:path}")
    def api_history(player: str, system: str = Query("elo")):
        try:
            return {"player": player, "system": system, "points": history(league, player, _system(system))}
        except UnknownPlayerError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/matches")
    def api_matches(limit: int = Query(50, ge=1, le=1000), player: str | None = None):
        try:
            return {"matches": league.store.recent_matches(limit, player)}
        except UnknownPlayerError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/players")
    def api_players():
        return {"players": [{**asdict(p), "created_at": p.created_at.isoformat()} for p in league.store.players()]}

    @app.get("/", response_class=HTMLResponse)
    def index(system: str = Query(league.config.ratings.default_system)):
        try:
            data = page_data(league, _system(system))
        except LeagueError as exc:
            raise HTTPException(400, str(exc)) from None
        return HTMLResponse(render_page(data))

    return app


def render_page(data: dict) -> str:
    """The HTML page with ``data`` embedded as JSON (``</`` escaped so it cannot close the script tag)."""
    blob = json.dumps(data).replace("</", "<\\/")
    title = html.escape(f"League {data['league']} ({data['env']})")
    return PAGE.replace("__TITLE__", title).replace("__DATA__", blob)


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222} h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th:nth-child(2),td:nth-child(2){text-align:left} .muted{color:#888} nav a{margin-right:12px}
svg text{font-size:11px;font-family:system-ui,sans-serif}
</style></head><body>
<h1>__TITLE__</h1>
<nav>Rating system: <a href="?system=bt">Bradley-Terry</a><a href="?system=elo">Elo</a><a href="?system=openskill">OpenSkill</a></nav>
<h2>Leaderboard</h2><table id="leaderboard"><thead><tr><th>#</th><th>player</th><th>rating</th><th>95% interval</th>
<th>games</th><th>W-D-L</th><th>win rate</th><th>last played</th></tr></thead><tbody></tbody></table>
<h2>Head-to-head win rate (row beats column)</h2><div id="heatmap"></div>
<h2>Rating history</h2><div id="history"></div>
<h2>Recent matches</h2><table id="matches"><thead><tr><th>ended</th><th>seats (score)</th><th>length</th><th>seed</th><th>worker</th></tr></thead><tbody></tbody></table>
<script id="league-data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("league-data").textContent);
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, text){const e=document.createElementNS(NS,tag);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;return e;}
function cell(tr, text){const td=document.createElement("td");td.textContent=text;tr.appendChild(td);}
const fmt=(x,d=1)=>x===null||x===undefined||Number.isNaN(x)?"-":Number(x).toFixed(d);
// leaderboard
const lb=document.querySelector("#leaderboard tbody");
for(const r of D.leaderboard){const tr=document.createElement("tr");tr.className="player-row";
  cell(tr,r.rank);cell(tr,r.player);cell(tr,fmt(r.rating));
  cell(tr,r.lower===null?"-":"["+fmt(r.lower)+", "+fmt(r.upper)+"]");cell(tr,r.games);
  cell(tr,r.wins+"-"+r.draws+"-"+r.losses);cell(tr,r.win_rate===null?"-":fmt(100*r.win_rate)+"%");
  cell(tr,r.last_played||"never");lb.appendChild(tr);}
// heatmap
(function(){const H=D.head_to_head,n=H.players.length,c=28,left=160,top=150;
  const svg=el("svg",{id:"heatmap-svg",width:left+n*c+10,height:top+n*c+10});
  H.players.forEach((p,i)=>{svg.appendChild(el("text",{x:left-6,y:top+i*c+c/2+4,"text-anchor":"end"},p));
    const t=el("text",{x:0,y:0,transform:`translate(${left+i*c+c/2+4},${top-6}) rotate(-60)`},p);svg.appendChild(t);});
  for(let i=0;i<n;i++)for(let j=0;j<n;j++){const v=H.win_rate[i][j];
    const fill=v===null?"#eee":`rgb(${Math.round(255*(1-v))},${Math.round(120+100*v)},${Math.round(255*(1-v)*0.6+80)})`;
    const r=el("rect",{class:"h2h-cell",x:left+j*c,y:top+i*c,width:c-1,height:c-1,fill:fill});
    r.appendChild(el("title",{},`${H.players[i]} vs ${H.players[j]}: `+(v===null?"no games":`${fmt(100*v,0)}% of ${H.games[i][j]}`)));
    svg.appendChild(r);
    if(v!==null)svg.appendChild(el("text",{x:left+j*c+c/2,y:top+i*c+c/2+4,"text-anchor":"middle"},fmt(100*v,0)));}
  document.getElementById("heatmap").appendChild(svg);})();
// rating history
(function(){const H=D.history,names=Object.keys(H),W=720,Ht=300,L=50,B=30,R=170;
  const pts=names.flatMap(n=>H[n]);const svg=el("svg",{id:"history-svg",width:W,height:Ht});
  if(!pts.length){svg.appendChild(el("text",{x:10,y:20},"no matches yet"));document.getElementById("history").appendChild(svg);return;}
  const xs=pts.map(p=>p.n_matches),ys=pts.map(p=>p.rating);
  const x0=Math.min(0,...xs),x1=Math.max(1,...xs),y0=Math.min(...ys),y1=Math.max(...ys)+1e-9;
  const X=x=>L+(W-L-R)*(x-x0)/(x1-x0),Y=y=>Ht-B-(Ht-B-10)*(y-y0)/(y1-y0);
  svg.appendChild(el("line",{x1:L,y1:Ht-B,x2:W-R,y2:Ht-B,stroke:"#999"}));svg.appendChild(el("line",{x1:L,y1:10,x2:L,y2:Ht-B,stroke:"#999"}));
  svg.appendChild(el("text",{x:L,y:Ht-8},"matches"));svg.appendChild(el("text",{x:4,y:14},fmt(y1,0)));svg.appendChild(el("text",{x:4,y:Ht-B},fmt(y0,0)));
  const colors=["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
  names.forEach((n,k)=>{const h=H[n];if(!h.length)return;const col=colors[k%colors.length];
    svg.appendChild(el("polyline",{class:"history-line","data-player":n,fill:"none",stroke:col,"stroke-width":1.5,
      points:h.map(p=>X(p.n_matches)+","+Y(p.rating)).join(" ")}));
    svg.appendChild(el("text",{x:W-R+8,y:16+14*k,fill:col},n));});
  document.getElementById("history").appendChild(svg);
  const cap=document.createElement("p");cap.className="muted";cap.textContent="system: "+D.history_system;document.getElementById("history").appendChild(cap);})();
// matches
const mt=document.querySelector("#matches tbody");
for(const m of D.matches){const tr=document.createElement("tr");cell(tr,m.ended_at);
  cell(tr,m.seats.map(s=>`${s.player} (${s.score})`).join(" vs "));cell(tr,m.episode_length);cell(tr,m.seed);cell(tr,m.worker);mt.appendChild(tr);}
document.body.setAttribute("data-rendered","1");
</script></body></html>
"""
