"""Runners: local processes (with a worker that dies mid-match) and Ray, streaming into the store."""
from __future__ import annotations

import os

import pytest

from league.match import MatchTask
from league.policies import PlayerSpec
from league.runners import LocalRunner, RayRunner
from league.store import LeagueStore, sqlite_url

C4 = "openspiel:connect_four"


def crashing_env(marker: str):
    """Env factory that kills its worker process the first time it is called (marker file absent)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(17)
    from envs.registry import make_env

    return make_env(C4, prefer="aec")


def _tasks(n, env_id=C4, env_kwargs=None):
    seats = (PlayerSpec("a", "bot:random"), PlayerSpec("b", "bot:mcts?simulations=5"))
    return [MatchTask(f"u{i:03d}", env_id, i, seats, env_kwargs=dict(env_kwargs or {})) for i in range(n)]


@pytest.fixture()
def store(tmp_path):
    s = LeagueStore(sqlite_url(tmp_path / "league.db"))
    for p in ("a", "b"):
        s.add_player(p, policy="bot:random", env_id=C4)
    yield s
    s.close()


def test_local_runner_retries_the_match_of_a_dead_worker(store, tmp_path):
    marker = str(tmp_path / "crashed")
    tasks = _tasks(6) + [MatchTask("crashy", "test_league_runners:crashing_env", 99,
                                   (PlayerSpec("a", "bot:random"), PlayerSpec("b", "bot:random")),
                                   env_kwargs={"marker": marker})]
    seen = []
    with LocalRunner(workers=2, max_retries=2) as runner:
        stats = runner.run(tasks, lambda r: seen.append(store.record_match(r)))
        assert os.path.exists(marker)  # a worker really died
        assert stats.completed == 7 and stats.retried == 1 and not stats.failed
        # the same tasks again (e.g. a resumed tournament): nothing is recorded twice
        stats2 = runner.run(tasks[:3], lambda r: seen.append(store.record_match(r)))
    assert stats2.completed == 3
    assert seen.count(True) == 7 and seen.count(False) == 3
    assert sorted(store.match_uids()) == sorted(t.uid for t in tasks)


def test_local_runner_results_match_serial_play(store):
    from league.match import play_match

    tasks = _tasks(4)
    out = {}
    with LocalRunner(workers=2) as runner:
        runner.run(tasks, lambda r: out.__setitem__(r.uid, r))
    for t in tasks:
        serial = play_match(t)
        assert out[t.uid].seats == serial.seats and out[t.uid].episode_length == serial.episode_length


def test_local_runner_stops_on_user_errors(store):
    from league.errors import LeagueError

    bad = [MatchTask("bad", "no_such_module_xyz", 0, (PlayerSpec("a", "bot:random"), PlayerSpec("b", "bot:random")))]
    with LocalRunner(workers=1) as runner, pytest.raises(LeagueError, match="no_such_module_xyz"):
        runner.run(bad, lambda r: None)


@pytest.mark.slow  # starting Ray costs ~10 s (more on a loaded machine)
def test_ray_runner_streams_results(store):
    pytest.importorskip("ray")
    seen = []
    with RayRunner(workers=2) as runner:
        try:
            stats = runner.run(_tasks(4), lambda r: seen.append(store.record_match(r)))
        except Exception as exc:  # noqa: BLE001
            if "cannot start" in str(exc):
                pytest.skip(f"Ray cannot start here: {exc}")
            raise
    assert stats.completed == 4 and all(seen)
    assert store.match_count() == 4
    assert all(w.startswith("ray:") for w in {m["worker"] for m in store.recent_matches(10)})
