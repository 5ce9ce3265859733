"""Exception types of the league; every message is one line meant for the user (the CLI prints it)."""
from __future__ import annotations


class LeagueError(Exception):
    """Base class: a user-facing league error with a one-line message."""


class ConfigError(LeagueError):
    """A league config file is missing, unreadable, or has a bad key/value (the message names file and key)."""


class UnknownPlayerError(LeagueError):
    """A player name that is not registered in the league store."""


class PolicyFileError(LeagueError):
    """A policy file (checkpoint / ONNX / bot spec) is missing, unreadable, changed since registration, or malformed."""


class IncompatibleEnvError(LeagueError):
    """A player cannot play in the requested env (different env id, observation shape, action count, or bot needs OpenSpiel)."""


class StoreError(LeagueError):
    """The league database cannot be opened, migrated, or written."""
