"""C-heap settings for a trainer on image observations (glibc only; no-ops elsewhere).

An update on image observations allocates many short-lived tensors of a few MB (a minibatch of
``[256, 4, 84, 84]`` frames as float32 is 29 MB, plus activations). glibc serves such blocks from its
heap once its *dynamic* mmap threshold has risen past them (it rises to the size of each freed mmapped
block, up to 32 MB), and a heap only shrinks from its top, so freed blocks stay resident. Fixing the
threshold at 1 MiB sends every larger block to ``mmap``, returned to the OS on ``free``, at the price of
fresh pages (page faults) for each such block. ``marl.run.train`` sets it when some behavior has an image
sensor. Measured on ``configs/ippo/cooperative_pong.yaml`` (uint8 frames, ``buffer_size`` 2048, 6,144 env
steps, quiet 2-core VM, 2 runs each; env steps/s over the whole run, trainer RSS median / peak):

=====================  ==================  ======================
mmap threshold         env steps/s         RSS median / peak (MB)
=====================  ==================  ======================
glibc default          142, 137            529 / 799, 529 / 774
16 MiB                 131, 134            456 / 698, 456 / 700
8 MiB                  130, 128            456 / 701, 456 / 686
1 MiB (this module)    123, 126            458 / 653, 457 / 653
=====================  ==================  ======================
"""
from __future__ import annotations

MMAP_THRESHOLD = 1 << 20
"""Bytes: blocks at least this large are mmapped (glibc ``M_MMAP_THRESHOLD``)."""

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def limit_heap_growth(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (see the module docstring).

    Returns:
        True when it was set; False on a C library without ``mallopt`` (musl, macOS, Windows).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(int(threshold))))
    except (OSError, AttributeError):
        return False
