"""Process memory hygiene for long-running servers (glibc only; a no-op elsewhere).

A threaded server that loads a large index and runs CNN passes on several threads keeps far more
resident memory than it uses: glibc gives each thread its own malloc arena and keeps freed pages.
Capping the arenas and trimming after a (re)load keeps the RSS near the live size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)
_M_ARENA_MAX = -8  # mallopt parameter number from <malloc.h>


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc malloc arenas (call before worker threads start). Returns whether it applied."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))


def release_free_memory() -> bool:
    """Collect garbage and hand freed heap pages back to the OS (e.g. after loading an index)."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
