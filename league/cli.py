"""The ``league`` command: init, add, run, leaderboard, matches, serve, export.

Every subcommand takes the league config path first (``configs/league/connect_four.yaml``); the store is
``store.url`` of that config or ``league.db`` beside it. Only ``init`` creates a store: every other command
on a missing one stops with "no league at ...; run league init". Errors are one line on stderr, exit code 2
(1 for an unexpected error, whose traceback ``--debug`` shows). With ``--json`` a command prints exactly one
JSON object on stdout and its human-readable lines on stderr, so ``league ... --json | jq`` works.

Examples::

    league init configs/league/connect_four.yaml
    league add  configs/league/connect_four.yaml results/c4_selfplay/          # every snapshot, with lineage
    league add  configs/league/connect_four.yaml "bot:mcts?simulations=400" --name mcts-400
    league retire configs/league/connect_four.yaml c4_selfplay/ConnectFour-100000      # --undo brings it back
    league remove configs/league/connect_four.yaml mcts-400                           # --force: keep its matches
    league run  configs/league/connect_four.yaml --mode round_robin --games-per-pair 4 --workers 2
    league run  configs/league/connect_four.yaml --resume          # after a crash: play only the missing matches
    league run  configs/league/connect_four.yaml --games 200 --matchmaking pfsp --ray --address auto
    league run  configs/league/connect_four.yaml --mode gauntlet --challenger c4_selfplay/ConnectFour-500000
    league leaderboard configs/league/connect_four.yaml --system bt --json
    league serve configs/league/connect_four.yaml --port 8000
    league export configs/league/connect_four.yaml --top 3 --to unity_project/Assets/Brains
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console

from league.errors import ConfigError, LeagueError

SYSTEM_CHOICES = ("elo", "openskill", "bt")


def _console(stderr: bool = False) -> Console:
    """Where human-readable output goes: stdout, or stderr when stdout carries ``--json``."""
    return Console(width=max(120, Console().width), highlight=False, stderr=stderr)


def _human(a) -> Console:
    return _console(stderr=bool(getattr(a, "json", False)))


def _emit_json(obj) -> None:
    """The one JSON object of a ``--json`` command, on stdout."""
    print(json.dumps(obj), flush=True)


def _open(config: str, create: bool = False):
    """The league of ``config``; a missing store is an error unless ``create`` (``init``)."""
    from league.league import open_league

    return open_league(config, create=create)


def cmd_init(a) -> int:
    from league.config import EnvBlock, LeagueConfig, StoreBlock, write_config

    out = _human(a)
    if not os.path.exists(a.config):
        if not a.env:
            raise ConfigError(f"league config '{a.config}' does not exist; pass --env ENV_ID to create it")
        cfg = LeagueConfig(name=os.path.splitext(os.path.basename(a.config))[0], env=EnvBlock(id=a.env),
                           store=StoreBlock(url=a.db))
        try:
            write_config(cfg, a.config)
        except OSError as exc:
            raise ConfigError(f"cannot write league config '{a.config}' ({exc.strerror or exc}); choose a writable "
                              "path") from None
        out.print(f"wrote {a.config}")
    elif os.path.isdir(a.config):
        raise ConfigError(f"league config '{a.config}' is a folder; give the path of a .yaml file")
    elif a.env or a.db:
        raise ConfigError(f"league config '{a.config}' exists; edit it instead of passing --env/--db")
    league = _open(a.config, create=True)
    added = league.register_config_players()
    pending = []
    for src in league.config.snapshots:
        d = league.config.resolve(src.dir)
        if not os.path.isdir(d):
            pending.append(d)
            out.print(f"snapshots '{d}': not there yet (train the run, then `league add {a.config} {d}`)")
    new = sum(1 for _, created in added if created)
    from league.store import _safe_url

    n_players, n_matches, where = len(league.store.players()), league.store.match_count(), _safe_url(league.store.url)
    out.print(f"league '{league.config.name}' at {where}: {n_players} players ({new} new), {n_matches} matches")
    if a.json:
        _emit_json({"league": league.config.name, "store": where, "players": n_players, "new_players": new,
                    "matches": n_matches, "pending_snapshots": pending})
    return 0


def cmd_add(a) -> int:
    league = _open(a.config)
    out = _human(a)
    done = []
    for info, created in league.add_path(a.path, name=a.name, behavior=a.behavior):
        out.print(f"{'added' if created else 'already registered'}: {info.name} ({info.policy})")
        done.append({"player": info.name, "policy": info.policy, "created": created, "parent": info.parent,
                     "version": info.version, "tags": list(info.tags)})
    if a.json:
        _emit_json({"players": done})
    return 0


def cmd_retire(a) -> int:
    league = _open(a.config)
    info = league.retire(a.name, undo=a.undo)
    _human(a).print(f"{'active again' if info.active else 'retired'}: {info.name}"
                    + ("" if info.active else " (kept in the log and the history; out of matchmaking and the "
                                              "leaderboard unless --all)"))
    if a.json:
        _emit_json({"player": info.name, "active": info.active})
    return 0


def cmd_remove(a) -> int:
    league = _open(a.config)
    r = league.remove(a.name, force=a.force)
    if r["kept"]:
        msg = (f"removed: {r['player']} (its {r['matches']} matches stay in the others' ratings; the name stays "
               "reserved)")
    else:
        msg = f"removed: {r['player']} (no matches)"
    _human(a).print(msg + (f"; deleted {len(r['deleted_files'])} file(s)" if r["deleted_files"] else ""))
    if a.json:
        _emit_json(r)
    return 0


def cmd_run(a) -> int:
    """``league run``: start a tournament (or ``--resume [ID]`` one), play its missing matches, print the table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from league import tournaments as T
    from league.records import diversity
    from league.runners import make_runner

    league = _open(a.config)
    t, r = league.config.tournament, league.config.runner
    if a.resume is not None:
        fixed = [flag for flag, v in (("--mode", a.mode), ("--games", a.games), ("--games-per-pair", a.games_per_pair),
                                      ("--rounds", a.rounds), ("--matchmaking", a.matchmaking),
                                      ("--challenger", a.challenger), ("--players", a.players), ("--seed", a.seed))
                 if v is not None]
        if fixed:
            raise LeagueError(f"--resume continues a tournament as it was scheduled; drop {', '.join(fixed)}")
        info = T.resolve(league, a.resume or None)
        if info.finished:
            print(f"tournament {info.id} is finished ({info.recorded} of {info.scheduled} matches recorded); "
                  "nothing to resume")
            return 0
    else:
        for old in league.store.tournaments(env_id=league.config.env.id, unfinished_only=True)[:3]:
            print(f"note: tournament {old.id} is unfinished ({old.recorded} of {T.expected_matches(old)} matches); "
                  f"continue it with `league run {a.config} --resume {old.id}`", file=sys.stderr)
        mode = a.mode or ("matchmade" if a.games else t.mode)
        info = T.start(league, mode, players=a.players.split(",") if a.players else None,
                       games_per_pair=a.games_per_pair, rounds=a.rounds, games=a.games, matchmaking=a.matchmaking,
                       challenger=a.challenger, seed=a.seed)
    expected = T.expected_matches(info)
    print(f"tournament {info.id} ({info.mode}, seed {info.seed}): {expected - info.recorded} of {expected} matches "
          "to play")
    kind = "ray" if (a.ray or a.address or a.ray_ports) else r.kind
    runner = make_runner(kind, a.workers or r.workers, a.address or r.address, r.max_retries,
                         matches_per_task=r.matches_per_task, ray_ports=a.ray_ports or r.ray_ports)
    console = _console()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar, runner:
        task = bar.add_task(f"{info.mode} ({kind})", total=expected - info.recorded)

        def progress(_res, _new):
            bar.advance(task)

        out = T.run(league, runner, info.id, progress)
    stats, info = out.stats, out.tournament
    console.print(f"{info.mode}: {stats.completed} matches in {stats.seconds:.1f} s "
                  f"({stats.matches_per_second:.2f} matches/s), {stats.retried} retried, {len(stats.failed)} failed"
                  + (f"; {out.already_recorded} were recorded by an earlier run" if out.already_recorded else ""))
    for uid, why in list(stats.failed.items())[:5]:
        console.print(f"  failed {uid}: {why}")
    if out.points:
        console.print("swiss points: " + ", ".join(f"{k} {v:g}" for k, v in sorted(out.points.items(), key=lambda kv: -kv[1])))
    from league.leaderboard import leaderboard, rich_table

    system = league.config.ratings.default_system
    games = league.games()
    console.print(rich_table(leaderboard(league, system, games=games), system))
    console.print(diversity(games).line())
    if info.finished:
        console.print(f"tournament {info.id}: finished, {info.recorded} matches")
        return 0
    console.print(f"tournament {info.id}: unfinished ({info.recorded} of {T.expected_matches(info)} matches); "
                  f"continue it with `league run {a.config} --resume {info.id}`")
    return 1


def cmd_leaderboard(a) -> int:
    from league.leaderboard import leaderboard, rich_table, rows_json

    league = _open(a.config)
    system = a.system or league.config.ratings.default_system
    conf = league.config.ratings.confidence
    from dataclasses import asdict

    from league.records import diversity

    games = league.games()
    rows = leaderboard(league, system, games=games, include_inactive=a.all)
    _human(a).print(rich_table(rows, system, f"{league.config.name}: leaderboard ({system})", conf))
    div = diversity(games)  # distinct games from the recorded action hashes; warns when most are replays
    _human(a).print(div.line())
    if a.json:
        _emit_json({"league": league.config.name, **rows_json(rows, system, conf),
                    "games": {**asdict(div), "replays": div.replays, "mostly_replays": div.mostly_replays}})
    return 0


def cmd_matches(a) -> int:
    from rich.table import Table

    if a.limit < 1:
        raise LeagueError(f"--limit must be >= 1, got {a.limit}")
    league = _open(a.config)
    ms = league.store.recent_matches(a.limit, a.player)
    t = Table(title=f"{league.config.name}: recent matches")
    for c in ("ended", "seats (score)", "length", "seed", "worker", "uid"):
        t.add_column(c)
    for m in ms:
        t.add_row(m["ended_at"] or "", " vs ".join(f"{s['player']} ({s['score']:g})" for s in m["seats"]),
                  str(m["episode_length"]), str(m["seed"]), m["worker"], m["uid"][:12])
    _human(a).print(t)
    if a.json:
        _emit_json({"matches": ms})
    return 0


def listen_socket(host: str, port: int):
    """A TCP socket bound to ``host:port`` (SO_REUSEADDR, as uvicorn sets it), for :func:`cmd_serve`.

    Raises:
        LeagueError: bad port, unknown host, or the address cannot be bound (in use, not allowed), one line.
    """
    import socket

    if not 0 <= port <= 65535:
        raise LeagueError(f"--port {port}: expected a port number in 0..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise LeagueError(f"--host '{host}': cannot resolve it ({getattr(exc, 'strerror', None) or exc}); use an "
                          "address of this machine such as 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        hint = "choose another --port or stop the program using it" if exc.errno in (98, 48, 10048) else \
            "choose another --host/--port"
        raise LeagueError(f"cannot listen on {host}:{port} ({why}); {hint}") from None
    return sock


def cmd_serve(a) -> int:
    import uvicorn

    from league.web import create_app

    league = _open(a.config)
    app = create_app(league)
    sock = listen_socket(a.host, a.port)
    port = sock.getsockname()[1]
    name = league.config.name

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):  # announce only once the server accepts connections
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                print(f"serving league '{name}' on http://{a.host}:{port}/ (Ctrl-C stops)", flush=True)

    try:
        _Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def cmd_export(a) -> int:
    from league.export import export_top

    league = _open(a.config)
    m = export_top(league, a.top, a.to, a.system or league.config.ratings.default_system)
    out = _human(a)
    for e in m["players"]:
        out.print(f"#{e['rank']} {e['player']} ({e['rating']:.1f}) -> {os.path.join(a.to, e['file'])}")
    out.print(f"manifest: {os.path.join(a.to, 'league_manifest.json')}")
    if a.json:
        _emit_json(m)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``league``."""
    p = argparse.ArgumentParser(prog="league", description="League manager: rate trained agents against each other.")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("config", help="league config YAML (the store defaults to league.db beside it)")
        # SUPPRESS: an untyped --debug after the subcommand must not reset one typed before it
        s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="full tracebacks on errors")
        s.set_defaults(fn=fn)
        return s

    json_help = "print one JSON object on stdout (human-readable lines go to stderr)"
    s = add("init", cmd_init, "create the store and register the config's players (creates the config with --env)")
    s.add_argument("--env", help="env id for a new config, e.g. openspiel:connect_four")
    s.add_argument("--db", help="store URL for a new config (default: SQLite league.db beside it)")
    s.add_argument("--json", action="store_true", help=json_help)
    s = add("add", cmd_add, "register a .onnx/.pt file, a results/<run-id>/ folder, or a bot spec (files are "
                            "copied into the league folder; the player must act in the league's env)")
    s.add_argument("path")
    s.add_argument("--name", help="player name (default: file stem; bots: spec)")
    s.add_argument("--behavior", help="behavior name (results folders: only this behavior)")
    s.add_argument("--json", action="store_true", help=json_help)
    s = add("retire", cmd_retire, "retire a player: kept in the log and history, out of matchmaking and leaderboards")
    s.add_argument("name", help="player name")
    s.add_argument("--undo", action="store_true", help="make a retired player active again")
    s.add_argument("--json", action="store_true", help=json_help)
    s = add("remove", cmd_remove, "delete a player without matches (--force: also one with matches, whose matches "
                                  "stay and whose name stays reserved)")
    s.add_argument("name", help="player name")
    s.add_argument("--force", action="store_true", help="remove a player that has matches (they keep counting)")
    s.add_argument("--json", action="store_true", help=json_help)
    s = add("run", cmd_run, "play a tournament or N matchmade games")
    s.add_argument("--mode", choices=("round_robin", "swiss", "gauntlet", "matchmade"))
    s.add_argument("--games", type=int, help="number of matchmade games (implies --mode matchmade)")
    s.add_argument("--games-per-pair", type=int, help="round robin / gauntlet games per pair and seat order")
    s.add_argument("--rounds", type=int, help="Swiss rounds")
    s.add_argument("--matchmaking", choices=("proximity", "pfsp", "random"))
    s.add_argument("--challenger", help="gauntlet challenger / matchmade anchor player")
    s.add_argument("--players", help="comma-separated player names (default: all active)")
    s.add_argument("--workers", type=int)
    s.add_argument("--ray", action="store_true", help="run matches on Ray (local Ray unless --address)")
    s.add_argument("--address", help="Ray cluster: auto or ray://host:10001 (implies --ray)")
    s.add_argument("--seed", type=int, help="tournament seed (default: tournament.seed, else a fresh one, recorded)")
    s.add_argument("--ray-ports", metavar="LOW-HIGH",
                   help="start a local Ray with every port in LOW-HIGH, e.g. 20000-20099 (implies --ray)")
    s.add_argument("--resume", nargs="?", const="", metavar="ID",
                   help="play the missing matches of tournament ID (default: the most recent unfinished one)")
    s = add("leaderboard", cmd_leaderboard, "print the leaderboard")
    s.add_argument("--system", choices=SYSTEM_CHOICES)
    s.add_argument("--json", action="store_true", help=json_help)
    s.add_argument("--all", action="store_true", help="include retired players")
    s = add("matches", cmd_matches, "list recent matches")
    s.add_argument("--player")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help=json_help)
    s = add("serve", cmd_serve, "serve the leaderboard page and JSON API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s = add("export", cmd_export, "copy the top players' ONNX files with a ratings manifest")
    s.add_argument("--top", type=int, required=True)
    s.add_argument("--to", required=True, help="destination folder, e.g. unity_project/Assets/Brains")
    s.add_argument("--system", choices=SYSTEM_CHOICES)
    s.add_argument("--json", action="store_true", help=json_help)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``league`` console script; returns the exit code (2 on user errors)."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except LeagueError as exc:
        if args.debug:
            raise
        print(f"league {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"league {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line; the traceback only with --debug
        if args.debug:
            raise
        from marl.cli.common import unexpected_error_line

        print(unexpected_error_line(exc, f"league {args.cmd}: error"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
