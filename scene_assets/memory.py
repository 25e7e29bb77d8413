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


def release_free_memory(*, collect: bool = True) -> bool:
    """Collect garbage (unless ``collect`` is False) and hand freed heap pages back to the OS (e.g.
    after loading an index)."""
    if collect:
        gc.collect()
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def keep_gpu_compilers_out(device: str | None = None) -> bool:
    """In a process that will only run models on the CPU, make ``import triton`` fail so torch and
    torchvision do not load the GPU kernel compiler (``libtriton.so`` and its Python side: ~75 MiB
    resident, measured beside EfficientNet + MiniLM). torch treats a missing triton as "no kernel
    compilation", which CPU inference never needs. Applies only before triton is imported, and only
    when ``device`` is ``"cpu"`` or, for ``None`` / ``"auto"``, when the machine has no NVIDIA device.
    Returns whether it applied."""
    import sys
    from pathlib import Path

    if "triton" in sys.modules:
        return False
    if device not in (None, "auto", "cpu"):
        return False
    if device != "cpu" and any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment] - the import system's "not importable" marker
    log.info("CPU-only process: triton kept out (saves ~75 MiB resident)")
    return True
