"""Keeping a training process's resident memory flat.

Batches of different geometries allocate tensors of different sizes every step (per-edge activations of a few
MB each). glibc's allocator serves such blocks from its heap once their size is below its adaptive mmap
threshold, and the holes they leave are rarely reused exactly, so the heap grows step after step although
nothing is live: measured on GINO elasticity2d, 1.0 -> 2.1 GB over 200 steps of a 20-sample run, the same
growth whatever the dataset size. `HeapTrimmer` hands the free pages back (`malloc_trim`) whenever the
resident size has grown by `margin` over its working level, which bounds the growth at a cost in page faults
(on that run, trimming past +256 MB held the peak at 1.5 GB with 3.5x the system time, and trimming after
every step at 1.2 GB with 9x, which a CPU-seconds budget pays for). The kernel integrals' padded edge blocks
remove most of the growth at its source; what is left, the trimmer caps: the peak is about the working level
plus `margin` (4000 elasticity samples with +512 MB: 1.82 GB against 1.27 GB at 250)."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)


def resident_bytes() -> int | None:
    """The process's resident set size now (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Call once per step: returns freed heap pages to the OS when the resident size after a step has grown by
    more than `margin` bytes over its level one step after the last trim (a no-op where there is no glibc or no
    /proc). `trims` counts them."""

    def __init__(self, margin: float = 256 * 2**20):
        self.margin, self.trims, self.level = margin, 0, resident_bytes()
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)
        if self._trim is None or self.level is None:
            self._trim = None

    def __call__(self) -> None:
        if self._trim is None:
            return
        now = resident_bytes()
        if now is None:
            return
        if self.level is None:  # the first step after a trim: its temporaries are the working set again
            self.level = now
        elif now > self.level + self.margin:
            self._trim(0)
            self.trims += 1
            self.level = None
            log.debug("heap trimmed at %.0f MB resident", now / 2**20)
