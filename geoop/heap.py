"""The process heap: a training process's memory reused from step to step, neither handed back to the kernel
and faulted in again nor left to grow.

A training step allocates and frees tensors of 0.1-32 MB each, of sizes that change with every batch of
geometries. Three glibc defaults turn that into system time or growth (measured with one torch thread,
`benchmarks/step_cost.py` and the runs quoted here):

1. Free memory at the heap's top beyond an adaptive trim threshold goes back to the kernel at once, and
   the next step's tensors fault it in again: FNO on poisson2d paid 4,200 page faults and 10% of its CPU
   time in the kernel per step. `keep_freed_memory` fixes both thresholds (`mallopt`; blocks up to 32 MB
   from the heap, 1 GB of free top kept): 19 faults a step, no system time, and the step's user time fell
   from 0.111 to 0.084 s, since fresh pages are also cold. Blocks over 32 MB (BENO's attention) would still
   be mapped and faulted in anew each time; they come from the heap as well (BENO on airfoil2d: 876k -> 78k
   faults a step, 33% -> 7% system time), and the heap's free top is no longer handed back on its own, since
   a model whose steps differ by gigabytes paid that too.
2. glibc's per-thread cache of small freed chunks (the "tcache", up to 7 chunks of each size up to 1 KB,
   never merged with their neighbours) keeps small chunks alive between freed large blocks, so the holes
   stay split and the heap grows although nothing is live: a Transolver on potential3d, 1.32 -> 2.14 GB over
   150 steps. With the cache off (`glibc.malloc.tcache_count=0`, a tunable glibc reads only at start-up)
   the same run stays at 1.25-1.40 GB with 0.3% system time; the `geoop` command restarts itself once with
   it (`restart_with_quiet_heap`).
3. Handing free pages back (`malloc_trim`) caps such growth, but each trim is paid again in faults: that
   Transolver run, trimming whenever it grew 256 MB past its level one step after the last trim, spent 17%
   of its CPU time in the kernel. `HeapTrimmer` remains the safety net for a program that imports geoop
   with the cache on, and trims only past the peak of the first `window` steps after the last trim, so a
   batch larger than the previous one does not set it off."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)


def resident_bytes() -> int | None:
    """The process's resident set size now (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


#: `mallopt` parameters: the size from which blocks are mapped on their own, and the free top the heap keeps
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
#: blocks up to glibc's largest adaptive mmap threshold come from the heap; the free top is never handed back
#: on its own (-1 turns glibc's automatic trimming off; `HeapTrimmer` decides)
HEAP_BLOCKS, NEVER = 32 * 2**20, -1


def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Fix glibc's thresholds for the rest of the process so that a step's freed blocks stay in the heap for
    the next step (see the module's docstring): blocks up to 32 MB from the heap, larger ones too rather than
    mapped on their own (glibc still maps one where the heap cannot grow), and no automatic trimming of the
    heap's free top (the trimmer keeps the growth in check); returns whether it applied (False on other C
    libraries).
    `release_free_memory` hands the free pages back when training is over."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    settings = ((M_MMAP_THRESHOLD, HEAP_BLOCKS), (M_TRIM_THRESHOLD, NEVER), (M_MMAP_MAX, 0))
    return all(libc.mallopt(parameter, value) for parameter, value in settings)


def release_free_memory() -> None:
    """Hand every free heap page back to the kernel (`malloc_trim`; nothing elsewhere): at the end of training,
    so that a notebook does not hold the steps' memory."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


#: the glibc tunable that turns the small-chunk cache off (see the module's docstring)
QUIET_HEAP = "glibc.malloc.tcache_count=0"


def _tunables(environ: Mapping[str, str]) -> list[str]:
    return [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]


def heap_is_quiet(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process started with the small-chunk cache off (or runs on another C library, which
    does not need it)."""
    return platform.libc_ver()[0] != "glibc" or QUIET_HEAP in _tunables(environ)


def with_quiet_heap(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` whose `GLIBC_TUNABLES` also turns the small-chunk cache off (other tunables kept,
    an earlier tcache_count replaced): the environment to start a training process in."""
    kept = [t for t in _tunables(environ) if not t.startswith("glibc.malloc.tcache_count=")]
    return {**environ, "GLIBC_TUNABLES": ":".join(kept + [QUIET_HEAP])}


def restart_with_quiet_heap() -> None:
    """Re-execute this program (same interpreter, same command line) with the small-chunk cache off, once;
    returns without doing anything where the cache is already off, on other C libraries, or where the
    interpreter cannot be executed again (the trimmer then keeps memory in check)."""
    if heap_is_quiet() or not sys.executable or not getattr(sys, "orig_argv", None):
        return
    for stream in (sys.stdout, sys.stderr):  # what was printed so far is not lost with this process image
        stream.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, with_quiet_heap(os.environ))
    except OSError as e:
        log.debug("could not restart with %s: %s", QUIET_HEAP, e)


class HeapTrimmer:
    """Call once per step: returns freed heap pages to the OS when the resident size after a step exceeds
    the highest resident size of the first `window` steps after the last trim (or the start) by more than
    `margin` bytes (a no-op where there is no glibc or no /proc). `trims` counts them."""

    def __init__(self, margin: float = 256 * 2**20, window: int = 20):
        self.margin, self.window, self.trims = margin, window, 0
        self.level, self.seen = 0, 0
        self._trim = getattr(_libc(), "malloc_trim", None)
        if not os.path.exists("/proc/self/statm"):
            self._trim = None

    def __call__(self) -> None:
        if self._trim is None:
            return
        now = resident_bytes()
        if now is None:
            return
        if self.seen < self.window:  # still learning the working level: the peak over steps of every size
            self.level, self.seen = max(self.level, now), self.seen + 1
        elif now > self.level + self.margin:
            self._trim(0)
            self.trims += 1
            self.level, self.seen = 0, 0
            log.debug("heap trimmed at %.0f MB resident", now / 2**20)
