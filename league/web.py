"""``league serve``: a FastAPI app with a JSON API and self-contained HTML pages (no CDN, no build step,
no external script: the data is embedded in the page as JSON and drawn by inline JS as SVG).

JSON API:
    GET /api/leaderboard?system=bt&all=0  leaderboard rows, units and definitions (:func:`league.leaderboard.rows_json`)
    GET /api/head_to_head                 players, score matrix (row against column; draws half), game counts
    GET /api/history/{player}?system=     rating history points in the system's own units
    GET /api/player/{player}?system=      one player: info, leaderboard row, history, head-to-head row, recent games
    GET /api/matches?limit=50&player=     recent matches, newest first
    GET /api/players                      registered players
HTML:
    GET /?system=bt&tag=&all=0            leaderboard table, head-to-head heatmap (score and game count per cell,
                                          colour legend), rating history (axes with ticks and labels, legend),
                                          recent matches; a tag/run filter applies to all of them
    GET /player/{player}?system=          player view: rating history, head-to-head row, recent games

Page structure the tests rely on (ids/classes): ``#leaderboard tr.player-row``, ``#heatmap-svg rect.h2h-cell``,
``text.h2h-count``, ``#heatmap-legend``, ``#history-svg .history-line``, ``g.x-axis``/``g.y-axis`` with
``.tick`` elements and ``.axis-label``, ``#tag-filter``, ``#player-view``, ``#player-h2h tr``,
``#player-matches tr``; ``body[data-rendered="1"]`` once every part is drawn, and ``body[data-layout]``: a JSON
object of the rendered sizes ``[width, height]`` of the main parts, for automated layout checks.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from league.errors import LeagueError, UnknownPlayerError
from league.leaderboard import (DEFINITIONS, head_to_head, head_to_head_row, histories, history, interval_label,
                                leaderboard, rows_json)
from league.league import League, is_removed
from league.ratings import SYSTEMS, UNITS


def _system(system: str) -> str:
    if system not in SYSTEMS:
        raise HTTPException(400, f"unknown rating system '{system}'; expected one of {', '.join(SYSTEMS)}")
    return system


def _player_json(p) -> dict[str, Any]:
    d = asdict(p)
    d["created_at"] = p.created_at.isoformat()
    d["tags"] = list(p.tags)
    d["removed"] = is_removed(p)
    return d


def _common(league: League, system: str) -> dict[str, Any]:
    conf = league.config.ratings.confidence
    return {"league": league.config.name, "env": league.config.env.id, "system": system, "systems": list(SYSTEMS),
            "units": UNITS[system], "definition": DEFINITIONS[system], "interval_label": interval_label(system, conf),
            "confidence": conf}


def page_data(league: League, system: str, tag: str | None = None, include_inactive: bool = False,
              n_matches: int = 30) -> dict:
    """Everything the overview page shows, as one JSON-ready dict: the leaderboard of ``system`` (retired
    players with ``include_inactive``), the head-to-head matrix and game counts of those players, every
    listed player's rating history in ``system``'s own units, the tags to filter by (``tag`` preselected)
    and the latest ``n_matches`` matches."""
    games = league.games()
    rows = leaderboard(league, system, games, include_inactive=include_inactive)
    names = [r.player for r in rows]
    return {**_common(league, system), "view": "overview", "tag": tag or "", "all": include_inactive,
            "tags": sorted({t for r in rows for t in r.tags}),
            "leaderboard": rows_json(rows, system, league.config.ratings.confidence)["players"],
            "head_to_head": head_to_head(league, games, names),
            "history": histories(league, names, system, games),
            "matches": league.store.recent_matches(n_matches),
            "n_matches_total": len(games)}


def player_data(league: League, name: str, system: str, n_matches: int = 30) -> dict:
    """Everything the player view shows: the player's record, leaderboard row (retired players included),
    rating history in ``system``'s units, head-to-head row and latest ``n_matches`` games.

    Raises:
        UnknownPlayerError: ``name`` is not registered.
    """
    info = league.player(name)
    games = league.games()
    rows = leaderboard(league, system, games, include_inactive=True)
    row = next((r for r in rows_json(rows, system)["players"] if r["player"] == name), None)
    return {**_common(league, system), "view": "player", "player": _player_json(info), "row": row,
            "n_ranked": len(rows), "history": {name: history(league, name, system, games)},
            "h2h": head_to_head_row(league, name, games), "matches": league.store.recent_matches(n_matches, name),
            "n_matches_total": len(games)}


def create_app(league: League) -> FastAPI:
    """The FastAPI app for ``league`` (errors become 400/404 JSON responses or pages)."""
    app = FastAPI(title=f"League {league.config.name}")
    default = league.config.ratings.default_system

    @app.get("/api/leaderboard")
    def api_leaderboard(system: str = Query(default), all: bool = Query(False)):  # noqa: A002 - query name
        return rows_json(leaderboard(league, _system(system), include_inactive=all), system,
                         league.config.ratings.confidence)

    @app.get("/api/head_to_head")
    def api_h2h():
        return head_to_head(league)

    @app.get("/api/history/{player:path}")
    def api_history(player: str, system: str = Query(default)):
        try:
            return {"player": player, "system": system, "units": UNITS.get(system),
                    "points": history(league, player, _system(system))}
        except UnknownPlayerError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/player/{player:path}")
    def api_player(player: str, system: str = Query(default)):
        try:
            return player_data(league, player, _system(system))
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
        return {"players": [_player_json(p) for p in league.store.players()]}

    @app.get("/", response_class=HTMLResponse)
    def index(system: str = Query(default), tag: str = Query(""), all: bool = Query(False)):  # noqa: A002
        try:
            data = page_data(league, _system(system), tag, all)
        except LeagueError as exc:
            raise HTTPException(400, str(exc)) from None
        return HTMLResponse(render_page(data))

    @app.get("/player/{player:path}", response_class=HTMLResponse)
    def player_page(player: str, system: str = Query(default)):
        try:
            data = player_data(league, player, _system(system))
        except UnknownPlayerError as exc:
            return HTMLResponse(f"<!doctype html><title>unknown player</title><p>{html.escape(str(exc))}</p>"
                                '<p><a href="/">back to the leaderboard</a></p>', status_code=404)
        except LeagueError as exc:
            raise HTTPException(400, str(exc)) from None
        return HTMLResponse(render_page(data))

    return app


def render_page(data: dict) -> str:
    """The HTML page with ``data`` embedded as JSON (``</`` escaped so it cannot close the script tag)."""
    blob = json.dumps(data).replace("</", "<\\/")
    if data.get("view") == "player":
        title = f"{data['player']['name']} in league {data['league']} ({data['env']})"
    else:
        title = f"League {data['league']} ({data['env']})"
    return PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", blob)


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px 32px;color:#222;max-width:1200px}
h1{font-size:20px;margin-bottom:4px} h2{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;font-size:13px} th,td{padding:3px 8px;border-bottom:1px solid #e3e3e3;text-align:right}
th{background:#f6f6f6;font-weight:600} td.l,th.l{text-align:left} .muted{color:#777;font-size:12px}
nav{margin:6px 0 10px;font-size:13px} nav a,nav span{margin-right:10px} nav .on{font-weight:700}
a{color:#1f5fa8;text-decoration:none} a:hover{text-decoration:underline}
svg text{font-size:11px;font-family:system-ui,sans-serif;fill:#333} .axis-label{font-size:12px;fill:#444}
.tick line{stroke:#ccc} .domain{stroke:#888} .tag{display:inline-block;background:#eef2f7;border-radius:3px;padding:0 4px;
margin-right:3px;font-size:11px;color:#345} .retired{color:#999} .bar{display:inline-block;height:9px;background:#2166ac;
vertical-align:middle} .bar.loss{background:#d6604d} .bar.draw{background:#bbb} .card{display:inline-block;margin-right:28px}
.card b{font-size:18px} #filter-bar{font-size:13px;margin:8px 0}
</style></head><body>
<h1 id="title">__TITLE__</h1>
<nav id="systems"></nav>
<main id="main"></main>
<script id="league-data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("league-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
function el(tag, attrs, text){const e=document.createElementNS(NS,tag);for(const k in attrs||{})e.setAttribute(k,attrs[k]);
  if(text!==undefined)e.textContent=text;return e;}
function h(tag, attrs, text){const e=document.createElement(tag);for(const k in attrs||{})e.setAttribute(k,attrs[k]);
  if(text!==undefined)e.textContent=text;return e;}
function cell(tr, text, cls){const td=h("td",cls?{class:cls}:{},text===null||text===undefined?"-":String(text));tr.appendChild(td);return td;}
const fmt=(x,d=1)=>x===null||x===undefined||Number.isNaN(Number(x))?"-":Number(x).toFixed(d);
const pct=x=>x===null||x===undefined?"-":(100*x).toFixed(0)+"%";
function playerHref(name){return "/player/"+name.split("/").map(encodeURIComponent).join("/")+"?system="+encodeURIComponent(D.system);}
function playerLink(name){const a=h("a",{href:playerHref(name),class:"player-link"},name);return a;}
function section(id, title){const s=h("section",{id:id});if(title)s.appendChild(h("h2",{},title));
  document.getElementById("main").appendChild(s);return s;}
// "nice" axis ticks: steps of 1, 2 or 5 x 10^k, about n of them (Heckbert, Graphics Gems 1990)
function niceTicks(lo, hi, n){if(!(hi>lo)){hi=lo+1;} const raw=(hi-lo)/Math.max(1,n);const p=Math.pow(10,Math.floor(Math.log10(raw)));
  const step=[1,2,5,10].map(m=>m*p).find(s=>s>=raw);const out=[];for(let v=Math.ceil(lo/step)*step;v<=hi+step*1e-9;v+=step)out.push(+v.toFixed(10));
  return {ticks:out,step:step};}
function tickText(v, step){const d=step>=1?0:Math.min(6,Math.ceil(-Math.log10(step)));return v.toFixed(d);}
// ------------------------------------------------------------------ rating-system switch
(function(){const nav=document.getElementById("systems");nav.appendChild(h("span",{},"Rating system:"));
  const names={bt:"Bradley-Terry",elo:"Elo",openskill:"OpenSkill"};
  for(const s of D.systems){const q=new URLSearchParams(location.search);q.set("system",s);
    const a=h("a",{href:"?"+q.toString(),class:s===D.system?"on":""},names[s]||s);nav.appendChild(a);}
  if(D.view==="player")nav.appendChild(h("a",{href:"/?system="+encodeURIComponent(D.system),id:"back-link"},"\u2190 leaderboard"));})();
// ------------------------------------------------------------------ line chart with axes, ticks, labels, legend
function lineChart(series, opts){
  const names=Object.keys(series).filter(n=>series[n].length);const W=opts.width||760,Ht=opts.height||320;
  const L=74,B=46,T=12,R=names.length>1?190:20;
  const svg=el("svg",{id:opts.id,width:W,height:Ht,role:"img"});
  const pts=names.flatMap(n=>series[n]);
  if(!pts.length){svg.appendChild(el("text",{x:10,y:20,class:"empty"},"no rated matches yet"));return svg;}
  const xs=pts.map(p=>p.n_matches),ys=pts.map(p=>p.rating);
  let x0=Math.min(0,...xs),x1=Math.max(1,...xs),y0=Math.min(...ys),y1=Math.max(...ys);
  if(y1-y0<1e-9){y0-=1;y1+=1;} const pad=(y1-y0)*0.06;y0-=pad;y1+=pad;
  const X=x=>L+(W-L-R)*(x-x0)/(x1-x0),Y=y=>Ht-B-(Ht-B-T)*(y-y0)/(y1-y0);
  const gx=el("g",{class:"x-axis"}),gy=el("g",{class:"y-axis"});
  const tx=niceTicks(x0,x1,Math.min(8,Math.max(1,x1-x0))),ty=niceTicks(y0,y1,6);
  for(const v of tx.ticks){if(v<x0||v>x1||(tx.step<1))continue;const g=el("g",{class:"tick"});
    g.appendChild(el("line",{x1:X(v),x2:X(v),y1:T,y2:Ht-B}));
    g.appendChild(el("text",{x:X(v),y:Ht-B+15,"text-anchor":"middle"},tickText(v,tx.step)));gx.appendChild(g);}
  for(const v of ty.ticks){if(v<y0||v>y1)continue;const g=el("g",{class:"tick"});
    g.appendChild(el("line",{x1:L,x2:W-R,y1:Y(v),y2:Y(v)}));
    g.appendChild(el("text",{x:L-6,y:Y(v)+4,"text-anchor":"end"},tickText(v,ty.step)));gy.appendChild(g);}
  gx.appendChild(el("line",{class:"domain",x1:L,x2:W-R,y1:Ht-B,y2:Ht-B}));
  gy.appendChild(el("line",{class:"domain",x1:L,x2:L,y1:T,y2:Ht-B}));
  gx.appendChild(el("text",{class:"axis-label",x:L+(W-L-R)/2,y:Ht-8,"text-anchor":"middle"},opts.xlabel));
  gy.appendChild(el("text",{class:"axis-label",x:0,y:0,"text-anchor":"middle",
    transform:`translate(14,${T+(Ht-B-T)/2}) rotate(-90)`},opts.ylabel));
  svg.appendChild(gx);svg.appendChild(gy);
  names.forEach((n,k)=>{const hs=series[n],col=COLORS[k%COLORS.length];
    svg.appendChild(el("polyline",{class:"history-line","data-player":n,fill:"none",stroke:col,"stroke-width":1.6,
      points:hs.map(p=>X(p.n_matches).toFixed(1)+","+Y(p.rating).toFixed(1)).join(" ")}));
    if(hs.length<=60)for(const p of hs){const c=el("circle",{class:"history-point",cx:X(p.n_matches),cy:Y(p.rating),r:2.2,fill:col});
      c.appendChild(el("title",{},`${n}: ${fmt(p.rating)} after ${p.n_matches} matches`));svg.appendChild(c);}
    if(names.length>1){const g=el("g",{class:"legend-item"});g.appendChild(el("rect",{x:W-R+12,y:T+16*k+5,width:12,height:3,fill:col}));
      g.appendChild(el("text",{x:W-R+30,y:T+16*k+10},n.length>26?n.slice(0,25)+"\u2026":n));svg.appendChild(g);}});
  return svg;}
// ------------------------------------------------------------------ diverging colour scale: 0 red, 0.5 white, 1 blue
const C0=[214,96,77],CM=[247,247,247],C1=[33,102,172];
function scoreColor(v){const a=v<0.5?C0:C1,t=v<0.5?(0.5-v)*2:(v-0.5)*2;return "rgb("+CM.map((m,i)=>Math.round(m+(a[i]-m)*t)).join(",")+")";}
// ------------------------------------------------------------------ overview
function overview(){
  const filterBar=h("div",{id:"filter-bar"});document.getElementById("main").appendChild(filterBar);
  filterBar.appendChild(h("label",{for:"tag-filter"},"Show players tagged (tag or run): "));
  const sel=h("select",{id:"tag-filter"});sel.appendChild(h("option",{value:""},"all players"));
  for(const t of D.tags){const o=h("option",{value:t},t);if(t===D.tag)o.selected=true;sel.appendChild(o);}
  filterBar.appendChild(sel);
  const q0=new URLSearchParams(location.search);q0.set("all",D.all?"0":"1");
  filterBar.appendChild(h("span",{class:"muted"}," "));
  filterBar.appendChild(h("a",{href:"?"+q0.toString(),id:"retired-toggle",style:"margin-left:12px"},D.all?"hide retired players":"include retired players"));
  const lbs=section("leaderboard-section","Leaderboard");
  const tbl=h("table",{id:"leaderboard"});const head=h("tr");
  const cols=[["#",""],["player","l"],[D.system==="openskill"?"\u03bc\u22123\u03c3":"rating",""]];
  if(D.system==="openskill")cols.push(["\u03bc",""]);
  cols.push([D.interval_label.replace(" of mu"," of \u03bc"),""],["games",""],["W-D-L",""],["win rate",""],["last played","l"],["tags","l"]);
  for(const [c,cls] of cols)head.appendChild(h("th",cls?{class:cls}:{},c));
  tbl.appendChild(h("thead")).appendChild(head);const body=h("tbody");tbl.appendChild(body);lbs.appendChild(tbl);
  lbs.appendChild(h("p",{class:"muted",id:"rating-definition"},"rating: "+D.definition.rating+(D.definition.interval?"; interval: "+D.definition.interval:"")+". Units: "+D.units+"."));
  const h2h=section("heatmap-section","Head-to-head: score of the row player against the column player");
  const hist=section("history-section","Rating history");
  const ms=section("matches-section","Recent matches");
  function draw(){
    const tag=sel.value;const rows=D.leaderboard.filter(r=>!tag||r.tags.includes(tag));
    body.textContent="";let rank=0;
    for(const r of rows){const tr=h("tr",{class:"player-row"+(r.active?"":" retired")});rank++;
      cell(tr,rank);const td=h("td",{class:"l"});td.appendChild(playerLink(r.player));if(!r.active)td.appendChild(h("span",{class:"muted"}," (retired)"));tr.appendChild(td);
      cell(tr,fmt(r.rating));if(D.system==="openskill")cell(tr,fmt(r.estimate));
      cell(tr,r.lower===null?"-":"["+fmt(r.lower)+", "+fmt(r.upper)+"]");cell(tr,r.games);
      cell(tr,r.wins+"-"+r.draws+"-"+r.losses);cell(tr,r.win_rate===null?"-":fmt(100*r.win_rate)+"%");
      cell(tr,(r.last_played||"never").replace("T"," ").replace("+00:00"," UTC"),"l");
      const tg=h("td",{class:"l"});for(const t of r.tags)tg.appendChild(h("span",{class:"tag"},t));tr.appendChild(tg);body.appendChild(tr);}
    if(!rows.length){const tr=h("tr");const td=h("td",{colspan:cols.length,class:"l muted"},"no player has this tag");tr.appendChild(td);body.appendChild(tr);}
    // heatmap of the filtered players (top 24 by rating)
    h2h.querySelectorAll("svg,p").forEach(e=>e.remove());
    const names=rows.slice(0,24).map(r=>r.player),H=D.head_to_head,ix=names.map(n=>H.players.indexOf(n));
    const n=names.length,c=44,left=Math.min(230,12+7*Math.max(4,...names.map(s=>s.length))),top=Math.min(170,18+5*Math.max(4,...names.map(s=>s.length)));
    const svg=el("svg",{id:"heatmap-svg",width:Math.max(left+n*c+20,left+440),height:top+n*c+78});
    names.forEach((p,i)=>{svg.appendChild(el("text",{x:left-6,y:top+i*c+c/2+4,"text-anchor":"end",class:"row-label"},p));
      svg.appendChild(el("text",{x:0,y:0,class:"col-label",transform:`translate(${left+i*c+c/2+4},${top-6}) rotate(-55)`},p));});
    for(let i=0;i<n;i++)for(let j=0;j<n;j++){const a=ix[i],b=ix[j];const v=H.win_rate[a][b],g=H.games[a][b];
      const fill=i===j?"#fff":(v===null?"#e6e6e6":scoreColor(v));
      const r=el("rect",{class:"h2h-cell",x:left+j*c,y:top+i*c,width:c-1,height:c-1,fill:fill,"data-games":g});
      r.appendChild(el("title",{},`${names[i]} vs ${names[j]}: `+(v===null?"no games":`score ${pct(v)} over ${g} game${g===1?"":"s"}`)));svg.appendChild(r);
      if(v!==null&&i!==j){const dark=Math.abs(v-0.5)>0.32;
        svg.appendChild(el("text",{x:left+j*c+c/2,y:top+i*c+c/2,"text-anchor":"middle",class:"h2h-score",style:"font-weight:600;fill:"+(dark?"#fff":"#222")},pct(v)));
        svg.appendChild(el("text",{x:left+j*c+c/2,y:top+i*c+c/2+12,"text-anchor":"middle",class:"h2h-count",style:"font-size:9px;fill:"+(dark?"#eee":"#555")},"n="+g));}}
    // colour legend
    const lg=el("g",{id:"heatmap-legend",transform:`translate(${left},${top+n*c+18})`});const gid="h2h-grad";
    const defs=el("defs");const grad=el("linearGradient",{id:gid,x1:"0",x2:"1",y1:"0",y2:"0"});
    for(let k=0;k<=10;k++)grad.appendChild(el("stop",{offset:k/10,"stop-color":scoreColor(k/10)}));defs.appendChild(grad);lg.appendChild(defs);
    lg.appendChild(el("rect",{x:0,y:0,width:200,height:12,fill:`url(#${gid})`,stroke:"#999","stroke-width":0.5,class:"legend-bar"}));
    for(const v of [0,0.25,0.5,0.75,1]){const g=el("g",{class:"tick"});g.appendChild(el("line",{x1:200*v,x2:200*v,y1:12,y2:16,stroke:"#666"}));
      g.appendChild(el("text",{x:200*v,y:28,"text-anchor":"middle"},(100*v)+"%"));lg.appendChild(g);}
    lg.appendChild(el("text",{x:0,y:44,class:"axis-label"},"row's score against column (win 1, draw \u00bd); n = games played"));
    lg.appendChild(el("rect",{x:222,y:0,width:12,height:12,fill:"#e6e6e6"}));lg.appendChild(el("text",{x:238,y:10},"no games"));
    svg.appendChild(lg);h2h.appendChild(svg);
    if(rows.length>24)h2h.appendChild(h("p",{class:"muted"},`showing the top 24 of ${rows.length} players`));
    // history: top 8 filtered players
    hist.querySelectorAll("svg,p").forEach(e=>e.remove());const series={};
    for(const r of rows.slice(0,8))series[r.player]=D.history[r.player]||[];
    hist.appendChild(lineChart(series,{id:"history-svg",xlabel:"matches played in the league",ylabel:D.units}));
    hist.appendChild(h("p",{class:"muted",id:"history-caption"},D.system==="bt"?"Bradley-Terry refitted on the first k matches (every ratings.history_every matches and at each tournament end), without bootstrap.":
      "rating after each of the player's matches ("+D.system+", replayed from the match log)."));
    // matches
    ms.querySelectorAll("table").forEach(e=>e.remove());ms.appendChild(matchTable(D.matches.filter(m=>!tag||m.seats.some(s=>rows.some(r=>r.player===s.player))),"matches",null));
  }
  sel.addEventListener("change",()=>{const q=new URLSearchParams(location.search);if(sel.value)q.set("tag",sel.value);else q.delete("tag");
    history.replaceState(null,"","?"+q.toString());draw();});
  draw();
}
function matchTable(matches, id, me){
  const t=h("table",{id:id});const head=h("tr");
  for(const [c,cls] of [["ended","l"],[me?"result":"seats (score)","l"],[me?"opponent":"", "l"],["length",""],["seed",""],["tournament","l"]]){if(c==="")continue;head.appendChild(h("th",cls?{class:cls}:{},c));}
  t.appendChild(h("thead")).appendChild(head);const body=h("tbody");t.appendChild(body);
  for(const m of matches){const tr=h("tr",{class:"match-row"});cell(tr,(m.ended_at||"").slice(0,19).replace("T"," "),"l");
    if(me){const mine=m.seats.find(s=>s.player===me);const others=m.seats.filter(s=>s!==mine);
      const best=Math.min(...m.seats.map(s=>s.rank));const tied=m.seats.filter(s=>s.rank===best).length>1;
      cell(tr,mine.rank===best?(tied?"draw":"win"):"loss","l");const td=h("td",{class:"l"});
      others.forEach((s,k)=>{if(k)td.appendChild(document.createTextNode(", "));td.appendChild(playerLink(s.player));});
      td.appendChild(document.createTextNode(" (seat "+(mine.team+1)+")"));tr.appendChild(td);}
    else{const td=h("td",{class:"l"});m.seats.forEach((s,k)=>{if(k)td.appendChild(document.createTextNode(" vs "));
      td.appendChild(playerLink(s.player));td.appendChild(document.createTextNode(" ("+s.score+")"));});tr.appendChild(td);}
    cell(tr,m.episode_length);cell(tr,m.seed);cell(tr,m.tournament||"-","l");body.appendChild(tr);}
  if(!matches.length){const tr=h("tr");tr.appendChild(h("td",{colspan:6,class:"l muted"},"no matches"));body.appendChild(tr);}
  return t;}
// ------------------------------------------------------------------ player view
function playerView(){
  const P=D.player,R=D.row;const v=section("player-view");
  const info=h("p",{id:"player-info"});
  const bits=[["version",P.version],["behavior",P.behavior||"-"],["status",P.removed?"removed":(P.active?"active":"retired")],
    ["registered",(P.created_at||"").slice(0,10)],["policy",P.policy.startsWith("bot:")?P.policy:P.policy.split("/").slice(-2).join("/")]];
  for(const [k,val] of bits){info.appendChild(h("span",{class:"muted"},k+": "));info.appendChild(h("span",{style:"margin-right:14px"},String(val)));}
  if(P.parent){info.appendChild(h("span",{class:"muted"},"parent: "));info.appendChild(playerLink(P.parent));}
  v.appendChild(info);const tg=h("p");for(const t of P.tags)tg.appendChild(h("span",{class:"tag"},t));v.appendChild(tg);
  const cards=h("div",{id:"player-cards"});
  const card=(label,val)=>{const c=h("div",{class:"card"});c.appendChild(h("div",{class:"muted"},label));c.appendChild(h("b",{},val));cards.appendChild(c);};
  if(R){card((D.system==="openskill"?"\u03bc\u22123\u03c3":"rating")+" (rank "+R.rank+" of "+D.n_ranked+")",fmt(R.rating));
    if(D.system==="openskill")card("\u03bc",fmt(R.estimate));
    card(D.interval_label.replace(" of mu"," of \u03bc"),R.lower===null?"-":"["+fmt(R.lower)+", "+fmt(R.upper)+"]");
    card("games (W-D-L)",R.games+" ("+R.wins+"-"+R.draws+"-"+R.losses+")");card("win rate",R.win_rate===null?"-":fmt(100*R.win_rate)+"%");}
  else card("rating","not ranked (removed)");
  v.appendChild(cards);
  v.appendChild(h("h2",{},"Rating history"));
  v.appendChild(lineChart(D.history,{id:"history-svg",xlabel:"matches played in the league",ylabel:D.units,width:760,height:300}));
  v.appendChild(h("h2",{},"Head-to-head"));
  const t=h("table",{id:"player-h2h"});const head=h("tr");
  for(const [c,cls] of [["opponent","l"],["games",""],["W-D-L",""],["score",""],["","l"]])head.appendChild(h("th",cls?{class:cls}:{},c));
  t.appendChild(h("thead")).appendChild(head);const body=h("tbody");t.appendChild(body);
  for(const r of D.h2h){const tr=h("tr",{class:"h2h-row"});const td=h("td",{class:"l"});td.appendChild(playerLink(r.opponent));tr.appendChild(td);
    cell(tr,r.games);cell(tr,r.wins+"-"+r.draws+"-"+r.losses);cell(tr,pct(r.win_rate));
    const bar=h("td",{class:"l"});const w=160;
    for(const [k,cls] of [["wins",""],["draws","draw"],["losses","loss"]]){const s=h("span",{class:"bar "+cls,style:`width:${Math.round(w*r[k]/r.games)}px`});bar.appendChild(s);}
    tr.appendChild(bar);body.appendChild(tr);}
  if(!D.h2h.length){const tr=h("tr");tr.appendChild(h("td",{colspan:5,class:"l muted"},"no games yet"));body.appendChild(tr);}
  v.appendChild(t);v.appendChild(h("h2",{},"Recent games"));v.appendChild(matchTable(D.matches,"player-matches",P.name));
}
if(D.view==="player")playerView();else overview();
// rendered sizes of the main parts (width x height in CSS pixels), for automated layout checks
(function(){const out={};for(const sel of ["#leaderboard","#heatmap-svg","#heatmap-legend","#history-svg","#history-svg .x-axis",
  "#history-svg .y-axis","#player-cards","#player-h2h","#player-matches","#tag-filter"]){const e=document.querySelector(sel);
  if(e){const r=e.getBoundingClientRect();out[sel]=[Math.round(r.width),Math.round(r.height)];}}
  document.body.setAttribute("data-layout",JSON.stringify(out));})();
document.body.setAttribute("data-rendered","1");
</script></body></html>
"""
