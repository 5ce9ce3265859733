"""What every command line tool (``marl-learn``, ``marl-evaluate``, ``marl-export``, ``league``) prints
for an error it did not expect: one line, and the traceback only with ``--debug``."""
from __future__ import annotations

DEBUG_HINT = "run with --debug for the traceback"


def unexpected_error_line(exc: BaseException, prefix: str = "error") -> str:
    """``<prefix>: unexpected <Type>: <first line of the message> (run with --debug for the traceback)``."""
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return f"{prefix}: unexpected {what} ({DEBUG_HINT})"
