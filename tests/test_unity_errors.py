"""Every start-up error of the Unity adapter is one clear line, quickly, never a hang."""
from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

from envs.unity import UnityEnvError, make_unity_env
from unity_helpers import STANDIN, time_limit
from unity_helpers import free_port as _free_port

_time_limit = time_limit(60)


def free_port() -> int:
    return _free_port(1, 29000, 31000)


def start(path: str | None, port: int, timeout: float = 3, **kw):
    args = dict(worker_id=0, base_port=port, no_graphics=True, timeout_wait=timeout, env_args=[], log_dir=None,
                engine={}, environment_parameters=None, seed=0)
    args.update(kw)
    return make_unity_env(path, **args)


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def script(tmp_path, body: str, mode: int = 0o755) -> str:
    p = tmp_path / "Game.x86_64"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(mode)
    return str(p)


def test_missing_build(tmp_path):
    with pytest.raises(UnityEnvError) as err:
        start(str(tmp_path / "NoSuchGame.x86_64"), free_port())
    assert "no such build" in one_line(err) and "NoSuchGame" in str(err.value)


def test_non_executable_build(tmp_path):
    path = script(tmp_path, "exit 0", mode=0o644)
    with pytest.raises(UnityEnvError) as err:
        start(path, free_port())
    assert "not executable" in one_line(err) and "chmod +x" in str(err.value)


def test_port_in_use(tmp_path):
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(UnityEnvError) as err:
            start(STANDIN, port - 1, worker_id=1)
    msg = one_line(err)
    assert f"port {port} is already in use" in msg and "worker_id 1" in msg


def test_player_that_never_connects(tmp_path):
    pid_file = tmp_path / "pid"
    path = script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 30")
    with pytest.raises(UnityEnvError) as err:
        start(path, free_port(), timeout=2)
    msg = one_line(err)
    assert "did not connect within 2 s" in msg and "--timeout-wait" in msg
    stat = f"/proc/{int(pid_file.read_text())}/stat"
    for _ in range(50):  # the hung player is killed, not left running (a zombie until reaped is fine)
        if not os.path.exists(stat) or open(stat).read().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the player that never connected is still running")


def test_player_that_exits_at_start(tmp_path):
    path = script(tmp_path, "exit 3")
    with pytest.raises(UnityEnvError) as err:
        start(path, free_port(), timeout=20)
    assert "return code 3" in one_line(err)


def test_no_editor(tmp_path):
    with pytest.raises(UnityEnvError) as err:
        start(None, 5005, timeout=1, editor_port=free_port())
    assert "Editor" in one_line(err)


def test_step_without_live_agents_unknown_agents_and_bad_action(tmp_path):
    env = start(STANDIN, free_port(), timeout=20, env_args=["--crash-after", "1", "--no-rays"])
    try:
        obs, _ = env.reset()
        with pytest.raises(UnityEnvError) as err:
            env.step({a: np.zeros(5) for a in obs})
        assert "does not fit MultiDiscrete" in one_line(err)
        with pytest.raises(UnityEnvError) as err:
            env.step({"SoccerTwos?team=0?agent_id=99": np.zeros(3, int)})
        assert "never had" in one_line(err) and "agent_id=99" in str(err.value)
        env.step({a: np.zeros(3, int) for a in obs})
        env.step({a: np.zeros(3, int) for a in env.agents})  # the player crashes: restarted, every episode truncated
        assert env.agents == []
        with pytest.raises(UnityEnvError, match="call reset"):
            env.step({})
        with pytest.raises(UnityEnvError, match="not been seen"):
            env.observation_space("Other?team=0?agent_id=0")
    finally:
        env.close()
