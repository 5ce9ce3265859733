"""Play one match between registered players in any PettingZoo env (AEC or parallel).

Seats: a match has one seat per side. The env's agents are split into seats by, in order of preference,
(1) ML-Agents team names (``Name?team=N``), (2) one agent per seat when the counts match (board games),
(3) one behavior per seat (``adversary_0`` vs ``agent_0, agent_1``). A seat's score is the sum of its
agents' episode rewards; ranks come from the scores (equal scores draw).

Reproducibility: the env is reset with the match seed and each seat's player is reseeded with
``seed * 1000003 + seat``; optional random opening moves (``opening_moves``) are drawn from a separate
RNG seeded by the match seed, so the same task always yields the same result.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.registry import EnvError, behavior_of, make_env, team_of
from league.errors import IncompatibleEnvError, LeagueError
from league.policies import PlayerCache, PlayerSpec, PolicyPlayer, Turn, legal_actions, make_player
from league.records import MatchResult, SeatResult, ranks_from_scores


@dataclass(frozen=True)
class MatchTask:
    """A match to play (picklable; sent to workers).

    Attributes:
        uid: the match id (kept across retries so the result is recorded once).
        env_id, env_kwargs: env to build with :func:`envs.registry.make_env`.
        seed: env and player seed.
        seats: players in seat order (seat i plays team/agent group i).
        tournament: label stored with the result.
        max_steps: env-step cap (AEC turns or parallel steps); the match is scored as it stands when hit.
        opening_moves: number of initial turns played uniformly at random (seeded), to diversify games
            between deterministic policies (as opening books do in engine tournaments).
        replay_dir: if set, the action log is written to ``<replay_dir>/<uid>.json``.
    """

    uid: str
    env_id: str
    seed: int
    seats: tuple[PlayerSpec, ...]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    tournament: str | None = None
    max_steps: int = 100_000
    opening_moves: int = 0
    replay_dir: str | None = None


def assign_seats(agents: list[str], n_seats: int, env_id: str) -> list[list[str]]:
    """Split ``agents`` into ``n_seats`` groups (see module docstring).

    Raises:
        IncompatibleEnvError: no rule yields exactly ``n_seats`` groups.
    """
    teams = sorted({team_of(a) for a in agents})
    if any("?team=" in a for a in agents) and len(teams) == n_seats:
        return [[a for a in agents if team_of(a) == t] for t in teams]
    if len(agents) == n_seats:
        return [[a] for a in agents]
    behaviors = list(dict.fromkeys(behavior_of(a) for a in agents))
    if len(behaviors) == n_seats:
        return [[a for a in agents if behavior_of(a) == b] for b in behaviors]
    raise IncompatibleEnvError(f"env '{env_id}' has agents {agents}: cannot split them into {n_seats} seats "
                               "(by team, one per agent, or by behavior)")


def _to_builtin(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.tolist()
    if isinstance(a, np.generic):
        return a.item()
    return a


def _random_action(rng: np.random.Generator, turn: Turn) -> Any:
    legal = legal_actions(turn)
    if legal is not None and len(legal):
        return int(rng.choice(legal))
    space = turn.action_space
    if hasattr(space, "n"):
        return int(rng.integers(space.n))
    space.seed(int(rng.integers(2**31)))
    return space.sample()


def _write_json_atomic(path: str, data: Any) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def play_match(task: MatchTask, cache: PlayerCache | None = None, worker: str | None = None) -> MatchResult:
    """Play ``task`` to the end and return its result.

    Args:
        task: what to play.
        cache: per-process player cache (a fresh one when None).
        worker: label stored with the result (default ``host:pid``).

    Raises:
        IncompatibleEnvError: the env's agents cannot be seated, or a policy does not fit an agent.
        PolicyFileError: a policy cannot be loaded.
        LeagueError: the env id is bad (wraps :class:`envs.registry.EnvError`).
    """
    cache = cache or PlayerCache()
    try:
        env = make_env(task.env_id, task.env_kwargs, prefer="aec")
    except EnvError as exc:
        raise LeagueError(str(exc)) from None
    players: list[PolicyPlayer] = []
    seen: set[tuple[str, str | None]] = set()
    for spec in task.seats:
        key = (spec.policy, spec.policy_hash)
        players.append(make_player(spec.policy, spec.policy_hash) if key in seen else cache.get(spec))
        seen.add(key)
    for i, p in enumerate(players):
        p.reset(int(task.seed) * 1_000_003 + i)
    opening_rng = np.random.default_rng([int(task.seed) % (2**63), 7])
    started = dt.datetime.now(dt.timezone.utc)
    parallel = not hasattr(env, "agent_iter")
    log: list[tuple[str, Any]] = []
    try:
        if parallel:
            observations, infos = env.reset(seed=int(task.seed))
            agents = list(env.possible_agents)
        else:
            env.reset(seed=int(task.seed))
            agents = list(env.possible_agents)
        groups = assign_seats(agents, len(task.seats), task.env_id)
        seat_of = {a: i for i, g in enumerate(groups) for a in g}
        returns = {a: 0.0 for a in agents}
        steps = 0
        if parallel:
            while env.agents and steps < task.max_steps:
                actions = {}
                for a in env.agents:
                    turn = Turn(env, a, observations[a], (infos.get(a) or {}).get("action_mask"), env.action_space(a))
                    actions[a] = (_random_action(opening_rng, turn) if steps < task.opening_moves
                                  else players[seat_of[a]].act(turn))
                observations, rewards, terms, truncs, infos = env.step(actions)
                for a, r in rewards.items():
                    returns[a] = returns.get(a, 0.0) + float(r)
                if task.replay_dir:
                    log.append(("*", {a: _to_builtin(x) for a, x in actions.items()}))
                steps += 1
        else:
            # Returns = sum over live steps of the per-step ``env.rewards`` (not of last()'s cumulative reward:
            # shimmy's OpenSpiel wrapper re-accumulates the final reward on the dead steps after the end).
            for a in env.agent_iter():
                obs, _r, term, trunc, info = env.last()
                if term or trunc:
                    env.step(None)
                    continue
                if steps >= task.max_steps:
                    break
                turn = Turn(env, a, obs, (info or {}).get("action_mask"), env.action_space(a))
                action = (_random_action(opening_rng, turn) if steps < task.opening_moves
                          else players[seat_of[a]].act(turn))
                env.step(action)
                for b, r in env.rewards.items():
                    returns[b] = returns.get(b, 0.0) + float(r)
                if task.replay_dir:
                    log.append((a, _to_builtin(action)))
                steps += 1
    finally:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - closing must not hide the match outcome
            pass
    ended = dt.datetime.now(dt.timezone.utc)
    scores = [sum(returns.get(a, 0.0) for a in g) for g in groups]
    ranks = ranks_from_scores(scores)
    seats = tuple(SeatResult(spec.name, i, tuple(g), float(s), int(rk))
                  for i, (spec, g, s, rk) in enumerate(zip(task.seats, groups, scores, ranks)))
    replay_path = None
    if task.replay_dir:
        replay_path = os.path.join(task.replay_dir, f"{task.uid}.json")
        _write_json_atomic(replay_path, {"uid": task.uid, "env_id": task.env_id, "seed": task.seed,
                                         "seats": [s.name for s in task.seats], "actions": log})
    return MatchResult(uid=task.uid, env_id=task.env_id, seed=int(task.seed), seats=seats, episode_length=steps,
                       started_at=started, ended_at=ended, worker=worker or f"{socket.gethostname()}:{os.getpid()}",
                       env_kwargs=dict(task.env_kwargs), replay_path=replay_path, tournament=task.tournament)
