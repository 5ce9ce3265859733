"""Play an exported ``.onnx`` brain in onnxruntime through the :class:`marl.policy.Policy` contract."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from envs.spec import ActionSpec, BehaviorSpec
from marl.checkpoint import CheckpointError, spec_from_dict
from marl.export.graph import (ACTION_MASKS, CONTINUOUS_ACTIONS, CONTINUOUS_SHAPE, DETERMINISTIC_CONTINUOUS,
                               DETERMINISTIC_DISCRETE, DISCRETE_ACTIONS, DISCRETE_SHAPE, MEMORY_SIZE, RECURRENT_IN, RECURRENT_OUT)
from marl.policy import Policy, PolicyError


class OnnxPolicy(Policy):
    """An ML-Agents 3.x brain (ours or one exported by ``mlagents-learn``) run by onnxruntime.

    ``act(obs, agent_index, mask=None, hidden=None, deterministic=True)`` follows
    :mod:`marl.inference`: ``obs`` float32 ``[B, *obs_shape]`` (or ``[B, obs_size]``; split
    into the ``obs_i`` inputs in order), ``mask`` float32 ``[B, sum(branches)]`` 1 = allowed
    (None = all allowed); returns ``(d int64 [B, n_branches] | None, c float32 [B, n_cont] in
    [-1, 1] | None, hidden float32 [B, 1, M] | None)``. ``deterministic`` picks the
    ``deterministic_*`` outputs, else the sampled ones.

    Agent slots: a shared policy that takes an agent id has that id fixed inside each file (metadata
    ``marl.agent_slot``); ``marl-export --all-slots`` (and training, for such behaviors) writes one
    file per slot, ``<name>_agent<i>.onnx``. Rows whose ``agent_index`` is not this file's slot are
    run by the sibling file of their slot, so every seat acts as in training. A policy without an
    id input (one agent, or metadata ``marl.takes_agent_id = 0``) serves every slot from one file.

    Args:
        path: the ``.onnx`` file.
        threads: onnxruntime intra-op threads (1 suits per-agent batches).

    Raises:
        CheckpointError: missing file, not loadable by onnxruntime, or not an ML-Agents brain.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CheckpointError(f"{self.path}: cannot load ONNX model ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.obs_inputs = sorted((n for n in ins if n.startswith("obs_")), key=lambda n: int(n[4:]))
        if not self.obs_inputs or "version_number" not in self.outputs:
            raise CheckpointError(f"{self.path}: not an ML-Agents brain (needs obs_0 and version_number)")
        self.sensor_shapes = [tuple(int(d) for d in ins[n].shape[1:]) for n in self.obs_inputs]
        self.has_mask, self.has_memory = ACTION_MASKS in ins, RECURRENT_IN in ins
        consts = self._constants()
        self.memory_size = int(consts.get(MEMORY_SIZE, [0])[0])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self.agent_slot = int(meta.get("marl.agent_slot", 0))
        self.name = str(self.path)
        self._threads = threads
        self._slots: dict[int, "OnnxPolicy"] = {self.agent_slot: self}
        if "marl.behavior_spec" in meta:
            self.spec = spec_from_dict(json.loads(meta["marl.behavior_spec"]))
        else:  # a foreign brain: rebuild what we can from the graph
            branches = tuple(int(b) for b in np.ravel(consts[DISCRETE_SHAPE])) if DISCRETE_SHAPE in consts else ()
            if not branches and self.has_mask and isinstance(ins[ACTION_MASKS].shape[-1], int):
                branches = (int(ins[ACTION_MASKS].shape[-1]),)  # one branch, sized by the mask
            n_cont = int(np.ravel(consts[CONTINUOUS_SHAPE])[0]) if CONTINUOUS_SHAPE in consts else 0
            obs_shape = self.sensor_shapes[0] if len(self.sensor_shapes) == 1 else (sum(int(np.prod(s)) for s in self.sensor_shapes),)
            self.spec = BehaviorSpec(self.path.stem, ("agent_0",), obs_shape,
                                     ActionSpec(branches, n_cont, (-1.0,) * n_cont, (1.0,) * n_cont))

    def _constants(self) -> dict[str, np.ndarray]:
        """Outputs that do not depend on the inputs (version, memory size, action shapes), from a batch-1 run."""
        feeds = {}
        for i in self.session.get_inputs():
            shape = [1 if not isinstance(d, int) else d for d in i.shape]
            feeds[i.name] = (np.ones if i.name == ACTION_MASKS else np.zeros)(shape, np.float32)
        return dict(zip(self.outputs, self.session.run(None, feeds)))

    @property
    def takes_agent_id(self) -> bool:
        """Files we exported say so in ``marl.takes_agent_id``; foreign brains (Unity's) never take one.

        Files written before per-slot exports (no ``marl.takes_agent_id``) hold slot 0's id; they act as
        slot 0 for every agent unless the per-slot siblings exist (a warning says so once).
        """
        if "marl.takes_agent_id" in self.metadata:
            return self.metadata["marl.takes_agent_id"] not in ("0", "false", "False")
        if "marl.behavior_spec" not in self.metadata or self.spec.n_agents < 2:
            return False
        if not any(self.slot_file(s).is_file() for s in range(self.spec.n_agents) if s != self.agent_slot):
            if not getattr(self, "_warned", False):
                import warnings

                warnings.warn(f"{self.path}: written before per-slot ONNX exports; every agent acts as slot "
                              f"{self.agent_slot} (export the run again with marl-export --all-slots to fix)",
                              stacklevel=2)
                self._warned = True
            return False
        return True

    def slot_file(self, slot: int) -> Path:
        """The file that holds agent slot ``slot`` of this policy (``<root>_agent<slot>.onnx``)."""
        stem = self.path.stem
        root = stem.rsplit("_agent", 1)[0] if stem.rsplit("_agent", 1)[-1].isdigit() and "_agent" in stem else stem
        return self.path.with_name(f"{root}_agent{slot}.onnx")

    def for_slot(self, slot: int) -> "OnnxPolicy":
        """The policy acting as agent ``slot`` (this file, or its sibling file for that slot).

        Raises:
            PolicyError: a shared policy with an id input whose file for ``slot`` does not exist.
        """
        if not self.takes_agent_id:
            return self
        if slot not in self._slots:
            f = self.slot_file(slot)
            root = f.with_name(f.name.rsplit("_agent", 1)[0] + ".onnx")
            if not f.is_file() and root.is_file() and root != self.path:
                f = root  # training writes slot 0 as <Behavior>.onnx and the others as <Behavior>_agent<i>.onnx
            if not f.is_file():
                raise PolicyError(f"{self.path}: this brain was exported for agent slot {self.agent_slot} and takes "
                                  f"an agent id; slot {slot} needs {f.name} beside it (write it with "
                                  f"marl-export RUN --all-slots)")
            other = OnnxPolicy(f, self._threads)
            if other.agent_slot != slot:
                raise PolicyError(f"{f}: metadata says agent slot {other.agent_slot}, expected {slot}")
            self._slots[slot] = other
        return self._slots[slot]

    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        idx = np.asarray(agent_index, np.int64).reshape(-1)
        if self.takes_agent_id and (idx != self.agent_slot).any():
            return self._act_by_slot(obs, idx, mask, hidden, deterministic)
        return self._act(obs, idx, mask, hidden, deterministic)

    def _act_by_slot(self, obs, idx, mask, hidden, deterministic):
        """Split the batch by slot, run each slot's file, and put the rows back in order."""
        n = len(idx)
        obs = np.asarray(obs, np.float32).reshape(n, -1)
        d_out = c_out = h_out = None
        for slot in np.unique(idx):
            rows = idx == slot
            d, c, h = self.for_slot(int(slot))._act(obs[rows], idx[rows], None if mask is None else np.asarray(mask)[rows],
                                                    None if hidden is None else np.asarray(hidden)[rows], deterministic)
            if d is not None:
                d_out = np.zeros((n, *d.shape[1:]), d.dtype) if d_out is None else d_out
                d_out[rows] = d
            if c is not None:
                c_out = np.zeros((n, *c.shape[1:]), c.dtype) if c_out is None else c_out
                c_out[rows] = c
            if h is not None:
                h_out = np.zeros((n, *h.shape[1:]), h.dtype) if h_out is None else h_out
                h_out[rows] = h
        return d_out, c_out, h_out

    def _act(self, obs, agent_index, mask=None, hidden=None, deterministic=True):
        n = len(agent_index)
        flat = np.asarray(obs, np.float32).reshape(n, -1)
        feeds, start = {}, 0
        for name, shape in zip(self.obs_inputs, self.sensor_shapes):
            size = int(np.prod(shape))
            feeds[name] = flat[:, start:start + size].reshape(n, *shape)
            start += size
        if start != flat.shape[1]:
            raise ValueError(f"{self.path}: observations have {flat.shape[1]} values per agent, the model takes {start}")
        if self.has_mask:
            size = self.spec.action.mask_size
            feeds[ACTION_MASKS] = np.ones((n, size), np.float32) if mask is None else np.asarray(mask, np.float32).reshape(n, -1)
        if self.has_memory:
            feeds[RECURRENT_IN] = (np.zeros((n, 1, self.memory_size), np.float32) if hidden is None
                                   else np.asarray(hidden, np.float32).reshape(n, 1, self.memory_size))
        want = [DETERMINISTIC_DISCRETE if deterministic else DISCRETE_ACTIONS,
                DETERMINISTIC_CONTINUOUS if deterministic else CONTINUOUS_ACTIONS, RECURRENT_OUT]
        want = [w for w in want if w in self.outputs]
        res = dict(zip(want, self.session.run(want, feeds)))
        d = res.get(DETERMINISTIC_DISCRETE if deterministic else DISCRETE_ACTIONS)
        c = res.get(DETERMINISTIC_CONTINUOUS if deterministic else CONTINUOUS_ACTIONS)
        h = res.get(RECURRENT_OUT)
        return (None if d is None else d.astype(np.int64), c, h)

