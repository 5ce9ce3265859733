"""The :class:`League`: a config bound to its store, with player registration and rating look-ups.

Registration of trained snapshots follows the trainer's layout (docs/results_layout.md):
``results/<run-id>/<Behavior>/<Behavior>-<step>.onnx`` (preferred) or ``.pt``. Each snapshot becomes a
player ``<run-id>/<Behavior>-<step>`` with ``version = step``, ``parent`` = the previous snapshot of the
same behavior (lineage), tags ``["snapshot", <run-id>]``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import yaml

from league.config import LeagueConfig
from league.errors import IncompatibleEnvError, PolicyFileError, UnknownPlayerError
from league.policies import POLICY_SUFFIXES, PlayerSpec, file_sha256, validate_policy
from league.ratings import Rating, compute_ratings
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


def run_env_id(run_dir: str) -> str | None:
    """``env_settings.env_path`` of a run's ``configuration.yaml``, or None when unknown."""
    es = run_env_settings(run_dir)
    return None if es is None else es.get("env_path")


class League:
    """A league: its config, its store, and operations on players and ratings.

    Args:
        config: the validated config.
        store: an open store (default: opened from ``config.store_url()`` and migrated).
    """

    def __init__(self, config: LeagueConfig, store: LeagueStore | None = None):
        self.config = config
        self.store = store or LeagueStore(config.store_url())

    # ------------------------------------------------------------ players
    def add_policy(self, policy: str, *, name: str | None = None, behavior: str = "", version: int = 0,
                   parent: str | None = None, tags: list[str] | tuple = (), meta: dict | None = None,
                   env_id: str | None = None) -> tuple[PlayerInfo, bool]:
        """Register a bot spec or a policy file (checked: exists, loadable suffix; hashed with sha256).

        Raises:
            PolicyFileError: bad bot spec / missing or unsupported file.
            IncompatibleEnvError: ``env_id`` given and different from the league's env.
            StoreError: the name is taken by a different policy.
        """
        league_env = self.config.env.id
        if env_id is not None and env_id != league_env:
            raise IncompatibleEnvError(f"policy '{policy}' was trained on env '{env_id}', this league plays "
                                       f"'{league_env}'")
        if not policy.startswith("bot:"):
            policy = os.path.abspath(policy)
        validate_policy(policy)
        if policy.startswith("bot:"):
            h = None
            name = name or policy[4:].replace("?", "-").replace("&", "-").replace("=", "")
            tags = list(tags) or ["bot"]
        else:
            h = file_sha256(policy)
            name = name or os.path.splitext(os.path.basename(policy))[0]
        return self.store.add_player(name, policy=policy, env_id=league_env, behavior=behavior, version=version,
                                     policy_hash=h, parent=parent, tags=tags, meta=meta)

    def add_run(self, run_dir: str, behavior: str | None = None) -> list[tuple[PlayerInfo, bool]]:
        """Register every snapshot of ``results/<run-id>/`` with lineage (see module docstring).

        Raises:
            PolicyFileError: no snapshots; IncompatibleEnvError: the run's env differs from the league's.
        """
        snaps = find_snapshots(run_dir, behavior)
        self.check_run_env(run_dir)
        out = []
        prev: dict[str, str] = {}
        for s in snaps:
            info = self.add_snapshot(s.path, s.run_id, s.behavior, s.step, parent=prev.get(s.behavior))
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
                     name: str | None = None) -> tuple[PlayerInfo, bool]:
        """Register one training snapshot as player ``<run_id>/<behavior>-<step>`` (or ``name``),
        version ``step``, tagged ``snapshot`` and ``run_id``, with ``parent`` as lineage.

        Raises: as :meth:`add_policy`.
        """
        return self.add_policy(path, name=name or f"{run_id}/{behavior}-{step}", behavior=behavior, version=int(step),
                               parent=parent, tags=["snapshot", run_id], meta={"run_id": run_id, "step": int(step)})

    def add_path(self, path: str, *, name: str | None = None, behavior: str | None = None) -> list[tuple[PlayerInfo, bool]]:
        """``league add``: a bot spec, a ``.onnx``/``.pt`` file, or a results folder."""
        if path.startswith("bot:") or path.endswith(POLICY_SUFFIXES):
            if not path.startswith("bot:"):
                self.check_run_env(os.path.dirname(os.path.abspath(path)))
            m = SNAPSHOT_RE.match(os.path.basename(path))
            version = int(m["step"]) if m else 0
            return [self.add_policy(path, name=name, behavior=behavior or (m["behavior"] if m else ""), version=version)]
        if os.path.isdir(path):
            return self.add_run(path, behavior)
        if not os.path.exists(path):
            raise PolicyFileError(f"'{path}' does not exist (expected a .onnx/.pt file, a results/<run-id>/ folder, "
                                  "or a bot spec like bot:random)")
        raise PolicyFileError(f"'{path}': expected a .onnx/.pt file, a results/<run-id>/ folder or a bot spec")

    def register_config_players(self) -> list[tuple[PlayerInfo, bool]]:
        """Register the config's ``players:`` and ``snapshots:`` (idempotent)."""
        out = []
        for p in self.config.players:
            policy = p.policy if p.policy.startswith("bot:") else self.config.resolve(p.policy)
            out.append(self.add_policy(policy, name=p.name, behavior=p.behavior, version=p.version, tags=p.tags))
        for src in self.config.snapshots:
            d = self.config.resolve(src.dir)
            if not os.path.isdir(d):
                continue  # the run has not been trained yet; `league init` reports it
            out.extend(self.add_run(d, src.behavior))
        return out

    def spec(self, name: str) -> PlayerSpec:
        """Worker-side spec of a registered player. Raises UnknownPlayerError / IncompatibleEnvError."""
        p = self.store.get_player(name)
        if p.env_id != self.config.env.id:
            raise IncompatibleEnvError(f"player '{name}' belongs to env '{p.env_id}', this league plays '{self.config.env.id}'")
        return PlayerSpec(p.name, p.policy, p.policy_hash)

    def active_names(self, names: list[str] | None = None) -> list[str]:
        """``names`` checked against the store, or every active player of the league's env."""
        if names:
            for n in names:
                self.spec(n)
            return list(names)
        return [p.name for p in self.store.players(active_only=True) if p.env_id == self.config.env.id]

    # ------------------------------------------------------------ ratings
    def games(self) -> list[Game]:
        """The league's match log (its env only)."""
        return self.store.games(env_id=self.config.env.id)

    def ratings(self, system: str, games: list[Game] | None = None) -> dict[str, Rating]:
        """Ratings of all players under ``system`` recomputed from the log (players without games included)."""
        names = [p.name for p in self.store.players() if p.env_id == self.config.env.id]
        return compute_ratings(system, self.games() if games is None else games, self.config.ratings.settings(), names)

    def snapshot_ratings(self) -> None:
        """Store the current ratings of every system in ``rating_history``."""
        games = self.games()
        for system in ("elo", "openskill", "bt"):
            r = self.ratings(system, games)
            self.store.snapshot_ratings(system, {k: (v.rating, v.lower, v.upper) for k, v in r.items()}, len(games))

    def player(self, name: str) -> PlayerInfo:
        """A registered player. Raises UnknownPlayerError."""
        return self.store.get_player(name)


__all__ = ["League", "Snapshot", "find_snapshots", "run_env_id", "UnknownPlayerError"]
