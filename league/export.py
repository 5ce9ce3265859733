"""``league export``: copy the champions' ONNX brains into a Unity project folder with a ratings manifest.

For the top K active players (by the chosen rating system) that have an ONNX file (their policy, or a
``.onnx`` beside their ``.pt`` checkpoint), writes ``<dest>/<player>.onnx`` (``/`` in names becomes ``__``)
and ``<dest>/league_manifest.json``; every file is written to a temp file and moved into place
(:mod:`marl.io`), so Unity never imports a half-written brain, with the permissions of a plain file
(``0o666 & ~umask``). Bots have no ONNX and are skipped. The destination is checked before anything is
written: an existing file, or a folder that cannot be created or written, is a one-line error.
"""
from __future__ import annotations

import datetime as dt
import json
import os

from league.errors import LeagueError, PolicyFileError
from league.leaderboard import leaderboard
from league.league import League
from league.policies import file_sha256
from marl.io import atomic_copy, atomic_write_text

MANIFEST = "league_manifest.json"


def onnx_of(policy: str) -> str | None:
    """The ONNX file of a policy spec: itself, a sibling ``.onnx`` of a ``.pt``, or None (bots, no export)."""
    if policy.startswith("bot:"):
        return None
    if policy.endswith(".onnx"):
        return policy
    sibling = os.path.splitext(policy)[0] + ".onnx"
    return sibling if os.path.isfile(sibling) else None


def check_destination(dest: str) -> None:
    """Make sure ``dest`` is (or can be made) a writable folder, creating it if missing.

    Raises:
        LeagueError: ``dest`` is a file, lies under a file, or cannot be created or written (one line).
    """
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise LeagueError(f"--to '{dest}' is a file; give a folder (it is created when missing)")
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise LeagueError(f"--to '{dest}': cannot create the folder ({exc.strerror or exc}); give a writable "
                          "folder") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise LeagueError(f"--to '{dest}': the folder is not writable; give a writable folder")


def export_top(league: League, top: int, dest: str, system: str) -> dict:
    """Export the top ``top`` ONNX players; returns the manifest dict.

    Raises:
        LeagueError: ``top < 1``, no exportable player, or a destination that is not a writable folder.
        PolicyFileError: a champion's ONNX file is missing or changed since registration.
    """
    if top < 1:
        raise LeagueError(f"--top must be >= 1, got {top}")
    rows = leaderboard(league, system)
    chosen = []
    for r in rows:
        path = onnx_of(r.policy)
        if path is not None:
            chosen.append((r, path))
        if len(chosen) == top:
            break
    if not chosen:
        raise LeagueError("no player with an ONNX policy to export (bots cannot be exported)")
    check_destination(dest)
    try:
        return _write_export(league, chosen, dest, system)
    except OSError as exc:
        raise LeagueError(f"--to '{dest}': cannot write {os.path.basename(exc.filename or '') or 'a file'} "
                          f"({exc.strerror or exc})") from None


def _write_export(league: League, chosen: list, dest: str, system: str) -> dict:
    entries = []
    for r, path in chosen:
        if not os.path.isfile(path):
            raise PolicyFileError(f"player '{r.player}': ONNX file '{path}' does not exist")
        info = league.player(r.player)
        digest = file_sha256(path)
        if path == info.policy and info.policy_hash and digest != info.policy_hash:
            raise PolicyFileError(f"player '{r.player}': '{path}' changed since registration (sha256 differs)")
        fname = r.player.replace("/", "__") + ".onnx"
        atomic_copy(path, os.path.join(dest, fname))
        slot_files = []  # a shared policy with an agent-id input: one brain per slot (<name>_agent<i>.onnx)
        stem = os.path.splitext(path)[0]
        i = 1
        while os.path.isfile(f"{stem}_agent{i}.onnx"):
            sib = f"{fname[:-5]}_agent{i}.onnx"
            atomic_copy(f"{stem}_agent{i}.onnx", os.path.join(dest, sib))
            slot_files.append(sib)
            i += 1
        entries.append({"rank": r.rank, "player": r.player, "file": fname, "slot_files": slot_files,
                        "behavior": info.behavior,
                        "version": info.version, "rating": r.rating, "estimate": r.estimate, "lower": r.lower,
                        "upper": r.upper,
                        "games": r.games, "win_rate": r.win_rate, "sha256": digest, "source": path})
    from league.leaderboard import DEFINITIONS
    from league.ratings import UNITS

    manifest = {"league": league.config.name, "env_id": league.config.env.id, "system": system,
                "units": UNITS.get(system), "definition": DEFINITIONS.get(system),
                "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "players": entries}
    atomic_write_text(os.path.join(dest, MANIFEST), json.dumps(manifest, indent=2))
    return manifest
