"""Local image references: confined to the data root, regular files only, decoded for real.

A relative reference is resolved against the catalog file's folder; when ``data_root`` is given the
fully resolved path (symlinks followed) must stay inside it. Nothing but a regular, non-empty file
is ever opened (a FIFO would block, a device would never end).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from scene_assets.images.decode import UnreadableImageError, validate_image
from scene_assets.images.resolution import ImageResolution

__all__ = ["resolve_local"]


def _is_within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def resolve_local(
    ref: str, *, base_dir: Path, data_root: Path | None, max_pixels: int | None
) -> ImageResolution:
    """Check the local image ``ref`` (relative to ``base_dir``); never raises for bad input."""
    candidate = Path(ref)
    if not candidate.is_absolute():
        candidate = Path(base_dir) / candidate
    shown = str(candidate)

    if not os.path.lexists(candidate):
        return ImageResolution("missing", reason=f"image file not found: {shown}")

    real = os.path.realpath(candidate)
    if data_root is not None:
        root = os.path.realpath(data_root)
        if not _is_within(real, root):
            return ImageResolution(
                "refused",
                reason=f"image path {shown} resolves to {real}, outside data root {root} (set the catalog source's image_root to allow it)",
            )

    try:
        st = os.stat(real)
    except FileNotFoundError:
        return ImageResolution("missing", reason=f"image file not found (broken symlink?): {shown}")
    except OSError as exc:
        return ImageResolution("unreadable", reason=f"cannot stat image file {shown}: {exc}")

    if stat.S_ISDIR(st.st_mode):
        return ImageResolution("unreadable", reason=f"image path is a directory, not a file: {shown}")
    if not stat.S_ISREG(st.st_mode):
        return ImageResolution("unreadable", reason=f"image path is not a regular file: {shown}")
    if st.st_size == 0:
        return ImageResolution("unreadable", reason=f"image file is empty (0 bytes): {shown}")

    real_path = Path(real)
    try:
        width, height = validate_image(real_path, max_pixels=max_pixels)
    except FileNotFoundError:
        return ImageResolution("missing", reason=f"image file vanished while reading: {shown}")
    except UnreadableImageError as exc:
        return ImageResolution("unreadable", reason=_with_ref(str(exc), shown, real))
    except OSError as exc:
        return ImageResolution("unreadable", reason=f"cannot read image file {shown}: {exc}")
    return ImageResolution("ok", path=real_path, width=width, height=height)


def _with_ref(reason: str, shown: str, real: str) -> str:
    """Make sure a reason mentions the path the catalog actually referenced."""
    if shown != real and shown not in reason:
        return f"{shown} -> {reason}"
    return reason
