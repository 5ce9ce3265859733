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
def test_ray_runner_in_a_port_range_streams_batched_results_and_leaves_no_process(store):
    pytest.importorskip("ray")
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    from league_kill_test import alive, descendants

    from marl.raytools import current, find_free_port_range

    low, high = find_free_port_range(40)
    seen = []
    with RayRunner(workers=2, ray_ports=f"{low}-{high}") as runner:
        try:
            stats = runner.run(_tasks(12), lambda r: seen.append(store.record_match(r)))
        except Exception as exc:  # noqa: BLE001
            if "cannot start" in str(exc):
                pytest.skip(f"Ray cannot start here: {exc}")
            raise
        ray_procs = {p: c for p, c in descendants(os.getpid()).items() if "ray" in c}
        assert runner._match_seconds is not None  # measured, for the adaptive batch size
        assert current().ports == (low, high)  # started through marl.raytools inside the range
    assert stats.completed == 12 and all(seen) and not stats.failed
    assert store.match_count() == 12
    assert all(w.startswith("ray:") for w in {m["worker"] for m in store.recent_matches(20)})
    assert ray_procs  # Ray really ran here: raylet, GCS, agents, workers
    import time

    deadline = time.monotonic() + 10
    while alive(ray_procs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(ray_procs), alive(ray_procs)  # close() leaves nothing behind (agents included)


def test_ray_batch_size_targets_half_a_second_and_keeps_every_cpu_busy():
    r = RayRunner(workers=2)
    assert r._batch_size(100, 2) == 2  # nothing measured yet
    r._match_seconds = 0.01
    assert r._batch_size(1000, 2) == 50  # 0.5 s of 10 ms matches
    assert r._batch_size(20, 2) == 5  # the tail: ceil(20 / (2 * 2)) so all 4 in-flight slots get work
    r._match_seconds = 2.0
    assert r._batch_size(1000, 2) == 1
    assert RayRunner(workers=2, matches_per_task=7)._batch_size(3, 2) == 7
