"""Kill test: `league run` SIGKILLed at random points, then `--resume`; the log must hold exactly the schedule.

A temporary connect_four league (random, MCTS 5/20/50) plays a round robin; `league run` is killed with SIGKILL
at a random time ``--kills`` times (each later start is `league run --resume`), then resumed to the end. After
each kill every process the run had started (match workers, the multiprocessing resource tracker, Ray's
processes) must be gone within ``--grace`` seconds. At the end the tournament's recorded matches must equal its
stored schedule: same uids, no duplicates, nothing else recorded.

    .venv/bin/python benchmarks/league_kill_test.py [--kills 5] [--games-per-pair 6] [--ray] [--seed 0]

Prints one line per kill and a summary; exits 1 when a check fails. Also used by tests/test_league_resume.py
(:func:`kill_and_check`, with fewer kills).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEAGUE = os.path.join(os.path.dirname(sys.executable), "league")


def processes() -> dict[int, tuple[str, int, str]]:
    """``pid -> (state, parent pid, command line)`` of every process, read from ``/proc`` (Linux)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        out[int(d)] = (rest[0], int(rest[1]), cmd)
    return out


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: ``pid -> command line``."""
    procs = processes()
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for p, (_state, ppid, cmd) in procs.items():
            if ppid == parent and p not in found:
                found[p] = cmd
                todo.append(p)
    return found


def alive(pids) -> dict[int, str]:
    """The ``pids`` still running (zombies count as gone)."""
    procs = processes()
    return {p: procs[p][2] for p in pids if p in procs and procs[p][0] != "Z"}


def write_league(folder: str, games_per_pair: int) -> str:
    """A connect_four league config (random, MCTS 5/20/50) in ``folder``; returns its path."""
    cfg = {"name": "killtest", "env": {"id": "openspiel:connect_four"},
           "players": [{"name": "random", "policy": "bot:random"},
                       {"name": "mcts-5", "policy": "bot:mcts?simulations=5"},
                       {"name": "mcts-20", "policy": "bot:mcts?simulations=20"},
                       {"name": "mcts-50", "policy": "bot:mcts?simulations=50"}],
           "ratings": {"bootstrap": 0}, "tournament": {"games_per_pair": games_per_pair},
           "runner": {"workers": 2}}
    path = os.path.join(folder, "league.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    subprocess.run([LEAGUE, "init", path], check=True, stdout=subprocess.DEVNULL, timeout=120)
    return path


def _wait_first_match(config: str, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Wait until the store holds a match (True) or the run ended / ``timeout`` passed (False)."""
    from league.config import load_config
    from league.store import LeagueStore

    store = LeagueStore(load_config(config).store_url())
    try:
        base = store.match_count()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if store.match_count() > base:
                return True
            time.sleep(0.05)
        return False
    finally:
        store.close()


def kill_and_check(config: str, kills: int, rng: random.Random, extra: list[str], window: tuple[float, float],
                   grace: float = 10.0, log=print, after_first_match: bool = False) -> dict:
    """Start `league run` (then `--resume`) ``kills`` times, SIGKILL each at a random time in ``window`` seconds
    (or, with ``after_first_match``, as soon as the run has recorded a match), then resume to the end and check
    the log.

    The run is stopped (SIGSTOP) before its descendants are listed, so none can be spawned unseen between the
    listing and the SIGKILL.

    Returns:
        ``{"leftovers": [per kill: {pid: cmd} alive after ``grace`` s], "gone_after": [seconds per kill],
        "killed": [per kill: False when the run ended by itself first],
        "tournament": id, "scheduled": n, "recorded": n, "uids_match": bool, "duplicates": n,
        "final_rc": exit code of the last resume}``.
    """
    from league.config import load_config
    from league.store import LeagueStore

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    out: dict = {"leftovers": [], "gone_after": [], "killed": []}
    for k in range(kills):
        store = LeagueStore(load_config(config).store_url())
        known = store.tournaments()
        store.close()
        started = bool(known)
        if started and known[0].finished:
            log(f"the tournament finished before kill {k + 1}; use a longer one (--games-per-pair) for more kills")
            break
        cmd = [LEAGUE, "run", config] + (["--resume"] if started else []) + extra
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        t_start = time.monotonic()
        if after_first_match:
            ended = not _wait_first_match(config, proc)
        else:
            try:
                proc.wait(timeout=rng.uniform(*window))
                ended = True
            except subprocess.TimeoutExpired:
                ended = False
        delay = time.monotonic() - t_start
        if ended:
            proc.wait(timeout=1800)
            log(f"kill {k + 1}: the run ended by itself before {delay:.1f} s (rc {proc.returncode})")
            out["leftovers"].append({})
            out["gone_after"].append(0.0)
            out["killed"].append(False)
            continue
        out["killed"].append(True)
        os.kill(proc.pid, signal.SIGSTOP)
        kids = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        left = alive(kids)
        while left and time.monotonic() - t0 < grace:
            time.sleep(0.1)
            left = alive(kids)
        gone = time.monotonic() - t0
        out["leftovers"].append(left)
        out["gone_after"].append(gone)
        store = LeagueStore(load_config(config).store_url())
        recorded = store.match_count()
        store.close()
        log(f"kill {k + 1} at {delay:.1f} s ({recorded} matches recorded so far): {len(kids)} child processes, "
            + (f"all gone after {gone:.1f} s" if not left else f"{len(left)} still alive after {grace:.0f} s: "
               + "; ".join(c[:80] for c in left.values())))
        for p in left:  # do not leave them behind for the next round
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    store = LeagueStore(load_config(config).store_url())
    if not store.tournaments():  # every kill came before the tournament was stored
        subprocess.run([LEAGUE, "run", config] + extra, env=env, stdout=subprocess.DEVNULL, timeout=1800)
    (t,) = store.tournaments()
    final = None
    if not t.finished:  # else the last run got to the end before its kill
        final = subprocess.run([LEAGUE, "run", config, "--resume"] + extra, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=1800)
    sched = {m.uid for m in store.schedule(t.id)}
    uids = store.match_uids()
    out.update(tournament=t.id, finished=store.tournament(t.id).finished, scheduled=len(sched), recorded=len(uids),
               uids_match=set(uids) == sched, duplicates=len(uids) - len(set(uids)),
               final_rc=0 if final is None else final.returncode,
               final_err="" if final is None else final.stderr.decode(errors="replace").strip()[-300:])
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--games-per-pair", type=int, default=6, help="games per pair and seat order (4 players)")
    ap.add_argument("--ray", action="store_true", help="run matches on a local Ray")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--grace", type=float, default=10.0, help="seconds the run's processes get to exit")
    ap.add_argument("--window", type=float, nargs=2, default=(1.0, 12.0), metavar=("FROM", "TO"),
                    help="kill times are drawn uniformly from this window (seconds after start)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        config = write_league(d, a.games_per_pair)
        r = kill_and_check(config, a.kills, random.Random(a.seed), ["--ray"] if a.ray else [], tuple(a.window), a.grace)
    ok = (not any(r["leftovers"]) and r["uids_match"] and r["duplicates"] == 0 and r["finished"]
          and r["final_rc"] == 0)
    print(f"tournament {r['tournament']}: {r['recorded']} matches recorded, {r['scheduled']} scheduled, "
          f"same uids: {r['uids_match']}, duplicates: {r['duplicates']}, finished: {r['finished']}; "
          f"processes gone after {', '.join(f'{g:.1f}' for g in r['gone_after'])} s; "
          + ("PASS" if ok else f"FAIL {r['final_err']}"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
