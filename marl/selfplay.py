"""Self-play as ML-Agents' ghost trainer: snapshots, opponent sampling, team rotation and Elo.

Reference: ML-Agents ``mlagents/trainers/ghost/trainer.py`` and ``ghost/controller.py``
(Release 22) and its docs ("Training Configuration File", section Self-Play). What happens, per
behavior that has a ``self_play`` block (all step counts are *env steps*, our unit):

* **Teams.** A behavior whose slots span 2+ teams (``BehaviorSpec.teams``, from ``Name?team=N``)
  has those teams; a turn-based game whose players share one behavior (OpenSpiel, PettingZoo
  classic) treats each player seat as a team. One team is the *learning team*: its slots act with
  the learning policy and only their experience is trained on. Every other slot acts with the
  current *opponent* (a frozen snapshot, sampling its actions as ML-Agents' ghost policies do).
* **Snapshots.** The learning policy's actor is copied every ``save_steps`` (and once at the
  start) into a window of the last ``window`` snapshots, each with the Elo the learner had when
  it was taken. Snapshots are kept in memory and written to
  ``results/<run-id>/<Behavior>/snapshots/<Behavior>-<step>.pt`` in the checkpoint format, so
  :func:`marl.inference.load_policy` (and the league) can load them; files leaving the window
  are deleted.
* **Swaps.** Every ``swap_steps`` a new opponent is drawn: with probability
  ``play_against_latest_model_ratio`` the current learning policy (frozen at the swap), else a
  uniformly chosen snapshot of the window. All env copies play the same opponent, as in ML-Agents.
* **Team change.** Every ``team_change`` steps the learning team moves on to the next team
  (round robin) and a new opponent is drawn. The change takes effect at the next rollout (a
  rollout's experience always belongs to one team); swaps take effect at the next env step.
* **Env runners** (``marl-learn --ray``, :mod:`marl.ray_runners`). The driver's ghost keeps all of the
  above: before a rollout it draws the opponents of every swap that can fall inside it
  (:meth:`BehaviorGhost.plan_rollout`, swaps at the vector steps a local run with all the copies
  would make them), each runner's ghost plays that plan and scores its games
  (:meth:`BehaviorGhost.follow`), and the driver's ghost updates Elo from every game and commits the
  swaps reached (:meth:`BehaviorGhost.settle_rollout`).
* **Elo.** After each finished episode the learner's rating ``R`` and the opponent's ``R_o`` move
  by ``K (S - E)`` and ``-K (S - E)`` with ``E = 1 / (1 + 10^((R_o - R) / 400))`` and ``S`` = 1 / 0.5
  / 0 for win / draw / loss. Logged as ``Self-play/ELO``, saved in the checkpoint and in
  ``training_status.json`` (``elo``) and restored on ``--resume``.

Differences from ML-Agents, on purpose:

* ``elo_k`` (default 16): ML-Agents' docs say K=16 but its code (``compute_elo_rating_changes``)
  applies ``change = S - E``, i.e. K=1. Set ``elo_k: 1`` to reproduce its numbers.
* The outcome ``S``: in turn-based games, the game's returns (the episode's summed rewards per
  seat, = OpenSpiel's ``state.returns()``); in simultaneous games, the final step's reward of the
  learning team (mean over its slots that ended in that step) compared with the opponents' (win
  if higher, draw if equal). ML-Agents takes the sign of the learner's final reward; for the
  symmetric zero-sum games used here (±1, 0) both rules agree, and ours also handles games that
  pay the loser 0 instead of -1.
* Elo is updated once per episode (ML-Agents updates it once per learning-team *agent*
  trajectory, i.e. twice per episode for a 2-agent team).
* The opponent "latest policy" gets the learner's rating at the swap; its rating changes are not
  kept (ML-Agents reads ``policy_elos[-1]``, the rating of whichever window entry is last).
* The window is restored on ``--resume`` from the snapshot files (ML-Agents starts it afresh).
* Our ``random_opponent_ratio`` (default 0, i.e. ML-Agents): the probability that a swap draws a
  uniform-random player (legal moves only; Elo fixed at ``initial_elo``) instead of a snapshot.
  Self-play opponents never make the erratic threats a random or novice player makes (an edge
  column stacked four high), so a pure self-play policy can lose to them; a few games against
  random play close that gap.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from envs.spec import BehaviorSpec, EnvSpec
from marl.algos.base import Trainer
from marl.checkpoint import FORMAT, CheckpointError, load_checkpoint, spec_to_dict
from marl.config import ConfigError, SelfPlaySettings
from marl.io import atomic_torch_save
from marl.pfsp import pfsp_weights
from marl.policy import Policy, RandomPolicy

ELO_TAG = "Self-play/ELO"
PFSP_ANCHORS = 3  # league PFSP: the learner's win rate is pooled over its last 3 registered snapshots
PFSP_REFRESH_SECONDS = 30.0  # ... and re-read from the league's match log at most this often


# ------------------------------------------------------------------------------------------ Elo
def elo_expected(rating: float, opponent: float) -> float:
    """Expected score of a player rated ``rating`` against ``opponent``: ``1 / (1 + 10^((Ro - R) / 400))``."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))


def elo_update(rating: float, opponent: float, result: float, k: float = 16.0) -> tuple[float, float]:
    """Ratings after one game (Elo 1978; ML-Agents ``GhostController.compute_elo_rating_changes`` with K).

    Args:
        rating, opponent: ratings before the game.
        result: the first player's score: 1 win, 0.5 draw, 0 loss.
        k: K factor (ML-Agents' code uses 1, its docs 16).

    Returns:
        ``(new rating, new opponent rating)``; the sum of the two ratings is unchanged.

    Raises:
        ValueError: ``result`` is not in [0, 1].
    """
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"elo_update: result must be in [0, 1] (1 win, 0.5 draw, 0 loss), got {result}")
    change = k * (result - elo_expected(rating, opponent))
    return rating + change, opponent - change


def game_result(learner: float, opponent: float) -> float:
    """Score ``S`` from the two sides' outcomes: 1 if ``learner > opponent``, 0.5 if equal, else 0."""
    return 1.0 if learner > opponent else 0.0 if learner < opponent else 0.5


# ------------------------------------------------------------------------------------------ teams
def team_slots(spec: BehaviorSpec, turn_based: bool) -> list[np.ndarray]:
    """Slots of each team of a self-play behavior, teams in increasing id order.

    Returns:
        a list (one entry per team, >= 2) of int64 slot-index arrays.

    Raises:
        ConfigError: the behavior has a single team and is not a turn-based game with 2+ seats
            (self-play needs an opponent inside the same behavior).
    """
    teams = np.asarray(spec.teams if spec.teams else (0,) * spec.n_agents)
    ids = sorted(set(teams.tolist()))
    if len(ids) >= 2:
        return [np.flatnonzero(teams == t).astype(np.int64) for t in ids]
    if turn_based and spec.n_agents >= 2:
        return [np.array([i], np.int64) for i in range(spec.n_agents)]
    raise ConfigError(f"behaviors.{spec.name}.self_play: behavior '{spec.name}' has one team and is not a turn-based "
                      "game with 2+ seats, so it has no opponent to play (self-play needs agents named "
                      "'Name?team=N' with 2+ teams, or an AEC game whose players share one behavior)")


# ------------------------------------------------------------------------------------------ state
@dataclass
class Snapshot:
    """A frozen copy of the learning actor.

    Attributes:
        actor: the policy state the behavior's loader reads (the checkpoint's ``trainer`` part of a
            snapshot file, e.g. ``{"actor": state_dict}``; CPU tensors).
        elo: rating (the learner's when taken; lowered/raised by games played as opponent).
        step: env step at which it was taken.
        path: the snapshot file (None when files are off).
        player: its league player name when registered through the ``league:`` link, else None.
    """

    actor: dict
    elo: float
    step: int
    path: Path | None = None
    player: str | None = None


class BehaviorGhost:
    """Self-play state of one behavior (ML-Agents' ``GhostTrainer`` for that behavior).

    Args:
        trainer: the wrapped trainer (it acts and learns; see :meth:`marl.algos.base.Trainer.set_opponents`).
        spec: the behavior.
        settings: the ``self_play`` block.
        trainer_type: the behavior's ``trainer_type`` (its registry entry loads snapshot policies).
        network_settings: recorded in snapshot files.
        turn_based: the env is an AEC game.
        env_id: recorded in snapshot files.
        state_shape: global state shape (recorded in snapshot files).
        snapshot_dir: folder for snapshot files (None = memory only).
        seed: seed of the opponent sampler.
        link: a :class:`SnapshotSink` (the run's ``league:`` block) or None.

    Raises:
        ConfigError: see :func:`team_slots`.
    """

    def __init__(self, trainer, spec: BehaviorSpec, settings: SelfPlaySettings, trainer_type: str,
                 network_settings: dict, turn_based: bool, env_id: str, state_shape: tuple[int, ...],
                 snapshot_dir: Path | None, seed: int | None = None, link: "SnapshotSink | None" = None):
        from marl.algos import registry

        self.trainer, self.s, self.spec = trainer, settings, spec
        self.trainer_type, self.network_settings = trainer_type, network_settings
        self._loader = registry.get(trainer_type).load("policy_loader")
        self.teams = team_slots(self.spec, turn_based)
        self.turn_based, self.env_id, self.state_shape = turn_based, env_id, tuple(state_shape)
        self.snapshot_dir = snapshot_dir
        self.rng = np.random.default_rng(seed)
        self.opponent_policy: Policy | None = None
        self.random_policy = RandomPolicy(spec, 0 if seed is None else seed)
        self.snapshots: deque[Snapshot] = deque()
        self.elo = float(settings.initial_elo)
        self.opponent: Snapshot | None = None  # the snapshot being played (a window entry or the "latest" copy)
        self.opponent_is_latest = False
        self.opponent_is_random = False
        self.learning_team = 0
        self.last_save = self.last_swap = self.last_team_change = 0
        self.started = False
        self.games = 0
        self.link = link
        self.n_saved = 0
        self.registered: str | None = None  # the learner's newest league player name
        self.lineage: deque[str] = deque(maxlen=PFSP_ANCHORS)  # the learner's newest league players (PFSP anchors)
        self._win_rates: dict[str, float] = {}  # league player -> pooled P[learner beats it] (league payoff)
        self._refreshed = -math.inf
        self._planned: tuple | None = None  # driver: the opponents drawn for the rollout on env runners
        self._following: dict | None = None  # env runner: the plan being played
        self._set_learning_mask()

    # ---------------------------------------------------------------------------- bookkeeping
    def _set_learning_mask(self) -> None:
        mask = np.zeros(self.spec.n_agents, np.bool_)
        mask[self.teams[self.learning_team]] = True
        self.learning_slots = mask
        self.opponent_slots = np.flatnonzero(~mask)
        self._install_opponent()

    def _install_opponent(self) -> None:
        """Tell the wrapped trainer which slots the opponent plays, and with which policy."""
        policy = self.random_policy if self.opponent_is_random else self.opponent_policy
        self.trainer.set_opponents(self.spec.name, ~self.learning_slots, policy)

    def _actor_state(self) -> dict:
        """A CPU copy of what the behavior's policy loader needs (:meth:`marl.algos.base.Trainer.policy_state`,
        e.g. ``{"actor": state_dict}`` for PPO)."""
        def cpu(x):
            if isinstance(x, torch.Tensor):
                return x.detach().cpu().clone()
            if isinstance(x, dict):
                return {k: cpu(v) for k, v in x.items()}
            return copy.deepcopy(x)

        return cpu(self.trainer.policy_state(self.spec.name))

    @property
    def opponent_actor(self):
        """The opponent policy's torch network (PPO-family opponents; tests poke it)."""
        return getattr(self.opponent_policy, "actor", None)

    def save_snapshot(self, step: int) -> Snapshot:
        """Copy the learning actor into the window (dropping the oldest beyond ``window``)."""
        snap = Snapshot(self._actor_state(), self.elo, int(step))
        if self.snapshot_dir is not None:
            snap.path = self.snapshot_dir / f"{self.spec.name}-{int(step)}.pt"
            atomic_torch_save(self._payload(snap), snap.path)
        self.snapshots.append(snap)
        self.n_saved += 1
        if self.link is not None and snap.path is not None and (self.n_saved - 1) % self.link.settings.register_every == 0:
            self._register(snap)
        while len(self.snapshots) > self.s.window:
            old = self.snapshots.popleft()
            if old.path is not None:  # an opponent still playing it keeps its weights in memory
                old.path.unlink(missing_ok=True)
        self.last_save = int(step)
        return snap

    def _payload(self, snap: Snapshot) -> dict:
        """A checkpoint-format dict (``marl.checkpoint``) holding only what the policy loader needs."""
        return {"format": FORMAT, "behavior": self.spec.name, "trainer_type": self.trainer_type,
                "step": snap.step, "env_id": self.env_id, "behavior_spec": spec_to_dict(self.spec),
                "state_shape": list(self.state_shape), "network_settings": self.network_settings,
                "trainer": snap.actor, "extra": {"elo": snap.elo, "selfplay_snapshot": True}}

    def _policy_of(self, snap: Snapshot) -> Policy:
        """The opponent :class:`marl.policy.Policy` of a snapshot (the algorithm's own loader)."""
        return self._loader(self._payload(snap), snap.path or Path(f"<{self.spec.name} snapshot {snap.step}>"))

    # ---------------------------------------------------------------------------- league link
    def _register(self, snap: Snapshot) -> None:
        """Register ``snap`` in the league (league errors only warn: training goes on)."""
        try:
            snap.player = self.link.register_snapshot(str(snap.path), self.spec.name, snap.step)
        except Exception as exc:  # noqa: BLE001 - a league problem must not stop training
            warnings.warn(f"league link: snapshot {snap.path} not registered ({type(exc).__name__}: {exc})", stacklevel=2)
            return
        if snap.player is not None:
            self.registered = snap.player
            self.lineage.append(snap.player)
            self._refreshed = -math.inf

    @property
    def pfsp(self) -> bool:
        return self.link is not None and self.link.settings.pfsp_from_league

    def refresh_win_rates(self, force: bool = False) -> None:
        """Re-read the learner's win rates against the window from the league's match log, at most
        every ``PFSP_REFRESH_SECONDS`` (the log grows while e.g. a ``league run`` gauntlet plays).
        Anchors: the learner's last ``PFSP_ANCHORS`` registered snapshots, pooled (the newest alone
        has usually played nothing yet)."""
        if not self.pfsp or not self.lineage or (not force and time.monotonic() - self._refreshed < PFSP_REFRESH_SECONDS):
            return
        self._refreshed = time.monotonic()
        cands = [s.player for s in self.snapshots if s.player is not None]
        try:
            rates = self.link.win_rates(list(self.lineage), cands) if cands else []
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"league link: win rates not read ({type(exc).__name__}: {exc})", stacklevel=2)
            return
        self._win_rates = dict(zip(cands, map(float, rates)))

    def _window_pick(self) -> Snapshot:
        """A window snapshot: uniform, or with ``league.pfsp_from_league`` PFSP over the whole window
        (Vinyals et al. 2019) from the league's win rates (0.5 for snapshots not registered or not played)."""
        if self.pfsp:
            self.refresh_win_rates()
            x = np.array([self._win_rates.get(s.player, 0.5) for s in self.snapshots], np.float64)
            p = pfsp_weights(x, self.link.settings.pfsp_weighting, self.link.settings.pfsp_p)
            return self.snapshots[int(self.rng.choice(len(self.snapshots), p=p))]
        return self.snapshots[int(self.rng.integers(len(self.snapshots)))]

    def swap(self, step: int) -> None:
        """Draw the next opponent (ML-Agents ``_swap_snapshots``) and load it into the opponent actor:
        the latest policy with probability ``play_against_latest_model_ratio``, else a window snapshot
        (uniform, or PFSP from the league's payoff matrix with ``league.pfsp_from_league``)."""
        self.last_swap = int(step)
        self.opponent, self.opponent_is_latest, self.opponent_is_random = self._draw(step)
        if not self.opponent_is_random:
            self.opponent_policy = self._policy_of(self.opponent)
        self._install_opponent()

    def _draw(self, step: int, latest: dict | None = None) -> tuple[Snapshot, bool, bool]:
        """One opponent draw: ``(snapshot, is the latest policy, is the random player)``. ``latest``: the
        learning actor's state to freeze as "the latest policy" (default: copied now)."""
        if self.s.random_opponent_ratio > 0 and self.rng.uniform() < self.s.random_opponent_ratio:
            return Snapshot({}, float(self.s.initial_elo), int(step)), False, True  # our addition, fixed at initial_elo
        if self.rng.uniform() < self.s.play_against_latest_model_ratio or not self.snapshots:
            return Snapshot(self._actor_state() if latest is None else latest, self.elo, int(step)), True, False
        return self._window_pick(), False, False

    def change_team(self, step: int) -> None:
        """Make the next team the learning team (round robin) and draw a new opponent."""
        self.learning_team = (self.learning_team + 1) % len(self.teams)
        self._set_learning_mask()
        self.last_team_change = int(step)
        self.swap(step)

    # ---------------------------------------------------------------------------- hooks
    def begin_rollout(self, step: int) -> None:
        """Before collecting: first snapshot and opponent, or a due team change."""
        if not self.started:
            self.started = True
            if not self.snapshots:
                self.save_snapshot(step)
                self.last_team_change = int(step)
            self.swap(step)
        elif step - self.last_team_change >= self.s.team_change:
            self.change_team(step)

    def episode_result(self, arrays: dict[str, np.ndarray], e: int, returns: np.ndarray) -> float:
        """Score ``S`` of the learning team in the episode copy ``e`` just finished (see the module docstring)."""
        learn = self.learning_slots
        if not self.turn_based:
            name = self.spec.name
            final = arrays[f"{name}/reward"][e]
            ended = arrays[f"{name}/terminated"][e] | arrays[f"{name}/truncated"][e]
            if (ended & learn).any() and (ended & ~learn).any():
                return game_result(float(final[ended & learn].mean()), float(final[ended & ~learn].mean()))
        r = np.asarray(returns, np.float64)
        mine, theirs = r[learn], r[~learn]
        mine, theirs = mine[~np.isnan(mine)], theirs[~np.isnan(theirs)]
        return game_result(float(mine.mean()) if mine.size else 0.0, float(theirs.mean()) if theirs.size else 0.0)

    def record_game(self, result: float) -> None:
        """Update the learner's and the current opponent's Elo after one game."""
        opp = self.opponent.elo if self.opponent is not None else self.elo
        self.elo, new_opp = elo_update(self.elo, opp, result, self.s.elo_k)
        if self.opponent is not None:
            self.opponent.elo = new_opp
        self.games += 1

    def _scores(self, arrays: dict[str, np.ndarray], finished: list):
        """``(copy, score S)`` of each game of this behavior that ended in the last vector step."""
        for e, stats in finished:
            returns = stats.returns.get(self.spec.name)
            if returns is None or np.isnan(returns).all():
                continue
            yield int(e), self.episode_result(arrays, e, returns)

    def after_step(self, arrays: dict[str, np.ndarray], finished: list, step: int) -> None:
        """After one vector step: Elo for finished episodes, then a due swap."""
        for _, result in self._scores(arrays, finished):
            self.record_game(result)
        if step - self.last_swap >= self.s.swap_steps:
            self.swap(step)

    def end_rollout(self, step: int) -> dict[str, float]:
        """After the update: a due snapshot; returns ``{"Self-play/ELO": elo}``."""
        if step - self.last_save >= self.s.save_steps:
            self.save_snapshot(step)
        return {ELO_TAG: self.elo}

    # ---------------------------------------------------------------------------- env runners (marl/ray_runners.py)
    # A rollout collected by env runners is split in three: the driver's ghost draws the rollout's
    # opponents (plan_rollout), each runner's ghost plays them and scores its games (follow,
    # follow_step, followed), the driver's ghost updates Elo and commits the swaps (settle_rollout).
    def plan_rollout(self, step: int, copies: int, horizon: int) -> dict:
        """Driver side, after :meth:`begin_rollout`: draw the opponent of every swap that can fall in the rollout.

        A swap is due after vector step ``t`` (0-based) when ``step + (t + 1) * copies`` is
        ``swap_steps`` past the previous swap: the rule of :meth:`after_step` in one process holding
        all ``copies`` env copies, so every runner swaps at the same vector step. Draws for swaps the
        rollout does not reach are discarded by :meth:`settle_rollout` (they only advance the sampler).

        Args:
            step: env steps before the rollout.
            copies: env copies over all runners (``num_envs * num_areas``).
            horizon: the most vector steps one runner takes in a rollout (its buffer's rows).

        Returns:
            the plan :meth:`follow` reads (picklable): ``{"team": learning team, "actors": [actor state
            (CPU tensors, as a snapshot's ``trainer``) or None for the random player], "opponents": [index
            into actors, per entry], "swaps": [(t, entry), ...]}``; entry 0 is the current opponent. Each
            distinct actor is listed once.
        """
        entries = [(self.opponent, self.opponent_is_latest, self.opponent_is_random)]
        swaps, at = [], []
        last, latest = self.last_swap, None
        for t in range(max(0, int(horizon))):
            s = step + (t + 1) * copies
            if s - last >= self.s.swap_steps:
                if latest is None:
                    latest = self._actor_state()  # the weights do not change during a rollout
                last = s
                entries.append(self._draw(s, latest))
                swaps.append((t, len(entries) - 1))
                at.append(s)
        actors, index, opponents = [], {}, []
        for snap, _, is_random in entries:
            key = None if is_random else id(snap.actor)
            if key not in index:
                index[key] = len(actors)
                actors.append(None if is_random else snap.actor)
            opponents.append(index[key])
        self._planned = (entries, swaps, at)
        return {"team": self.learning_team, "actors": actors, "opponents": opponents, "swaps": swaps}

    def follow(self, plan: dict) -> None:
        """Runner side: play ``plan`` (:meth:`plan_rollout` of the driver's ghost) in the next collect: its
        learning team, its first opponent, then its swaps (:meth:`follow_step`)."""
        policies = [self.random_policy if a is None else self._policy_of(Snapshot(a, self.elo, 0)) for a in plan["actors"]]
        self._following = {"plan": plan, "policies": policies, "t": 0, "next": 0, "games": []}
        self._play_entry(0)
        self.learning_team = int(plan["team"]) % len(self.teams)
        self._set_learning_mask()  # installs the opponent

    def _play_entry(self, k: int) -> None:
        f = self._following
        a = f["plan"]["opponents"][k]
        f["entry"] = k
        self.opponent_is_random = f["plan"]["actors"][a] is None
        if not self.opponent_is_random:
            self.opponent_policy = f["policies"][a]

    def follow_step(self, arrays: dict[str, np.ndarray], finished: list) -> None:
        """Runner side, after each vector step: score the games that ended (against the entry being
        played), then make a planned swap."""
        f = self._following
        t = f["t"]
        for e, result in self._scores(arrays, finished):
            f["games"].append((t, e, result, f["entry"]))
        swaps, moved = f["plan"]["swaps"], False
        while f["next"] < len(swaps) and swaps[f["next"]][0] <= t:
            self._play_entry(swaps[f["next"]][1])
            f["next"] += 1
            moved = True
        if moved:
            self._install_opponent()
        f["t"] = t + 1

    def followed(self) -> tuple[int, list[tuple[int, int, float, int]]]:
        """Runner side, after the collect: ``(vector steps taken, [(t, copy, score S, plan entry), ...])``."""
        f = self._following
        return f["t"], list(f["games"])

    def settle_rollout(self, reports: list[tuple[int, list]]) -> None:
        """Driver side, after the runners returned: Elo from every reported game, in the order the games
        would have ended in one process (vector step, then runner, then copy), and the swaps reached.

        A "latest policy" opponent gets the learner's rating when its swap is reached, as in :meth:`swap`.

        Args:
            reports: :meth:`followed` of each runner whose fragment arrived (a lost runner's games are lost
                with its fragment).
        """
        entries, swaps, at = self._planned
        self._planned = None
        rows = max((int(r[0]) for r in reports), default=0)
        games = sorted((int(t), i, int(e), float(s), int(k)) for i, (_, gs) in enumerate(reports) for t, e, s, k in gs)
        current, g = 0, 0

        def record(game) -> None:
            self.opponent = entries[game[4]][0]
            self.record_game(game[3])

        for (t, k), s in zip(swaps, at):
            if t >= rows:
                break
            while g < len(games) and games[g][0] <= t:  # games of step t ended before its swap
                record(games[g])
                g += 1
            current = k
            if entries[k][1]:
                entries[k][0].elo = self.elo
            self.last_swap = s
        for game in games[g:]:
            record(game)
        snap, self.opponent_is_latest, self.opponent_is_random = entries[current]
        if current != 0 and not self.opponent_is_random:
            self.opponent_policy = self._policy_of(snap)
        self.opponent = snap
        self._install_opponent()

    # ---------------------------------------------------------------------------- persistence
    def state(self) -> dict:
        """JSON-able state for the checkpoint's ``extra`` (snapshots by file path)."""
        return {"elo": self.elo, "learning_team": self.learning_team, "last_save": self.last_save,
                "last_swap": self.last_swap, "last_team_change": self.last_team_change, "games": self.games,
                "n_saved": self.n_saved, "registered": self.registered, "lineage": list(self.lineage),
                "snapshots": [{"path": None if s.path is None else str(s.path), "elo": s.elo, "step": s.step,
                               "player": s.player} for s in self.snapshots]}

    def load(self, state: dict) -> None:
        """Restore from :meth:`state` (``--resume``): Elo, team, counters and the snapshot window.

        Snapshot files that are missing or unreadable are skipped with a warning.
        """
        if not state:
            return
        self.elo = float(state.get("elo", self.elo))
        self.learning_team = int(state.get("learning_team", 0)) % len(self.teams)
        self._set_learning_mask()
        self.last_save = int(state.get("last_save", 0))
        self.last_swap = int(state.get("last_swap", 0))
        self.last_team_change = int(state.get("last_team_change", 0))
        self.games = int(state.get("games", 0))
        self.n_saved = int(state.get("n_saved", 0))
        self.registered = state.get("registered")
        self.lineage.clear()
        self.lineage.extend(state.get("lineage", []))
        if self.link is not None and self.registered:
            self.link.continue_lineage(self.spec.name, self.registered)  # lineage continues across --resume
        self.snapshots.clear()
        for entry in state.get("snapshots", []):
            if not entry.get("path"):
                continue
            try:
                actor = load_checkpoint(entry["path"])["trainer"]
            except (CheckpointError, KeyError) as exc:
                warnings.warn(f"self-play: snapshot {entry['path']} not restored ({exc})", stacklevel=2)
                continue
            self.snapshots.append(Snapshot(actor, float(entry["elo"]), int(entry["step"]), Path(entry["path"]),
                                           entry.get("player")))
        self._refreshed = -math.inf
        self.started = bool(self.snapshots)
        if self.started:
            self.swap(self.last_swap)


# ------------------------------------------------------------------------------------------ snapshot sinks
class SnapshotSink(Protocol):
    """Where a self-play run registers its snapshots and reads win rates from (a league implements it).

    ``marl`` defines this interface and never imports a league: a sink is found through the
    ``marl.snapshot_sinks`` entry-point group (the league package declares ``league =
    league.training:open_sink`` in its ``pyproject.toml``) or registered at run time with
    :func:`register_snapshot_sink`. A factory is called with the run config and returns a sink.

    Attributes:
        settings: the run's ``league:`` block (:class:`marl.config.LeagueSettings`).
    """

    settings: Any

    def register_snapshot(self, path: str, behavior: str, step: int) -> str | None:
        """Register the snapshot file; returns its player name (None if not registered)."""

    def continue_lineage(self, behavior: str, player: str) -> None:
        """After ``--resume``: the next snapshot's parent is ``player``."""

    def win_rates(self, anchors: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """float ``[len(candidates)]``: P[anchors beat candidate] pooled over the anchors (0.5 when unplayed)."""


_SINK_FACTORIES: dict[str, Callable[[Any], SnapshotSink]] = {}


def register_snapshot_sink(name: str, factory: Callable[[Any], SnapshotSink]) -> None:
    """Register a sink factory ``factory(cfg) -> SnapshotSink`` under ``name`` (overrides an entry point)."""
    _SINK_FACTORIES[name] = factory


def open_snapshot_sink(cfg) -> SnapshotSink:
    """The sink for the run's ``league:`` block: a registered factory, else the ``marl.snapshot_sinks``
    entry point (the league's).

    Raises:
        ConfigError: no sink is installed, or it cannot open the league.
    """
    factories = dict(_SINK_FACTORIES)
    if not factories:
        from importlib.metadata import entry_points

        for ep in entry_points(group="marl.snapshot_sinks"):
            try:
                factories[ep.name] = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is a config problem for the user
                raise ConfigError(f"league: the snapshot sink '{ep.name}' ({ep.value}) cannot be loaded: {exc}") from None
    if not factories:
        raise ConfigError("league: no league is installed to register snapshots into (the 'marl.snapshot_sinks' "
                          "entry point is missing; reinstall the project with: .venv/bin/pip install -e .)")
    name = "league" if "league" in factories else sorted(factories)[0]
    return factories[name](cfg)


# ------------------------------------------------------------------------------------------ the wrapper
class GhostTrainer(Trainer):
    """Self-play around any trainer whose registry entry supports it (ML-Agents' ``GhostTrainer``).

    It owns one :class:`BehaviorGhost` per behavior with a ``self_play`` block; the wrapped trainer
    acts for every slot, except that the opponent slots act with the ghost's opponent
    :class:`marl.policy.Policy` (:meth:`marl.algos.base.Trainer.set_opponents`), inside the same
    batched rollout, and only the learning team's experience is trained on. Per rollout:
    :meth:`BehaviorGhost.begin_rollout` (first snapshot, team change), after every vector step
    :meth:`BehaviorGhost.after_step` (Elo, swaps), after the update :meth:`BehaviorGhost.end_rollout`
    (snapshots, ``Self-play/ELO``). Everything else is delegated to the wrapped trainer.

    Args:
        trainer: the wrapped trainer.
        ghosts: behavior -> its ghost.
    """

    def __init__(self, trainer: Trainer, ghosts: dict[str, BehaviorGhost]):
        self.inner, self.ghosts = trainer, ghosts
        self.spec = trainer.spec

    @property
    def selfplay(self) -> "GhostTrainer":
        """This wrapper (its ``ghosts``): the old attribute path ``trainer.selfplay.ghosts``."""
        return self

    def __getattr__(self, name: str):
        if name in ("inner", "ghosts"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def timing(self) -> tuple[float, float]:
        return self.inner.timing

    def begin_rollout(self, step: int) -> None:
        for g in self.ghosts.values():
            g.begin_rollout(step)

    def collect_and_train(self, venv, step: int, on_episode=None) -> tuple[int, dict[str, dict[str, float]]]:
        self.begin_rollout(step)

        def on_step(arrays, finished, env_step):
            for g in self.ghosts.values():
                g.after_step(arrays, finished, env_step)

        steps, logs = self.inner.collect_and_train(venv, step, on_episode, on_step=on_step)
        for name, g in self.ghosts.items():
            logs.setdefault(name, {}).update(g.end_rollout(step + steps))
        return steps, logs

    # --- env runners (marl/ray_runners.py): the driver plans and settles, each runner follows the plan ---
    def plan_rollout(self, step: int, copies: int, horizon: int) -> dict[str, dict]:
        """Driver: :meth:`BehaviorGhost.begin_rollout` then :meth:`BehaviorGhost.plan_rollout` per behavior
        (``{behavior: plan}``, sent to every runner in one object-store put)."""
        self.begin_rollout(step)
        return {name: g.plan_rollout(step, copies, horizon) for name, g in self.ghosts.items()}

    def collect_planned(self, venv, step: int, plans: dict[str, dict], on_episode=None):
        """Env runner: :meth:`Trainer.collect` playing the driver's ``plans``; returns ``(env steps, batch,
        seconds on env steps, {behavior: (vector steps, games)})`` (:meth:`BehaviorGhost.followed`)."""
        for name, g in self.ghosts.items():
            g.follow(plans[name])

        def on_step(arrays, finished, env_step):
            for g in self.ghosts.values():
                g.follow_step(arrays, finished)

        steps, batch, t_env = self.inner.collect(venv, step, on_episode, on_step)
        return steps, batch, t_env, {name: g.followed() for name, g in self.ghosts.items()}

    def settle_rollout(self, reports: list[dict]) -> None:
        """Driver: :meth:`BehaviorGhost.settle_rollout` with the reports of the runners that returned."""
        for name, g in self.ghosts.items():
            g.settle_rollout([r[name] for r in reports])

    def learn(self, step: int, steps: int, batch) -> dict[str, dict[str, float]]:
        """Driver (env runners): the wrapped trainer's update, then :meth:`BehaviorGhost.end_rollout` per
        behavior (snapshots, ``Self-play/ELO``), as :meth:`collect_and_train` does after a local rollout."""
        logs = self.inner.learn(step, steps, batch)
        for name, g in self.ghosts.items():
            logs.setdefault(name, {}).update(g.end_rollout(step + steps))
        return logs

    def merge(self, batches: list):
        return self.inner.merge(batches)

    def compact(self, batch):
        return self.inner.compact(batch)

    def weights(self) -> dict:
        return self.inner.weights()

    def load_weights(self, weights: dict) -> None:
        self.inner.load_weights(weights)

    def state_dict(self, behavior: str) -> dict:
        return self.inner.state_dict(behavior)

    def load_state_dict(self, behavior: str, state: dict, weights_only: bool = False) -> None:
        self.inner.load_state_dict(behavior, state, weights_only)

    def extra_state(self, behavior: str) -> dict:
        """``{"elo": float, "selfplay": {...}}`` for a self-play behavior, else the wrapped trainer's."""
        g = self.ghosts.get(behavior)
        return self.inner.extra_state(behavior) if g is None else {"elo": g.elo, "selfplay": g.state()}

    def load_extra(self, behavior: str, extra: dict) -> None:
        g = self.ghosts.get(behavior)
        if g is None:
            self.inner.load_extra(behavior, extra)
        elif extra:
            g.load(extra.get("selfplay") or {"elo": extra.get("elo", g.elo)})

    def actor(self, behavior: str):
        return self.inner.actor(behavior)


def wrap_self_play(trainer: Trainer, spec: EnvSpec, cfg, runner: int | None = None) -> Trainer:
    """``trainer`` wrapped in :class:`GhostTrainer` when a behavior has ``self_play``; else ``trainer``.

    ``runner``: the index of the env runner this copy collects for (:mod:`marl.ray_runners`): its
    ghosts only follow the driver's plans, write no snapshot files and seed their random player apart.

    Raises:
        ConfigError: self-play for a trainer type whose registry entry does not support it, or a
            self-play behavior without an opponent team (:func:`team_slots`).
    """
    from marl.algos import registry

    ck = cfg.checkpoint_settings
    seed = cfg.env_settings.seed
    ghosts: dict[str, BehaviorGhost] = {}
    link = None
    for b in spec.behaviors:
        s = cfg.behavior_settings(b.name)
        if s.self_play is None:
            continue
        if not registry.get(s.trainer_type).self_play:
            raise ConfigError(f"behaviors.{b.name}.self_play: trainer_type {s.trainer_type} does not support self-play "
                              f"(use one of: {', '.join(n for n, a in registry.ALGORITHMS.items() if a.self_play)})")
        if link is None and cfg.league is not None and runner is None:
            link = open_snapshot_sink(cfg)
        folder = Path(ck.results_dir) / ck.run_id / b.name / "snapshots" if runner is None else None
        sub_seed = None if seed < 0 else seed * 7919 + len(ghosts) + (0 if runner is None else 104729 * (runner + 1))
        ghosts[b.name] = BehaviorGhost(trainer, b, s.self_play, s.trainer_type, s.network_settings.model_dump(),
                                       spec.turn_based, spec.env_id, spec.state_shape, folder, sub_seed, link=link)
    return GhostTrainer(trainer, ghosts) if ghosts else trainer
