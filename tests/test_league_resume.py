"""Resumable tournaments (stored schedule, derived match ids, fresh seeds), games that differ (action hashes,
per-env-kind opening moves, the replay warning), the v1 -> v2 store migration, and a SIGKILLed `league run`."""
from __future__ import annotations

import json
import os
import random
import shutil
import sys

import pytest

from league import tournaments as T
from league.config import EnvBlock, LeagueConfig, MatchBlock, TournamentBlock
from league.errors import LeagueError
from league.league import League
from league.match import MatchTask, default_opening_moves, play_match
from league.migrations import HEAD
from league.policies import PlayerCache, PlayerSpec, file_sha256
from league.records import diversity, match_uid
from league.runners import RunStats
from league.store import LeagueStore, sqlite_url

C4 = "openspiel:connect_four"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


class Crash(Exception):
    """Stands for a SIGKILL: the run stops between two recorded matches."""


class SerialRunner:
    """In-process runner (no worker start-up); raises :class:`Crash` once ``crash_after`` results were delivered."""

    def __init__(self, crash_after: int | None = None):
        self.crash_after, self.delivered, self.cache, self.seen = crash_after, 0, PlayerCache(), []

    def run(self, tasks, on_result) -> RunStats:
        stats = RunStats()
        for t in tasks:
            if self.crash_after is not None and self.delivered >= self.crash_after:
                raise Crash()
            self.seen.append(t)
            on_result(play_match(t, self.cache))
            self.delivered += 1
            stats.completed += 1
        return stats


def _league(tmp_path, **tournament) -> League:
    cfg = LeagueConfig(name="t", env=EnvBlock(id=C4), tournament=TournamentBlock(**tournament))
    lg = League(cfg, LeagueStore(sqlite_url(tmp_path / "league.db")))
    for name, policy in (("r1", "bot:random"), ("r2", "bot:random"), ("m2", "bot:mcts?simulations=2")):
        lg.store.add_player(name, policy=policy, env_id=C4)
    return lg


def _hashes(lg: League) -> dict[str, str]:
    return {m["uid"]: m["action_hash"] for m in lg.store.recent_matches(10_000)}


def test_round_robin_resume_plays_exactly_the_missing_matches(tmp_path):
    lg = _league(tmp_path)
    info = T.start(lg, "round_robin", games_per_pair=2, seed=5)
    sched = lg.store.schedule(info.id)
    assert info.scheduled == len(sched) == 12 and info.recorded == 0 and info.seed == 5  # stored before any match
    assert all(m.uid == match_uid(info.id, m.seats, m.game_index) for m in sched)
    assert sorted({m.game_index for m in sched}) == [0, 1] and len({m.uid for m in sched}) == 12
    with pytest.raises(Crash):
        T.run(lg, SerialRunner(crash_after=5), info.id)
    assert T.resolve(lg, None).id == info.id and lg.store.tournament(info.id).recorded == 5
    resumed = SerialRunner()
    out = T.run(lg, resumed, info.id)
    assert out.tournament.finished and out.stats.completed == 7 and out.already_recorded == 5
    assert [t.uid for t in resumed.seen] == [m.uid for m in sched[5:]]  # only the missing ones, in schedule order
    assert sorted(lg.store.match_uids()) == sorted(m.uid for m in sched)  # exactly the schedule, once each
    with pytest.raises(LeagueError, match="no unfinished tournament"):
        T.resolve(lg, None)
    # the crashed-and-resumed tournament played the same games as an uninterrupted one with the same seed
    again = T.start(lg, "round_robin", games_per_pair=2, seed=5)
    T.run(lg, SerialRunner(), again.id)
    h = _hashes(lg)
    assert [h[m.uid] for m in sched] == [h[m.uid] for m in lg.store.schedule(again.id)]
    assert diversity(lg.games()).games == 24


def test_new_tournaments_draw_fresh_seeds_unless_one_is_fixed(tmp_path):
    lg = _league(tmp_path)
    a, b = (T.start(lg, "round_robin", games_per_pair=1) for _ in range(2))
    assert a.id != b.id and a.seed != b.seed
    sa, sb = lg.store.schedule(a.id), lg.store.schedule(b.id)
    assert not {m.uid for m in sa} & {m.uid for m in sb} and [m.seed for m in sa] != [m.seed for m in sb]
    os.makedirs(tmp_path / "f")
    fixed = _league(tmp_path / "f", seed=3)
    c = T.start(fixed, "round_robin", games_per_pair=1)
    d = T.start(fixed, "round_robin", games_per_pair=1, seed=4)
    assert (c.seed, d.seed) == (3, 4)
    assert [m.seed for m in fixed.store.schedule(c.id)] == [m.seed for m in T.schedule_block(
        "x", 0, [m.seats for m in fixed.store.schedule(c.id)], T.block_rng(3, 0), [])]


def test_swiss_and_matchmade_resume_schedule_each_block_once(tmp_path):
    lg = _league(tmp_path, batch=2)
    sw = T.start(lg, "swiss", rounds=3, seed=1)
    with pytest.raises(Crash):  # 3 players: one match and a bye per round; dies in round 3
        T.run(lg, SerialRunner(crash_after=2), sw.id)
    assert {m.block for m in lg.store.schedule(sw.id)} == {0, 1, 2}  # round 3 was stored before it was played
    out = T.run(lg, SerialRunner(), sw.id)
    assert out.tournament.finished and out.tournament.recorded == T.expected_matches(out.tournament) == 3
    assert len(out.tournament.state["byes"]) == 3 and sum(out.points.values()) == 6.0  # 3 matches + 3 byes

    mm = T.start(lg, "matchmade", games=5, matchmaking="random", seed=2)
    with pytest.raises(Crash):
        T.run(lg, SerialRunner(crash_after=3), mm.id)
    out = T.run(lg, SerialRunner(), mm.id)
    sched = lg.store.schedule(mm.id)
    assert out.tournament.finished and len(sched) == 5 and [m.block for m in sched] == [0, 0, 1, 1, 2]
    assert lg.store.recorded_uids(mm.id) == {m.uid for m in sched}


def test_v1_store_migrates_to_v2_and_old_matches_count_as_unknown(tmp_path):
    src = os.path.join(ROOT, "tests", "fixtures", "compat_v1", "league", "league.db")
    shutil.copy(src, tmp_path / "league.db")
    store = LeagueStore(sqlite_url(tmp_path / "league.db"))
    from sqlalchemy import text

    with store.engine.connect() as c:
        assert c.execute(text("SELECT MAX(version) FROM schema_version")).scalar() == HEAD == 2
    games = store.games()
    div = diversity(games)
    assert div.games == len(games) > 0 and div.known == 0  # recorded before action hashes: unknown
    assert "recorded before action hashes (unknown)" in div.line() and "warning" not in div.line()
    store.close()
    LeagueStore(sqlite_url(tmp_path / "league.db")).close()  # reopening an upgraded store is a no-op


def test_default_opening_moves_make_deterministic_players_differ(tmp_path):
    from test_league_match import export_column_policy

    assert default_opening_moves(C4) == 2 and default_opening_moves("pettingzoo.classic.tictactoe_v3") == 2
    assert default_opening_moves("mpe2.simple_adversary_v3") == 0
    assert MatchBlock().opening_moves_for(C4) == 2 and MatchBlock(opening_moves=0).opening_moves_for(C4) == 0
    a = export_column_policy(tmp_path / "a.onnx", [0, 1, 2, 3, 4, 5, 6])
    b = export_column_policy(tmp_path / "b.onnx", [3, 2, 4, 1, 5, 0, 6])
    seats = (PlayerSpec("a", a, file_sha256(a)), PlayerSpec("b", b, file_sha256(b)))
    cache = PlayerCache()

    def hashes(opening):
        return [play_match(MatchTask(f"m{s}", C4, s, seats, opening_moves=opening), cache).action_hash
                for s in range(8)]

    same = hashes(0)
    assert len(set(same)) == 1 and all(same)  # greedy players, fixed start: one game replayed 8 times
    from league.records import Game

    div = diversity([Game((("a",), ("b",)), (0, 1), i, action_hash=h) for i, h in enumerate(same)])
    assert div.mostly_replays and "warning: most games are exact replays" in div.line()
    assert len(set(hashes(default_opening_moves(C4)))) >= 6


def test_cli_kill_then_resume_records_exactly_the_schedule(tmp_path, capsys):
    """`league run` SIGKILLed mid-tournament: its workers and the resource tracker are gone within 10 s, and
    `--resume` completes the log to exactly the stored schedule (benchmarks/league_kill_test.py, 1 kill)."""
    from league.cli import main
    from league_kill_test import kill_and_check, write_league

    config = write_league(str(tmp_path), games_per_pair=2)
    r = kill_and_check(config, 1, random.Random(0), [], window=(0, 0), grace=10.0, log=lambda *_: None,
                       after_first_match=True)
    assert r["killed"] == [True]  # killed mid-run, after its first recorded match
    assert r["leftovers"] == [{}] and r["gone_after"][0] < 10.0
    assert r["uids_match"] and r["duplicates"] == 0 and r["recorded"] == r["scheduled"] == 24
    assert r["finished"] and r["final_rc"] == 0
    # the CLI's resume errors are one line each
    capsys.readouterr()
    assert main(["run", config, "--resume", "--mode", "swiss"]) == 2
    assert capsys.readouterr().err.strip() == ("league run: error: --resume continues a tournament as it was "
                                               "scheduled; drop --mode")
    assert main(["run", config, "--resume"]) == 2
    assert "no unfinished tournament" in capsys.readouterr().err
    assert main(["run", config, "--resume", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no tournament 'nosuch'" in err[0] and r["tournament"] in err[0]
    assert main(["run", config, "--resume", r["tournament"]]) == 0
    assert "is finished (24 of 24 matches recorded); nothing to resume" in capsys.readouterr().out
    assert main(["leaderboard", config, "--json"]) == 0
    games = json.loads(capsys.readouterr().out)["games"]
    assert games["games"] == games["known"] == 24 and games["distinct"] >= 20 and not games["mostly_replays"]
