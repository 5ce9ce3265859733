"""Play one match between registered players in any PettingZoo env (AEC or parallel).

Matches go through marl's one play loop (:func:`marl.play.play_episodes`) on
:class:`envs.adapter.ArrayEnv`, the observation path of training: the league's env settings
(``env.kwargs``, ``env.behavior_map``, ``env.supersuit``) apply, and a shared policy plays each
seat with that seat's agent slot (an ONNX brain uses the file exported for the slot).

Seats: a match has one seat per side. The env's agents are split into seats by, in order of preference,
(1) ML-Agents team names (``Name?team=N``), (2) one agent per seat when the counts match (board games),
(3) one behavior per seat (``adversary_0`` vs ``agent_0, agent_1``). A seat's score is the sum of its
agents' episode rewards; ranks come from the scores (equal scores draw).

Reproducibility: the env is reset with the match seed and each seat's player is reseeded from it
(:func:`marl.play.play_episodes`); optional random opening moves (``opening_moves``) are drawn from a
separate RNG seeded by the match seed, so the same task always yields the same result.

Game identity: every match records the hash of its action sequence (:attr:`MatchResult.action_hash`),
so the leaderboard can count distinct games; :func:`default_opening_moves` chooses, per env kind, how
many random opening moves make repeated games between deterministic players differ.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from envs.adapter import ArrayEnv
from envs.registry import EnvError, behavior_of, team_of
from league.errors import IncompatibleEnvError, LeagueError
from league.policies import PlayerCache, PlayerSpec, make_player
from league.records import MatchResult, SeatResult, ranks_from_scores
from marl.io import atomic_write_json
from marl.play import play_episodes
from marl.policy import PolicyError


@dataclass(frozen=True)
class MatchTask:
    """A match to play (picklable; sent to workers).

    Attributes:
        uid: the match id (kept across retries so the result is recorded once).
        env_id, env_kwargs: env to build with :func:`envs.registry.make_env`.
        behavior_map, supersuit: the league's env settings (as a run's ``env_settings``).
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
    behavior_map: dict[str, str] = field(default_factory=dict)
    supersuit: tuple = ()


#: Env id prefixes of turn-based board games whose reset always gives the same start position.
BOARD_GAME_PREFIXES = ("openspiel:", "pettingzoo.classic.")
#: Random opening moves for those games: one per side of a two-player game.
BOARD_GAME_OPENING_MOVES = 2


def default_opening_moves(env_id: str) -> int:
    """The ``match.opening_moves`` used when the league config leaves it null, chosen per env kind.

    * Turn-based board games (``openspiel:*``, ``pettingzoo.classic.*``): their reset gives the same start
      position every time, and trained players act greedily, so two deterministic players would replay one
      game forever. 2 random plies, one per side,
      give up to b^2 openings (49 in connect four, 72 in tic-tac-toe) and cost each side the same; both seat
      orders are played, so neither side profits. This is the opening-book practice of engine tournaments.
    * Every other env (MPE, butterfly, Unity builds, factories): 0. Their reset draws the start state from
      the match seed, and every scheduled match gets its own seed, so games already differ.

    The leaderboard counts distinct games from the recorded action hashes, so an env where this choice is
    wrong shows up as a replay warning.
    """
    return BOARD_GAME_OPENING_MOVES if env_id.startswith(BOARD_GAME_PREFIXES) else 0


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
    players = []
    seen: set[tuple[str, str | None]] = set()
    for spec in task.seats:
        key = (spec.policy, spec.policy_hash)
        players.append(make_player(spec.policy, spec.policy_hash) if key in seen else cache.get(spec))
        seen.add(key)
    groups: list[list[str]] = []
    slot_agents: dict[str, tuple[str, ...]] = {}

    possible_agents: list[str] = []

    def make_env(_copy: int) -> ArrayEnv:
        try:
            env = ArrayEnv(task.env_id, task.env_kwargs, behavior_map=dict(task.behavior_map),
                            supersuit=list(task.supersuit))
        except EnvError as exc:
            raise LeagueError(str(exc)) from None
        possible_agents[:] = list(getattr(env.env, "possible_agents", []))
        return env

    def seating(spec) -> dict:
        agents = [a for b in spec.behaviors for a in b.agents]
        order = {a: i for i, a in enumerate(possible_agents or agents)}
        agents.sort(key=lambda a: order.get(a, len(order)))
        groups.extend(assign_seats(agents, len(task.seats), task.env_id))
        seat_of = {a: i for i, g in enumerate(groups) for a in g}
        slot_agents.update({b.name: b.agents for b in spec.behaviors})
        return {b.name: [players[seat_of[a]] for a in b.agents] for b in spec.behaviors}

    started = dt.datetime.now(dt.timezone.utc)
    try:
        # actions are always recorded: the hash of the sequence identifies the game (a few list appends per step)
        (res,) = play_episodes(make_env, seating, 1, seed=int(task.seed), copies=1, opening_moves=task.opening_moves,
                               max_steps=task.max_steps, record_actions=True)
    except PolicyError as exc:
        raise IncompatibleEnvError(str(exc)) from None
    except (ValueError, RuntimeError) as exc:
        if isinstance(exc, LeagueError):
            raise
        raise IncompatibleEnvError(f"a policy cannot act in env '{task.env_id}': {str(exc).splitlines()[0][:200]}") from None
    ended = dt.datetime.now(dt.timezone.utc)
    returns = {}
    for b, r in res.returns.items():
        returns.update(zip(slot_agents[b], r.tolist()))
    scores = [float(sum(v for a in g if (v := returns.get(a, 0.0)) == v)) for g in groups]  # NaN (absent) -> 0
    ranks = ranks_from_scores(scores)
    seats = tuple(SeatResult(spec.name, i, tuple(g), float(s), int(rk))
                  for i, (spec, g, s, rk) in enumerate(zip(task.seats, groups, scores, ranks)))
    replay_path = None
    if task.replay_dir:
        replay_path = os.path.join(task.replay_dir, f"{task.uid}.json")
        atomic_write_json(replay_path, {"uid": task.uid, "env_id": task.env_id, "seed": task.seed,
                                        "seats": [s.name for s in task.seats], "actions": res.actions,
                                        "action_hash": res.action_hash})
    return MatchResult(uid=task.uid, env_id=task.env_id, seed=int(task.seed), seats=seats, episode_length=res.length,
                       started_at=started, ended_at=ended, worker=worker or f"{socket.gethostname()}:{os.getpid()}",
                       env_kwargs=dict(task.env_kwargs), replay_path=replay_path, tournament=task.tournament,
                       action_hash=res.action_hash)

