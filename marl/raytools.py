"""The one Ray helper of the project (``marl-learn --ray`` and the league): start or connect, keep the ports
in a range, tear down.

Ray core only (``ray``, not ``ray[default]``). What this module does, and why:

* **Loopback.** On Linux Ray binds a local instance to the machine's network address unless
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which Ray reads once at import
  (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``) and which also stops a driver from rewriting
  ``127.0.0.1:PORT`` to that address. A local instance (and a loopback address) therefore gets the variable
  (for the processes Ray starts) and the constant (Ray may be imported already); a remote address gets the
  constant back at its import-time value, so the driver announces an address the cluster can reach.
* **Never a stale cluster.** A local instance is started with ``ray.init(address="local")``: a "current
  cluster" file left in Ray's temp folder by a dead ``ray start`` is never joined.
* **Ports in a range** (a firewall, a shared host): ``ray.init`` takes no port settings for a local instance
  (only ``dashboard_port`` and ``_metrics_export_port``), so with ``port_range`` the head (and every other
  node) is started through ``ray.cluster_utils.Cluster``, whose ``add_node`` passes ``gcs_server_port``,
  ``node_manager_port``, ``object_manager_port``, ``dashboard_agent_listen_port``, ``metrics_agent_port``,
  ``runtime_env_agent_port``, ``metrics_export_port``, ``min_worker_port`` / ``max_worker_port`` to Ray's
  ``RayParams``: the same settings as ``ray start --port ... --min-worker-port ... --max-worker-port``.
  Every listening port of the instance's processes (driver and workers included: they take worker ports)
  lies in the range (checked by ``tests/test_raytools.py`` from ``/proc/net/tcp``).
* **Several nodes on one machine** (tests, benchmarks): ``nodes=N`` starts N Ray nodes on 127.0.0.1 with
  ``num_cpus`` logical CPUs and ``object_store_memory`` bytes each (``ray.cluster_utils.Cluster``).
* **Unreachable addresses fail fast.** ``ray.init(address=HOST:PORT)`` retries a dead or foreign address
  for minutes (measured with Ray 2.60: still waiting after 100 s). The address is first probed with a TCP
  connection and a gRPC handshake (Ray's GCS and client server are gRPC servers), each bounded by
  ``timeout_s``; a failure is one :class:`RaySetupError` line.
* **Teardown.** :func:`shutdown` disconnects the driver, stops a local instance or cluster started here,
  and closes a reaper process: Ray's own reaper stops its core processes when the driver dies, but its
  runtime-env (and dashboard) agents outlive a SIGKILLed driver by a minute or more; our reaper (a new
  session reading a pipe whose only write end this process holds) remembers this process's Ray
  descendants and SIGKILLs those still running when the pipe closes (this process exited or died, or
  :func:`shutdown`). Same design as the league's Ray runner (``league/runners.py``).

Typical use::

    from marl.raytools import ray_session
    with ray_session(address=None, num_cpus=4) as session:   # or address="auto" / "10.0.0.5:6379"
        ...  # ray.remote actors and tasks
    # here Ray is down (a local instance stopped, a cluster connection dropped), even after an exception
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ray.exceptions import RayError

LOOPBACK = "127.0.0.1"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: fixed ports a node takes from a ``port_range`` (GCS, node manager, object manager, dashboard agent listen,
#: metrics agent, runtime-env agent, metrics export); the rest of the range becomes its worker ports.
PORTS_PER_NODE = 7
#: the fewest worker ports a node may get from a ``port_range`` (one per worker process and driver).
MIN_WORKER_PORTS = 8


class RaySetupError(RayError):
    """Ray could not be started or reached; the message is one line saying what to do."""


@dataclass
class RaySession:
    """What :func:`start_or_connect` set up.

    Attributes:
        address: the GCS address ``HOST:PORT`` the driver is connected to (``ray://...`` for Ray Client).
        owned: True when Ray was started here (:func:`shutdown` stops it), False for a cluster joined.
        nodes: Ray nodes started here (0 when joining a cluster).
        ports: ``(low, high)`` when the instance was started inside a port range, else None.
    """

    address: str
    owned: bool
    nodes: int = 0
    ports: tuple[int, int] | None = None
    _cluster: object | None = field(default=None, repr=False)
    _reaper: subprocess.Popen | None = field(default=None, repr=False)


_SESSION: RaySession | None = None
_LOCK = threading.Lock()
_IMPORT_TIME_CLUSTER_MODE: bool | None = None


# ------------------------------------------------------------------------------------ addresses
def _set_loopback(on: bool) -> None:
    """Make this process (and the Ray processes it starts) use 127.0.0.1 (``on``) or the machine's address."""
    from ray._private import ray_constants

    global _IMPORT_TIME_CLUSTER_MODE
    if _IMPORT_TIME_CLUSTER_MODE is None:
        _IMPORT_TIME_CLUSTER_MODE = bool(ray_constants.ENABLE_RAY_CLUSTER)
    if on:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
    else:
        ray_constants.ENABLE_RAY_CLUSTER = _IMPORT_TIME_CLUSTER_MODE


def split_address(address: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``HOST:PORT``, ``[v6]:PORT`` or ``ray://HOST:PORT`` (scheme ``""`` or ``"ray"``).

    Raises:
        RaySetupError: not of that form (the message names the address and the expected form).
    """
    scheme, _, rest = address.rpartition("://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or scheme not in ("", "ray"):
        raise RaySetupError(f"ray address '{address}': expected auto, HOST:PORT (the head's GCS port, 6379 by "
                            "default) or ray://HOST:PORT (Ray Client, 10001 by default)")
    return scheme, host, int(port)


def resolve_address(address: str) -> str:
    """``HOST:PORT`` for ``"auto"`` (``RAY_ADDRESS``, else the cluster ``ray start`` last started on this
    machine), else ``address`` unchanged.

    Raises:
        RaySetupError: ``auto`` and no running Ray cluster is known on this machine.
    """
    if address != "auto":
        return address
    from ray._private import services

    try:
        found = services.get_ray_address_from_environment("auto", None)
    except ConnectionError:
        found = None
    if not found or found == "auto":
        raise RaySetupError("ray address 'auto': no running Ray cluster found on this machine (none started with "
                            "`ray start --head`, RAY_ADDRESS unset); start one, or pass HOST:PORT")
    return found


def probe(address: str, timeout_s: float = 10.0) -> None:
    """Check within ``timeout_s`` seconds that ``address`` answers as a gRPC server (Ray's GCS or Ray Client).

    A TCP connection first (a closed port fails at once), then a gRPC channel handshake (a port held by
    something that is not a gRPC server never gets ready). With ``RAY_USE_TLS=1`` only the TCP step runs
    (the handshake would need the cluster's certificates).

    Raises:
        RaySetupError: refused, unresolvable, or no answer within ``timeout_s`` (one line naming the address).
    """
    _, host, port = split_address(address)
    hint = "is the head running (`ray start --head`) and the port open to this machine?"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.timeout:
        raise RaySetupError(f"ray address '{address}': no answer within {timeout_s:g} s; {hint}") from None
    except OSError as exc:
        raise RaySetupError(f"ray address '{address}': cannot connect ({exc.strerror or exc}); {hint}") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise RaySetupError(f"ray address '{address}': the port accepts connections but does not answer as a "
                            f"Ray head (gRPC) within {timeout_s:g} s; check the host and port") from None
    finally:
        channel.close()


# ------------------------------------------------------------------------------------ ports
def _port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port_range(size: int, low: int = 20000, high: int = 60000, seed: int | None = None) -> tuple[int, int]:
    """A range ``(first, last)`` of ``size`` consecutive ports, each free on 127.0.0.1 right now.

    The start is drawn at random in ``[low, high - size]`` (``seed`` for a fixed draw) so that concurrent
    runs rarely collide; a port may still be taken between this check and its use.

    Raises:
        RaySetupError: no such range found in 200 tries.
    """
    import random

    rng = random.Random(seed)
    for _ in range(200):
        first = rng.randrange(low, high - size)
        if all(_port_free(p) for p in range(first, first + size)):
            return first, first + size - 1
    raise RaySetupError(f"no {size} consecutive free ports found between {low} and {high}")


def plan_ports(port_range: tuple[int, int], nodes: int) -> list[dict]:
    """Ray port settings for ``nodes`` nodes inside ``port_range`` (inclusive): per node the
    :data:`PORTS_PER_NODE` fixed ports (the first free ones of the range, the head's first port being the
    GCS), then an equal share of the remaining ports as that node's ``min_worker_port..max_worker_port``.

    Returns:
        One dict of ``RayParams`` keyword arguments per node (head first).

    Raises:
        RaySetupError: the range is malformed or too small (one line: how many ports it needs), or not enough
            of its ports are free.
    """
    try:
        low, high = (int(p) for p in port_range)
    except (TypeError, ValueError):
        raise RaySetupError(f"port_range {port_range!r}: expected two port numbers (low, high)") from None
    if not 1024 <= low <= high <= 65535:
        raise RaySetupError(f"port_range ({low}, {high}): expected 1024 <= low <= high <= 65535")
    need = nodes * (PORTS_PER_NODE + MIN_WORKER_PORTS)
    if high - low + 1 < need:
        raise RaySetupError(f"port_range ({low}, {high}) holds {high - low + 1} ports; {nodes} Ray node(s) need at "
                            f"least {need} ({PORTS_PER_NODE} fixed + {MIN_WORKER_PORTS} worker ports each)")
    fixed_n = nodes * PORTS_PER_NODE
    fixed: list[int] = []
    port = low
    while len(fixed) < fixed_n and port <= high:
        if _port_free(port):
            fixed.append(port)
        port += 1
    share = (high - port + 1) // nodes
    if len(fixed) < fixed_n or share < MIN_WORKER_PORTS:
        raise RaySetupError(f"port_range ({low}, {high}): too many of its ports are in use; choose another range")
    names = ("gcs_server_port", "node_manager_port", "object_manager_port", "dashboard_agent_listen_port",
             "metrics_agent_port", "runtime_env_agent_port", "metrics_export_port")
    plans = []
    for i in range(nodes):
        p = dict(zip(names, fixed[i * PORTS_PER_NODE:(i + 1) * PORTS_PER_NODE]))
        if i > 0:
            del p["gcs_server_port"]  # only the head runs a GCS; the port stays unused
        p["min_worker_port"] = port + i * share
        p["max_worker_port"] = port + (i + 1) * share - 1
        plans.append(p)
    return plans


# ------------------------------------------------------------------------------------ reaper
_REAPER = r"""
import os, select, signal
parent, me = os.getppid(), os.getpid()

def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out

def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return s[s.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None

def is_ray(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"ray" in f.read()
    except OSError:
        return False

seen = {}
def refresh():
    todo = [parent]
    while todo:
        for c in children(todo.pop()):
            if c != me and c not in seen and is_ray(c):
                seen[c] = start_time(c)
            todo.append(c)

while True:
    ready, _, _ = select.select([0], [], [], 1.0)
    if ready and not os.read(0, 4096):
        break
    refresh()
for pid, started in seen.items():
    if started is not None and start_time(pid) == started:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _start_reaper() -> subprocess.Popen | None:
    """The reaper of the Ray this process is about to start (None off Linux: it reads ``/proc``)."""
    if not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen([sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop_reaper(reaper: subprocess.Popen | None) -> None:
    """Close the reaper's pipe (it kills what is left of this process's Ray) and wait for it (10 s, then kill)."""
    if reaper is None:
        return
    try:
        reaper.stdin.close()
        reaper.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()
        reaper.wait(timeout=5)


# ------------------------------------------------------------------------------------ start / stop
def project_runtime_env() -> dict:
    """A ``runtime_env`` whose ``PYTHONPATH`` holds this checkout (and the caller's ``PYTHONPATH``), so Ray
    workers started in another folder import ``marl``/``envs``/``league`` from it. Only for a local
    instance or nodes that have the checkout at the same path (a cluster's image installs the package)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def start_or_connect(address: str | None = None, num_cpus: int | None = None,
                     port_range: tuple[int, int] | None = None, *, nodes: int = 1,
                     object_store_memory: int | None = None, runtime_env: dict | None = None,
                     log_to_driver: bool = False, timeout_s: float = 10.0) -> bool:
    """Start a local Ray on 127.0.0.1 (``address`` None or ``"local"``) or connect to a running one.

    Args:
        address: None / ``"local"`` (start one here), ``"auto"`` (the cluster on this machine, see
            :func:`resolve_address`), ``HOST:PORT`` (a head's GCS) or ``ray://HOST:PORT`` (Ray Client).
        num_cpus: logical CPUs of a local instance (per node with ``nodes > 1``; None = Ray's count of this
            machine's cores, or 1 per node with ``nodes > 1``). Refused with an address.
        port_range: ``(low, high)``, inclusive: every port of a local instance inside it (see
            :func:`plan_ports`); None = ports Ray picks. Refused with an address (the head's own ``ray start``
            flags fix a cluster's ports: see the README's "Training on a Ray cluster").
        nodes: Ray nodes of a local instance (>1: a multi-node cluster on one machine, for tests and
            benchmarks).
        object_store_memory: bytes of object store per node (None = Ray's default: 30% of RAM, or 150 MiB
            per node with ``nodes > 1`` / a ``port_range``). Refused with an address.
        runtime_env: Ray ``runtime_env`` for the job (e.g. :func:`project_runtime_env`).
        log_to_driver: forward the workers' stdout/stderr to this process.
        timeout_s: seconds allowed for an address to answer (:func:`probe`).

    Returns:
        True when Ray was started here (the caller tears it down with :func:`shutdown`), False when a cluster
        was joined or Ray was initialised already (by someone else: :func:`shutdown` would not stop it).

    Raises:
        RaySetupError: a bad argument, an address that cannot be reached, or Ray failed to start (one line;
            anything started is torn down first).
    """
    import ray

    global _SESSION
    with _LOCK:
        if ray.is_initialized():
            return False
        if nodes < 1:
            raise RaySetupError(f"nodes must be >= 1, got {nodes}")
        if address not in (None, "local"):
            if port_range is not None or num_cpus is not None or object_store_memory is not None or nodes != 1:
                raise RaySetupError(f"ray address '{address}': num_cpus, nodes, object_store_memory and port_range "
                                    "describe a local instance; a running cluster has its own (set them on "
                                    "`ray start`), so drop them or drop the address")
            _SESSION = _connect(address, runtime_env, log_to_driver, timeout_s)
            return False
        _SESSION = _start_local(num_cpus, port_range, nodes, object_store_memory, runtime_env, log_to_driver)
        return True


def _connect(address: str, runtime_env, log_to_driver: bool, timeout_s: float) -> RaySession:
    import ray

    target = resolve_address(address)
    scheme, host, port = split_address(target)
    _set_loopback(host in _LOOPBACK_HOSTS)
    probe(target, timeout_s)
    try:  # a head started by `ray start` uses token auth by default; an explicit address does not turn it on
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except ImportError:
        pass
    try:
        ray.init(address=target, runtime_env=runtime_env, log_to_driver=log_to_driver)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ...)
        _teardown(None)
        raise RaySetupError(f"ray address '{address}': cannot connect: {_first_line(exc)}") from None
    return RaySession(target, owned=False)


WORKER_NICENESS = "0"
"""Niceness of the worker processes of a local Ray instance. Ray's default (15) makes env runners and
match workers yield to every other process of the machine, unlike local workers (measured: under a load
of 10 on 2 cores, Ray env runners got a fifth of the CPU local workers got). Set ``RAY_worker_niceness``
to keep another value; a cluster joined by address keeps its own setting."""


def _start_local(num_cpus, port_range, nodes: int, object_store_memory, runtime_env, log_to_driver) -> RaySession:
    import ray

    _set_loopback(True)
    os.environ.setdefault("RAY_worker_niceness", WORKER_NICENESS)  # read by the raylets this process starts
    plans = plan_ports(port_range, nodes) if port_range is not None else None
    session = RaySession("", owned=True, nodes=nodes, ports=None if port_range is None else tuple(port_range))
    try:
        session._reaper = _start_reaper()
        if nodes == 1 and plans is None:
            ctx = ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                           include_dashboard=False, log_to_driver=log_to_driver, runtime_env=runtime_env,
                           _node_ip_address=LOOPBACK)
            session.address = ctx.address_info.get("gcs_address", "")
            return session
        from ray.cluster_utils import Cluster

        cluster = session._cluster = Cluster(initialize_head=False, shutdown_at_exit=True)
        for i in range(nodes):
            args = {"node_ip_address": LOOPBACK, "num_cpus": 1 if num_cpus is None else num_cpus,
                    "include_dashboard": False, **(plans[i] if plans else {})}
            if object_store_memory is not None:
                args["object_store_memory"] = object_store_memory
            cluster.add_node(**args)
        ray.init(address=cluster.address, runtime_env=runtime_env, log_to_driver=log_to_driver)
        session.address = cluster.address
        return session
    except BaseException as exc:
        _teardown(session)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, RaySetupError)):
            raise
        raise RaySetupError(f"ray: cannot start a local instance: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _teardown(session: RaySession | None) -> None:
    """Disconnect the driver, stop what ``session`` started (nodes, reaper); never raises."""
    import ray

    try:
        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - teardown goes on
        pass
    if session is None:
        return
    if session._cluster is not None:
        try:
            session._cluster.shutdown()
        except Exception:  # noqa: BLE001
            pass
        session._cluster = None
    _stop_reaper(session._reaper)
    session._reaper = None


def shutdown() -> None:
    """Tear down: disconnect this driver; stop the local instance or cluster :func:`start_or_connect` started
    (its nodes, workers and agents; the reaper kills any left). A joined cluster keeps running. Safe to call
    more than once, after a failed start, or when nothing was started."""
    global _SESSION
    with _LOCK:
        session, _SESSION = _SESSION, None
        _teardown(session)


def current() -> RaySession | None:
    """The session :func:`start_or_connect` set up and :func:`shutdown` has not ended, or None."""
    return _SESSION


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                port_range: tuple[int, int] | None = None, **kwargs) -> Iterator[RaySession | None]:
    """:func:`start_or_connect` for a ``with`` block; :func:`shutdown` when the block ends, even by an exception.

    Yields the :class:`RaySession`, or None when Ray was initialised already by someone else (then nothing is
    torn down at the end).

    Raises:
        RaySetupError: as :func:`start_or_connect`.
    """
    import ray

    already = ray.is_initialized()
    start_or_connect(address, num_cpus, port_range, **kwargs)
    try:
        yield None if already else _SESSION
    finally:
        if not already:
            shutdown()
