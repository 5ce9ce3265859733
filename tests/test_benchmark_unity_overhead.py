"""benchmarks/unity_protocol_overhead.py runs against today's Unity adapter: both sides act for the same
deciding agents and finish the same episodes (it broke silently once when the step outputs changed)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "unity_protocol_overhead.py"


@pytest.mark.parametrize("flags", [[], ["--visual"]])
def test_the_benchmark_runs_and_both_sides_do_the_same_work(flags):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "450", "--timeout-wait", "30", *flags],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"in-process (\d+) env steps/s, gRPC stand-in (\d+) env steps/s.*decisions (\d+) / (\d+), "
                  r"agent episodes (\d+) / (\d+)", proc.stdout)
    assert m, proc.stdout
    local, remote, dec_l, dec_r, eps_l, eps_r = map(int, m.groups())
    assert local > 0 and remote > 0
    assert dec_l == dec_r == 450 * 4  # every body decides at every step (decision period 1)
    assert eps_l == eps_r == 4  # one episode of 400 steps ended for the 4 agents


def test_bad_input_is_one_error_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "0"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == ["error: ValueError: --steps must be > 0, got 0"]
