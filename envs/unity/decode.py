"""Protobuf ``AgentInfoProto`` lists to ``DecisionSteps`` / ``TerminalSteps``, with visual
observations always returned channel-first (CHW).

Why this exists: mlagents-envs 0.28 decodes PNG-compressed visual observations to HWC and then
checks the result against the shape the player announced. Unity ML-Agents 3.x announces camera
observations as CHW (``ObservationSpec.Visual(channels, height, width)``, dimension properties
(NONE, TRANSLATIONAL_EQUIVARIANCE, TRANSLATIONAL_EQUIVARIANCE)), so 0.28 either raises
``UnityObservationException`` or, for raw float images, hands back an array in the sender's
layout. Here the layout is read from the dimension properties (HWC = (TE, TE, NONE), as pre-3.x
players send it), PNGs are decoded with mlagents' own ``process_pixels`` (concatenated PNGs and
compressed channel mappings included) and every visual observation comes out float32 CHW in
[0, 1]. Everything else matches ``mlagents_envs.rpc_utils.steps_from_proto`` (reference:
ml-agents ``rpc_utils.py``, Release 19 / 0.28.0, and its CHW fix in mlagents-envs 1.x).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from mlagents_envs.base_env import BehaviorSpec, DecisionSteps, DimensionProperty, ObservationSpec, TerminalSteps
from mlagents_envs.communicator_objects.observation_pb2 import NONE as COMPRESSION_NONE
from mlagents_envs.rpc_utils import process_pixels

from envs.unity.errors import UnityEnvError

_TE, _NONE = DimensionProperty.TRANSLATIONAL_EQUIVARIANCE.value, DimensionProperty.NONE.value


def is_hwc(shape: Sequence[int], dimension_properties: Sequence[int]) -> bool:
    """Whether a rank-3 observation is laid out height, width, channels.

    Decided by the dimension properties (HWC = (TE, TE, NONE), CHW = (NONE, TE, TE)); when the
    player leaves them unspecified, a last axis of at most 4 channels means HWC.
    """
    if len(shape) != 3:
        return False
    props = tuple(int(p) for p in dimension_properties)
    if props == (_TE, _TE, _NONE):
        return True
    if props == (_NONE, _TE, _TE):
        return False
    return shape[2] <= 4 < shape[0]


def chw_shape(spec: ObservationSpec) -> tuple[int, ...]:
    """Shape of the observation as the adapter returns it (visual ones CHW)."""
    s = tuple(spec.shape)
    if len(s) == 3 and is_hwc(s, [p.value for p in spec.dimension_property]):
        return (s[2], s[0], s[1])
    return s


def decode_observation(obs, expected: Sequence[int] | None = None, behavior: str = "?") -> np.ndarray:
    """One ``ObservationProto`` -> float32 array; rank-3 (visual) observations as CHW.

    Args:
        obs: the proto.
        expected: the shape the behavior announced for this sensor (as sent, e.g. HWC for a pre-3.x
            player); a proto of another shape is refused.
        behavior: named in errors.

    Raises:
        UnityEnvError: the proto's shape differs from ``expected``, or the decoded image does not
            match the shape the proto announces.
    """
    shape = tuple(obs.shape)
    if expected is not None and shape != tuple(expected):
        raise UnityEnvError(f"behavior '{behavior}': sensor '{obs.name}' sent shape {list(shape)} where the behavior "
                            f"announced {list(expected)}; an agent's sensors must keep their shapes for the whole run")
    if len(shape) != 3:
        return np.asarray(obs.float_data.data, np.float32).reshape(shape)
    hwc = is_hwc(shape, obs.dimension_properties)
    target = (shape[2], shape[0], shape[1]) if hwc else shape
    if obs.compression_type == COMPRESSION_NONE:
        img = np.asarray(obs.float_data.data, np.float32).reshape(shape)
        return np.ascontiguousarray(img.transpose(2, 0, 1)) if hwc else img
    img = process_pixels(obs.compressed_data, target[0], list(obs.compressed_channel_mapping))  # HWC
    chw = np.ascontiguousarray(np.asarray(img, np.float32).transpose(2, 0, 1))
    if chw.shape != target:
        raise UnityEnvError(f"visual observation '{obs.name}': decoded image has shape {chw.shape} (CHW) but the "
                            f"player announced {list(shape)} ({'HWC' if hwc else 'CHW'})")
    return chw


def _obs_arrays(infos: list, spec: BehaviorSpec, behavior: str = "?") -> list[np.ndarray]:
    out = []
    n_sensors = len(spec.observation_specs)
    for info in infos:
        if len(info.observations) != n_sensors:
            raise UnityEnvError(f"behavior '{behavior}': agent {info.id} sent {len(info.observations)} sensor(s) where "
                                f"the behavior announced {n_sensors} ({', '.join(o.name for o in spec.observation_specs)}); "
                                "an agent's sensors must stay the same for the whole run")
    for idx, ospec in enumerate(spec.observation_specs):
        shape = chw_shape(ospec)
        if not infos:
            out.append(np.zeros((0, *shape), np.float32))
        elif len(ospec.shape) == 3:
            out.append(np.stack([decode_observation(i.observations[idx], ospec.shape, behavior) for i in infos]))
        else:
            size = int(np.prod(ospec.shape))
            for i in infos:
                o = i.observations[idx]
                if tuple(o.shape) != tuple(ospec.shape) or len(o.float_data.data) != size:
                    raise UnityEnvError(f"behavior '{behavior}': sensor {idx} ('{o.name}') of agent {i.id} sent shape "
                                        f"{list(o.shape)} ({len(o.float_data.data)} values) where the behavior announced "
                                        f"{list(ospec.shape)} ('{ospec.name}'); an agent's sensors must keep their "
                                        "shapes for the whole run")
            arr = np.array([i.observations[idx].float_data.data for i in infos], np.float32)
            out.append(arr.reshape((len(infos), *shape)))
            if not np.isfinite(out[-1]).all():
                raise UnityEnvError(f"behavior '{behavior}': observation {idx} ('{ospec.name}') contains NaN or "
                                    "infinite values")
    return out


def steps_from_proto(agent_infos, spec: BehaviorSpec, behavior: str = "?") -> tuple[DecisionSteps, TerminalSteps]:
    """Split one behavior's ``AgentInfoProto`` list into decision and terminal steps.

    Returns ``DecisionSteps`` (obs arrays ``[n, ...]``, visual CHW; ``action_mask`` as mlagents:
    a list per discrete branch of bool ``[n, branch_size]``, **True = masked**) and
    ``TerminalSteps`` (``interrupted`` = ``max_step_reached``).

    Args:
        agent_infos: the behavior's ``AgentInfoProto`` list of one message.
        spec: the behavior's spec (from its first message).
        behavior: the behavior's name (named in errors).

    Raises:
        UnityEnvError: malformed observations (a sensor that changed shape or count) or NaN rewards.
    """
    dec = [i for i in agent_infos if not i.done]
    term = [i for i in agent_infos if i.done]

    def floats(lst, field):
        a = np.array([getattr(i, field) for i in lst], np.float32)
        if not np.isfinite(a).all():
            raise UnityEnvError(f"the player sent NaN or infinite {field} values")
        return a

    mask = None
    branches = spec.action_spec.discrete_branches
    if branches:
        size = int(sum(branches))
        m = np.zeros((len(dec), size), bool)
        for j, info in enumerate(dec):
            if len(info.action_mask) == size:
                m[j] = info.action_mask
        mask = np.split(m, np.cumsum(branches)[:-1], axis=1)
    decision = DecisionSteps(_obs_arrays(dec, spec, behavior), floats(dec, "reward"),
                             np.array([i.id for i in dec], np.int32), mask,
                             np.array([i.group_id for i in dec], np.int32), floats(dec, "group_reward"))
    terminal = TerminalSteps(_obs_arrays(term, spec, behavior), floats(term, "reward"),
                             np.array([i.max_step_reached for i in term], bool),
                             np.array([i.id for i in term], np.int32),
                             np.array([i.group_id for i in term], np.int32), floats(term, "group_reward"))
    return decision, terminal
