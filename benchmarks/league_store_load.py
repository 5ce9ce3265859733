"""Store load: 10,000 match results written by 8 concurrent worker processes, SQLite and PostgreSQL.

Each worker also re-sends 10% of its neighbour's uids and every 7th of its own, so writers race on the
same uids. Prints results/s and the lost/duplicated counts (both must be 0).

    .venv/bin/python benchmarks/league_store_load.py [--results 10000] [--workers 8]
        [--pg postgresql+psycopg2://league:league@127.0.0.1:5432/league_test]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text

from league.store import LeagueStore, sqlite_url
from league.synthetic import new_uids, write_load

PLAYERS = [f"p{i}" for i in range(10)]


def load(url: str, n: int, workers: int) -> str:
    store = LeagueStore(url)
    for p in PLAYERS:
        store.add_player(p, policy="bot:random", env_id="openspiel:connect_four")
    uids = new_uids(n)
    chunk = n // workers
    parts = []
    for w in range(workers):
        own = uids[w * chunk:(w + 1) * chunk] if w < workers - 1 else uids[w * chunk:]
        parts.append(own + uids[((w + 1) % workers) * chunk:][: chunk // 10])
    t = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        out = pool.starmap(write_load, [(url, parts[w], PLAYERS, w, 7) for w in range(workers)])
    dt = time.perf_counter() - t
    stored = store.match_uids()
    lost = len(set(uids) - set(stored))
    dup = len(stored) - len(set(stored))
    with store.engine.connect() as c:
        seats = c.execute(text("SELECT COUNT(*) FROM match_seats")).scalar()
    store.close()
    return (f"{n} results by {workers} writers: {len(stored)} stored, lost={lost}, duplicated={dup}, "
            f"seat rows={seats}, refused re-sends={sum(o[1] for o in out)}, {dt:.1f} s ({n / dt:.0f} results/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--pg", default="postgresql+psycopg2://league:league@127.0.0.1:5432/league_test")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print("sqlite:     " + load(sqlite_url(f"{d}/load.db"), a.results, a.workers))
    schema = f"load_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(a.pg, connect_args={"connect_timeout": 3})
        with admin.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql: skipped ({str(exc).splitlines()[0][:100]})")
        return
    try:
        url = a.pg + ("&" if "?" in a.pg else "?") + f"options=-csearch_path%3D{schema}"
        print("postgresql: " + load(url, a.results, a.workers))
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
