"""The project's one image decoder: a path, bytes or a binary file object in, RGB ``PIL.Image`` out.

Every image the project reads (catalog checks, encoding, scene queries, HTTP uploads, fetched URLs)
goes through here, so the safety rules and the error messages live in one place:

* Only a safe set of Pillow formats is ever opened (no EPS/PDF/etc.).
* The pixel count is checked from the header before any pixel data is decoded (per-call limit,
  tightened to Pillow's global ``Image.MAX_IMAGE_PIXELS``); Pillow's own decompression-bomb check
  stays active and its warning is turned into an error around our calls.
* Every failure becomes :class:`UnreadableImageError` (:class:`ImageTooLargeError` for too many
  pixels) naming the image; filesystem errors of a path (missing, permission) propagate as-is.

Bytes and file objects are decoded in memory: no temp files. Plain Python: Pillow only.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "ImageTooLargeError",
    "UnreadableImageError",
    "open_rgb",
    "validate_image",
]

#: Pixel limit (width * height) applied to every decode; ~64 megapixels.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

#: Pillow format plugins we are willing to run on untrusted input.  Anything
#: else (EPS -> Ghostscript, PDF, PSD, ...) is rejected as unsupported.
#: MPO is how Pillow identifies multi-picture JPEGs from many cameras.
#: (Formats this Pillow build does not register, e.g. MPO in Pillow >= 13, are skipped.)
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")

#: What the decoder accepts: a filesystem path, the encoded bytes, or a readable binary file object.
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_open_formats_cache: tuple[str, ...] | None = None


class UnreadableImageError(OSError):
    """The input exists but is not a decodable, acceptable image."""


class ImageTooLargeError(UnreadableImageError):
    """The image declares more pixels than the limit (or trips Pillow's decompression-bomb check)."""


def _open_formats() -> tuple[str, ...]:
    global _open_formats_cache
    if _open_formats_cache is None:
        Image.init()
        _open_formats_cache = tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)
    return _open_formats_cache


def _effective_max_pixels(max_pixels: int | None) -> int | None:
    """Our limit, tightened to Pillow's global one if that is lower.

    Anything that would make Pillow *warn* is therefore rejected by our own,
    thread-safe header check too.
    """
    limits = [v for v in (max_pixels, Image.MAX_IMAGE_PIXELS) if v]
    return int(min(limits)) if limits else None


def _check_pixels(size: tuple[int, int], max_pixels: int | None, label: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise UnreadableImageError(f"{label}: invalid image dimensions {width}x{height}")
    limit = _effective_max_pixels(max_pixels)
    if limit is not None and width * height > limit:
        raise ImageTooLargeError(
            f"{label}: image is {width}x{height} = {width * height} pixels, over the "
            f"{limit}-pixel limit (possible decompression bomb)"
        )


@contextmanager
def _decoding(label: str) -> Iterator[None]:
    """The one mapping of decoder failures to :class:`UnreadableImageError` naming ``label``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: rejected as possible decompression bomb ({exc})") from exc
    except Image.UnidentifiedImageError as exc:
        raise UnreadableImageError(
            f"{label}: not a recognised image (allowed formats: {', '.join(_open_formats())})"
        ) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # Pillow plugins raise many types on hostile input
        raise UnreadableImageError(f"{label}: image failed to decode ({type(exc).__name__}: {exc})") from exc


def _opener(source: ImageInput, label: str | None) -> tuple[Callable[[], Image.Image], str]:
    """A function opening ``source`` afresh with the allowed formats (a full check opens twice),
    and the label naming it in errors."""
    formats = _open_formats()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return (lambda: Image.open(io.BytesIO(data), formats=formats)), label or "image bytes"
    if hasattr(source, "read"):
        # Read from the current position (Pillow would rewind a seekable stream to its start, and
        # cannot open an unseekable one twice); the caller's file is left open.
        name = getattr(source, "name", None)
        shown = label or (str(name) if isinstance(name, (str, os.PathLike)) else "image stream")
        data = source.read()
        return (lambda: Image.open(io.BytesIO(data), formats=formats)), shown
    path = Path(source)
    return (lambda: Image.open(path, formats=formats)), label or str(path)


def validate_image(
    source: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, label: str | None = None
) -> tuple[int, int]:
    """Fully decode ``source`` and return its (EXIF-oriented) ``(width, height)``.

    Raises :class:`UnreadableImageError` with a human-readable reason naming
    the image (``label``, else the path or file name) if it is not an
    acceptable, completely decodable image.  ``OSError`` from the filesystem
    (missing, permission) propagates as-is.
    """
    open_image, label = _opener(source, label)
    with _decoding(label):
        with open_image() as im:
            _check_pixels(im.size, max_pixels, label)
            im.verify()
        # verify() leaves the image unusable; re-open and decode every pixel
        # of the first frame (catches truncated JPEGs, bad zlib streams...).
        with open_image() as im:
            _check_pixels(im.size, max_pixels, label)
            im.load()
            return _oriented_size(im)


def open_rgb(
    source: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, label: str | None = None
) -> Image.Image:
    """Open ``source`` as a fully loaded RGB image, EXIF orientation applied.

    Handles P (incl. transparency), RGBA/LA (composited on white), CMYK,
    16-bit/32-bit grayscale (scaled to 8 bit), L and 1.  Animated images yield
    their first frame.  The returned image does not hold the file open.

    Raises :class:`UnreadableImageError` (naming ``label``, else the path or
    file name) for undecodable/unsupported images, :class:`ImageTooLargeError`
    for oversized ones; filesystem errors (e.g. ``FileNotFoundError``) propagate.
    """
    open_image, label = _opener(source, label)
    with _decoding(label):
        with open_image() as src:
            _check_pixels(src.size, max_pixels, label)
            if getattr(src, "n_frames", 1) > 1:
                src.seek(0)
            oriented = ImageOps.exif_transpose(src)  # loads; always a new image
            assert oriented is not None
            rgb = _to_rgb(oriented)
            rgb.load()
            return rgb


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not make a good image unreadable
        orientation = 1
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """Map high-bit-depth single-channel modes (I;16*, I, F) to 'L'."""
    if im.mode.startswith("I;16"):
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode == "I":
        lo, hi = im.getextrema()
        if hi <= 255 and lo >= 0:
            return im.convert("L")
        if hi <= 65535 and lo >= 0:
            return im.point(lambda v: v * (1 / 256)).convert("L")
        span = max(hi - lo, 1)
        return im.point(lambda v: (v - lo) * (255 / span)).convert("L")
    if im.mode == "F":
        lo, hi = im.getextrema()
        if lo >= 0 and hi <= 1.0:
            return im.point(lambda v: v * 255).convert("L")
        span = max(hi - lo, 1e-12)
        return im.point(lambda v: (v - lo) * (255 / span)).convert("L")
    return im


def _composite_on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(im: Image.Image) -> Image.Image:
    has_transparency = "transparency" in im.info
    mode = im.mode
    if mode == "RGB" and not has_transparency:
        return im
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        has_transparency and mode in ("P", "L", "RGB", "1")
    ):
        return _composite_on_white(im)
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(im).convert("RGB")
    # P, L, 1, CMYK, YCbCr, HSV, LAB, ... — Pillow converts these directly.
    return im.convert("RGB")
