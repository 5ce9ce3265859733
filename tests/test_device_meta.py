"""GPU learner correctness without a GPU: one update of every learner with all its tensors on ``torch.device("meta")``.

``torch.device("meta")`` alone cannot run a learner: meta tensors hold no values, so data-dependent ops
(``nonzero``, boolean masks, ``.item()``) fail. Here a tensor "on meta" is a wrapper subclass (:class:`OnMeta`)
that reports ``device='meta'`` and keeps its values in a CPU tensor; the :class:`ShadowMeta` dispatch mode runs
every op on those values, so the learner computes as usual, and checks each op as CUDA does: an op that mixes
meta tensors with CPU tensors of one or more dimensions (0-dim CPU tensors are allowed, as on CUDA) is a device
mismatch, and so is ``.numpy()`` of a meta tensor. A factory call without ``device=`` (``torch.zeros(n)``) or a
``torch.from_numpy`` never moved with ``.to(device)`` makes a CPU tensor, so it is caught where it meets the
learner's tensors. Mismatches are recorded with the innermost project source line instead of stopping, so one
run lists every site. The batch is collected on the CPU (as a Ray env runner does) and learned on meta.
"""
from __future__ import annotations

import copy
import math
import os
import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from marl_helpers import coordination_config

META = torch.device("meta")
CPU = torch.device("cpu")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROJECT = tuple(os.path.join(_ROOT, p) + os.sep for p in ("marl", "envs", "league", "tests"))
aten = torch.ops.aten
# ops that may take tensors on two devices (as on CUDA): copies between devices and device moves
_CROSS_DEVICE_OK = {aten.copy_.default, aten._to_copy.default, aten._copy_from.default,
                    aten._copy_from_and_resize.default, aten.to.dtype_layout, aten.to.device, aten.to.other,
                    aten.to.dtype}
_ACTIVE: list["ShadowMeta"] = []
_GUARD_FRAMES = {"_site", "__torch_dispatch__", "numpy", "wrap"}


def _site() -> str:
    """``file:line: code`` of the innermost project (or test) frame of the current stack, the guard's own
    frames left out."""
    for fr in reversed(traceback.extract_stack()):
        if fr.filename.startswith(_PROJECT) and fr.name not in _GUARD_FRAMES:
            return f"{os.path.relpath(fr.filename, _ROOT)}:{fr.lineno}: {(fr.line or '').strip()}"
    return "(no project frame)"


class OnMeta(torch.Tensor):
    """A tensor reporting ``device='meta'`` whose values live in the CPU tensor ``_inner``."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        r = torch.Tensor._make_wrapper_subclass(cls, inner.shape, strides=inner.stride(),
                                                storage_offset=inner.storage_offset(), dtype=inner.dtype,
                                                layout=inner.layout, device=META, requires_grad=False)
        r._inner = inner
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func}: a shadow-meta tensor was used outside ShadowMeta")

    def __repr__(self) -> str:
        return f"OnMeta({self._inner!r})"

    def tolist(self):
        return self._inner.tolist()  # CUDA tensors copy to the host for tolist()

    def numpy(self, *a, **k):
        """Recorded as a mismatch (CUDA raises "can't convert cuda:0 device type tensor to numpy"); the run
        goes on with the values so that later sites are found too."""
        if _ACTIVE:
            _ACTIVE[-1].mismatches.setdefault(_site(), "numpy() of a device tensor (needs .cpu() first)")
        return self._inner.numpy(*a, **k)


def _target(func, args, kwargs):
    """The device a ``to`` / ``_to_copy`` call moves to (None: no move, or another op)."""
    if func in (aten._to_copy.default, aten.to.dtype_layout):
        dev = kwargs.get("device")
    elif func is aten.to.device:
        dev = args[1]
    elif func is aten.to.other:
        dev = args[1].device
    else:
        return None
    return None if dev is None else torch.device(dev)


class ShadowMeta(TorchDispatchMode):
    """Run ops on the CPU values of :class:`OnMeta` tensors; ``mismatches``: ``{site: what}`` (first per site)."""

    def __init__(self):
        super().__init__()
        self.mismatches: dict[str, str] = {}

    def __enter__(self):
        _ACTIVE.append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        flat, spec = tree_flatten((args, kwargs))
        on_meta = [x for x in flat if isinstance(x, OnMeta)]
        make_meta = kwargs.get("device") == META
        if (on_meta or make_meta) and func not in _CROSS_DEVICE_OK:
            stray = [x for x in flat if isinstance(x, torch.Tensor) and not isinstance(x, OnMeta)
                     and x.device == CPU and x.dim() > 0]
            if stray:
                self.mismatches.setdefault(_site(), f"{func}: cpu tensor {list(stray[0].shape)} meets meta tensors")
        inner = [x._inner if isinstance(x, OnMeta) else x for x in flat]
        a, k = tree_unflatten(inner, spec)
        if make_meta:
            k["device"] = CPU
        out = func(*a, **k)
        if not (on_meta or make_meta) or _target(func, args, kwargs) not in (None, META):
            return out  # CPU work, or a copy to the host
        if torch.Tag.inplace_view in func.tags:  # e.g. transpose_ inside GRU: change the wrapper's sizes too
            # (as torch.utils._python_dispatch.return_and_correct_aliasing does: the op on the wrapper itself,
            # below Python dispatch, with the Meta kernel)
            from torch.utils._mode_utils import no_dispatch

            with no_dispatch():
                was = torch._C._meta_in_tls_dispatch_include()
                torch._C._set_meta_in_tls_dispatch_include(True)
                try:
                    func(*args, **kwargs)
                finally:
                    torch._C._set_meta_in_tls_dispatch_include(was)
            return args[0]
        back = {id(x._inner): x for x in on_meta}  # in-place ops return their input

        def wrap(t):
            if not isinstance(t, torch.Tensor):
                return t
            if id(t) in back:
                w = back[id(t)]
                if w.shape != t.shape:
                    raise NotImplementedError(f"{func}: in-place shape change of a shadow-meta tensor")
                return w
            with torch.inference_mode(False):  # a view of a normal tensor must not become an inference tensor
                return OnMeta(t)

        flat_out, out_spec = tree_flatten(out)
        return tree_unflatten([wrap(t) for t in flat_out], out_spec)


@pytest.fixture
def shadow_meta(monkeypatch):
    """The mode, with the two refusals CUDA never gives lifted: ``clip_grad_norm_(foreach=True)`` and fused Adam
    refuse a device without foreach/fused kernels (meta); the kernels then run on the CPU values."""
    import torch.nn.utils.clip_grad as clip_grad
    import torch.optim.adam as adam

    monkeypatch.setattr(clip_grad, "_device_has_foreach_support", lambda device: True)
    monkeypatch.setattr(adam, "_device_dtype_check_for_fused", lambda p, *a, **k: None)
    return ShadowMeta()


def test_the_guard_reports_tensors_made_without_device(shadow_meta):
    with shadow_meta:
        x = torch.ones(3, device=META)
        assert isinstance(x, OnMeta) and x.device == META
        assert (x * torch.tensor(2.0)).sum().item() == 6.0  # a 0-dim CPU tensor is fine, as on CUDA
        y = x + torch.zeros(3)  # made without device=
        x.numpy()
    assert isinstance(y, OnMeta)
    sites = list(shadow_meta.mismatches)
    assert len(sites) == 2 and all("test_device_meta.py" in s for s in sites), shadow_meta.mismatches
    assert "x + torch.zeros(3)" in sites[0] and "numpy()" in shadow_meta.mismatches[sites[1]]


# ------------------------------------------------------------------------------------ learners
def _config(tmp_path, algo: str) -> dict:
    if algo in ("qmix", "vdn"):
        hp = {"buffer_size": 64, "batch_size": 8, "update_interval": 4, "rnn_hidden_dim": 16, "mixing_embed_dim": 8,
              "target_update_interval": 1, "epsilon_anneal_steps": 100, "td_lambda": 0.6}
        return {"behaviors": {"agent": {"trainer_type": algo, "hyperparameters": hp, "max_steps": 10000}},
                "env_settings": {"env_path": "envs.games.two_step", "num_envs": 1, "num_areas": 4, "seed": 1},
                "checkpoint_settings": {"run_id": "meta", "results_dir": str(tmp_path)}}
    extra = {"hyperparameters": {"buffer_size": 64, "batch_size": 32, "num_epoch": 2}}
    if algo == "mappo-memory":
        extra["network_settings"] = {"memory": {"memory_size": 16, "sequence_length": 4}}
    if algo == "mappo-normalize":  # observation normaliser, ValueNorm off, plain value loss
        extra["network_settings"] = {"normalize": True}
        extra["hyperparameters"].update(use_value_norm=False, use_huber_loss=False)
    cfg = coordination_config(tmp_path, "meta", **extra)
    cfg["behaviors"]["agent"]["trainer_type"] = algo.split("-")[0]
    if algo == "ippo-continuous":
        cfg["env_settings"].update(env_path="mpe2.simple_spread_v3",
                                   env_kwargs={"N": 2, "continuous_actions": True, "max_cycles": 8})
    return cfg


def _env(tmp_path, algo: str):
    """``(config, env factory, spec, env copies)`` of the small run ``algo``."""
    from marl.config import parse_config
    from marl.run import env_factory

    cfg = parse_config(copy.deepcopy(_config(tmp_path, algo)), "meta.yaml")
    _, factory = env_factory(cfg)
    probe = factory(0, None)
    spec = probe.spec
    probe.close()
    return cfg, factory, spec, cfg.env_settings.num_areas


def _collect_on_cpu(tmp_path, algo: str):
    from envs.vector import VecEnv
    from marl.algos.factory import make_trainer

    cfg, factory, spec, n = _env(tmp_path, algo)
    torch.manual_seed(0)
    trainer = make_trainer(spec, cfg, n, CPU)
    venv = VecEnv(factory, spec, 1, n, seed=0)
    try:
        steps, batch, _ = trainer.collect(venv, 0)
        if algo in ("qmix", "vdn"):  # the replay needs batch_size episodes before the first update
            while sum(len(v) for v in batch.values()) < 8:
                more, b2, _ = trainer.collect(venv, steps)
                steps, batch = steps + more, trainer.merge([batch, b2])
    finally:
        venv.close()
    return cfg, spec, n, steps, batch


ALGOS = ["mappo", "ippo", "mappo-memory", "mappo-normalize", "ippo-continuous", "poca", "qmix", "vdn"]


@pytest.mark.parametrize("algo", ALGOS)
def test_one_update_with_every_tensor_on_meta(tmp_path, shadow_meta, algo):
    from marl.algos.factory import make_trainer

    cfg, spec, n, steps, batch = _collect_on_cpu(tmp_path, algo)
    with shadow_meta:
        trainer = make_trainer(spec, cfg, n, META)
        learner = trainer.learners["agent"]
        nets = [m for m in vars(learner).values() if isinstance(m, torch.nn.Module)]
        params = [p for m in nets for p in m.parameters()]
        assert params and all(isinstance(p, OnMeta) and p.device == META for p in params)
        before = [p._inner.clone() for p in params]
        logs = trainer.learn(0, steps, batch)
    assert shadow_meta.mismatches == {}, "tensors off the learner's device:\n" + "\n".join(
        f"  {site}  ({what})" for site, what in shadow_meta.mismatches.items())
    scalars = logs["agent"]
    assert scalars and all(isinstance(v, float) and math.isfinite(v) for v in scalars.values())
    assert any(not torch.equal(b, p._inner) for b, p in zip(before, params)), "the update changed no weight"
    assert all(isinstance(p, OnMeta) for p in params)  # nothing was moved off the device


@pytest.mark.parametrize("algo", ["mappo", "poca", "qmix"])
def test_acting_with_the_learner_on_meta(tmp_path, shadow_meta, algo):
    from envs.vector import VecEnv
    from marl.algos.factory import make_trainer

    cfg, factory, spec, n = _env(tmp_path, algo)
    venv = VecEnv(factory, spec, 1, n, seed=0)
    try:
        with shadow_meta:
            trainer = make_trainer(spec, cfg, n, META)
            trainer.collect(venv, 0)
    finally:
        venv.close()
    assert shadow_meta.mismatches == {}, "tensors off the learner's device while acting:\n" + "\n".join(
        f"  {site}  ({what})" for site, what in shadow_meta.mismatches.items())
