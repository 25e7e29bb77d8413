"""Progress bars for long steps (encoding, index build, scene preparation, sweeps, export).

tqdm decides by itself: a bar on an interactive terminal, nothing in CI logs or Dagster's captured
output (``disable=None`` turns it off when stderr is not a TTY). SCENE_MATCHER_PROGRESS=1 forces bars
on, =0 forces them off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _disable(total: int | None) -> bool | None:
    forced = os.environ.get("SCENE_MATCHER_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "0"
    return True if total == 0 else None


def progress_bar(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A bar to `update(n)` by hand (work done in chunks or on other threads); close it when done."""
    return tqdm(total=total, desc=desc, unit=unit, disable=_disable(total), leave=False, dynamic_ncols=True)


def track(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None) -> Iterator[T]:
    """Iterate `items` with a bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    yield from tqdm(items, total=total, desc=desc, unit=unit, disable=_disable(total), leave=False, dynamic_ncols=True)
