"""League store: idempotent match recording, concurrent writers (SQLite and PostgreSQL), migrations."""
from __future__ import annotations

import multiprocessing as mp
import os
import uuid

import pytest
from sqlalchemy import text

from league.errors import StoreError, UnknownPlayerError
from league.migrations import HEAD
from league.store import LeagueStore, sqlite_url
from league.synthetic import fake_result, new_uids, write_load

PG_URL = os.environ.get("LEAGUE_TEST_PG_URL", "postgresql+psycopg2://league:league@127.0.0.1:5432/league_test")
PLAYERS = [f"p{i}" for i in range(6)]


def _store_with_players(url: str) -> LeagueStore:
    s = LeagueStore(url)
    for p in PLAYERS:
        s.add_player(p, policy="bot:random", env_id="openspiel:connect_four")
    return s


@pytest.fixture()
def sqlite_store(tmp_path):
    s = _store_with_players(sqlite_url(tmp_path / "league.db"))
    yield s
    s.close()


def _pg_available() -> str | None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed"
    from sqlalchemy import create_engine

    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001
        return f"no PostgreSQL server at {PG_URL.split('@')[-1]} ({str(exc).splitlines()[0][:80]}); run .ci/system-deps"
    return None


@pytest.fixture()
def pg_store():
    why = _pg_available()
    if why:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    from sqlalchemy import create_engine

    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    s = _store_with_players(url)
    yield s
    s.close()
    with admin.begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_fresh_store_is_at_head_and_newer_db_is_refused(tmp_path):
    url = sqlite_url(tmp_path / "x.db")
    s = LeagueStore(url)
    with s.engine.connect() as c:
        assert c.execute(text("SELECT MAX(version) FROM schema_version")).scalar() == HEAD
        c.exec_driver_sql("INSERT INTO schema_version (version, description, applied_at) "
                          f"VALUES ({HEAD + 1}, 'future', '2030-01-01')")
        c.commit()
    s.close()
    with pytest.raises(StoreError, match="newer than this code"):
        LeagueStore(url)


def test_record_match_is_idempotent(sqlite_store):
    r = fake_result("m1", "p0", "p1", 1.0)
    assert sqlite_store.record_match(r) is True
    assert sqlite_store.record_match(r) is False
    assert sqlite_store.match_count() == 1
    [g] = sqlite_store.games()
    assert g.teams == (("p0",), ("p1",)) and g.ranks == (0, 1)


def test_unknown_player_in_a_match_writes_nothing(sqlite_store):
    with pytest.raises(UnknownPlayerError, match="ghost"):
        sqlite_store.record_match(fake_result("m2", "p0", "ghost", 1.0))
    assert sqlite_store.match_count() == 0


def test_add_player_is_idempotent_but_names_are_unique(sqlite_store):
    _, created = sqlite_store.add_player("p0", policy="bot:random", env_id="openspiel:connect_four")
    assert created is False
    with pytest.raises(StoreError, match="already exists with a different policy"):
        sqlite_store.add_player("p0", policy="bot:mcts", env_id="openspiel:connect_four")
    with pytest.raises(UnknownPlayerError, match="unknown player 'zz'"):
        sqlite_store.get_player("zz")
    info, _ = sqlite_store.add_player("child", policy="bot:random", env_id="e", parent="p0")
    assert info.parent == "p0"


def _concurrent_load(url: str, n_results: int, n_workers: int = 8) -> None:
    """n_workers processes write n_results uids; each worker also re-sends 10% of its neighbour's uids and
    repeats some of its own, so the same uid races between writers."""
    uids = new_uids(n_results)
    chunk = n_results // n_workers
    parts = []
    for w in range(n_workers):
        own = uids[w * chunk:(w + 1) * chunk] if w < n_workers - 1 else uids[w * chunk:]
        nxt = uids[((w + 1) % n_workers) * chunk:][: chunk // 10]
        parts.append(own + nxt)
    # fork: workers start in milliseconds (spawn re-imports everything, slow on a loaded 2-core box); each
    # worker opens its own engine in write_load, and the parent's pooled connections are dropped first.
    ctx = mp.get_context("fork")
    with ctx.Pool(n_workers) as pool:
        out = pool.starmap(write_load, [(url, parts[w], PLAYERS, w, 7) for w in range(n_workers)])
    written = sum(o[0] for o in out)
    refused = sum(o[1] for o in out)
    assert written == n_results
    assert refused == sum(len(p) for p in parts) + sum(1 for p in parts for k in range(len(p)) if k % 7 == 0) - n_results
    return uids


def test_concurrent_sqlite_writers_lose_and_duplicate_nothing(sqlite_store):
    sqlite_store.engine.dispose()
    uids = _concurrent_load(sqlite_store.url, 400)
    stored = sqlite_store.match_uids()
    assert len(stored) == len(set(stored)) == 400 and set(stored) == set(uids)
    with sqlite_store.engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM match_seats")).scalar() == 800


def test_concurrent_postgres_writers_lose_and_duplicate_nothing(pg_store):
    pg_store.engine.dispose()
    uids = _concurrent_load(pg_store.url, 400)
    stored = pg_store.match_uids()
    assert len(stored) == len(set(stored)) == 400 and set(stored) == set(uids)
    assert len(pg_store.games()) == 400
