"""Errors of the Unity adapter: one line each, meant for the ``marl-learn`` user."""
from __future__ import annotations

from envs.registry import EnvError


class UnityEnvError(EnvError):
    """A Unity build or player problem (missing/non-executable build, port in use, no connection,
    player crash beyond the restart limits). Subclass of :class:`envs.registry.EnvError`
    (itself a ``ValueError``); the message is a single line."""


class UnityPlayerDied(UnityEnvError):
    """The player process exited, hung past ``timeout_wait`` or closed the connection mid-run.
    :class:`envs.unity.env.UnityParallelEnv` turns it into a restart while the limits allow."""
