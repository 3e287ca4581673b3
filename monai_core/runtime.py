"""Process-wide CPU settings that make 256x256 models fast on a small CPU.

The thread count is torch's own: it already follows the cores this process may run on (under
``taskset -c 0`` on the sample study's 2-core machine torch starts with 1 thread, with both cores
2) and a user's ``OMP_NUM_THREADS``, so ``tumorseg detect`` and the warm engine leave it alone.
:func:`available_cores` is what ``tumorseg batch`` shares out between its workers.

glibc returns large activation buffers to the OS after every batch and maps them again on the
next one; on this project's 2-core CPU that costs 1.2-2.9x. Raising the mmap and trim thresholds
with ``mallopt`` keeps the buffers in the heap, the same effect as ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` without needing them in the environment before start.

The price is that memory freed in one place is kept for good. Reading a scanner study frees about
75 MB of registration and resampling buffers, partly in the registration threads' own arenas, where
the networks' allocations on the main thread cannot reuse them; :func:`release_freed_memory` hands
them back after the read (3-15 ms), so that they do not stack under the networks' peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory", "release_freed_memory", "available_cores"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_GIB = 1 << 30


def _glibc_function(name: str):
    """A function of the C library by name, or None where there is no glibc (macOS, Windows, musl)."""
    library = ctypes.util.find_library("c")
    if not library:
        return None
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 1 GiB in the heap; False where there is no glibc."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _ONE_GIB // 2)) and bool(mallopt(_M_TRIM_THRESHOLD, _ONE_GIB))


def release_freed_memory() -> bool:
    """Return the free blocks of every glibc arena to the OS (``malloc_trim(0)``); False where there is no glibc."""
    malloc_trim = _glibc_function("malloc_trim")
    return malloc_trim is not None and bool(malloc_trim(0))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1

