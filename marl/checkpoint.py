"""Checkpoints and ``run_logs/training_status.json``, laid out as ML-Agents lays them out.

``results/<run-id>/<Behavior>/checkpoint.pt`` is the latest state (what ``--resume`` loads);
``<Behavior>-<step>.pt`` are kept snapshots, rotated so that at most ``keep_checkpoints`` remain.
Every file is written atomically (:mod:`marl.io`).

A checkpoint is a dict::

    {"format": "marl-arena/1", "behavior": str, "trainer_type": str, "step": int (env steps),
     "env_id": str, "behavior_spec": {...}, "state_shape": [...], "network_settings": {...},
     "trainer": <trainer state for this behavior>, "extra": {...}}

so :mod:`marl.inference` can rebuild the actor without the YAML (``docs/results_layout.md``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from envs.spec import ActionSpec, BehaviorSpec
from marl.io import atomic_torch_save, atomic_write_json

FORMAT = "marl-arena/1"


class CheckpointError(ValueError):
    """An unreadable, corrupt or mismatched checkpoint; the message is one line."""


def spec_to_dict(spec: BehaviorSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(d: dict) -> BehaviorSpec:
    a = d["action"]
    return BehaviorSpec(d["name"], tuple(d["agents"]), tuple(d["obs_shape"]),
                        ActionSpec(tuple(a["discrete_branches"]), a["continuous_size"], tuple(a["low"]), tuple(a["high"])),
                        tuple(d.get("teams", ())), tuple(tuple(int(x) for x in s) for s in d.get("sensor_shapes", ())),
                        d.get("obs_dtype", "float32"))


def _numpy_safe_globals() -> list:
    """What a weights-only load must also accept to read our checkpoints: numpy arrays (QMIX's saved
    replay buffer, ``save_replay_buffer: true``) and numpy scalars, of plain numeric/str dtypes only.
    Object arrays stay refused (their dtype class is not listed), so nothing beyond data is unpickled."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    dtypes = {type(np.dtype(c)) for c in np.typecodes["All"] if c not in "OV"}
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *dtypes]


def load_checkpoint(path: str | Path, weights_only: bool = False) -> dict:
    """Load a checkpoint dict.

    Args:
        path: the ``.pt`` file.
        weights_only: use ``torch.load(weights_only=True)``: tensors, numpy arrays of plain dtypes and
            plain containers only, no arbitrary pickles (for files from elsewhere, e.g. a shared league).

    Raises:
        CheckpointError: missing file, not a torch file, or not one of ours.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        if weights_only:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                ck = torch.load(p, map_location="cpu", weights_only=True)
        else:
            ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise CheckpointError(f"{p}: cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                              "the file is corrupt or not a checkpoint") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a {FORMAT} checkpoint")
    return ck


class CheckpointManager:
    """Writes one behavior's checkpoints and keeps ``training_status.json`` in step.

    Args:
        run_dir: ``results/<run-id>``.
        behavior: behavior name.
        keep: ``keep_checkpoints``.
        status: the shared :class:`TrainingStatus`.
    """

    def __init__(self, run_dir: Path, behavior: str, keep: int, status: "TrainingStatus"):
        self.dir = Path(run_dir) / behavior
        self.behavior, self.keep, self.status = behavior, keep, status

    @property
    def latest(self) -> Path:
        return self.dir / "checkpoint.pt"

    def save(self, payload: dict, step: int, reward: float | None, snapshot: bool = True,
             exporter: Any = None) -> Path:
        """Write ``checkpoint.pt`` (and ``<Behavior>-<step>.pt`` when ``snapshot``), then rotate.

        ``exporter(payload, onnx_path) -> [paths]`` (optional) writes the matching ``.onnx`` (and one
        ``<stem>_agent<i>.onnx`` per further slot of a shared policy that takes an agent id).
        """
        atomic_torch_save(payload, self.latest)
        if not snapshot:
            return self.latest
        path = self.dir / f"{self.behavior}-{step}.pt"
        atomic_torch_save(payload, path)
        aux = []
        if exporter is not None:  # returns the files it wrote (a brain per agent slot for shared policies)
            written = exporter(payload, path.with_suffix(".onnx"))
            aux.extend(str(f) for f in ([written] if isinstance(written, (str, Path)) else written or []))
        entry = {"steps": step, "file_path": str(path), "reward": reward, "creation_time": time.time(),
                 "auxillary_file_paths": aux}
        ckpts = [c for c in self.status.behavior(self.behavior)["checkpoints"] if c["steps"] != step] + [entry]
        while len(ckpts) > self.keep:
            old = ckpts.pop(0)
            for f in [old["file_path"], *old.get("auxillary_file_paths", [])]:
                Path(f).unlink(missing_ok=True)
        self.status.behavior(self.behavior)["checkpoints"] = ckpts
        self.status.save()
        return path

    def finalize(self, payload: dict, step: int, reward: float | None, exporter: Any = None) -> None:
        """Final checkpoint: a kept snapshot, recorded as ``final_checkpoint``, plus ``<Behavior>.onnx``."""
        self.save(payload, step, reward, snapshot=True, exporter=exporter)
        entry = next(c for c in self.status.behavior(self.behavior)["checkpoints"] if c["steps"] == step)
        self.status.behavior(self.behavior)["final_checkpoint"] = dict(entry)
        if exporter is not None:
            exporter(payload, self.dir.parent / f"{self.behavior}.onnx")
        self.status.save()


class TrainingStatus:
    """``run_logs/training_status.json`` (ML-Agents' format, ``stats_format_version`` 0.3.0)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "run_logs" / "training_status.json"
        self.data: dict[str, Any] = {"metadata": {"stats_format_version": "0.3.0",
                                                  "torch_version": torch.__version__}}
        if self.path.is_file():
            import json

            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                raise CheckpointError(f"{self.path}: corrupt training status (invalid JSON)") from None

    def behavior(self, name: str) -> dict:
        return self.data.setdefault(name, {"checkpoints": [], "final_checkpoint": None})

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def saved_agent_slots(run_dir: str | Path) -> dict[str, int]:
    """Slots per team each behavior had when ``results/<run-id>`` last saved (``<Behavior>/checkpoint.pt``:
    its ``behavior_spec`` ``teams``, the most slots of any team): ``--resume`` raises
    ``env_settings.env_kwargs.agent_slots`` to these, so a run whose slots grew (``marl.grow``) restarts with
    the grown slots. Behaviors without a readable checkpoint are left out.
    """
    out: dict[str, int] = {}
    for path in sorted(Path(run_dir).glob("*/checkpoint.pt")):
        try:
            spec = load_checkpoint(path)["behavior_spec"]
        except (CheckpointError, KeyError):
            continue
        teams = list(spec.get("teams") or [0] * len(spec.get("agents", ())))
        if teams:
            out[spec["name"]] = max(teams.count(t) for t in set(teams))
    return out
