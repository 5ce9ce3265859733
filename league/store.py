"""The league store: SQLAlchemy 2 models and a small transactional API.

Tables: ``players``, ``matches`` (+ ``match_seats``, one row per side), ``rating_history``, ``tournaments``
(+ ``tournament_matches``: each tournament's schedule, stored before its first match) and ``schema_version``
(see :mod:`league.migrations`). Works unchanged on SQLite (default: a file) and on
PostgreSQL (``postgresql+psycopg2://user@host/db``).

Concurrency: several match workers may write at once. Each match carries a ``uid`` chosen before it is
played; :meth:`LeagueStore.record_match` inserts the match and its seats in one transaction, and a
``UNIQUE`` constraint on ``uid`` makes a second write of the same match a no-op (returns False), so a
retried match is never counted twice and a crash mid-write leaves nothing behind. On SQLite every
transaction starts with ``BEGIN IMMEDIATE`` in WAL mode with a busy timeout, so writers queue instead
of failing with "database is locked" (SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional
DDL" for pysqlite).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, create_engine,
                        event, func, select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from league.errors import StoreError, UnknownPlayerError
from league.records import Game, MatchResult, ScheduledMatch


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the league schema."""


class Player(Base):
    """A registered player: a policy file (checkpoint / ONNX) or a built-in bot (``bot:random``, ``bot:mcts?simulations=100``)."""

    __tablename__ = "players"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # e.g. the training step of a snapshot
    behavior: Mapped[str] = mapped_column(String(200), default="")
    env_id: Mapped[str] = mapped_column(String(500))
    policy: Mapped[str] = mapped_column(String(1000))  # absolute file path or bot spec
    policy_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 hex of the file
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("players.id"), nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)  # run_id, step, ...
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    parent: Mapped["Player | None"] = relationship(remote_side="Player.id")


class Match(Base):
    """A finished match (recorded once, by ``uid``)."""

    __tablename__ = "matches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # order of recording
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    env_id: Mapped[str] = mapped_column(String(500))
    env_kwargs: Mapped[dict] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer)
    episode_length: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    worker: Mapped[str] = mapped_column(String(200), default="")
    replay_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    tournament: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    action_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)  # schema v2; None = unknown
    seats: Mapped[list["MatchSeat"]] = relationship(back_populates="match", order_by="MatchSeat.seat",
                                                    cascade="all, delete-orphan")


class MatchSeat(Base):
    """One side of a match: who played it, which agents, its score and rank (0 = best)."""

    __tablename__ = "match_seats"
    __table_args__ = (UniqueConstraint("match_id", "seat"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"), index=True)
    seat: Mapped[int] = mapped_column(Integer)
    team: Mapped[int] = mapped_column(Integer)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    agents: Mapped[list] = mapped_column(JSON, default=list)
    score: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    match: Mapped[Match] = relationship(back_populates="seats")
    player: Mapped[Player] = relationship()


class RatingSnapshot(Base):
    """A player's rating under one system after the first ``n_matches`` matches of the log."""

    __tablename__ = "rating_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    system: Mapped[str] = mapped_column(String(32))
    rating: Mapped[float] = mapped_column(Float)
    lower: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_matches: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Tournament(Base):
    """A tournament (schema v2): its id, mode, recorded seed and parameters; ``finished_at`` is set once every
    scheduled match is recorded and no block remains to be scheduled."""

    __tablename__ = "tournaments"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    env_id: Mapped[str] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # players, games_per_pair, rounds, opening_moves, ...
    state: Mapped[dict] = mapped_column(JSON, default=dict)  # per-block extras, e.g. Swiss byes
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TournamentMatch(Base):
    """One scheduled match of a tournament (schema v2); the played match is the ``matches`` row with this ``uid``."""

    __tablename__ = "tournament_matches"
    __table_args__ = (UniqueConstraint("tournament_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament_id: Mapped[str] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    block: Mapped[int] = mapped_column(Integer)
    idx: Mapped[int] = mapped_column(Integer)
    seats: Mapped[list] = mapped_column(JSON)
    game_index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class TournamentInfo:
    """Detached view of a :class:`Tournament` row with its progress (``scheduled`` / ``recorded`` matches)."""

    id: str
    env_id: str
    mode: str
    seed: int
    params: dict
    state: dict
    created_at: dt.datetime
    finished_at: dt.datetime | None
    scheduled: int
    recorded: int

    @property
    def finished(self) -> bool:
        """True once the tournament was marked finished."""
        return self.finished_at is not None


class SchemaVersion(Base):
    """Applied schema migrations (see :mod:`league.migrations`)."""

    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class PlayerInfo:
    """Detached, plain view of a :class:`Player` row."""

    id: int
    name: str
    version: int
    behavior: str
    env_id: str
    policy: str
    policy_hash: str | None
    parent: str | None
    tags: tuple[str, ...]
    meta: dict
    created_at: dt.datetime
    active: bool


def _info(p: Player) -> PlayerInfo:
    return PlayerInfo(p.id, p.name, p.version, p.behavior, p.env_id, p.policy, p.policy_hash,
                      p.parent.name if p.parent is not None else None, tuple(p.tags or ()), dict(p.meta or {}),
                      p.created_at, p.active)


def sqlite_url(path: str | os.PathLike) -> str:
    """SQLAlchemy URL of a SQLite file (absolute path)."""
    return "sqlite:///" + os.path.abspath(os.fspath(path))


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a 60 s busy timeout, foreign keys and ``BEGIN IMMEDIATE`` transactions.

    Raises:
        StoreError: the URL cannot be parsed or its driver is missing.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
                cur = dbapi_conn.cursor()
                if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn):  # pragma: no cover - trivial
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"store url '{_safe_url(url)}': cannot create engine: {str(exc).splitlines()[0]}") from None
    return engine


def _safe_url(url: str) -> str:
    """URL with any password masked, for error messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return url.split("@")[-1]


class LeagueStore:
    """Transactional access to one league database.

    Args:
        url: SQLAlchemy URL (``sqlite:////abs/league.db`` or ``postgresql+psycopg2://...``).
        migrate: apply pending schema migrations on open (the CLI's ``init`` does; workers need not).

    Raises:
        StoreError: the database cannot be reached or migrated.
    """

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.engine = make_engine(url)
        self._pid: dict[str, int] = {}
        if migrate:
            from league.migrations import upgrade

            upgrade(self.engine, Base.metadata, SchemaVersion.__table__, _safe_url(str(self.engine.url)))

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        Raises:
            StoreError: on database errors other than integrity violations (those propagate for callers).
        """
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except IntegrityError:
                s.rollback()
                raise
            except OperationalError as exc:
                s.rollback()
                raise StoreError(f"store '{_safe_url(self.url)}': {str(exc.orig).splitlines()[0]}") from None
            except BaseException:
                s.rollback()
                raise

    # ---------------------------------------------------------------- players
    def add_player(self, name: str, *, policy: str, env_id: str, behavior: str = "", version: int = 0,
                   policy_hash: str | None = None, parent: str | None = None, tags: list[str] | tuple = (),
                   meta: dict | None = None, active: bool = True) -> tuple[PlayerInfo, bool]:
        """Register a player; idempotent for the same name and policy hash.

        Returns:
            ``(player, created)``; ``created`` is False when the same player was already registered.

        Raises:
            StoreError: ``name`` exists with a different policy or hash.
            UnknownPlayerError: ``parent`` is not registered.
        """
        with self.session() as s:
            old = s.scalar(select(Player).where(Player.name == name))
            if old is not None:
                if old.policy != policy or old.policy_hash != policy_hash:
                    raise StoreError(f"player '{name}' already exists with a different policy "
                                     f"({old.policy}); choose another name (--name)")
                return _info(old), False
            parent_row = None
            if parent is not None:
                parent_row = s.scalar(select(Player).where(Player.name == parent))
                if parent_row is None:
                    raise UnknownPlayerError(f"parent player '{parent}' is not in the league")
            p = Player(name=name, policy=policy, env_id=env_id, behavior=behavior, version=version,
                       policy_hash=policy_hash, parent=parent_row, tags=list(tags), meta=dict(meta or {}),
                       active=active, created_at=utcnow())
            s.add(p)
        try:
            return self.get_player(name), True
        except UnknownPlayerError:  # pragma: no cover - just inserted
            raise StoreError(f"player '{name}' vanished after insert") from None

    def get_player(self, name: str) -> PlayerInfo:
        """The player called ``name``.

        Raises:
            UnknownPlayerError: no such player (the message lists a few known names).
        """
        with self.session() as s:
            p = s.scalar(select(Player).options(selectinload(Player.parent)).where(Player.name == name))
            if p is None:
                known = s.scalars(select(Player.name).order_by(Player.id).limit(8)).all()
                raise UnknownPlayerError(f"unknown player '{name}'; known players: {', '.join(known) or '(none)'}")
            return _info(p)

    def players(self, *, active_only: bool = False) -> list[PlayerInfo]:
        """All players in registration order."""
        with self.session() as s:
            q = select(Player).options(selectinload(Player.parent)).order_by(Player.id)
            if active_only:
                q = q.where(Player.active.is_(True))
            return [_info(p) for p in s.scalars(q)]

    def set_active(self, name: str, active: bool) -> None:
        """Retire (``False``) or re-activate a player. Raises UnknownPlayerError."""
        with self.session() as s:
            p = s.scalar(select(Player).where(Player.name == name))
            if p is None:
                raise UnknownPlayerError(f"unknown player '{name}'")
            p.active = active

    # ---------------------------------------------------------------- matches
    def record_match(self, result: MatchResult, *, retries: int = 5) -> bool:
        """Write a finished match and its seats in one transaction.

        Returns:
            True if written now, False if a match with this ``uid`` was already recorded (nothing changes).

        Raises:
            UnknownPlayerError: a seat names an unregistered player.
            StoreError: the database stayed locked/unreachable after ``retries`` attempts.
        """
        for attempt in range(retries + 1):
            try:
                with self.session() as s:
                    return self._insert(s, result)
            except IntegrityError:
                return False  # uid already present (a concurrent writer or a retried match won)
            except StoreError:
                if attempt == retries:
                    raise
                time.sleep(0.05 * 2 ** attempt)
        return False  # pragma: no cover

    def _insert(self, s: Session, r: MatchResult) -> bool:
        # A repeated uid is refused by the UNIQUE constraint (IntegrityError -> False in record_match); player
        # ids are cached (players are never deleted, only deactivated).
        names = {seat.player for seat in r.seats}
        if not names <= self._pid.keys():
            self._pid.update(dict(s.execute(select(Player.name, Player.id).where(Player.name.in_(names))).all()))
        ids = self._pid
        missing = sorted(names - ids.keys())
        if missing:
            raise UnknownPlayerError(f"match {r.uid}: unknown player(s) {', '.join(missing)}")
        m = Match(uid=r.uid, env_id=r.env_id, env_kwargs=dict(r.env_kwargs), seed=int(r.seed),
                  episode_length=int(r.episode_length), started_at=r.started_at, ended_at=r.ended_at,
                  worker=r.worker, replay_path=r.replay_path, tournament=r.tournament, action_hash=r.action_hash)
        m.seats = [MatchSeat(seat=i, team=seat.team, player_id=ids[seat.player], agents=list(seat.agents),
                             score=float(seat.score), rank=int(seat.rank)) for i, seat in enumerate(r.seats)]
        s.add(m)
        s.flush()
        return True

    def has_match(self, uid: str) -> bool:
        """True when a match with this uid is recorded."""
        with self.session() as s:
            return s.scalar(select(Match.id).where(Match.uid == uid)) is not None

    def match_count(self) -> int:
        """Number of recorded matches."""
        with self.session() as s:
            return int(s.scalar(select(func.count(Match.id))) or 0)

    def games(self, *, env_id: str | None = None) -> list[Game]:
        """The whole match log as :class:`Game` records, in recording order (the raters' only input)."""
        q = (select(MatchSeat.match_id, MatchSeat.seat, MatchSeat.rank, Player.name, Match.ended_at, Match.uid,
                    Match.action_hash)
             .join(Player, Player.id == MatchSeat.player_id).join(Match, Match.id == MatchSeat.match_id)
             .order_by(MatchSeat.match_id, MatchSeat.seat))
        if env_id is not None:
            q = q.where(Match.env_id == env_id)
        out: list[Game] = []
        with self.session() as s:
            cur_id, teams, ranks, when, uid, ah = None, [], [], None, "", None
            for mid, _seat, rank, name, ended, muid, mhash in s.execute(q):
                if mid != cur_id:
                    if cur_id is not None:
                        out.append(Game(tuple(teams), tuple(ranks), cur_id, when, uid, ah))
                    cur_id, teams, ranks, when, uid, ah = mid, [], [], ended, muid, mhash
                teams.append((name,))
                ranks.append(rank)
            if cur_id is not None:
                out.append(Game(tuple(teams), tuple(ranks), cur_id, when, uid, ah))
        return out

    def recent_matches(self, limit: int = 20, player: str | None = None) -> list[dict[str, Any]]:
        """The latest matches, newest first, as JSON-ready dicts (uid, env, seed, seats, length, times, worker).

        Raises:
            UnknownPlayerError: ``player`` is given and not registered.
        """
        with self.session() as s:
            q = select(Match).options(selectinload(Match.seats).selectinload(MatchSeat.player)).order_by(Match.id.desc())
            if player is not None:
                pid = s.scalar(select(Player.id).where(Player.name == player))
                if pid is None:
                    raise UnknownPlayerError(f"unknown player '{player}'")
                q = q.where(Match.id.in_(select(MatchSeat.match_id).where(MatchSeat.player_id == pid)))
            rows = s.scalars(q.limit(limit)).all()
            return [{"uid": m.uid, "env_id": m.env_id, "seed": m.seed, "episode_length": m.episode_length,
                     "started_at": _iso(m.started_at), "ended_at": _iso(m.ended_at), "worker": m.worker,
                     "tournament": m.tournament, "replay_path": m.replay_path, "action_hash": m.action_hash,
                     "seats": [{"player": st.player.name, "team": st.team, "agents": list(st.agents),
                                "score": st.score, "rank": st.rank} for st in m.seats]} for m in rows]

    def match_uids(self) -> list[str]:
        """All recorded match uids (for integrity checks)."""
        with self.session() as s:
            return list(s.scalars(select(Match.uid)))

    # ------------------------------------------------------------ tournaments
    def create_tournament(self, tid: str, *, env_id: str, mode: str, seed: int, params: dict,
                          schedule: list[ScheduledMatch] = (), state: dict | None = None) -> None:
        """Record a new tournament and its first scheduled matches in one transaction (before any is played).

        Raises:
            StoreError: ``tid`` exists already, or the database is unreachable.
        """
        try:
            with self.session() as s:
                s.add(Tournament(id=tid, env_id=env_id, mode=mode, seed=int(seed), params=dict(params),
                                 state=dict(state or {}), created_at=utcnow()))
                s.flush()
                self._add_schedule(s, schedule)
        except IntegrityError:
            raise StoreError(f"tournament '{tid}' already exists in the store") from None

    def schedule_block(self, tid: str, schedule: list[ScheduledMatch], state: dict | None = None) -> None:
        """Append one block (Swiss round, matchmade batch) to a tournament's schedule, with its ``state``
        (replacing the stored one), in one transaction. Raises StoreError when a uid or index is taken."""
        try:
            with self.session() as s:
                t = s.get(Tournament, tid)
                if t is None:
                    raise StoreError(f"no tournament '{tid}' in the store")
                if state is not None:
                    t.state = dict(state)
                self._add_schedule(s, schedule)
        except IntegrityError:
            raise StoreError(f"tournament '{tid}': block already scheduled (a second `league run --resume` "
                             "of the same tournament is running?)") from None

    @staticmethod
    def _add_schedule(s: Session, schedule) -> None:
        s.add_all([TournamentMatch(tournament_id=m.tournament, uid=m.uid, block=int(m.block), idx=int(m.index),
                                   seats=list(m.seats), game_index=int(m.game_index), seed=int(m.seed))
                   for m in schedule])

    def _tournament_info(self, s: Session, t: Tournament) -> TournamentInfo:
        scheduled = int(s.scalar(select(func.count(TournamentMatch.id)).where(TournamentMatch.tournament_id == t.id))
                        or 0)
        recorded = int(s.scalar(select(func.count(Match.id)).where(
            Match.uid.in_(select(TournamentMatch.uid).where(TournamentMatch.tournament_id == t.id)))) or 0)
        return TournamentInfo(t.id, t.env_id, t.mode, t.seed, dict(t.params or {}), dict(t.state or {}),
                              t.created_at, t.finished_at, scheduled, recorded)

    def tournament(self, tid: str) -> TournamentInfo:
        """The tournament ``tid`` with its progress.

        Raises:
            StoreError: no such tournament (the message lists the latest ones).
        """
        with self.session() as s:
            t = s.get(Tournament, tid)
            if t is None:
                known = s.scalars(select(Tournament.id).order_by(Tournament.created_at.desc()).limit(5)).all()
                raise StoreError(f"no tournament '{tid}' in this league; latest: {', '.join(known) or '(none)'}")
            return self._tournament_info(s, t)

    def tournaments(self, *, env_id: str | None = None, unfinished_only: bool = False) -> list[TournamentInfo]:
        """Tournaments, newest first (optionally of one env / not finished)."""
        with self.session() as s:
            q = select(Tournament).order_by(Tournament.created_at.desc(), Tournament.id.desc())
            if env_id is not None:
                q = q.where(Tournament.env_id == env_id)
            if unfinished_only:
                q = q.where(Tournament.finished_at.is_(None))
            return [self._tournament_info(s, t) for t in s.scalars(q)]

    def schedule(self, tid: str) -> list[ScheduledMatch]:
        """The tournament's scheduled matches in schedule order."""
        with self.session() as s:
            rows = s.scalars(select(TournamentMatch).where(TournamentMatch.tournament_id == tid)
                             .order_by(TournamentMatch.idx)).all()
            return [ScheduledMatch(r.uid, tid, r.block, r.idx, tuple(r.seats), r.game_index, r.seed) for r in rows]

    def recorded_uids(self, tid: str) -> set[str]:
        """Uids of the tournament's scheduled matches that are recorded."""
        with self.session() as s:
            return set(s.scalars(select(Match.uid).where(
                Match.uid.in_(select(TournamentMatch.uid).where(TournamentMatch.tournament_id == tid)))))

    def tournament_results(self, tid: str) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
        """``(uid, player names in seat order, ranks)`` of the tournament's recorded matches, in recording order."""
        with self.session() as s:
            q = (select(Match.uid, MatchSeat.seat, Player.name, MatchSeat.rank).join(MatchSeat, MatchSeat.match_id == Match.id)
                 .join(Player, Player.id == MatchSeat.player_id)
                 .where(Match.uid.in_(select(TournamentMatch.uid).where(TournamentMatch.tournament_id == tid)))
                 .order_by(Match.id, MatchSeat.seat))
            out: dict[str, tuple[list, list]] = {}
            for uid, _seat, name, rank in s.execute(q):
                names, ranks = out.setdefault(uid, ([], []))
                names.append(name)
                ranks.append(int(rank))
            return [(u, tuple(n), tuple(r)) for u, (n, r) in out.items()]

    def finish_tournament(self, tid: str) -> None:
        """Mark the tournament finished (idempotent)."""
        with self.session() as s:
            t = s.get(Tournament, tid)
            if t is not None and t.finished_at is None:
                t.finished_at = utcnow()

    # ---------------------------------------------------------------- ratings
    def snapshot_ratings(self, system: str, ratings: dict[str, tuple[float, float | None, float | None]],
                         n_matches: int) -> None:
        """Append one history row per player: ``ratings[name] = (rating, lower, upper)``."""
        with self.session() as s:
            ids = dict(s.execute(select(Player.name, Player.id)).all())
            now = utcnow()
            for name, (r, lo, hi) in ratings.items():
                if name in ids:
                    s.add(RatingSnapshot(player_id=ids[name], system=system, rating=float(r),
                                         lower=None if lo is None else float(lo),
                                         upper=None if hi is None else float(hi), n_matches=n_matches,
                                         recorded_at=now))

    def rating_history(self, player: str, system: str) -> list[dict[str, Any]]:
        """Stored snapshots of ``player`` under ``system``, oldest first. Raises UnknownPlayerError."""
        pid = self.get_player(player).id
        with self.session() as s:
            rows = s.scalars(select(RatingSnapshot).where(RatingSnapshot.player_id == pid,
                                                          RatingSnapshot.system == system)
                             .order_by(RatingSnapshot.id)).all()
            return [{"n_matches": r.n_matches, "rating": r.rating, "lower": r.lower, "upper": r.upper,
                     "recorded_at": _iso(r.recorded_at)} for r in rows]


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat()
