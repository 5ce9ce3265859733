"""Play an exported ``.onnx`` brain in onnxruntime through the :class:`marl.inference.Policy` contract."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from envs.spec import ActionSpec, BehaviorSpec
from marl.checkpoint import CheckpointError, spec_from_dict
from marl.export.graph import (ACTION_MASKS, CONTINUOUS_ACTIONS, CONTINUOUS_SHAPE, DETERMINISTIC_CONTINUOUS,
                               DETERMINISTIC_DISCRETE, DISCRETE_ACTIONS, DISCRETE_SHAPE, MEMORY_SIZE, RECURRENT_IN, RECURRENT_OUT)
from marl.inference import Policy


class OnnxPolicy(Policy):
    """An ML-Agents 3.x brain (ours or one exported by ``mlagents-learn``) run by onnxruntime.

    ``act(obs, agent_index, mask=None, hidden=None, deterministic=True)`` follows
    :mod:`marl.inference`: ``obs`` float32 ``[B, *obs_shape]`` (or ``[B, obs_size]``; split
    into the ``obs_i`` inputs in order), ``mask`` float32 ``[B, sum(branches)]`` 1 = allowed
    (None = all allowed); returns ``(d int64 [B, n_branches] | None, c float32 [B, n_cont] in
    [-1, 1] | None, hidden float32 [B, 1, M] | None)``. ``deterministic`` picks the
    ``deterministic_*`` outputs, else the sampled ones.

    The agent id of a shared policy is fixed inside the file (metadata ``marl.agent_slot``,
    :attr:`agent_slot`); ``agent_index`` only gives the batch size, as for a Unity agent.

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
        if "marl.behavior_spec" in meta:
            self.spec = spec_from_dict(json.loads(meta["marl.behavior_spec"]))
        else:  # a foreign brain: rebuild what we can from the graph
            branches = tuple(int(b) for b in np.ravel(consts[DISCRETE_SHAPE])) if DISCRETE_SHAPE in consts else ()
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

    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True):
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

    def reset_hidden(self, hidden, rows):
        if hidden is None:
            return None
        hidden = np.array(hidden, np.float32, copy=True)
        hidden[np.asarray(rows, bool)] = 0.0
        return hidden
