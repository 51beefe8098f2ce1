"""How the process gets its memory back: keep freed blocks for reuse instead of returning them.

NumPy allocates every temporary afresh. glibc serves a block above its mmap threshold (which
starts at 128 KB and adapts to what the process has freed, up to 32 MB) with fresh pages from
the OS and unmaps it when freed, and it returns a free heap top above its trim threshold; a
later array of the same size is then faulted in again, page by page. For the parallel-scan
layers, whose steps make a few dozen temporaries of T·B·H elements each, that was 40% of a
minGRU training step at T = 1024, B = 1, H = 64; a compiled LSTM's training step at 32 × 100,
64 → 128 took 1.4× the time (its caches, 13 MB a step). ``keep_freed_memory`` fixes the
threshold at its maximum and raises the trim threshold, so freed blocks below 32 MB are reused:
steady timings, at the price of a process that holds on to up to 256 MB of freed memory.

The ``rnnkit`` command calls it at start, the Python API (``rnnkit.train``, ``load``,
``import_weights``) the first time it runs, and the compiled kernels where they first run (a
program that uses ``rnnkit.nn`` alone, as one uses ``torch.nn``). Where the user set when glibc
gives memory back ($MALLOC_MMAP_THRESHOLD_, $MALLOC_TRIM_THRESHOLD_ …, or those tunables in
$GLIBC_TUNABLES, even in ``os.environ`` before the kernels first run), theirs rules and nothing is
changed; elsewhere than glibc it does nothing either.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (64-bit): blocks below this come from the heap
TRIM_THRESHOLD = 256 * 2**20  # free memory at the heap's top kept for reuse, at most


# glibc's settings of when memory goes back to the system, as environment variables and as tunables
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
USER_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold", "glibc.malloc.top_pad", "glibc.malloc.mmap_max")


def user_tuned() -> bool:
    """Whether the environment sets when glibc gives memory back (``USER_SETTINGS``, ``USER_TUNABLES``)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(os.environ.get(name, "").strip() for name in USER_SETTINGS) or any(t in tunables for t in USER_TUNABLES)


_kept = False  # whether keep_freed_memory took in this process


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed blocks (see the module docstring); True if it took."""
    global _kept
    if not sys.platform.startswith("linux") or user_tuned():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no mallopt): leave the allocator as it is
        return False
    took = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _kept = _kept or took
    return took


def reusing() -> bool:
    """Whether this process reuses freed arrays (``keep_freed_memory`` took), for ``rnnkit info``."""
    return _kept
