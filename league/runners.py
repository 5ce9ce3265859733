"""Execute match tasks in parallel and stream results back to a callback (usually ``store.record_match``).

* :class:`LocalRunner` (default): ``workers`` spawned processes, two tasks sent ahead to each worker. The parent
  knows which tasks each worker holds, so a worker that dies (crash, OOM kill) loses only the match it was
  playing: it is re-queued (up to ``max_retries`` times), the one waiting behind it goes back to the queue, and
  a replacement worker is started.
* :class:`RayRunner`: matches in batches, one Ray task per batch (``ray.remote(max_retries=...)``: Ray re-runs
  a task whose worker died); ``address=None`` starts a local Ray with ``workers`` CPUs, ``"auto"`` or
  ``"ray://host:10001"`` joins a cluster (whose nodes must have this package installed). Results stream back
  with ``ray.wait``.

Both call ``on_result`` in the parent process, in completion order; since a match keeps its uid across
retries and the store records a uid once, a match is never counted twice.

Nothing outlives its parent: local workers hold the read end of a pipe whose only write end stays in the
parent; a watchdog thread in each worker exits the process when that pipe reports end-of-file (the parent
died, even by SIGKILL), and the task loop also checks the parent id every second. The multiprocessing
resource tracker exits on its own once the parent and every worker are gone (it reads its pipe until EOF).
A local Ray is started and torn down by :mod:`marl.raytools`, whose reaper (with Ray's own) stops every Ray
process of the run when this process dies. ``benchmarks/league_kill_test.py [--ray]`` checks that nothing is
left 10 s after a SIGKILL.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from league.errors import LeagueError
from league.records import MatchResult

if TYPE_CHECKING:  # league.match pulls in torch: workers import it only after their parent watchdog runs
    from league.match import MatchTask

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


def exit_with_parent(parent_alive) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(0)``) when ``parent_alive`` reports EOF.

    Args:
        parent_alive: the read end of a ``multiprocessing.Pipe(duplex=False)`` whose write end only the parent
            holds; it is never written to, so ``recv`` returns only by EOF/OSError, i.e. when the parent
            process is gone (or closed it on purpose).
    """

    def watch() -> None:
        try:
            parent_alive.recv()
        except (EOFError, OSError):
            pass
        os._exit(0)

    th = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    th.start()
    return th


def _worker_main(worker_id: int, inbox, outbox, parent_alive=None) -> None:
    """Worker loop: take a task, play it, send ``("done", wid, result)`` or ``("error", wid, uid, kind, msg)``.

    Exits when it gets ``None``, when ``parent_alive`` reports EOF (see :func:`exit_with_parent`) or when its
    parent process id changes (re-parented: the parent died). SIGINT is ignored: the parent handles Ctrl-C and
    stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_alive is not None:
        exit_with_parent(parent_alive)
    parent = os.getppid()
    from league.match import play_match
    from league.policies import PlayerCache

    cache = PlayerCache()
    label = f"{os.uname().nodename}:{os.getpid()}"
    while True:
        try:
            task = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                os._exit(0)
            continue
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

    #: Tasks sent ahead to each worker: the next match waits in its queue while it plays one, so a busy parent
    #: (a loaded machine) never leaves a worker idle between matches.
    PREFETCH = 2

    def __init__(self, workers: int = 2, max_retries: int = 3):
        if workers < 1:
            raise LeagueError(f"runner.workers must be >= 1, got {workers}")
        self.workers, self.max_retries = workers, max_retries
        self._ctx = mp.get_context("spawn")
        self._outbox = None
        self._procs: list = []
        self._inboxes: list = []
        self._alive_r = self._alive_w = None  # parent-liveness pipe (see exit_with_parent)

    def __enter__(self) -> "LocalRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, i: int) -> None:
        if self._outbox is None:
            self._outbox = self._ctx.Queue()
        if self._alive_w is None:
            self._alive_r, self._alive_w = self._ctx.Pipe(duplex=False)
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(target=_worker_main, args=(i, inbox, self._outbox, self._alive_r), daemon=True)
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
        for q in self._inboxes + ([self._outbox] if self._outbox is not None else []):
            q.cancel_join_thread()  # never wait for a feeder thread whose reader is gone
            q.close()
        for c in (self._alive_r, self._alive_w):
            if c is not None:
                c.close()
        self._procs, self._inboxes, self._outbox = [], [], None
        self._alive_r = self._alive_w = None

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
        holding: dict[int, list[MatchTask]] = {i: [] for i in range(n)}  # sent to worker i, in its order
        attempts: dict[str, int] = {}
        pending = list(reversed(todo))  # stack; pop() gives tasks in order
        idle_deaths = [0]  # worker deaths without a task since the last finished match

        def feed(i: int) -> None:
            while pending and len(holding[i]) < self.PREFETCH and procs[i].is_alive():
                holding[i].append(pending.pop())
                self._inboxes[i].put(holding[i][-1])

        def retry(task: MatchTask, reason: str) -> None:
            attempts[task.uid] = attempts.get(task.uid, 0) + 1
            if attempts[task.uid] > self.max_retries:
                stats.failed[task.uid] = reason
            else:
                stats.retried += 1
                pending.append(task)

        def handle(msg) -> None:
            kind, wid = msg[0], msg[1]
            uid = msg[2].uid if kind == "done" else msg[2]
            held = holding.get(wid, [])
            task = next((t for t in held if t.uid == uid), None)
            if task is not None:
                held.remove(task)
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
            while pending or any(holding.values()):
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
                    lost, holding[i] = holding[i], []
                    if lost:  # the first was being played (a worker plays in order); the rest never started
                        pending.extend(reversed(lost[1:]))
                        retry(lost[0], f"worker exited with code {procs[i].exitcode}")
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


def _ray_play_batch(tasks: list[MatchTask]) -> list[tuple]:
    """Body of one Ray task: play ``tasks`` in order with a per-worker-process player cache.

    Returns:
        One entry per task played: ``("done", MatchResult)`` or ``("crash", uid, message)``; a user error
        (:class:`LeagueError`) ends the batch with ``("user", uid, message)`` (the run stops on it anyway).
    """
    global _RAY_CACHE
    import ray

    from league.match import play_match
    from league.policies import PlayerCache

    if _RAY_CACHE is None:
        _RAY_CACHE = PlayerCache()
    label = f"ray:{ray.get_runtime_context().get_worker_id()[:12]}"
    out: list[tuple] = []
    for task in tasks:
        try:
            out.append(("done", play_match(task, _RAY_CACHE, label)))
        except LeagueError as exc:
            out.append(("user", task.uid, str(exc)))
            break
        except Exception as exc:  # noqa: BLE001 - reported per match, like a local worker's crash
            out.append(("crash", task.uid, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"))
    return out


class RayRunner:
    """Run matches as Ray tasks (ray core), several matches per task.

    Args:
        workers: CPUs of the local Ray started when ``address`` is None.
        address: None (start a local Ray), ``"auto"`` (running cluster) or ``"ray://host:port"`` / ``"host:port"``.
        max_retries: Ray task retries after a worker death (the whole batch is replayed; its matches keep their
            uids, so nothing is recorded twice).
        matches_per_task: matches per Ray task; None = adaptive: about 0.5 s of play per task, from the
            measured match durations (a per-match task costs scheduling and transfer overhead that, on 2 cores,
            made Ray ~30% slower than local workers), never so many that a CPU idles at the end.
        ray_ports: ``"LOW-HIGH"``: every port of the local Ray started here (GCS, node manager, object manager,
            agents, workers, the driver) lies in that range (:func:`marl.raytools.plan_ports`); None = ports Ray
            picks. Refused with ``address``: a cluster's ports are fixed by its own ``ray start`` flags.

    Ray is started, joined and torn down through the project's Ray helper (:mod:`marl.raytools`): a local
    instance on 127.0.0.1 (``address="local"``, never a stale cluster), an address probed with a bounded
    timeout, and a reaper that kills the Ray processes left when this process dies.

    Raises:
        LeagueError: Ray cannot start/connect, or a match failed with a user error.
    """

    #: Wall-clock seconds of play aimed at per Ray task when ``matches_per_task`` is None.
    TARGET_TASK_SECONDS = 0.5

    def __init__(self, workers: int = 2, address: str | None = None, max_retries: int = 3,
                 matches_per_task: int | None = None, ray_ports: str | None = None):
        if workers < 1:
            raise LeagueError(f"runner.workers must be >= 1, got {workers}")
        if matches_per_task is not None and matches_per_task < 1:
            raise LeagueError(f"runner.matches_per_task must be >= 1, got {matches_per_task}")
        if ray_ports and address:
            raise LeagueError("runner.ray_ports applies to a Ray started here; a cluster's ports are fixed by its "
                              "own `ray start --port ... --min-worker-port ... --max-worker-port ...` flags")
        self.workers, self.address, self.max_retries = workers, address, max_retries
        self.matches_per_task = matches_per_task
        self.ports = parse_ports(ray_ports) if ray_ports else None
        self._started_here = False
        self._match_seconds: float | None = None

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the Ray instance this runner started (a cluster connection is just dropped)."""
        if self._started_here:
            from marl.raytools import shutdown

            shutdown()
            self._started_here = False

    def _connect(self) -> None:
        import ray

        if self._started_here or (self.address and ray.is_initialized()):
            return  # warm: connected by an earlier run()
        from marl.raytools import RaySetupError, project_runtime_env, start_or_connect

        try:
            self._started_here = start_or_connect(self.address, None if self.address else self.workers, self.ports,
                                                  runtime_env=project_runtime_env())
        except RaySetupError as exc:
            raise LeagueError(str(exc)) from None

    def _batch_size(self, remaining: int, cpus: int) -> int:
        if self.matches_per_task:
            return self.matches_per_task
        if self._match_seconds is None:
            per = 2  # first wave: measure
        else:
            per = max(1, round(self.TARGET_TASK_SECONDS / max(self._match_seconds, 1e-4)))
        return max(1, min(per, 64, -(-remaining // (2 * cpus))))  # ceil: the tail still fills every CPU

    def run(self, tasks: Iterable[MatchTask], on_result: ResultCallback) -> RunStats:
        """Submit all tasks in batches (at most ``2 * CPUs`` batches in flight) and stream results to ``on_result``."""
        import ray
        from ray.exceptions import RayError

        todo = list(tasks)
        stats = RunStats()
        if not todo:
            return stats
        t0 = time.perf_counter()
        self._connect()
        try:
            remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_ray_play_batch)
            cpus = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
            limit = 2 * cpus
            queue_ = list(reversed(todo))
            inflight: dict = {}
            while queue_ or inflight:
                while queue_ and len(inflight) < limit:
                    n = self._batch_size(len(queue_), cpus)
                    batch = [queue_.pop() for _ in range(min(n, len(queue_)))]
                    inflight[remote.remote(batch)] = batch
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                if not done:
                    continue
                batch = inflight.pop(done[0])
                try:
                    entries = ray.get(done[0], timeout=60)
                except RayError as exc:  # the worker died more than max_retries times, or the task failed
                    why = str(exc).splitlines()[0][:300]
                    for t in batch:
                        stats.failed[t.uid] = why
                    continue
                for entry in entries:
                    if entry[0] == "done":
                        res = entry[1]
                        secs = (res.ended_at - res.started_at).total_seconds()
                        self._match_seconds = secs if self._match_seconds is None else 0.8 * self._match_seconds + 0.2 * secs
                        on_result(res)
                        stats.completed += 1
                    elif entry[0] == "user":
                        raise LeagueError(entry[2])
                    else:
                        stats.failed[entry[1]] = entry[2]
        finally:
            stats.seconds = time.perf_counter() - t0
        return stats


def parse_ports(spec: str) -> tuple[int, int]:
    """``"LOW-HIGH"`` -> ``(LOW, HIGH)``. Raises LeagueError for another form (the range itself is checked by
    :func:`marl.raytools.plan_ports` when Ray starts)."""
    try:
        low, high = (int(x) for x in spec.split("-"))
    except ValueError:
        raise LeagueError(f"ray ports '{spec}': expected LOW-HIGH, e.g. 20000-20099") from None
    return low, high


def make_runner(kind: str = "local", workers: int = 2, address: str | None = None, max_retries: int = 3,
                matches_per_task: int | None = None, ray_ports: str | None = None):
    """A runner by kind (``local`` | ``ray``); ``matches_per_task`` and ``ray_ports`` are Ray's (see :class:`RayRunner`).

    Raises:
        LeagueError: another kind (or a bad Ray setting, see :class:`RayRunner`).
    """
    if kind == "local":
        return LocalRunner(workers, max_retries)
    if kind == "ray":
        return RayRunner(workers, address, max_retries, matches_per_task, ray_ports)
    raise LeagueError(f"runner kind '{kind}' unknown; expected local or ray")
