"""Load a trained policy from a file: a checkpoint (``.pt``), an ONNX brain, a run folder, or a bot spec.

This is how evaluation, the league and self-play opponents get a policy: never as a live trainer
object, always through a file (or a bot). The result implements :class:`marl.policy.Policy`.
Checkpoints are handed to the ``policy_loader`` of their ``trainer_type``'s registry entry
(:mod:`marl.algos.registry`); ONNX files to :class:`marl.export.onnx_policy.OnnxPolicy`.
"""
from __future__ import annotations

from pathlib import Path

from marl.checkpoint import CheckpointError, load_checkpoint
from marl.policy import Policy, PolicyError, is_bot, make_bot

__all__ = ["Policy", "load_policy", "resolve_policy_path", "make_policy"]


def resolve_policy_path(path: str | Path, behavior: str | None = None) -> Path:
    """The policy file a path names: a file as is; a run folder ``results/<run-id>`` gives
    ``<run>/<behavior>/checkpoint.pt`` (``behavior`` optional when the run has one).

    Raises:
        CheckpointError: nothing there, or the behavior is ambiguous or missing.
    """
    p = Path(path)
    if not p.is_dir():
        if not p.exists():
            raise CheckpointError(f"{p}: no such policy file or run folder")
        return p
    found = sorted(d.name for d in p.iterdir() if (d / "checkpoint.pt").is_file())
    if behavior is None:
        if len(found) != 1:
            raise CheckpointError(f"{p}: name a behavior (found: {', '.join(found) or 'none'})")
        behavior = found[0]
    if behavior not in found:
        raise CheckpointError(f"{p}: no checkpoint for behavior '{behavior}' (found: {', '.join(found) or 'none'})")
    return p / behavior / "checkpoint.pt"


def load_policy(path: str | Path, behavior: str | None = None, weights_only: bool = False) -> Policy:
    """Load a policy from ``<Behavior>-<step>.pt`` / ``checkpoint.pt``, an ``.onnx`` file, or a run folder.

    Args:
        path: a checkpoint, an ONNX file, or ``results/<run-id>`` (see :func:`resolve_policy_path`).
        behavior: behavior name when ``path`` is a run folder.
        weights_only: load the ``.pt`` with ``torch.load(weights_only=True)`` (files from elsewhere: a
            pickle can run code).

    Raises:
        CheckpointError: missing/corrupt file, unknown trainer type, ambiguous behavior, or a checkpoint
            its trainer's loader cannot read.
    """
    p = resolve_policy_path(path, behavior)
    if p.suffix == ".onnx":
        from marl.export.onnx_policy import OnnxPolicy

        return OnnxPolicy(p)
    ck = load_checkpoint(p, weights_only=weights_only)
    from marl.algos import registry

    try:
        entry = registry.get(str(ck.get("trainer_type")))
    except registry.UnknownAlgorithm:
        raise CheckpointError(f"{p}: no policy loader for trainer_type '{ck.get('trainer_type')}'") from None
    try:
        return entry.load("policy_loader")(ck, p)
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: not a usable {entry.name} checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def make_policy(spec: str, seed: int = 0, behavior: str | None = None, weights_only: bool = False) -> Policy:
    """A policy from a command-line or league spec: a bot (``random``, ``mcts:N``, ``bot:random``,
    ``bot:mcts?simulations=N``) or a policy path (see :func:`load_policy`).

    Raises:
        PolicyError: bad bot spec. CheckpointError: bad file.
    """
    if is_bot(spec):
        return make_bot(spec, seed)
    if not Path(spec).exists():
        raise PolicyError(f"'{spec}': not a bot (random, mcts:N, bot:random, bot:mcts?simulations=N) and no such "
                          "policy file or run folder")
    return load_policy(spec, behavior, weights_only=weights_only)


def __getattr__(name: str):
    """Old import paths: ``TorchActorPolicy`` now lives with its algorithm (:mod:`marl.algos.mappo`)."""
    if name == "TorchActorPolicy":
        from marl.algos.mappo import TorchActorPolicy

        return TorchActorPolicy
    raise AttributeError(name)
