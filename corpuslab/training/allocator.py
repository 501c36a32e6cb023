"""Keep freed host memory for reuse while training on the CPU (glibc's malloc; elsewhere nothing changes).

A training step of the default run allocates and frees the same few large buffers every step: the
logits, their log-softmax and their gradients are 32 x 128 x 4,096 floats, 64 MiB each. glibc serves any
block over 32 MiB with a fresh `mmap` and returns it with `munmap` when freed, so every step the kernel
maps and zero-fills about 280 MiB again: ~70,000 page faults per step, a third of the step's CPU time
spent in the kernel. `reuse_freed_memory()` makes malloc take such blocks from its heap and keep what is
freed, so from the second step on the same memory is reused: the same arithmetic, so the same numbers,
without the system time. On exit the settings return to glibc's steady state for large blocks and the
memory kept is handed back to the system (`malloc_trim`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
KEEP_FREED = 2**30  # bytes of free memory at the heap's top before malloc gives any back
# What glibc converges to after freeing one large block: mmap only above 32 MiB (its dynamic maximum on
# 64-bit systems), trim above twice that. Restored on exit, since setting any of them turns the dynamic
# adjustment off for the rest of the process.
MMAP_THRESHOLD_AFTER, TRIM_THRESHOLD_AFTER, MMAP_MAX_AFTER = 32 * 2**20, 64 * 2**20, 65536


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - musl and others have mallopt with other parameters
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


_depth = 0  # nested or concurrent trainings: the outermost one restores the settings


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Within the block, large allocations come from malloc's heap and freed memory stays there for the
    next step. Yields whether the setting is in effect (glibc only)."""
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    if _depth == 0:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    _depth += 1
    try:
        yield True
    finally:
        _depth -= 1
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, MMAP_MAX_AFTER)
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_AFTER)
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
            libc.malloc_trim(0)
