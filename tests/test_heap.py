"""marl.heap: the fixed mmap threshold hands large freed blocks back to the OS."""
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_after_limit_heap_growth_freed_multi_mb_blocks_leave_the_process():
    code = r'''
import ctypes, sys
from marl.heap import limit_heap_growth
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
if sys.argv[1] == "limit":
    assert limit_heap_growth()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
big = libc.malloc(16 << 20); libc.free(big)  # glibc raises its dynamic mmap threshold to 16 MB ...
blocks = [libc.malloc(8 << 20) for _ in range(24)]  # ... so these 8 MB blocks come from the heap
for b in blocks:
    libc.memset(b, 1, 8 << 20)
base = rss()
for b in blocks[:-1]:  # free all but the top one: a heap cannot shrink below it
    libc.free(b)
print(base - rss())
'''
    freed = {}
    for mode in ("default", "limit"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        freed[mode] = int(out.stdout.split()[-1])
    assert freed["limit"] > 150_000, freed  # kB: the 23 freed 8 MB blocks went back to the OS
    assert freed["default"] < 50_000, freed  # glibc's default keeps them resident
