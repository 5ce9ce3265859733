"""The :class:`League`: a config bound to its store, with player registration and rating look-ups.

Registration of trained snapshots follows the trainer's layout (docs/results_layout.md):
``results/<run-id>/<Behavior>/<Behavior>-<step>.onnx`` (preferred) or ``.pt``. Each snapshot becomes a
player ``<run-id>/<Behavior>-<step>`` with ``version = step``, ``parent`` = the previous snapshot of the
same behavior (lineage), tags ``["snapshot", <run-id>]``.

Player lifecycle (docs/league.md, "Players"):

* **add**: a file is copied into the league folder, ``<policies_dir>/<player name><ext>`` with its sibling
  files (:func:`league.policies.policy_files`), and registered there, never in place (training rotates
  and deletes its checkpoints). Before it is recorded, the player must act in the league's env: it is
  loaded (``.pt`` weights-only) and plays a short self-match (each of the two seats acts once) through
  the same match code as ``league run`` (:func:`league.match.play_match`, i.e. :func:`marl.play.play_episodes`).
* **retire**: ``active = False``: kept in the log and the history, out of matchmaking and of
  leaderboards unless asked (``--all``); ``retire --undo`` brings it back.
* **remove**: deletes a player that has no matches (its row, history and copied files). With
  ``force``, a player with matches stays as a *removed* record (``meta["removed"]``, inactive) so its
  matches keep counting for the others' ratings; its copied files are deleted and its name stays
  reserved (a new player cannot take it).
"""
from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass

import yaml

from league.config import LeagueConfig, load_config
from league.errors import IncompatibleEnvError, LeagueError, PolicyFileError, StoreError, UnknownPlayerError
from league.policies import POLICY_SUFFIXES, PlayerSpec, file_sha256, policy_files, validate_policy
from league.ratings import Rating, bradley_terry_history, compute_ratings
from league.records import Game
from league.store import LeagueStore, PlayerInfo

SNAPSHOT_RE = re.compile(r"^(?P<behavior>.+)-(?P<step>\d+)\.(?P<ext>onnx|pt)$")


@dataclass(frozen=True)
class Snapshot:
    """A trained snapshot found in a results folder."""

    run_id: str
    behavior: str
    step: int
    path: str


def find_snapshots(run_dir: str, behavior: str | None = None) -> list[Snapshot]:
    """Snapshots in ``results/<run-id>/`` sorted by (behavior, step); ONNX wins over .pt for the same step.

    Raises:
        PolicyFileError: the folder does not exist or holds no snapshot.
    """
    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir):
        raise PolicyFileError(f"results folder '{run_dir}' does not exist")
    run_id = os.path.basename(run_dir.rstrip(os.sep))
    found: dict[tuple[str, int], Snapshot] = {}
    for b in sorted(os.listdir(run_dir)):
        sub = os.path.join(run_dir, b)
        if not os.path.isdir(sub) or (behavior is not None and b != behavior):
            continue
        for f in sorted(os.listdir(sub)):
            m = SNAPSHOT_RE.match(f)
            if not m or m["behavior"] != b:
                continue
            key = (b, int(m["step"]))
            if key not in found or f.endswith(".onnx"):
                found[key] = Snapshot(run_id, b, int(m["step"]), os.path.join(sub, f))
    if not found:
        want = f"'{behavior}/{behavior}-<step>.onnx'" if behavior else "'<Behavior>/<Behavior>-<step>.onnx|.pt'"
        raise PolicyFileError(f"results folder '{run_dir}' has no snapshots {want}")
    return [found[k] for k in sorted(found)]


def run_env_settings(run_dir: str) -> dict | None:
    """``env_settings`` of a run's ``configuration.yaml`` (a run folder or any folder inside it), or None."""
    d = os.path.abspath(run_dir)
    for _ in range(4):
        try:
            with open(os.path.join(d, "configuration.yaml")) as f:
                cfg = yaml.safe_load(f) or {}
            return cfg.get("env_settings") or {}
        except FileNotFoundError:
            d = os.path.dirname(d)
        except (OSError, yaml.YAMLError, AttributeError):
            return None
    return None


def run_dir_of(path: str) -> str | None:
    """The run folder (``results/<run-id>``, the one holding ``configuration.yaml``) a file lies in, looking
    up to three folders above it; None when it is not inside a run."""
    d = os.path.dirname(os.path.abspath(path))
    for _ in range(3):
        if os.path.isfile(os.path.join(d, "configuration.yaml")):
            return d
        d = os.path.dirname(d)
    return None


def run_env_id(run_dir: str) -> str | None:
    """``env_settings.env_path`` of a run's ``configuration.yaml``, or None when unknown."""
    es = run_env_settings(run_dir)
    return None if es is None else es.get("env_path")


def _sqlite_file(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL, or None (another database, or in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else path


def league_exists(url: str) -> bool:
    """True when ``url`` holds a league store (its ``schema_version`` table), checked without creating or
    changing anything (a SQLite file is opened read-only; a missing file is no league).

    Raises:
        StoreError: the file or server exists but cannot be read as a database.
    """
    path = _sqlite_file(url)
    if path is not None:
        if not os.path.exists(path):
            return False
        if os.path.isdir(path):
            raise StoreError(f"store '{path}' is a folder, not a league database file")
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                row = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise StoreError(f"store '{path}': cannot read it as a league database ({exc})") from None
        return row is not None
    if url.startswith("sqlite"):
        return True  # in-memory: nothing to find, nothing to create
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from league.store import _safe_url, make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).has_table("schema_version"))
    except SQLAlchemyError as exc:
        raise StoreError(f"store '{_safe_url(url)}': cannot connect ({str(getattr(exc, 'orig', exc)).splitlines()[0]})") from None
    finally:
        engine.dispose()


def open_league(config_path: str, *, create: bool = False) -> "League":
    """Load a league config and open its store.

    Args:
        config_path: the league YAML.
        create: create (and migrate) the store when missing (``league init`` only); otherwise a missing
            store is an error and nothing is created.

    Raises:
        ConfigError: bad config. LeagueError: no league store yet (``"no league at <store>; run league init
        <config>"``). StoreError: the store cannot be read.
    """
    cfg = load_config(config_path)
    url = cfg.store_url()
    if not create and not league_exists(url):
        from league.store import _safe_url

        where = _sqlite_file(url) or _safe_url(url)
        raise LeagueError(f"no league at {where}; run `league init {config_path}` first")
    if create:
        path = _sqlite_file(url)
        if path is not None and not os.path.isdir(os.path.dirname(path) or "."):
            raise StoreError(f"store '{path}': folder '{os.path.dirname(path)}' does not exist; create it or "
                             "set store.url in the config")
    return League(cfg)


def _safe_relpath(name: str) -> str:
    """A relative path for a player name (``run/Behavior-100`` -> ``run/Behavior-100``): one folder per
    ``/`` part, other unsafe characters replaced by ``_``, ``.``/``..`` parts neutralised."""
    parts = []
    for part in name.split("/"):
        part = re.sub(r"[^A-Za-z0-9._+=~@-]", "_", part)
        if part in ("", ".", ".."):
            part = part.replace(".", "_") or "_"
        parts.append(part)
    return os.path.join(*parts)


def is_removed(info: PlayerInfo) -> bool:
    """True for a player removed with ``league remove --force`` (kept for its matches, name reserved)."""
    return bool(info.meta.get("removed"))


class League:
    """A league: its config, its store, and operations on players and ratings.

    Args:
        config: the validated config.
        store: an open store (default: opened from ``config.store_url()`` and migrated).
        policies_dir: where registered files are copied (default ``<config folder>/policies``, the
            folder the training link copies snapshots into).
    """

    def __init__(self, config: LeagueConfig, store: LeagueStore | None = None, policies_dir: str | None = None):
        self.config = config
        self.store = store or LeagueStore(config.store_url())
        self.policies_dir = os.path.abspath(policies_dir or os.path.join(config.base_dir, "policies"))

    # ------------------------------------------------------------ players
    def _existing(self, name: str) -> PlayerInfo | None:
        try:
            return self.store.get_player(name)
        except UnknownPlayerError:
            return None

    def _owned(self, path: str) -> bool:
        """True when ``path`` lies inside the league's policies folder (a copy the league owns)."""
        try:
            return os.path.commonpath([os.path.abspath(path), self.policies_dir]) == self.policies_dir
        except ValueError:  # different drives (Windows)
            return False

    def _import_files(self, src: str, name: str, digest: str) -> tuple[str, list[str]]:
        """Copy ``src`` and its siblings to ``<policies_dir>/<name><ext>`` (atomically, :mod:`marl.io`).

        A file already inside the policies folder stays where it is. An existing different file at the
        target (an orphan) is never overwritten: the copy gets ``~<sha8>`` appended to its stem.

        Returns:
            ``(path of the copied main file, files this call created)``.

        Raises:
            PolicyFileError: a file cannot be read or the folder cannot be written.
        """
        if self._owned(src):
            return src, []
        from marl.io import atomic_copy

        ext = os.path.splitext(src)[1]
        stem = os.path.join(self.policies_dir, _safe_relpath(name))
        dest = stem + ext
        if os.path.exists(dest) and file_sha256(dest) != digest:
            stem = f"{stem}~{digest[:8]}"
            dest = stem + ext
        src_stem = os.path.splitext(src)[0]
        created: list[str] = []
        try:
            for f in policy_files(src):
                target = stem + f[len(src_stem):]
                if not os.path.exists(target):
                    created.append(target)
                atomic_copy(f, target)
        except OSError as exc:
            self._delete_files(created)
            raise PolicyFileError(f"cannot copy '{src}' into the league folder '{self.policies_dir}' "
                                  f"({exc.strerror or exc}); check that it is writable") from None
        if file_sha256(dest) != digest:
            self._delete_files(created)
            raise PolicyFileError(f"policy file '{src}' changed while it was copied; add it again")
        return dest, created

    @staticmethod
    def _delete_files(paths: list[str]) -> None:
        """Delete files this league created; ones already gone (or never created) are fine."""
        for f in paths:
            try:
                os.remove(f)
            except (FileNotFoundError, NotADirectoryError):
                pass

    def check_can_act(self, policy: str, policy_hash: str | None = None, label: str | None = None) -> None:
        """Load a player and play a short self-match in the league's env: two seats (as in every league
        match), both played by this player, cut after 2 env steps so each seat acts once in a turn-based
        game (all agents act at step 1 in a parallel game). Same code path as ``league run``
        (:func:`league.match.play_match` -> :func:`marl.play.play_episodes`) with the league's env settings.

        Raises:
            PolicyFileError: the file cannot be loaded (corrupt, truncated, refused by a weights-only load).
            IncompatibleEnvError: it loads but cannot act here (observation/action shapes, a bot that needs
                an OpenSpiel game, an error while acting).
        """
        from league.match import MatchTask, play_match
        from league.policies import PlayerCache

        label = label or policy
        env = self.config.env
        spec = PlayerSpec(label, policy, policy_hash)
        task = MatchTask(uid="league-add-check", env_id=env.id, seed=0, seats=(spec, spec), env_kwargs=dict(env.kwargs),
                         max_steps=2, opening_moves=0, behavior_map=dict(env.behavior_map),
                         supersuit=tuple(env.supersuit))
        try:
            play_match(task, PlayerCache(), worker="league-add")
        except PolicyFileError as exc:
            raise PolicyFileError(f"player '{label}' not added: {exc}") from None
        except LeagueError as exc:
            raise IncompatibleEnvError(f"player '{label}' not added: it cannot act in this league's env "
                                       f"'{env.id}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a broken file can fail in any library; one line for the user
            msg = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise IncompatibleEnvError(f"player '{label}' not added: it failed while acting in this league's env "
                                       f"'{env.id}' ({type(exc).__name__}: {msg})") from None

    def add_policy(self, policy: str, *, name: str | None = None, behavior: str = "", version: int = 0,
                   parent: str | None = None, tags: list[str] | tuple = (), meta: dict | None = None,
                   env_id: str | None = None, check: bool = True) -> tuple[PlayerInfo, bool]:
        """Register a bot spec or a policy file.

        A file is hashed (sha256), copied into :attr:`policies_dir` with its siblings (see module
        docstring) and registered at the copy. With ``check`` the player must first act in the league's
        env (:meth:`check_can_act`, on the file as given); nothing is copied or recorded when it cannot. Registering the
        same policy (same hash; same spec for bots) under the same name again is a no-op.

        Raises:
            PolicyFileError: bad bot spec / missing, unsupported or unloadable file, copy failed.
            IncompatibleEnvError: ``env_id`` given and different from the league's env, or the player
                cannot act in it.
            StoreError: the name is taken by a different policy or reserved by a removed player.
        """
        league_env = self.config.env.id
        if env_id is not None and env_id != league_env:
            raise IncompatibleEnvError(f"policy '{policy}' was trained on env '{env_id}', this league plays "
                                       f"'{league_env}'")
        bot = policy.startswith("bot:")
        if not bot:
            policy = os.path.abspath(policy)
        validate_policy(policy)
        if bot:
            h = None
            name = name or policy[4:].replace("?", "-").replace("&", "-").replace("=", "")
            tags = list(tags) or ["bot"]
        else:
            h = file_sha256(policy)
            name = name or os.path.splitext(os.path.basename(policy))[0]
        old = self._existing(name)
        if old is not None:
            if is_removed(old):
                raise StoreError(f"player name '{name}' is reserved: a removed player with matches had it; choose "
                                 "another name (--name)")
            if (old.policy == policy if bot else old.policy_hash == h):
                return old, False
            raise StoreError(f"player '{name}' already exists with a different policy ({old.policy}); choose another "
                             "name (--name)")
        if check:  # the file as given (its siblings beside it), before anything is copied or recorded
            self.check_can_act(policy, h, name)
        created: list[str] = []
        if not bot:
            policy, created = self._import_files(policy, name, h)
        try:
            return self.store.add_player(name, policy=policy, env_id=league_env, behavior=behavior, version=version,
                                         policy_hash=h, parent=parent, tags=tags, meta=meta)
        except BaseException:
            self._delete_files(created)
            raise

    def add_run(self, run_dir: str, behavior: str | None = None, check: bool = True) -> list[tuple[PlayerInfo, bool]]:
        """Register every snapshot of ``results/<run-id>/`` with lineage (see module docstring); each is
        copied into the league folder and, with ``check``, must act in the league's env.

        Raises:
            PolicyFileError: no snapshots; IncompatibleEnvError: the run's env differs from the league's;
            as :meth:`add_policy` for each snapshot (the ones before it stay registered).
        """
        snaps = find_snapshots(run_dir, behavior)
        self.check_run_env(run_dir)
        out = []
        prev: dict[str, str] = {}
        for s in snaps:
            info = self.add_snapshot(s.path, s.run_id, s.behavior, s.step, parent=prev.get(s.behavior), check=check)
            prev[s.behavior] = info[0].name
            out.append(info)
        return out

    def check_run_env(self, run_dir: str) -> None:
        """Refuse a run (or a file inside one) trained on another env or with other env settings.

        Raises:
            IncompatibleEnvError: another env id, or other ``supersuit`` wrappers / ``behavior_map`` (the
                policy would see other observations than in training).
        """
        es = run_env_settings(run_dir)
        if es is None:
            return
        env = self.config.env
        if es.get("env_path") is not None and es.get("env_path") != env.id:
            raise IncompatibleEnvError(f"run '{run_dir}' trained on env '{es.get('env_path')}', this league plays '{env.id}'")
        for key, league_value in (("supersuit", env.supersuit), ("behavior_map", env.behavior_map)):
            mine = es.get(key) or type(league_value)()
            if mine != league_value:
                raise IncompatibleEnvError(f"run '{run_dir}' trained with env_settings.{key} {mine!r}, this league plays "
                                           f"with env.{key} {league_value!r}; set env.{key} in the league config to "
                                           "match, or use another league")

    def add_snapshot(self, path: str, run_id: str, behavior: str, step: int, parent: str | None = None,
                     name: str | None = None, check: bool = True) -> tuple[PlayerInfo, bool]:
        """Register one training snapshot as player ``<run_id>/<behavior>-<step>`` (or ``name``),
        version ``step``, tagged ``snapshot`` and ``run_id``, with ``parent`` as lineage.

        Raises: as :meth:`add_policy`.
        """
        return self.add_policy(path, name=name or f"{run_id}/{behavior}-{step}", behavior=behavior, version=int(step),
                               parent=parent, tags=["snapshot", run_id], meta={"run_id": run_id, "step": int(step)},
                               check=check)

    def add_path(self, path: str, *, name: str | None = None, behavior: str | None = None) -> list[tuple[PlayerInfo, bool]]:
        """``league add``: a bot spec, a ``.onnx``/``.pt`` file, or a results folder.

        A single file inside a run folder (a ``configuration.yaml`` up to three levels above it) is tagged
        ``snapshot`` and the run id, like the snapshots of ``league add results/<run-id>/``, so the page's
        run filter finds it.

        Raises:
            as :meth:`add_policy` / :meth:`add_run`; PolicyFileError: the path does not exist.
        """
        if path.startswith("bot:") or path.endswith(POLICY_SUFFIXES):
            tags: list[str] = []
            meta = None
            if not path.startswith("bot:"):
                self.check_run_env(os.path.dirname(os.path.abspath(path)))
                run = run_dir_of(path)
                if run is not None:
                    tags, meta = ["snapshot", os.path.basename(run)], {"run_id": os.path.basename(run)}
            m = SNAPSHOT_RE.match(os.path.basename(path))
            version = int(m["step"]) if m else 0
            return [self.add_policy(path, name=name, behavior=behavior or (m["behavior"] if m else ""), version=version,
                                    tags=tags, meta=meta)]
        if os.path.isdir(path):
            return self.add_run(path, behavior)
        if not os.path.exists(path):
            raise PolicyFileError(f"'{path}' does not exist (expected a .onnx/.pt file, a results/<run-id>/ folder, "
                                  "or a bot spec like bot:random)")
        raise PolicyFileError(f"'{path}': expected a .onnx/.pt file, a results/<run-id>/ folder or a bot spec")

    def register_config_players(self) -> list[tuple[PlayerInfo, bool]]:
        """Register the config's ``players:`` and ``snapshots:`` (idempotent; files are copied into the
        league folder and checked like ``league add``).

        Raises:
            as :meth:`add_policy`, with the config entry named in the message.
        """
        out = []
        for p in self.config.players:
            policy = p.policy if p.policy.startswith("bot:") else self.config.resolve(p.policy)
            try:
                out.append(self.add_policy(policy, name=p.name, behavior=p.behavior, version=p.version, tags=p.tags))
            except LeagueError as exc:
                raise type(exc)(f"league config '{self.config.path}': players: '{p.name}': {exc}") from None
        for src in self.config.snapshots:
            d = self.config.resolve(src.dir)
            if not os.path.isdir(d):
                continue  # the run has not been trained yet; `league init` reports it
            out.extend(self.add_run(d, src.behavior))
        return out

    def spec(self, name: str) -> PlayerSpec:
        """Worker-side spec of a registered player.

        Raises:
            UnknownPlayerError: not registered, or removed (``league remove --force``).
            IncompatibleEnvError: it belongs to another env.
        """
        p = self.store.get_player(name)
        if is_removed(p):
            raise UnknownPlayerError(f"player '{name}' was removed from the league (its matches are kept); it cannot play")
        if p.env_id != self.config.env.id:
            raise IncompatibleEnvError(f"player '{name}' belongs to env '{p.env_id}', this league plays '{self.config.env.id}'")
        return PlayerSpec(p.name, p.policy, p.policy_hash)

    def active_names(self, names: list[str] | None = None) -> list[str]:
        """``names`` checked against the store (retired players refused), or every active player of the
        league's env.

        Raises:
            UnknownPlayerError / IncompatibleEnvError: as :meth:`spec`. LeagueError: a named player is retired.
        """
        if names:
            for n in names:
                self.spec(n)
                if not self.store.get_player(n).active:
                    raise LeagueError(f"player '{n}' is retired; bring it back with `league retire CONFIG {n} --undo` "
                                      "or leave it out of --players")
            return list(names)
        return [p.name for p in self.store.players(active_only=True) if p.env_id == self.config.env.id]

    def retire(self, name: str, undo: bool = False) -> PlayerInfo:
        """Retire a player (``active = False``: out of matchmaking and default leaderboards, kept in the log
        and history) or, with ``undo``, make it active again. Returns the updated player.

        Raises:
            UnknownPlayerError: not registered, or removed.
        """
        p = self.store.get_player(name)
        if is_removed(p):
            raise UnknownPlayerError(f"player '{name}' was removed from the league; it cannot be retired or brought back")
        self.store.set_active(name, undo)
        return self.store.get_player(name)

    def remove(self, name: str, force: bool = False) -> dict:
        """Remove a player.

        Without matches: its row, rating history and copied files (inside :attr:`policies_dir`, unless
        another player uses them) are deleted; its children in the lineage get its parent. With matches,
        only ``force`` proceeds: the row stays (inactive, ``meta["removed"] = True``) so its matches keep
        counting for the other players' ratings, its name stays reserved, and its copied files are deleted.

        Returns:
            ``{"player", "matches", "kept" (True when the record stays), "deleted_files": [...]}``.

        Raises:
            UnknownPlayerError: not registered (or already removed).
            LeagueError: it has matches and ``force`` is False.
        """
        from sqlalchemy import delete, func, select, update

        from league.store import MatchSeat, Player, RatingSnapshot

        p = self.store.get_player(name)
        if is_removed(p):
            raise UnknownPlayerError(f"player '{name}' was already removed")
        with self.store.session() as s:
            n_matches = int(s.scalar(select(func.count(MatchSeat.id)).where(MatchSeat.player_id == p.id)) or 0)
        if n_matches and not force:
            raise LeagueError(f"player '{name}' has {n_matches} matches; `league retire` keeps it out of play, "
                              "`league remove --force` removes it and keeps its matches for the others' ratings")
        files = [] if p.policy.startswith("bot:") else policy_files(p.policy)
        shared = {q.policy for q in self.store.players() if q.name != name}
        doomed = [f for f in files if self._owned(f) and p.policy not in shared]
        with self.store.session() as s:
            row = s.get(Player, p.id)
            if n_matches:
                row.active = False
                row.meta = {**(row.meta or {}), "removed": True}
            else:
                s.execute(update(Player).where(Player.parent_id == p.id).values(parent_id=row.parent_id))
                s.execute(delete(RatingSnapshot).where(RatingSnapshot.player_id == p.id))
                s.delete(row)
        getattr(self.store, "_pid", {}).pop(name, None)  # the store's name -> id cache
        self._delete_files(doomed)
        return {"player": name, "matches": n_matches, "kept": bool(n_matches), "deleted_files": doomed}

    # ------------------------------------------------------------ ratings
    def games(self) -> list[Game]:
        """The league's match log (its env only)."""
        return self.store.games(env_id=self.config.env.id)

    def ratings(self, system: str, games: list[Game] | None = None, bootstrap: bool = True) -> dict[str, Rating]:
        """Ratings of all players under ``system`` recomputed from the log (players without games included);
        ``bootstrap=False`` skips Bradley-Terry's bootstrap intervals (point fit only)."""
        import dataclasses

        names = [p.name for p in self.store.players() if p.env_id == self.config.env.id]
        settings = self.config.ratings.settings()
        if not bootstrap:
            settings = dataclasses.replace(settings, bootstrap=0)
        return compute_ratings(system, self.games() if games is None else games, settings, names)

    def snapshot_ratings(self) -> None:
        """Store the current ratings of every system in ``rating_history`` (called after each tournament).

        Bradley-Terry is stored as its point fit without bootstrap (intervals None): these rows mark the
        tournament ends that :meth:`history_marks` adds to the recomputed BT history.
        """
        games = self.games()
        for system in ("elo", "openskill", "bt"):
            r = self.ratings(system, games, bootstrap=system != "bt")
            self.store.snapshot_ratings(system, {k: (v.rating, v.lower, v.upper) for k, v in r.items()}, len(games))

    def history_marks(self, n_games: int) -> list[int]:
        """Prefix lengths at which the Bradley-Terry history is refitted: every ``ratings.history_every``
        matches, each tournament end (the ``n_matches`` of stored rating snapshots) and ``n_games``."""
        from sqlalchemy import select

        from league.store import RatingSnapshot

        every = self.config.ratings.history_every
        with self.store.session() as s:
            ends = {int(k) for k in s.scalars(select(RatingSnapshot.n_matches).distinct())}
        marks = set(range(every, n_games + 1, every)) | {k for k in ends if 0 < k <= n_games}
        if n_games:
            marks.add(n_games)
        return sorted(marks)

    def rating_history(self, system: str, games: list[Game] | None = None) -> list[tuple[int, str, float]]:
        """Every player's rating history under ``system`` as ``(n_matches, player, rating)``, in the
        system's own units: per match for elo/openskill (online updates replayed from the log); for
        bt the fit recomputed at :meth:`history_marks`, without bootstrap
        (:func:`league.ratings.bradley_terry_history`). ``n_matches`` counts the league's matches so far.

        Raises:
            ConfigError: unknown system.
        """
        from league.ratings import SYSTEMS, rating_history

        games = self.games() if games is None else games
        settings = self.config.ratings.settings()
        if system == "bt":
            return bradley_terry_history(games, self.history_marks(len(games)), settings)
        if system not in SYSTEMS:
            from league.errors import ConfigError

            raise ConfigError(f"unknown rating system '{system}'; expected one of {', '.join(SYSTEMS)}")
        pos = {g.seq: k + 1 for k, g in enumerate(games)}
        return [(pos[seq], p, r) for seq, p, r in rating_history(system, games, settings)]

    def player(self, name: str) -> PlayerInfo:
        """A registered player. Raises UnknownPlayerError."""
        return self.store.get_player(name)


__all__ = ["League", "Snapshot", "find_snapshots", "run_env_id", "open_league", "league_exists", "is_removed",
           "UnknownPlayerError"]
