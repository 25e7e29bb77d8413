"""Images: the one decoder, local-path confinement, the URL fetcher, and reference resolution.

- :mod:`.decode`: :func:`open_rgb` / :func:`validate_image` for a path, bytes or a binary file
  object (no temp files), with the one mapping of decoder failures to :class:`UnreadableImageError`.
- :mod:`.local`: local references stay inside the data root, regular files only.
- :mod:`.fetch`: the SSRF-safe ``http(s)`` fetcher (:class:`FetchPolicy`, size and time limits,
  file cache).
- :mod:`.resolve`: :func:`resolve_image`, a catalog reference (path or URL) to an
  :class:`ImageResolution`.

Plain Python (stdlib + Pillow), no Dagster imports.
"""

from scene_assets.images.decode import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    UnreadableImageError,
    open_rgb,
    validate_image,
)
from scene_assets.images.fetch import (
    FetchError,
    FetchPolicy,
    address_refusal_reason,
    fetch_image,
    is_allowed_address,
)
from scene_assets.images.resolution import ImageResolution
from scene_assets.images.resolve import resolve_image

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "FetchError",
    "FetchPolicy",
    "ImageResolution",
    "ImageTooLargeError",
    "UnreadableImageError",
    "address_refusal_reason",
    "fetch_image",
    "is_allowed_address",
    "open_rgb",
    "resolve_image",
    "validate_image",
]
