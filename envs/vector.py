"""Many copies of one env, stepped in worker processes over shared memory.

Layout: ``num_envs`` workers (ML-Agents' ``--num-envs``), each holding ``num_areas`` env copies
(``--num-areas``), ``E = num_envs * num_areas`` copies in all. Every array of
:func:`envs.spec.array_layout` gets a leading ``[E]`` axis and lives in one shared-memory block,
so a step sends one small command per worker over a pipe and nothing else: workers read actions
from and write observations into the shared arrays in place. With ``num_envs == 1`` the copies
run in-process (no workers), as ML-Agents does with one env.

Only ``EpisodeStats`` of finished episodes travel over the pipes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Callable

import numpy as np

from envs.adapter import ArrayEnv, EpisodeStats
from envs.registry import EnvError
from envs.spec import EnvSpec, array_layout

EnvFactory = Callable[[int, dict | None], ArrayEnv]
"""``factory(copy_index, out_arrays) -> ArrayEnv``; must be picklable (a module-level function or
``functools.partial``) because workers call it."""


def _views(buffers: dict[str, object], layout: dict, n: int) -> dict[str, np.ndarray]:
    return {k: np.frombuffer(buffers[k], dtype=d).reshape((n, *s)) for k, (s, d) in layout.items()}


def _worker(conn: Connection, factory: EnvFactory, first: int, count: int, buffers: dict, layout: dict,
            n_total: int, seed: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    try:
        arrays = _views(buffers, layout, n_total)
        envs = []
        for j in range(count):
            e = first + j
            env = factory(e, {k: v[e] for k, v in arrays.items()})
            env.reset(None if seed is None else seed + e)
            envs.append(env)
        conn.send(("ready", None))
        while True:
            cmd = conn.recv()
            if cmd == "step":
                stats = []
                for j, env in enumerate(envs):
                    s = env.step()
                    if s is not None:
                        stats.append((first + j, s))
                conn.send(("ok", stats))
            elif isinstance(cmd, tuple) and cmd[0] == "params":
                for env in envs:
                    env.set_environment_parameters(cmd[1])
                conn.send(("ok", []))
            elif cmd == "reset":
                for env in envs:
                    env.reset()
                conn.send(("ok", []))
            elif cmd == "close":
                for env in envs:
                    env.close()
                conn.send(("ok", []))
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return
    except Exception as exc:  # report to the parent instead of dying silently
        try:
            msg = str(exc) if isinstance(exc, EnvError) else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            conn.send(("error", msg))
        except Exception:
            pass


class VecEnv:
    """``E`` env copies as batched arrays ``[E, ...]`` (see the module docstring).

    Args:
        factory: builds one :class:`ArrayEnv` writing into the arrays it is given.
        spec: the env's :class:`EnvSpec` (from a probe env built by the caller).
        num_envs: worker processes; 1 = in-process.
        num_areas: env copies per worker.
        seed: copy ``e`` is reset with ``seed + e`` the first time (None = unseeded).

    Attributes:
        arrays: ``name -> ndarray [E, ...]`` (shared memory with workers); write actions into
            ``"<behavior>/act_d"`` / ``"<behavior>/act_c"`` then call :meth:`step`.

    Raises:
        EnvError: a worker failed to build or step its env (the message is the worker's).
    """

    def __init__(self, factory: EnvFactory, spec: EnvSpec, num_envs: int = 1, num_areas: int = 1,
                 seed: int | None = None, start_method: str = "spawn"):
        if num_envs < 1 or num_areas < 1:
            raise EnvError(f"--num-envs and --num-areas must be >= 1, got {num_envs} and {num_areas}")
        self.spec, self.num_envs, self.num_areas = spec, num_envs, num_areas
        self.n = num_envs * num_areas
        self.layout = array_layout(spec)
        self._procs: list[mp.Process] = []
        self._conns: list[Connection] = []
        self._envs: list[ArrayEnv] = []
        if num_envs == 1:
            self.arrays = {k: np.zeros((self.n, *s), d) for k, (s, d) in self.layout.items()}
            for e in range(self.n):
                env = factory(e, {k: v[e] for k, v in self.arrays.items()})
                env.reset(None if seed is None else seed + e)
                self._envs.append(env)
            return
        ctx = mp.get_context(start_method)
        buffers = {k: ctx.RawArray("b", int(np.prod((self.n, *s))) * d.itemsize or 1) for k, (s, d) in self.layout.items()}
        self.arrays = _views(buffers, self.layout, self.n)
        try:
            for w in range(num_envs):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker, args=(child, factory, w * num_areas, num_areas, buffers, self.layout,
                                                      self.n, seed), daemon=True, name=f"env-worker-{w}")
                p.start()
                child.close()
                self._procs.append(p)
                self._conns.append(parent)
            for conn in self._conns:
                self._recv(conn)
        except BaseException:  # Ctrl-C while players start, or a failed worker: never leave workers behind
            self.close()
            raise

    def _recv(self, conn: Connection) -> list:
        try:
            kind, payload = conn.recv()
        except EOFError:
            self.close()
            raise EnvError("an env worker process died unexpectedly (see its output above)") from None
        if kind == "error":
            self.close()
            raise EnvError(payload)
        return payload

    def step(self) -> list[tuple[int, EpisodeStats]]:
        """Step every copy once with the actions in the shared arrays.

        Returns:
            ``(copy index, EpisodeStats)`` for each episode that finished in this step.
        """
        if not self._procs:
            out = []
            for e, env in enumerate(self._envs):
                s = env.step()
                if s is not None:
                    out.append((e, s))
            return out
        for conn in self._conns:
            conn.send("step")
        out = []
        for conn in self._conns:
            out.extend(self._recv(conn))
        return out

    def reset(self) -> None:
        """Restart every copy's episode (unfinished episodes are not recorded)."""
        if not self._procs:
            for env in self._envs:
                env.reset()
            return
        for conn in self._conns:
            conn.send("reset")
        for conn in self._conns:
            self._recv(conn)

    def set_environment_parameters(self, values: dict) -> None:
        """Send ``environment_parameters`` values (floats / sampler dicts) to every copy's env (Unity's
        EnvironmentParameters side channel, or the env's ``set_environment_parameters``); they apply from each
        copy's next episode. Raises :class:`envs.registry.EnvError` when the env reads none of them."""
        if not self._procs:
            for env in self._envs:
                env.set_environment_parameters(values)
            return
        for conn in self._conns:
            conn.send(("params", values))
        for conn in self._conns:
            self._recv(conn)

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for env in self._envs:
            env.close()
        self._envs = []
        for conn, p in zip(self._conns, self._procs):
            try:
                if p.is_alive():
                    conn.send("close")
                    if conn.poll(5):
                        conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        self._conns, self._procs = [], []

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_factory(env_id: str, env_kwargs: dict | None, behavior_map: dict | None = None,
                    supersuit: list | None = None, image_layout: str = "auto",
                    environment_parameters: dict | None = None, parameters_required: bool = True,
                    write_state: bool = True):
    """A picklable factory for :class:`VecEnv` building ``ArrayEnv(env_id, env_kwargs, ...)``;
    ``environment_parameters`` (``key -> float | sampler dict``, a curriculum's first lesson) reach each
    env before its first episode (:meth:`envs.adapter.ArrayEnv.set_environment_parameters`); an env that
    reads none is an error, or with ``parameters_required=False`` (evaluation) a warning. ``write_state=False``:
    the global state is not computed (no trainer of the run reads it)."""
    import functools

    return functools.partial(_make_array_env, env_id, env_kwargs, behavior_map, supersuit, image_layout,
                             environment_parameters, parameters_required, write_state)


def _make_array_env(env_id: str, env_kwargs: dict | None, behavior_map: dict | None, supersuit: list | None,
                    image_layout: str, environment_parameters: dict | None, parameters_required: bool,
                    write_state: bool, index: int, out: dict | None) -> ArrayEnv:
    return ArrayEnv(env_id, env_kwargs, out=out, behavior_map=behavior_map, supersuit=supersuit,
                    image_layout=image_layout, environment_parameters=environment_parameters,
                    parameters_required=parameters_required, write_state=write_state)


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
