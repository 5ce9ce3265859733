"""Link from a training run to a league (the trainer's ``league:`` config block).

A self-play or league run can (1) register each snapshot it saves as a league player (with lineage), and
(2) draw PFSP opponents from the league's empirical payoff matrix (Vinyals et al. 2019).

Trainer YAML (per run, top level; schema :class:`marl.config.LeagueSettings`)::

    league:
      config: configs/league/connect_four.yaml   # the league to register into (relative to the working dir)
      register_snapshots: true                   # add the self-play snapshots as players
      register_every: 5                          # ... every 5th of them (default 1: all)
      pfsp_from_league: false                    # draw window opponents by PFSP from the league's payoff matrix
      pfsp_weighting: hard                       # hard | var | uniform
      pfsp_p: 2.0

The self-play trainer (``marl/selfplay.py``) calls :meth:`LeagueLink.register_snapshot` after
writing a snapshot (the file is copied into ``<league folder>/policies/<run-id>/`` because the
trainer deletes snapshots that leave its window) and :meth:`LeagueLink.opponent_probabilities`
when it swaps opponents. The payoff matrix is filled by league matches (``league run``, e.g. a
gauntlet of the new snapshots against the field, in another process or on Ray).
"""
from __future__ import annotations

import os
import shutil
from typing import Sequence

import numpy as np
from league.config import load_config
from league.errors import UnknownPlayerError
from league.league import League
from league.policies import file_sha256
from league.matchmaking import Payoff, pfsp_weights
from marl.config import LeagueSettings


LeagueLinkSettings = LeagueSettings  # the schema lives with the trainer config (marl/config.py)


class LeagueLink:
    """A training run's connection to a league.

    Args:
        settings: the ``league:`` block.
        run_id: the run id (player names are ``<run_id>/<Behavior>-<step>``).
        base_dir: folder the block's relative ``config`` path is relative to (the trainer uses the
            working directory, like ``env_path``).

    Raises:
        ConfigError / StoreError: the league config or store cannot be opened.
    """

    def __init__(self, settings: LeagueLinkSettings, run_id: str, base_dir: str = "."):
        self.settings = settings
        self.run_id = run_id
        path = settings.config if os.path.isabs(settings.config) else os.path.join(base_dir, settings.config)
        self.league = League(load_config(path))
        self._last: dict[str, str] = {}

    def _player(self, name: str):
        try:
            return self.league.store.get_player(name)
        except UnknownPlayerError:
            return None

    def register_snapshot(self, path: str, behavior: str, step: int) -> str | None:
        """Copy a freshly saved snapshot into the league's ``policies/<run-id>/`` folder and register it.

        The file is copied to a temporary name, hashed, and renamed into place only once its
        player name is settled, so a file a registered player points to is never overwritten.
        Registering the same file again is a no-op; a *different* policy at a step already
        registered (a run resumed from an earlier checkpoint re-takes its snapshots) becomes
        ``<run-id>/<behavior>-<step>~<hash8>``.

        Returns:
            its player name (None when registration is off).

        Raises:
            PolicyFileError: missing/unsupported file; StoreError: the store refused the player.
        """
        if not self.settings.register_snapshots:
            return None
        name = f"{self.run_id}/{behavior}-{step}"
        folder = os.path.join(self.league.config.base_dir, "policies", self.run_id)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
        shutil.copyfile(path, tmp)
        try:
            digest = file_sha256(tmp)
            old = self._player(name)
            if old is not None and old.policy_hash == digest:
                self._last[behavior] = name
                return name
            stem, ext = os.path.splitext(os.path.basename(path))
            if old is not None:
                name, stem = f"{name}~{digest[:8]}", f"{stem}~{digest[:8]}"
            kept = os.path.join(folder, stem + ext)
            os.replace(tmp, kept)  # atomic: a crash never leaves a torn policy file in the league
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        parent = self._last.get(behavior)
        if parent is not None and self._player(parent) is None:
            parent = None  # the league lost the parent (reset store, other config): start a new line
        # check=False: the run's own env was checked when the link opened, and acting here would build
        # an env (possibly a Unity player) per snapshot inside the trainer
        self.league.add_snapshot(kept, self.run_id, behavior, step, parent=parent, name=name, check=False)
        self._last[behavior] = name
        return name

    def continue_lineage(self, behavior: str, player: str) -> None:
        """Make ``player`` the parent of the next snapshot registered for ``behavior`` (``--resume``)."""
        self._last[behavior] = player

    def win_rates(self, anchors: str | Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Smoothed P[anchor beats candidate] float64 ``[len(candidates)]`` from the league's match log,
        averaged over ``anchors`` (an anchor is skipped against itself; unplayed pairs count 0.5)."""
        anchors = [anchors] if isinstance(anchors, str) else list(anchors)
        payoff = Payoff(self.league.games(), list(dict.fromkeys([*anchors, *candidates])))
        out = []
        for c in candidates:
            rates = [payoff.win_rate(a, c) for a in anchors if a != c]
            out.append(float(np.mean(rates)) if rates else 0.5)
        return np.array(out, np.float64)

    def opponent_probabilities(self, player: str | Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """PFSP probabilities float64 ``[len(candidates)]`` for ``player`` (or several anchors, pooled)
        from the league's payoff matrix (:meth:`win_rates`, :func:`league.matchmaking.pfsp_weights`)."""
        return pfsp_weights(self.win_rates(player, candidates), self.settings.pfsp_weighting, self.settings.pfsp_p)

    def sample_opponent(self, player: str, candidates: Sequence[str] | None = None,
                        rng: np.random.Generator | None = None) -> str:
        """An opponent for ``player``: PFSP over ``candidates`` (default: every other active league player)
        when ``pfsp_from_league``, else uniform."""
        rng = rng or np.random.default_rng()
        cands = [c for c in (candidates or self.league.active_names()) if c != player]
        if not cands:
            from league.errors import LeagueError

            raise LeagueError(f"league '{self.league.config.name}' has no opponents for '{player}'")
        if not self.settings.pfsp_from_league:
            return str(rng.choice(cands))
        return cands[int(rng.choice(len(cands), p=self.opponent_probabilities(player, cands)))]


def open_sink(cfg) -> LeagueLink:
    """The league's snapshot sink for a training run (entry point ``marl.snapshot_sinks: league``).

    ``marl`` finds this through the entry point (it never imports the league) and calls it with the
    run config; the returned :class:`LeagueLink` implements :class:`marl.selfplay.SnapshotSink`.

    Raises:
        marl.config.ConfigError: the league config is missing or invalid, or its env is not the run's env.
    """
    from league.errors import LeagueError
    from marl.config import ConfigError

    block = cfg.league
    try:
        link = LeagueLink(block, cfg.checkpoint_settings.run_id, base_dir=".")
    except (LeagueError, OSError, ValueError) as exc:
        raise ConfigError(f"league.config: cannot open league '{block.config}': {exc}") from None
    env = cfg.env_settings.env_path
    if env is not None and link.league.config.env.id != env:
        raise ConfigError(f"league.config: league '{block.config}' plays '{link.league.config.env.id}', "
                          f"this run trains on '{env}'")
    return link
