"""The env layer's error type, in a module of its own so every ``envs`` module can raise it without
importing the registry (``envs.registry`` re-exports it; catch ``envs.registry.EnvError`` as before)."""
from __future__ import annotations


class EnvError(ValueError):
    """A bad env id or env arguments; the message is one line meant for the user."""
