"""``marl-export RESULTS_DIR|CHECKPOINT``: write Unity ML-Agents 3.x brains (``.onnx``) on demand.

* ``RESULTS_DIR`` (``results/<run-id>``): exports ``<run>/<Behavior>/checkpoint.pt`` (the latest
  state) of every behavior, or of ``--behavior NAME``, to ``<run>/<Behavior>.onnx``;
* ``CHECKPOINT`` (``<Behavior>-<step>.pt`` / ``checkpoint.pt``): exports it to
  ``<Behavior>-<step>.onnx`` beside it;
* ``--out PATH`` overrides the destination (one behavior only);
* ``--agent-slot N`` bakes the one-hot id of slot N into the graph (default 0); ``--all-slots``
  also writes ``<name>_agent<i>.onnx`` for every slot;
* ``--to-unity DIR`` copies the brains into ``DIR/Assets/Brains/<Behavior>.onnx`` (``?team=N`` in a
  behavior name becomes ``_teamN``, the Windows-safe name the Unity BrainImporter matches).

Every export is verified in onnxruntime against the torch policy before it is written.
Exit status: 0 ok, 2 a one-line error on stderr, 1 an unexpected error (one line; ``--debug`` shows
its traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def unity_file_name(behavior: str, suffix: str = "") -> str:
    """File name for ``Assets/Brains``: ``Name?team=1`` -> ``Name_team1.onnx`` (other ``?`` -> ``_``)."""
    name = behavior.replace("?team=", "_team").replace("?", "_").replace("/", "_").replace("\\", "_")
    return f"{name}{suffix}.onnx"


def _targets(path: Path, behavior: str | None, out: str | None):
    """``[(checkpoint path, default .onnx path or None = beside the checkpoint)]``."""
    from marl.checkpoint import CheckpointError

    if path.is_dir():
        if (path / "checkpoint.pt").is_file():  # results/<run>/<Behavior>/
            if behavior is not None and behavior != path.name:
                raise CheckpointError(f"{path}: holds behavior '{path.name}', not '{behavior}'")
            return [(path / "checkpoint.pt", path.parent / unity_file_name(path.name))]
        found = sorted(d.name for d in path.iterdir() if (d / "checkpoint.pt").is_file())
        if not found:
            raise CheckpointError(f"{path}: no <Behavior>/checkpoint.pt in this folder (not a results/<run-id> folder?)")
        if behavior is not None:
            if behavior not in found:
                raise CheckpointError(f"{path}: no checkpoint for behavior '{behavior}' (found: {', '.join(found)})")
            found = [behavior]
        if out is not None and len(found) > 1:
            raise CheckpointError(f"{path}: --out needs --behavior (the run has {', '.join(found)})")
        return [(path / b / "checkpoint.pt", path / unity_file_name(b)) for b in found]
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    return [(path, None)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="marl-export",
                                description="Export trained policies as Unity ML-Agents 3.x brains (.onnx).")
    p.add_argument("path", metavar="RESULTS_DIR|CHECKPOINT", help="results/<run-id>, or a .pt checkpoint")
    p.add_argument("--behavior", default=None, help="behavior to export (default: every behavior of the run)")
    p.add_argument("--out", default=None, help="destination .onnx (default: <run>/<Behavior>.onnx, or beside the checkpoint)")
    p.add_argument("--to-unity", metavar="DIR", default=None, help="Unity project to copy the brains into (DIR/Assets/Brains/)")
    p.add_argument("--agent-slot", type=int, default=0, help="agent slot whose id a shared policy is exported with (default 0)")
    p.add_argument("--all-slots", action="store_true", help="also write <name>_agent<i>.onnx for every agent slot")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    args = p.parse_args(argv)

    from marl.checkpoint import CheckpointError, load_checkpoint
    from marl.export import export_bytes
    from marl.io import atomic_write

    try:
        brains = None
        if args.to_unity is not None:
            project = Path(args.to_unity)
            if not (project / "Assets").is_dir():
                raise CheckpointError(f"--to-unity {project}: not a Unity project (no Assets/ folder)")
            brains = project / "Assets" / "Brains"
        for ck_path, default_out in _targets(Path(args.path), args.behavior, args.out):
            payload = load_checkpoint(ck_path)
            behavior, step = str(payload.get("behavior")), int(payload.get("step", 0))
            if args.behavior is not None and behavior != args.behavior:
                raise CheckpointError(f"{ck_path}: holds behavior '{behavior}', not '{args.behavior}'")
            out = Path(args.out) if args.out else default_out or ck_path.parent / unity_file_name(behavior, f"-{step}")
            n_slots = len(payload.get("behavior_spec", {}).get("agents", ())) or 1
            jobs = [(args.agent_slot, out, unity_file_name(behavior))]
            if args.all_slots:
                jobs += [(i, out.with_name(f"{out.stem}_agent{i}.onnx"), unity_file_name(behavior, f"_agent{i}"))
                         for i in range(n_slots)]
            for slot, dest, unity_name in jobs:
                res = export_bytes(payload, slot)
                atomic_write(dest, lambda f: f.write(res.data))
                print(f"Exported {behavior} ({payload['trainer_type']}, step {step}, agent slot {slot}) -> {dest} "
                      f"[{res.seconds:.2f} s, verified in onnxruntime]")
                if brains is not None:
                    target = brains / unity_name
                    atomic_write(target, lambda f: f.write(res.data))
                    print(f"Copied to {target}")
    except CheckpointError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.debug:
            raise
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line; the traceback only with --debug
        if args.debug:
            raise
        from marl.cli.common import unexpected_error_line

        print(unexpected_error_line(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
