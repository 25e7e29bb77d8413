"""Catalog image references: a local path (relative to the catalog file's folder) or an ``http(s)``
URL, turned into an :class:`ImageResolution` that says whether a usable, decodable image exists
and, if not, why. Local references go to :mod:`.local`, URLs to :mod:`.fetch`."""

from __future__ import annotations

import re
from pathlib import Path

from scene_assets.images.decode import DEFAULT_MAX_PIXELS
from scene_assets.images.fetch import FetchPolicy, resolve_url
from scene_assets.images.local import resolve_local
from scene_assets.images.resolution import ImageResolution

__all__ = ["resolve_image"]

# A scheme followed by ':' — single letters are treated as Windows drive letters.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_NON_URL_SCHEMES_WITHOUT_SLASHES = frozenset({"data", "file", "javascript", "mailto", "about", "blob"})


def _looks_like_url(ref: str) -> bool:
    if "://" in ref:
        return True
    m = _SCHEME_RE.match(ref)
    return bool(m) and m.group(1).lower() in _NON_URL_SCHEMES_WITHOUT_SLASHES


def resolve_image(
    ref: str | None,
    *,
    base_dir: Path,
    policy: FetchPolicy,
    data_root: Path | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ImageResolution:
    """Resolve a catalog image reference to a validated local image file.

    ``ref`` is a local path (relative refs are resolved against ``base_dir``,
    normally the catalog file's folder) or an ``http(s)`` URL.  Never raises
    for bad input; the outcome is described by the returned
    :class:`ImageResolution`.
    """
    if ref is None or not str(ref).strip():
        return ImageResolution("missing", reason="no image reference given")
    ref = str(ref).strip()
    if "\x00" in ref:
        return ImageResolution("refused", reason=f"image reference contains a NUL byte: {ref!r}")
    if _looks_like_url(ref):
        return resolve_url(ref, policy=policy, max_pixels=max_pixels)
    return resolve_local(ref, base_dir=Path(base_dir), data_root=data_root, max_pixels=max_pixels)
