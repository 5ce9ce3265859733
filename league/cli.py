"""The ``league`` command: init, add, run, leaderboard, matches, serve, export.

Every subcommand takes the league config path first (``configs/league/connect_four.yaml``); the store is
``store.url`` of that config or ``league.db`` beside it. Errors are one line on stderr, exit code 2 (1 for an unexpected error, whose
traceback ``--debug`` shows).

Examples::

    league init configs/league/connect_four.yaml
    league add  configs/league/connect_four.yaml results/c4_selfplay/          # every snapshot, with lineage
    league add  configs/league/connect_four.yaml "bot:mcts?simulations=400" --name mcts-400
    league run  configs/league/connect_four.yaml --mode round_robin --games-per-pair 4 --workers 2
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


def _console() -> Console:
    return Console(width=max(120, Console().width), highlight=False)


def _open(config: str):
    from league.config import load_config
    from league.league import League

    return League(load_config(config))


def cmd_init(a) -> int:
    from league.config import EnvBlock, LeagueConfig, StoreBlock, write_config

    if not os.path.exists(a.config):
        if not a.env:
            raise ConfigError(f"league config '{a.config}' does not exist; pass --env ENV_ID to create it")
        cfg = LeagueConfig(name=os.path.splitext(os.path.basename(a.config))[0], env=EnvBlock(id=a.env),
                           store=StoreBlock(url=a.db))
        write_config(cfg, a.config)
        print(f"wrote {a.config}")
    elif a.env or a.db:
        raise ConfigError(f"league config '{a.config}' exists; edit it instead of passing --env/--db")
    league = _open(a.config)
    added = league.register_config_players()
    for src in league.config.snapshots:
        d = league.config.resolve(src.dir)
        if not os.path.isdir(d):
            print(f"snapshots '{d}': not there yet (train the run, then `league add {a.config} {d}`)")
    new = sum(1 for _, created in added if created)
    print(f"league '{league.config.name}' at {league.store.url}: {len(league.store.players())} players "
          f"({new} new), {league.store.match_count()} matches")
    return 0


def cmd_add(a) -> int:
    league = _open(a.config)
    for info, created in league.add_path(a.path, name=a.name, behavior=a.behavior):
        print(f"{'added' if created else 'already registered'}: {info.name} ({info.policy})")
    return 0


def cmd_run(a) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from league import tournaments as T
    from league.runners import make_runner

    league = _open(a.config)
    t, r = league.config.tournament, league.config.runner
    mode = a.mode or ("matchmade" if a.games else t.mode)
    kind = "ray" if (a.ray or a.address) else r.kind
    runner = make_runner(kind, a.workers or r.workers, a.address or r.address, r.max_retries)
    players = a.players.split(",") if a.players else None
    console = _console()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar, runner:
        task = bar.add_task(f"{mode} ({kind})", total=None)

        def progress(_res, _new):
            bar.advance(task)

        points = None
        if mode == "round_robin":
            stats = T.run_round_robin(league, runner, players, a.games_per_pair, a.seed, progress)
        elif mode == "gauntlet":
            if not a.challenger:
                raise LeagueError("--mode gauntlet needs --challenger NAME")
            stats = T.run_gauntlet(league, runner, a.challenger, players, a.games_per_pair, a.seed, progress)
        elif mode == "swiss":
            stats, points = T.run_swiss(league, runner, players, a.rounds, a.seed, progress)
        else:
            stats = T.run_matchmade(league, runner, a.games or t.games, a.matchmaking, a.challenger, players,
                                    a.seed, progress)
    console.print(f"{mode}: {stats.completed} matches in {stats.seconds:.1f} s "
                  f"({stats.matches_per_second:.2f} matches/s), {stats.retried} retried, {len(stats.failed)} failed")
    for uid, why in list(stats.failed.items())[:5]:
        console.print(f"  failed {uid}: {why}")
    if points:
        console.print("swiss points: " + ", ".join(f"{k} {v:g}" for k, v in sorted(points.items(), key=lambda kv: -kv[1])))
    from league.leaderboard import leaderboard, rich_table

    system = league.config.ratings.default_system
    console.print(rich_table(leaderboard(league, system), system))
    return 0 if not stats.failed else 1


def cmd_leaderboard(a) -> int:
    from league.leaderboard import leaderboard, rich_table, rows_json

    league = _open(a.config)
    system = a.system or league.config.ratings.default_system
    rows = leaderboard(league, system, include_inactive=a.all)
    _console().print(rich_table(rows, system, f"{league.config.name}: leaderboard ({system})"))
    if a.json:
        print(json.dumps({"league": league.config.name, **rows_json(rows, system)}))
    return 0


def cmd_matches(a) -> int:
    from rich.table import Table

    league = _open(a.config)
    ms = league.store.recent_matches(a.limit, a.player)
    t = Table(title=f"{league.config.name}: recent matches")
    for c in ("ended", "seats (score)", "length", "seed", "worker", "uid"):
        t.add_column(c)
    for m in ms:
        t.add_row(m["ended_at"] or "", " vs ".join(f"{s['player']} ({s['score']:g})" for s in m["seats"]),
                  str(m["episode_length"]), str(m["seed"]), m["worker"], m["uid"][:12])
    _console().print(t)
    if a.json:
        print(json.dumps({"matches": ms}))
    return 0


def cmd_serve(a) -> int:
    import uvicorn

    from league.web import create_app

    league = _open(a.config)
    print(f"serving league '{league.config.name}' on http://{a.host}:{a.port}/")
    uvicorn.run(create_app(league), host=a.host, port=a.port, log_level="warning")
    return 0


def cmd_export(a) -> int:
    from league.export import export_top

    league = _open(a.config)
    m = export_top(league, a.top, a.to, a.system or league.config.ratings.default_system)
    for e in m["players"]:
        print(f"#{e['rank']} {e['player']} ({e['rating']:.1f}) -> {os.path.join(a.to, e['file'])}")
    print(f"manifest: {os.path.join(a.to, 'league_manifest.json')}")
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

    s = add("init", cmd_init, "create the store and register the config's players (creates the config with --env)")
    s.add_argument("--env", help="env id for a new config, e.g. openspiel:connect_four")
    s.add_argument("--db", help="store URL for a new config (default: SQLite league.db beside it)")
    s = add("add", cmd_add, "register a .onnx/.pt file, a results/<run-id>/ folder, or a bot spec")
    s.add_argument("path")
    s.add_argument("--name", help="player name (default: file stem; bots: spec)")
    s.add_argument("--behavior", help="behavior name (results folders: only this behavior)")
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
    s.add_argument("--seed", type=int)
    s = add("leaderboard", cmd_leaderboard, "print the leaderboard")
    s.add_argument("--system", choices=SYSTEM_CHOICES)
    s.add_argument("--json", action="store_true", help="also print one JSON object on the last line")
    s.add_argument("--all", action="store_true", help="include inactive players")
    s = add("matches", cmd_matches, "list recent matches")
    s.add_argument("--player")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true")
    s = add("serve", cmd_serve, "serve the leaderboard page and JSON API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s = add("export", cmd_export, "copy the top players' ONNX files with a ratings manifest")
    s.add_argument("--top", type=int, required=True)
    s.add_argument("--to", required=True, help="destination folder, e.g. unity_project/Assets/Brains")
    s.add_argument("--system", choices=SYSTEM_CHOICES)
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
