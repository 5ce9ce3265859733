"""Atomic file writes: a crash or Ctrl-C never leaves a half-written checkpoint, status or export.

Every file written here gets the permissions of a plain ``open(path, "w")``: ``0o666`` minus the
process umask (``0644`` under the usual umask ``022``), not ``tempfile.mkstemp``'s ``0600``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (``os.umask`` sets it, which
    races with threads creating files meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write ``path`` by calling ``write(fileobj)`` on a temp file in the same folder, then rename.

    The rename (``os.replace``) is atomic on POSIX and Windows, so readers see the old file or the
    new one, never a torn one. The file's permissions are ``0o666 & ~umask`` (0644 under umask 022).

    Raises:
        OSError: the folder cannot be created or written; whatever ``write`` raises (the temp file
            is removed and ``path`` is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            else:  # Windows: only the read-only bit exists, and mkstemp leaves it off
                os.chmod(tmp, 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of ``text`` (text mode)."""
    return atomic_write(path, lambda f: f.write(text), "w")


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy the bytes of ``src`` to ``dst`` atomically (:func:`atomic_write`; permissions as there,
    not ``src``'s).

    Raises:
        OSError: ``src`` cannot be read (``dst`` is then left as it was) or ``dst`` cannot be written.
    """
    with open(src, "rb") as f_src:
        return atomic_write(dst, lambda f: shutil.copyfileobj(f_src, f))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=4) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
