"""Keeping a long-running daemon's memory flat: glibc malloc settings for big numpy buffers.

A render allocates and frees audio buffers of tens of megabytes in several threads. glibc's
defaults suit short programs, not this: after the first big buffer is freed it raises its
mmap threshold to that size (up to 32 MiB), so later buffers come from the heap, where
freed space fragments and is rarely given back, and every thread may get its own arena.
Measured on the soak (bench/soak.py, 30 prompts, 4 kits): 530-590 MB RSS creeping up with
the defaults, 230 MB flat with a fixed 1 MiB mmap threshold, two arenas and a 1 MiB trim
threshold. Elsewhere than glibc nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("traum.memory")

# mallopt(3) parameters (malloc.h): setting any of the first two by hand also turns off
# glibc's dynamic adjustment of both.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_SETTINGS = ((_M_MMAP_THRESHOLD, 1 << 20),  # buffers from 1 MiB up: mmap, unmapped on free
             (_M_TRIM_THRESHOLD, 1 << 20),  # give free heap tops above 1 MiB back at once
             (_M_ARENA_MAX, 2))  # two lanes' worth of arenas, not eight per core


def tune_allocator() -> bool:
    """Apply the settings above when the C library is glibc; True when it did."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt too)
    except (OSError, AttributeError):
        return False
    applied = all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)
    log.debug("glibc malloc tuned for large buffers: %s", "yes" if applied else "partly")
    return applied
