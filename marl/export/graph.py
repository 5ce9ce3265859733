"""The tensor contract of an ML-Agents 3.x brain and the torch module that produces it.

An ``.onnx`` file that the Unity ML-Agents package 3.x (Sentis) accepts on a Behavior Parameters
component has exactly these tensors (docs/unity_contract.md, "The ONNX brain"; reference: ml-agents Release 22,
``mlagents/trainers/torch_entities/model_serialization.py``, ``networks.py::SimpleActor.forward``,
``action_model.py::get_action_out``, ``distributions.py``):

inputs (dynamic axis 0 named ``batch``)
    ``obs_0 … obs_{k-1}`` float32 ``[batch, *sensor_shape]`` in sensor order (visual: ``[batch, C, H, W]``);
    ``action_masks`` float32 ``[batch, sum(branches)]``, 1 = allowed (only with discrete actions);
    ``recurrent_in`` float32 ``[batch, 1, memory_size]`` (only when ``memory_size > 0``).
outputs
    ``version_number`` float32 ``[1]`` = 3; ``memory_size`` float32 ``[1]`` = M;
    with continuous actions: ``continuous_actions`` float32 ``[batch, n]`` (a Gaussian sample),
    ``continuous_action_output_shape`` float32 ``[1]`` = n, ``deterministic_continuous_actions``
    float32 ``[batch, n]`` (the mean); both clipped as ``clamp(a, -3, 3) / 3``;
    with discrete actions: ``discrete_actions`` int64 ``[batch, n_branches]`` (sampled from the
    masked softmax, ``Multinomial``), ``discrete_action_output_shape`` float32 ``[1, n_branches]``,
    ``deterministic_discrete_actions`` int64 ``[batch, n_branches]`` (argmax);
    ``recurrent_out`` float32 ``[batch, 1, memory_size]`` when ``memory_size > 0``.

Masking follows ML-Agents' ``MultiCategoricalDistribution._mask_branch``:
``logits * mask - 1e8 * (1 - mask)``, so a masked action has probability exactly 0.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from marl.policy import scale_continuous

MODEL_EXPORT_VERSION = 3.0
OPSET = 9
BATCH = "batch"

ACTION_MASKS = "action_masks"
RECURRENT_IN = "recurrent_in"
RECURRENT_OUT = "recurrent_out"
VERSION_NUMBER = "version_number"
MEMORY_SIZE = "memory_size"
CONTINUOUS_ACTIONS = "continuous_actions"
CONTINUOUS_SHAPE = "continuous_action_output_shape"
DETERMINISTIC_CONTINUOUS = "deterministic_continuous_actions"
DISCRETE_ACTIONS = "discrete_actions"
DISCRETE_SHAPE = "discrete_action_output_shape"
DETERMINISTIC_DISCRETE = "deterministic_discrete_actions"


def obs_name(i: int) -> str:
    """Name of the ``i``-th observation input (``obs_i``)."""
    return f"obs_{i}"


def input_names(n_sensors: int, n_branches: int, memory_size: int) -> list[str]:
    """Graph input names in order: ``obs_0..``, ``action_masks`` (discrete), ``recurrent_in`` (memory)."""
    names = [obs_name(i) for i in range(n_sensors)]
    if n_branches:
        names.append(ACTION_MASKS)
    if memory_size:
        names.append(RECURRENT_IN)
    return names


def output_names(continuous_size: int, n_branches: int, memory_size: int) -> list[str]:
    """Graph output names in ML-Agents' order (``SimpleActor.forward``)."""
    names = [VERSION_NUMBER, MEMORY_SIZE]
    if continuous_size:
        names += [CONTINUOUS_ACTIONS, CONTINUOUS_SHAPE, DETERMINISTIC_CONTINUOUS]
    if n_branches:
        names += [DISCRETE_ACTIONS, DISCRETE_SHAPE, DETERMINISTIC_DISCRETE]
    if memory_size:
        names.append(RECURRENT_OUT)
    return names


def _const(values) -> nn.Parameter:
    return nn.Parameter(torch.tensor(values, dtype=torch.float32), requires_grad=False)


class UnityPolicyGraph(nn.Module):
    """Wraps a trainer's *policy core* into a module whose ONNX export is an ML-Agents 3.x brain.

    The core is an ``nn.Module`` with::

        core(obs: float32 [B, obs_size], memory: float32 [B, M] | None)
            -> (logits [B, sum(branches)] | None, mean [B, n_cont] | None,
                log_std [n_cont] or [B, n_cont] | None, memory_out [B, M] | None)

    ``logits`` are unmasked scores (policy logits, or Q-values for a greedy value-based agent);
    ``mean`` is the raw Gaussian mean (before ``clamp(-3, 3) / 3``). The graph flattens and
    concatenates the sensors into ``obs`` (sensor order), applies the mask, and builds every
    output of the contract.

    Args:
        core: the policy core (observation normalisers and fixed agent ids live inside it).
        sensor_shapes: shape of each ``obs_i`` without the batch axis; their sizes sum to ``obs_size``.
        branches: discrete branch sizes (empty = no discrete actions).
        continuous_size: continuous action size (0 = none).
        memory_size: recurrent state size ``M`` (0 = stateless).
        stochastic: ``True``: ``continuous_actions`` / ``discrete_actions`` are samples (policy
            gradient); ``False``: they equal the deterministic outputs (greedy Q-agents).
    """

    def __init__(self, core: nn.Module, sensor_shapes: Sequence[Sequence[int]], branches: Sequence[int],
                 continuous_size: int, memory_size: int = 0, stochastic: bool = True):
        super().__init__()
        self.core = core
        self.sensor_shapes = [tuple(int(d) for d in s) for s in sensor_shapes]
        self.branches = [int(b) for b in branches]
        self.continuous_size, self.memory_size, self.stochastic = int(continuous_size), int(memory_size), stochastic
        self.version_number = _const([MODEL_EXPORT_VERSION])
        self.memory_size_vector = _const([float(self.memory_size)])
        self.continuous_act_size_vector = _const([float(self.continuous_size)])
        self.discrete_act_size_vector = _const([[float(b) for b in self.branches]])

    @property
    def input_names(self) -> list[str]:
        return input_names(len(self.sensor_shapes), len(self.branches), self.memory_size)

    @property
    def output_names(self) -> list[str]:
        return output_names(self.continuous_size, len(self.branches), self.memory_size)

    def dummy_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Example inputs for ``torch.onnx.export``: zero observations, all-allowed masks, zero memory."""
        xs = [torch.zeros(batch, *s) for s in self.sensor_shapes]
        if self.branches:
            xs.append(torch.ones(batch, sum(self.branches)))
        if self.memory_size:
            xs.append(torch.zeros(batch, 1, self.memory_size))
        return tuple(xs)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = len(self.sensor_shapes)
        obs = [torch.flatten(x, 1) for x in inputs[:k]]
        flat = obs[0] if k == 1 else torch.cat(obs, 1)
        i = k
        mask = None
        if self.branches:
            mask, i = inputs[i], i + 1
        memory = torch.flatten(inputs[i], 1) if self.memory_size else None
        # a core with ``takes_mask = True`` also gets the mask (QMIX/VDN keep the masked greedy action in memory)
        logits, mean, log_std, memory_out = (self.core(flat, memory, mask) if getattr(self.core, "takes_mask", False)
                                             else self.core(flat, memory))
        out: list[torch.Tensor] = [self.version_number, self.memory_size_vector]
        if self.continuous_size:
            det = scale_continuous(mean)
            if self.stochastic:
                sample = mean + torch.randn_like(mean) * torch.exp(log_std)
                out += [scale_continuous(sample)]
            else:
                out += [det]
            out += [self.continuous_act_size_vector, det]
        if self.branches:
            masked = logits * mask - 1e8 * (1.0 - mask)
            det_list, samp_list = [], []
            start = 0
            for size in self.branches:
                branch = masked[:, start:start + size]
                start += size
                probs = torch.softmax(branch, dim=1)
                det_list.append(torch.argmax(probs, dim=1, keepdim=True))
                if self.stochastic:
                    samp_list.append(torch.multinomial(probs, 1))
            det_d = det_list[0] if len(det_list) == 1 else torch.cat(det_list, 1)
            samp_d = (samp_list[0] if len(samp_list) == 1 else torch.cat(samp_list, 1)) if self.stochastic else det_d
            out += [samp_d, self.discrete_act_size_vector, det_d]
        if self.memory_size:
            out.append(memory_out.unsqueeze(1))
        return tuple(out)

    def masked_scores(self, obs: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor | None) -> torch.Tensor | None:
        """The masked logits ``[B, sum(branches)]`` the graph takes the argmax of (for tie checks)."""
        logits, _, _, _ = self.core(obs, memory, mask) if getattr(self.core, "takes_mask", False) else self.core(obs, memory)
        if logits is None or mask is None:
            return logits
        return logits * mask - 1e8 * (1.0 - mask)
