"""What resolving a catalog image reference found: :class:`ImageResolution` and its status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ImageResolution", "ImageStatus"]

ImageStatus = Literal["ok", "missing", "unreadable", "not_fetched", "refused", "fetch_failed"]


@dataclass(frozen=True)
class ImageResolution:
    """Outcome of :func:`scene_assets.images.resolve_image`.

    ``path`` is set only when ``status == "ok"``; ``reason`` is empty for ok
    and otherwise names the file or URL and what was wrong with it.
    """

    status: ImageStatus
    path: Path | None = None
    reason: str = ""
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"
