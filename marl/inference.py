"""Trained policies as plain callables, loaded from a checkpoint (``.pt``) or an ONNX export.

This is how evaluation, the league and self-play opponents use a policy: never as a live
trainer object, always through a file (DESIGN.md §2).

A :class:`Policy` acts for a batch of agents of one behavior::

    d, c, h = policy.act(obs, agent_index, mask=None, hidden=None, deterministic=True)

* ``obs`` float32 ``[B, *obs_shape]``; ``agent_index`` int64 ``[B]`` (slot within the behavior);
  ``mask`` float32 ``[B, sum(branches)]`` (1 = allowed) or None;
* ``hidden``: recurrent state returned by the previous call for the same agents (None = start
  of an episode; pass it back unchanged, zero rows where an episode restarts via
  :meth:`Policy.reset_hidden`);
* returns ``d`` int64 ``[B, n_branches]`` or None, ``c`` float32 ``[B, n_cont]`` in ``[-1, 1]``
  (ML-Agents' ``clamp(a, -3, 3) / 3``) or None, and the new ``hidden`` (None if stateless).

Loaders are registered per ``trainer_type`` in :data:`LOADERS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from envs.spec import BehaviorSpec
from marl.checkpoint import CheckpointError, load_checkpoint, spec_from_dict
from marl.config import NetworkSettings


class Policy:
    """Base class: see the module docstring for the ``act`` contract."""

    spec: BehaviorSpec
    path: Path

    def act(self, obs: np.ndarray, agent_index: np.ndarray, mask: np.ndarray | None = None, hidden=None,
            deterministic: bool = True):
        raise NotImplementedError

    def reset_hidden(self, hidden, rows: np.ndarray):
        """Zero the recurrent state of ``rows`` (bool ``[B]``); stateless policies return ``hidden``."""
        return hidden


class TorchActorPolicy(Policy):
    """A PPO-family actor (:class:`marl.networks.Actor`) from a checkpoint."""

    def __init__(self, ck: dict, path: Path):
        from marl.networks import Actor

        self.path, self.spec = path, spec_from_dict(ck["behavior_spec"])
        state = ck["trainer"]["actor"]
        # checkpoints from before the visual encoders have no "encoder.*" weights: flat MLP, as trained
        shape = self.spec.obs_shape if any(k.startswith("encoder.") for k in state) else None
        self.actor = Actor(self.spec.obs_size, self.spec.n_agents, self.spec.action,
                           NetworkSettings.model_validate(ck["network_settings"]), shape)
        self.actor.load_state_dict(state)
        self.actor.eval()

    @torch.inference_mode()
    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True):
        o = torch.as_tensor(np.asarray(obs, np.float32)).reshape(len(agent_index), -1)
        ids = torch.nn.functional.one_hot(torch.as_tensor(agent_index, dtype=torch.int64), self.spec.n_agents).float()
        m = None if mask is None else torch.as_tensor(np.asarray(mask, np.float32))
        d, c, _ = self.actor.act(o, ids, m, deterministic=deterministic)
        return (None if d is None else d.numpy(), None if c is None else (torch.clamp(c, -3, 3) / 3).numpy(), None)


def _q_policy(ck: dict, path: Path) -> Policy:
    """QMIX/VDN checkpoints: a greedy policy on the GRU agent Q-network (:class:`marl.algos.qmix.QPolicy`)."""
    from marl.algos.qmix import QPolicy

    return QPolicy(ck, path)


LOADERS: dict[str, Callable[[dict, Path], Policy]] = {"mappo": TorchActorPolicy, "ippo": TorchActorPolicy,
                                                      "qmix": _q_policy, "vdn": _q_policy}


def load_policy(path: str | Path, behavior: str | None = None) -> Policy:
    """Load a policy from ``<Behavior>-<step>.pt`` / ``checkpoint.pt``, an ``.onnx`` file, or a run folder.

    Args:
        path: a checkpoint, an ONNX file, or ``results/<run-id>`` (then ``behavior`` picks
            ``<run>/<behavior>/checkpoint.pt``; optional when the run has one behavior).
        behavior: behavior name when ``path`` is a run folder.

    Raises:
        CheckpointError: missing/corrupt file, unknown trainer type, ambiguous behavior.
    """
    p = Path(path)
    if p.is_dir():
        found = sorted(d.name for d in p.iterdir() if (d / "checkpoint.pt").is_file())
        if behavior is None:
            if len(found) != 1:
                raise CheckpointError(f"{p}: name a behavior (found: {', '.join(found) or 'none'})")
            behavior = found[0]
        if behavior not in found:
            raise CheckpointError(f"{p}: no checkpoint for behavior '{behavior}' (found: {', '.join(found) or 'none'})")
        p = p / behavior / "checkpoint.pt"
    if p.suffix == ".onnx":
        try:
            from marl.export.onnx_policy import OnnxPolicy
        except ImportError:
            raise CheckpointError(f"{p}: ONNX policies need marl.export (not available)") from None
        return OnnxPolicy(p)
    ck = load_checkpoint(p)
    loader = LOADERS.get(ck.get("trainer_type"))
    if loader is None:
        raise CheckpointError(f"{p}: no policy loader for trainer_type '{ck.get('trainer_type')}'")
    return loader(ck, p)
