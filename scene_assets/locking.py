"""Exclusive write locks on stored vectors and index folders, across processes.

Two materializations of the same asset can overlap (a schedule and a manual run, two backfill runs,
a Dask worker and a local run on shared storage). Each writes atomically, but a read-modify-write
cycle (read the vector file, encode what is missing, write it back; load the index, update, save
index + manifest + members) is not atomic: without a lock the later writer silently drops what the
earlier one added, or an index file from one run sits beside the manifest of the other.

The lock is an OS file lock (``flock`` through the ``filelock`` package) on a hidden file beside
the target, so it is released by the kernel when a holder dies, even by SIGKILL: a crashed run
never leaves a stale lock behind. The second writer waits, then sees the first one's committed
result and does only what is still missing. Locks are re-entrant within a thread (the scene-index
step holds its folder's lock around a build that takes the same lock).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

# A writer holding a lock longer than this is stuck or encoding a huge shard; override per call or by
# environment (read when a lock is taken) for catalogs whose shards take longer.
DEFAULT_TIMEOUT_S = 7200.0


class LockTimeout(RuntimeError):
    """Another run held the write lock for longer than the timeout."""


def lock_path(target: Path) -> Path:
    """The lock file guarding ``target`` (a file or a folder): hidden, beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def exclusive(target: Path | str, *, timeout_s: float | None = None) -> Iterator[float]:
    """Hold the write lock on ``target`` for the duration of the block; yields seconds waited."""
    path = lock_path(Path(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = timeout_s if timeout_s is not None else float(os.environ.get("SCENE_MATCHER_LOCK_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    lock = FileLock(path, is_singleton=True)
    started = time.perf_counter()
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise LockTimeout(
            f"{target}: another run has held its write lock ({path}) for over {timeout:.0f} s. Wait for that "
            "run to finish (Dagster UI > Runs), or raise SCENE_MATCHER_LOCK_TIMEOUT_S for very large shards."
        ) from None
    try:
        yield time.perf_counter() - started
    finally:
        lock.release()
