"""Execute match tasks in parallel and stream results back to a callback (usually ``store.record_match``).

* :class:`LocalRunner` (default): ``workers`` spawned processes, one task in flight per worker. The parent
  knows which task each worker holds, so a worker that dies (crash, OOM kill) loses only that match: it
  is re-queued (up to ``max_retries`` times) and a replacement worker is started.
* :class:`RayRunner`: one Ray task per match (``ray.remote(max_retries=...)``: Ray re-runs a task whose
  worker died); ``address=None`` starts a local Ray with ``workers`` CPUs, ``"auto"`` or ``"ray://host:10001"``
  joins a cluster (whose nodes must have this package installed). Results stream back with ``ray.wait``.

Both call ``on_result`` in the parent process, in completion order; since a match keeps its uid across
retries and the store records a uid once, a match is never counted twice.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable

from league.errors import LeagueError
from league.match import MatchTask, play_match
from league.records import MatchResult

ResultCallback = Callable[[MatchResult], None]


@dataclass
class RunStats:
    """What a run did: ``completed`` results delivered, ``retried`` re-queued attempts, ``failed`` uids -> reason."""

    completed: int = 0
    retried: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def matches_per_second(self) -> float:
        """Completed matches per wall-clock second."""
        return self.completed / self.seconds if self.seconds > 0 else 0.0


def _worker_main(worker_id: int, inbox, outbox) -> None:
    """Worker loop: take a task, play it, send ``("done", wid, result)`` or ``("error", wid, uid, kind, msg)``."""
    from league.policies import PlayerCache

    cache = PlayerCache()
    label = f"{os.uname().nodename}:{os.getpid()}"
    while True:
        task = inbox.get()
        if task is None:
            return
        try:
            outbox.put(("done", worker_id, play_match(task, cache, label)))
        except LeagueError as exc:
            outbox.put(("error", worker_id, task.uid, "user", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which retries
            outbox.put(("error", worker_id, task.uid, "crash",
                        f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=3).splitlines()[-1]}"))


class LocalRunner:
    """Run matches in ``workers`` local processes (spawned, so no DB connection or lock is inherited).

    Workers start on the first :meth:`run` and are reused by later calls (batches, Swiss rounds) until
    :meth:`close` (also a context manager).

    Args:
        workers: number of worker processes (>= 1).
        max_retries: re-runs of a match whose worker died or raised an unexpected error.

    ``run`` raises :class:`LeagueError` on the first user error (unknown policy, incompatible env) after
    stopping the workers; matches already delivered stay recorded.
    """

    def __init__(self, workers: int = 2, max_retries: int = 3):
        if workers < 1:
            raise LeagueError(f"runner.workers must be >= 1, got {workers}")
        self.workers, self.max_retries = workers, max_retries
        self._ctx = mp.get_context("spawn")
        self._outbox = None
        self._procs: list = []
        self._inboxes: list = []

    def __enter__(self) -> "LocalRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, i: int) -> None:
        if self._outbox is None:
            self._outbox = self._ctx.Queue()
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(target=_worker_main, args=(i, inbox, self._outbox), daemon=True)
        proc.start()
        if i < len(self._procs):
            self._procs[i], self._inboxes[i] = proc, inbox
        else:
            self._procs.append(proc)
            self._inboxes.append(inbox)

    def close(self) -> None:
        """Stop the worker processes (graceful, then terminate after 5 s)."""
        for p, q in zip(self._procs, self._inboxes):
            if p.is_alive():
                try:
                    q.put(None)
                except Exception:  # noqa: BLE001
                    pass
        deadline = time.monotonic() + 5
        for p in self._procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(1)
        self._procs, self._inboxes, self._outbox = [], [], None

    def run(self, tasks: Iterable[MatchTask], on_result: ResultCallback) -> RunStats:
        """Play every task; ``on_result`` is called in this process for each finished match."""
        todo = list(tasks)
        stats = RunStats()
        if not todo:
            return stats
        t0 = time.perf_counter()
        while len(self._procs) < self.workers:
            self._start(len(self._procs))
        procs, n = self._procs, self.workers
        holding: dict[int, MatchTask | None] = {i: None for i in range(n)}
        attempts: dict[str, int] = {}
        pending = list(reversed(todo))  # stack; pop() gives tasks in order
        idle_deaths = [0]  # worker deaths without a task since the last finished match

        def feed(i: int) -> None:
            if pending and holding[i] is None and procs[i].is_alive():
                holding[i] = pending.pop()
                self._inboxes[i].put(holding[i])

        def retry(task: MatchTask, reason: str) -> None:
            attempts[task.uid] = attempts.get(task.uid, 0) + 1
            if attempts[task.uid] > self.max_retries:
                stats.failed[task.uid] = reason
            else:
                stats.retried += 1
                pending.append(task)

        def handle(msg) -> None:
            kind, wid = msg[0], msg[1]
            task = holding.get(wid)
            holding[wid] = None
            if kind == "done":
                on_result(msg[2])
                stats.completed += 1
                idle_deaths[0] = 0
            elif msg[3] == "user":
                raise LeagueError(msg[4])
            elif task is not None:
                retry(task, msg[4])
            feed(wid)

        try:
            for i in range(n):
                feed(i)
            while pending or any(h is not None for h in holding.values()):
                try:
                    handle(self._outbox.get(timeout=0.2))
                except queue.Empty:
                    pass
                for i in range(n):
                    if procs[i].is_alive():
                        continue
                    while True:  # drain what it (or others) sent before it died
                        try:
                            handle(self._outbox.get(timeout=0.05))
                        except queue.Empty:
                            break
                    lost = holding[i]
                    holding[i] = None
                    if lost is not None:
                        retry(lost, f"worker exited with code {procs[i].exitcode}")
                    else:
                        idle_deaths[0] += 1
                        if idle_deaths[0] > 2 * n:
                            raise LeagueError(f"local runner: worker processes exit at start-up (exit code "
                                              f"{procs[i].exitcode}); run `python -c 'import league.match'` to see why")
                    self._start(i)
                    for j in range(n):
                        feed(j)
        except BaseException:
            self.close()  # stop in-flight matches; their results are not recorded
            raise
        finally:
            stats.seconds = time.perf_counter() - t0
        return stats


_RAY_CACHE = None


def _ray_play(task: MatchTask) -> MatchResult:
    """Body of the Ray task: play with a per-worker-process player cache."""
    global _RAY_CACHE
    import ray

    from league.policies import PlayerCache

    if _RAY_CACHE is None:
        _RAY_CACHE = PlayerCache()
    return play_match(task, _RAY_CACHE, f"ray:{ray.get_runtime_context().get_worker_id()[:12]}")


class RayRunner:
    """Run matches as Ray tasks (ray core).

    Args:
        workers: CPUs of the local Ray started when ``address`` is None; also the number of tasks kept in flight
            per CPU of a cluster (x2).
        address: None (start a local Ray), ``"auto"`` (running cluster) or ``"ray://host:port"``.
        max_retries: Ray task retries after a worker death.

    Raises:
        LeagueError: Ray cannot start/connect, or a match failed with a user error.
    """

    def __init__(self, workers: int = 2, address: str | None = None, max_retries: int = 3):
        self.workers, self.address, self.max_retries = workers, address, max_retries
        self._started_here = False

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the Ray instance this runner started (a cluster connection is just dropped)."""
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def run(self, tasks: Iterable[MatchTask], on_result: ResultCallback) -> RunStats:
        """Submit all tasks (at most ``2 * CPUs`` in flight) and stream results to ``on_result``."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        todo = list(tasks)
        stats = RunStats()
        if not todo:
            return stats
        t0 = time.perf_counter()
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_project_paths())}})
                self._started_here = True
            except Exception as exc:  # noqa: BLE001 - connection problems of many kinds
                raise LeagueError(f"ray: cannot start/connect (address={self.address!r}): "
                                  f"{str(exc).splitlines()[0][:200]}") from None
        try:
            remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_ray_play)
            cpus = int(ray.cluster_resources().get("CPU", self.workers))
            limit = max(1, 2 * cpus)
            queue_ = list(reversed(todo))
            inflight: dict = {}
            while queue_ or inflight:
                while queue_ and len(inflight) < limit:
                    t = queue_.pop()
                    inflight[remote.remote(t)] = t
                done, _ = ray.wait(list(inflight), num_returns=1)
                task = inflight.pop(done[0])
                try:
                    result = ray.get(done[0])
                except RayTaskError as exc:
                    cause = exc.cause if hasattr(exc, "cause") else None
                    if isinstance(cause, LeagueError):
                        raise LeagueError(str(cause)) from None
                    stats.failed[task.uid] = str(exc).splitlines()[0][:300]
                    continue
                except RayError as exc:  # worker died more than max_retries times
                    stats.failed[task.uid] = str(exc).splitlines()[0][:300]
                    continue
                on_result(result)
                stats.completed += 1
        finally:
            stats.seconds = time.perf_counter() - t0
        return stats


def _project_paths() -> list[str]:
    """Folders that hold the ``league``/``envs`` packages, for Ray workers started in a different cwd."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def make_runner(kind: str = "local", workers: int = 2, address: str | None = None, max_retries: int = 3):
    """A runner by kind (``local`` | ``ray``). Raises LeagueError for other kinds."""
    if kind == "local":
        return LocalRunner(workers, max_retries)
    if kind == "ray":
        return RayRunner(workers, address, max_retries)
    raise LeagueError(f"runner kind '{kind}' unknown; expected local or ray")
