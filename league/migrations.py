"""Versioned schema migrations for the league store (a small, documented equivalent of Alembic).

How it works (the same model as Alembic's "create_all, then stamp head" recipe):

* ``schema_version`` holds one row per applied migration; the database's version is the highest row.
* A fresh database gets every table from the current models (``metadata.create_all``) and is stamped
  with :data:`HEAD`; nothing else runs.
* An existing database at version ``v < HEAD`` gets migrations ``v+1 .. HEAD`` applied in order, each
  in its own transaction together with its ``schema_version`` row. The version is read again inside that
  transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``schema_version`` locked), so two processes
  opening an old store at once apply each migration once.
* A database newer than the code (``v > HEAD``) is refused with a clear error.

To change the schema: edit the models in :mod:`league.store`, append ``(N, "what changed", fn)`` to
:data:`MIGRATIONS` where ``fn(connection)`` brings a version ``N-1`` database to version ``N``
(``fn(connection, metadata)``; ``ALTER TABLE ...`` through ``connection.exec_driver_sql`` or SQLAlchemy DDL; keep it portable
between SQLite and PostgreSQL), and add a test that upgrades a version ``N-1`` database.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import MetaData, Table, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from league.errors import StoreError


def _v1_initial(conn: Connection, metadata: MetaData) -> None:
    """Version 1: the initial schema (players, matches, match_seats, rating_history)."""
    metadata.create_all(conn)


def _v2_tournaments_and_action_hashes(conn: Connection, metadata: MetaData) -> None:
    """Version 2: resumable tournaments and game identity.

    * tables ``tournaments`` and ``tournament_matches`` (each tournament's schedule);
    * column ``matches.action_hash`` (nullable: matches recorded before version 2 keep NULL = unknown);
    * an index on ``matches.tournament``.
    """
    for name in ("tournaments", "tournament_matches"):
        metadata.tables[name].create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("matches")}
    if "action_hash" not in columns:
        conn.exec_driver_sql("ALTER TABLE matches ADD COLUMN action_hash VARCHAR(32)")
    for index in metadata.tables["matches"].indexes:
        if list(index.columns.keys()) == ["tournament"]:
            index.create(conn, checkfirst=True)


#: Ordered migrations: (version, description, function(connection, the models' metadata)).
MIGRATIONS: list[tuple[int, str, Callable[[Connection, MetaData], None]]] = [
    (1, "initial schema", _v1_initial),
    (2, "tournaments with stored schedules; matches.action_hash", _v2_tournaments_and_action_hashes),
]
HEAD = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int | None:
    """The database's schema version, or None when it has no league tables at all."""
    if not inspect(conn).has_table("schema_version"):
        return None
    v = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(v) if v is not None else None


def upgrade(engine: Engine, metadata: MetaData, version_table: Table, label: str) -> int:
    """Bring the database to :data:`HEAD`; returns the resulting version.

    Args:
        engine: the store's engine.
        metadata: the models' metadata (``league.store.Base.metadata``; passed in so this module does
            not import the store that calls it).
        version_table: the ``schema_version`` table.
        label: the store's URL without password, for messages.

    Raises:
        StoreError: the database is unreachable, newer than this code, or a migration failed.
    """
    try:
        with engine.begin() as conn:
            version = current_version(conn)
            if version is None:
                metadata.create_all(conn)
                conn.execute(version_table.insert(), [{"version": HEAD, "description": "created at head"}])
                return HEAD
            if version > HEAD:
                raise StoreError(f"store '{label}' has schema version {version}, newer than "
                                 f"this code ({HEAD}); upgrade the toolkit")
        for number, description, fn in MIGRATIONS:
            if number <= version:
                continue
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("LOCK TABLE schema_version IN EXCLUSIVE MODE")
                now = current_version(conn) or 0
                if now < number:  # else another process applied it meanwhile
                    fn(conn, metadata)
                    conn.execute(version_table.insert(), [{"version": number, "description": description}])
            version = number
        return version
    except SQLAlchemyError as exc:
        raise StoreError(f"store '{label}': cannot open/migrate: "
                         f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None


__all__ = ["MIGRATIONS", "HEAD", "upgrade", "current_version"]
