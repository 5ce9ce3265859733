"""League manager: players, matches, ratings, matchmaking, tournaments, match execution, leaderboards.

Modules: :mod:`league.store` (SQLAlchemy models and the transactional store), :mod:`league.ratings`
(Elo, Weng-Lin/OpenSkill, Bradley-Terry), :mod:`league.matchmaking` (round robin, Swiss, rating
proximity, PFSP, gauntlet), :mod:`league.policies` (bots, ONNX and checkpoint players),
:mod:`league.match` (plays one match), :mod:`league.runners` (local processes / Ray),
:mod:`league.leaderboard`, :mod:`league.web` (FastAPI page), :mod:`league.cli` (the ``league`` command).
"""
from __future__ import annotations

from league.errors import (ConfigError, IncompatibleEnvError, LeagueError, PolicyFileError, StoreError,
                           UnknownPlayerError)

__all__ = ["LeagueError", "ConfigError", "UnknownPlayerError", "PolicyFileError", "IncompatibleEnvError",
           "StoreError"]
