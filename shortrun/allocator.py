"""Keep freed memory in the process heap instead of handing it back to the OS (glibc only).

Each chain step allocates and frees the same multi-MB activations. By default glibc serves
blocks above M_MMAP_THRESHOLD with fresh mmap'd pages and trims the heap top above
M_TRIM_THRESHOLD, so those tensors come back as new pages, and every first touch of a page is a
page fault. At n_f = 32, batch 64, K = 20 that was about 85,000 faults per training iteration
and 1.47× the time per iteration (benchmarks/RESULTS.md). Raising both thresholds keeps the
pages mapped for reuse; the price is that the process keeps its peak heap size until it exits.

The CLI calls `keep_freed_memory()` first thing; Python users may call it themselves.
SHORTRUN_MALLOC=default in the environment leaves glibc's behaviour alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap
_TRIM_THRESHOLD = 2**31 - 1  # the heap top is returned only above 2 GiB free (mallopt takes an int)
_done = False


def keep_freed_memory() -> bool:
    """Sets glibc's thresholds once per process; False where glibc or the setting is absent."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("SHORTRUN_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _done


def kept() -> bool:
    """Whether keep_freed_memory() is in effect in this process."""
    return _done
