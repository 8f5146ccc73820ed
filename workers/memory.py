"""Giving a big document's memory back to the operating system, and reading what a process holds.

CPython frees a document's strings and lists at once, but glibc's malloc keeps the freed pages in
its heap and arenas for reuse (the tokenizer's many small allocations leave them fragmented), so a
worker child that read one 16 MB text kept about 1 GB more RSS than before it, until the next
similar document. ``malloc_trim(0)`` hands the free pages back (glibc >= 2.8 also releases free
pages inside the heap, not only at its top). It costs a few milliseconds on a large heap, so the
worker calls it only after messages holding many characters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: A message whose documents hold at least this many characters is followed by a trim.
TRIM_ABOVE_CHARS = 1_000_000


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # musl, macOS: none


def release_memory() -> bool:
    """Collect garbage, then return free heap pages to the OS; False where libc has no malloc_trim."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def proc_status_kib(pid: int | None = None) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of a process, in KiB, from
    ``/proc/<pid>/status`` (Linux); empty where there is no /proc."""
    path = Path(f"/proc/{pid or os.getpid()}/status")
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int | None = None) -> bool:
    """Reset a process's ``VmHWM`` to its current RSS (``clear_refs`` 5, Linux >= 4.0), so the next
    peak read is the peak of what came after; False where that is not allowed."""
    try:
        Path(f"/proc/{pid or os.getpid()}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
