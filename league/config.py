"""League config file (YAML), validated with pydantic: unknown keys and wrong types are errors naming file and key.

Example (``configs/league/connect_four.yaml``)::

    name: connect_four
    env: {id: "openspiel:connect_four", kwargs: {}}
    store: {url: null}            # null: SQLite file league.db beside this config
    players:                      # registered by `league init`
      - {name: random, policy: "bot:random"}
      - {name: mcts-100, policy: "bot:mcts?simulations=100"}
    snapshots:                    # results/<run-id>/ folders whose snapshots `league init` registers
      - {dir: ../../results/c4_selfplay, behavior: null}
    ratings: {elo_k: 16, initial: 1200, bootstrap: 200, openskill_model: PlackettLuce, seed: 0, history_every: 50}
    match: {opening_moves: null, max_steps: 1000, replay_dir: null}   # null: per env kind
    tournament: {mode: round_robin, games_per_pair: 2, rounds: 5, games: 100, matchmaking: proximity,
                 pfsp_weighting: hard, pfsp_p: 2, seed: null, batch: 16}
    runner: {kind: local, workers: 2, address: null, max_retries: 3, matches_per_task: null, ray_ports: null}

Relative paths are relative to the config file's folder.
"""
from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from league.errors import ConfigError
from league.ratings.base import RatingSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvBlock(_Strict):
    """``env:``: the env every match is played in, with league-wide env settings.

    ``behavior_map`` and ``supersuit`` mean what a run's ``env_settings`` keys of the same names mean
    (agent -> behavior overrides; SuperSuit observation/action wrappers in order). Every player must
    have been trained with the same ones: ``league add`` refuses a run whose ``configuration.yaml`` says
    otherwise, because its policy would see other observations than in training.
    """

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    behavior_map: dict[str, str] = Field(default_factory=dict)
    supersuit: list[Any] = Field(default_factory=list)


class StoreBlock(_Strict):
    """``store:``: SQLAlchemy URL; null = ``sqlite:///<config dir>/league.db``."""

    url: str | None = None


class PlayerEntry(_Strict):
    """One entry of ``players:``: a bot spec or a policy file (relative to the config), registered by
    ``league init``: a file is copied into the league's ``policies/`` folder and must act in the env,
    as with ``league add``."""

    name: str
    policy: str
    behavior: str = ""
    version: int = 0
    tags: list[str] = Field(default_factory=list)


class SnapshotSource(_Strict):
    """One entry of ``snapshots:``: a ``results/<run-id>/`` folder; ``behavior`` null = every behavior."""

    dir: str
    behavior: str | None = None


class RatingsBlock(_Strict):
    """``ratings:`` (see :class:`league.ratings.base.RatingSettings`).

    ``history_every``: the Bradley-Terry history is the fit recomputed on the first k matches for k =
    every ``history_every`` matches, each tournament end and the whole log (no bootstrap; see
    :meth:`league.league.League.history_marks`).
    """

    elo_k: float = Field(16.0, gt=0)
    initial: float = 1200.0
    openskill_model: str = "PlackettLuce"
    bootstrap: int = Field(200, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    default_system: Literal["elo", "openskill", "bt"] = "bt"
    history_every: int = Field(50, ge=1)

    def settings(self) -> RatingSettings:
        """As the raters' settings object."""
        return RatingSettings(self.elo_k, self.initial, self.openskill_model, self.bootstrap, self.confidence, self.seed)


class MatchBlock(_Strict):
    """``match:`` (see :class:`league.match.MatchTask`).

    ``opening_moves``: random opening moves of every match; null (default) = chosen per env kind by
    :func:`league.match.default_opening_moves` (2 for turn-based board games, else 0).
    """

    opening_moves: int | None = Field(None, ge=0)
    max_steps: int = Field(100_000, ge=1)
    replay_dir: str | None = None

    def opening_moves_for(self, env_id: str) -> int:
        """``opening_moves``, or the per-env-kind default when null."""
        if self.opening_moves is not None:
            return self.opening_moves
        from league.match import default_opening_moves

        return default_opening_moves(env_id)


class TournamentBlock(_Strict):
    """``tournament:``: default mode and sizes for ``league run``.

    ``seed``: null (default) = every tournament draws a fresh seed and records it, so repeated tournaments do
    not replay the same games; a number fixes every tournament's schedule and match seeds (``--seed`` beats it).
    ``batch``: matchmade games scheduled (and stored) at once.
    """

    mode: Literal["round_robin", "swiss", "gauntlet", "matchmade"] = "round_robin"
    games_per_pair: int = Field(2, ge=1)
    rounds: int = Field(5, ge=1)
    games: int = Field(100, ge=1)
    matchmaking: Literal["proximity", "pfsp", "random"] = "proximity"
    pfsp_weighting: Literal["hard", "var", "uniform"] = "hard"
    pfsp_p: float = Field(2.0, gt=0)
    seed: int | None = None
    batch: int = Field(16, ge=1)


class RunnerBlock(_Strict):
    """``runner:``: where matches run (local processes or Ray).

    ``matches_per_task`` (Ray): matches played by one Ray task; null = adaptive (tasks of about 0.5 s of play).
    ``ray_ports`` (Ray started by the runner, i.e. no ``address``): ``"LOW-HIGH"``, every port of that Ray lies in
    the range (see :class:`league.runners.RayRunner`); null = ports Ray picks.
    """

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1)
    address: str | None = None
    max_retries: int = Field(3, ge=0)
    matches_per_task: int | None = Field(None, ge=1)
    ray_ports: str | None = Field(None, pattern=r"^\d{4,5}-\d{4,5}$")


class LeagueConfig(_Strict):
    """A whole league config; ``path`` is where it was read from (set by :func:`load_config`)."""

    name: str = "league"
    env: EnvBlock
    store: StoreBlock = Field(default_factory=StoreBlock)
    players: list[PlayerEntry] = Field(default_factory=list)
    snapshots: list[SnapshotSource] = Field(default_factory=list)
    ratings: RatingsBlock = Field(default_factory=RatingsBlock)
    match: MatchBlock = Field(default_factory=MatchBlock)
    tournament: TournamentBlock = Field(default_factory=TournamentBlock)
    runner: RunnerBlock = Field(default_factory=RunnerBlock)
    path: str | None = Field(None, exclude=True)

    @property
    def base_dir(self) -> str:
        """Folder of the config file (cwd when built in memory)."""
        return os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()

    def resolve(self, p: str) -> str:
        """A config-relative path made absolute (user ``~`` expanded)."""
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(self.base_dir, p))

    def store_url(self) -> str:
        """The store URL: ``store.url`` or the default SQLite file ``league.db`` beside the config."""
        if self.store.url:
            u = self.store.url
            if u.startswith("sqlite:///") and not u.startswith("sqlite:////"):
                return "sqlite:///" + self.resolve(u[len("sqlite:///"):])
            return u
        return "sqlite:///" + os.path.join(self.base_dir, "league.db")


def _loc(err: dict) -> str:
    return ".".join(str(x) for x in err["loc"]) or "(top level)"


def load_config(path: str) -> LeagueConfig:
    """Read and validate a league config.

    Raises:
        ConfigError: missing/unreadable file, not a YAML text file (binary), bad YAML, unknown key or
            wrong type (message names file and key).
    """
    if not os.path.isfile(path):
        raise ConfigError(f"league config '{path}' does not exist (create one with `league init {path} --env ENV_ID`)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (UnicodeDecodeError, yaml.reader.ReaderError):
        raise ConfigError(f"league config '{path}': not a YAML text file (it holds binary data); give the league's "
                          ".yaml config") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"league config '{path}': cannot parse YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"league config '{path}': expected a mapping at the top level")
    try:
        cfg = LeagueConfig.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"league config '{path}': key '{_loc(e)}': {e['msg']}") from None
    cfg.path = os.path.abspath(path)
    return cfg


def write_config(cfg: LeagueConfig, path: str) -> None:
    """Write ``cfg`` as YAML atomically (:func:`marl.io.atomic_write_text`: temp file + ``os.replace``,
    permissions ``0o666 & ~umask``).

    Raises:
        OSError: the folder cannot be created or written.
    """
    from marl.io import atomic_write_text

    data = cfg.model_dump(exclude={"path"}, exclude_defaults=False)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
