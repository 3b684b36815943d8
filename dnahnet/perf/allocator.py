"""Keep freed memory in the process instead of handing it back to the OS.

glibc's malloc serves every allocation above its mmap threshold (at most 32 MiB
by default) with a fresh mmap and returns it with munmap when freed. A forward
pass over tens of thousands of bases allocates and frees activations of
hundreds of MiB per layer, so each one is page-faulted and zeroed anew: on the
project's CPU this made isotropic Mamba-2 at 65,536 bases 2.7x slower (30.6 s
against 11.5 s per forward pass, bench-mamba2, one thread). Raising the mmap
and trim thresholds makes freed blocks reusable, at the price of the process
holding its peak heap until it exits, which suits one-job command-line runs.

Set DNAHNET_KEEP_FREED_MEMORY=0 to leave the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True when applied.

    Does nothing (False) off Linux, off glibc, or when the environment opts out.
    """
    if os.environ.get("DNAHNET_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGEST))
