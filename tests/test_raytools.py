"""marl.raytools: a local Ray on loopback, a 2-node cluster inside a port range, one-line errors for unreachable
addresses, and nothing left running afterwards (even when a test fails: the fixture tears down in ``finally``)."""
from __future__ import annotations

import os
import socket
import time

import pytest

ray = pytest.importorskip("ray")

from marl import raytools  # noqa: E402
from marl.raytools import RaySetupError  # noqa: E402

MiB = 2 ** 20


# ------------------------------------------------------------------------------------ process helpers
def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/<tid>/children)."""
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            for k in kids:
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _ray_processes() -> set[int]:
    """Ray processes started by this test process (raylet, gcs_server, workers, agents)."""
    return {p for p in _descendants(os.getpid()) if b"ray" in _cmdline(p)}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _listening_ports(pids: set[int]) -> set[int]:
    """TCP ports in LISTEN state whose sockets are held by ``pids`` (from /proc/net/tcp{,6} and /proc/<pid>/fd)."""
    inodes: dict[str, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":  # LISTEN
                        inodes[parts[9]] = int(parts[1].rsplit(":", 1)[1], 16)
        except OSError:
            pass
    ports = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                ports.add(inodes[link[8:-1]])
    return ports


@pytest.fixture
def ray_cleanup():
    """Tear Ray down after the test whatever happened, then check that none of its processes is left."""
    seen: set[int] = set()
    try:
        yield seen
    finally:
        seen |= _ray_processes()
        raytools.shutdown()
    assert not ray.is_initialized()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: _cmdline(p)[:80] for p in seen if _alive(p)}
    assert not left, f"Ray processes left running after shutdown: {left}"


@ray.remote(num_cpus=1)
def _where() -> tuple[str, str]:
    ctx = ray.get_runtime_context()
    return ctx.get_node_id(), ray.util.get_node_ip_address(), os.nice(0)


# ------------------------------------------------------------------------------------ tests
def test_local_instance_is_on_loopback_and_torn_down_after_an_exception(ray_cleanup):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with raytools.ray_session(num_cpus=1, object_store_memory=80 * MiB) as session:
            assert session is not None and session.owned
            assert session.address.startswith("127.0.0.1:")
            nodes = [n for n in ray.nodes() if n["Alive"]]
            assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
            where = ray.get(_where.remote(), timeout=60)
            assert where[1] == "127.0.0.1"
            assert where[2] == 0  # workers compete as local workers do (Ray's default niceness is 15)
            procs = _ray_processes()
            assert any(b"raylet" in _cmdline(p) for p in procs), "no raylet found below this process"
            ray_cleanup |= procs
            raise Boom
    assert not ray.is_initialized()
    assert raytools.current() is None


def test_two_node_cluster_in_a_port_range(ray_cleanup):
    low, high = raytools.find_free_port_range(60)
    mine_before = _listening_ports({os.getpid()})  # sockets this test process held already (other tests)
    owned = raytools.start_or_connect(None, num_cpus=1, port_range=(low, high), nodes=2,
                                      object_store_memory=80 * MiB)
    assert owned
    session = raytools.current()
    assert session.address == f"127.0.0.1:{low}"  # the head's GCS takes the range's first port
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    assert all(n["Resources"]["CPU"] == 1 and n["Resources"]["object_store_memory"] == 80 * MiB for n in nodes)
    # two 1-CPU tasks held at once must run on both nodes
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = [_where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in nodes]
    where = ray.get(refs, timeout=120)
    assert {w[0] for w in where} == {n["NodeID"] for n in nodes}
    procs = _ray_processes()
    ray_cleanup |= procs
    ports = _listening_ports(procs) | (_listening_ports({os.getpid()}) - mine_before)  # the driver's own too
    assert ports, "no listening port found for the cluster's processes"
    outside = sorted(p for p in ports if not low <= p <= high)
    assert not outside, f"ports outside {low}-{high}: {outside}"
    # connecting again while initialised is a no-op that does not claim ownership
    assert raytools.start_or_connect(None) is False


def test_unreachable_addresses_fail_fast_with_one_line(ray_cleanup, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    t0 = time.monotonic()
    with pytest.raises(RaySetupError) as err:
        raytools.start_or_connect(f"127.0.0.1:{port}", timeout_s=2)
    assert f"127.0.0.1:{port}" in str(err.value) and "\n" not in str(err.value)
    # a port held by something that is not a Ray head: the gRPC handshake times out
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(RaySetupError, match="does not answer as a Ray head"):
            raytools.start_or_connect(addr, timeout_s=1)
    # "auto" resolves RAY_ADDRESS first
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(RaySetupError, match="cannot connect"):
        raytools.start_or_connect("auto", timeout_s=2)
    assert time.monotonic() - t0 < 30
    assert not ray.is_initialized()


def test_bad_arguments_are_refused_before_anything_starts(ray_cleanup):
    with pytest.raises(RaySetupError, match="holds 10 ports"):
        raytools.start_or_connect(None, port_range=(30000, 30009))
    with pytest.raises(RaySetupError, match="expected auto, HOST:PORT"):
        raytools.start_or_connect("not-an-address")
    with pytest.raises(RaySetupError, match="describe a local instance"):
        raytools.start_or_connect("127.0.0.1:6379", num_cpus=2)
    assert not ray.is_initialized()
    assert not _ray_processes()
