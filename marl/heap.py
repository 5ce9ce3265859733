"""C-heap settings of the trainer process (glibc only; no-ops elsewhere): a fixed mmap threshold for runs on
image observations, and heap trimming after every update.

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
_LIBC = None


def _libc():
    """glibc through ctypes, or None on another C library (musl, macOS, Windows)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
            _LIBC.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def limit_heap_growth(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (see the module docstring).

    Returns:
        True when it was set; False on a C library without ``mallopt``.
    """
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS after an update (glibc ``malloc_trim``; no-op elsewhere).

    An update's transient tensors (minibatch gathers, activations kept for backward, the critic thread's
    own malloc arena) are freed into glibc's heap, which keeps them: measured on cooperative_pong
    (images, ``buffer_size`` 2048) the trainer stayed at its update peak between updates without this."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
