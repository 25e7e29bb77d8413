"""Resolve catalog image references to validated local image files.

Product catalogs reference images either by a local path (relative to the
catalog file's folder) or by an ``http(s)`` URL.  :func:`resolve_image` turns
such a reference into an :class:`ImageResolution` that says whether a usable,
decodable image exists and, if not, why.  :func:`open_rgb` is the single
decoding helper the rest of the project uses to get an RGB ``PIL.Image``.

Safety properties:

* Local files must be regular files; when ``data_root`` is given, the fully
  resolved path (symlinks followed) must stay inside it.
* Every image is decoded for real (``verify()`` then a full ``load()`` of a
  re-opened image), with a per-call pixel limit checked from the header
  before any pixel data is decoded.  Pillow's own decompression-bomb check is
  left active; its warning is turned into an error around our own calls.
* Only a safe set of Pillow formats is ever opened (no EPS/PDF/etc.).
* URL fetching is opt-in (``FetchPolicy.enabled``).  Hosts are resolved with
  ``socket.getaddrinfo`` and *every* resulting address is checked before a
  connection is made; the connection goes to the checked IP (no second DNS
  lookup, so no DNS rebinding) with the original ``Host`` header / TLS SNI.
  Every redirect hop is re-checked the same way.  Bodies are streamed with a
  byte cap, the ``Content-Type`` is checked, and the body must decode.

Plain Python: stdlib + Pillow, no Dagster imports.
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import ipaddress
import os
import re
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_ALLOWED_CONTENT_TYPES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FetchPolicy",
    "IMAGE_STATUSES",
    "ImageResolution",
    "ImageStatus",
    "UnreadableImageError",
    "address_refusal_reason",
    "is_allowed_address",
    "open_rgb",
    "resolve_host",
    "resolve_image",
    "validate_image_file",
]

ImageStatus = Literal["ok", "missing", "unreadable", "not_fetched", "refused", "fetch_failed"]
IMAGE_STATUSES: tuple[str, ...] = (
    "ok",
    "missing",
    "unreadable",
    "not_fetched",
    "refused",
    "fetch_failed",
)

#: Pixel limit (width * height) applied to every decode; ~64 megapixels.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
#: Default cap on downloaded body size.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_ALLOWED_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})

#: Pillow format plugins we are willing to run on untrusted input.  Anything
#: else (EPS -> Ghostscript, PDF, PSD, ...) is rejected as unsupported.
#: MPO is how Pillow identifies multi-picture JPEGs from many cameras.
#: (Formats this Pillow build does not register, e.g. MPO in Pillow >= 13, are skipped.)
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_open_formats_cache: tuple[str, ...] | None = None


def _open_formats() -> tuple[str, ...]:
    global _open_formats_cache
    if _open_formats_cache is None:
        Image.init()
        _open_formats_cache = tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)
    return _open_formats_cache

_CONTENT_TYPE_SUFFIX = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_CACHE_SUFFIXES = (".jpg", ".png", ".webp", ".gif", ".img")
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024
_USER_AGENT = "scene-matcher-image-fetch/1.0"
# A scheme followed by ':' — single letters are treated as Windows drive letters.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_NON_URL_SCHEMES_WITHOUT_SLASHES = frozenset({"data", "file", "javascript", "mailto", "about", "blob"})


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class FetchPolicy:
    """How (and whether) image URLs may be fetched.

    ``timeout_s`` is the socket timeout for connect and each read;
    ``total_timeout_s`` bounds the whole fetch including redirects
    (``None`` means ``4 * timeout_s``).  DNS resolution itself cannot be
    bounded portably and is not covered by either.
    """

    enabled: bool = False
    timeout_s: float = 10.0
    max_bytes: int = DEFAULT_MAX_BYTES
    allowed_content_types: frozenset[str] = DEFAULT_ALLOWED_CONTENT_TYPES
    allow_private: bool = False
    max_redirects: int = 3
    cache_dir: Path | None = None
    total_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not self.timeout_s or self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        if self.total_timeout_s is not None and self.total_timeout_s <= 0:
            raise ValueError(f"total_timeout_s must be > 0, got {self.total_timeout_s!r}")
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {self.max_bytes!r}")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {self.max_redirects!r}")
        types = frozenset(t.strip().lower() for t in self.allowed_content_types)
        object.__setattr__(self, "allowed_content_types", types)
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @property
    def deadline_s(self) -> float:
        return self.total_timeout_s if self.total_timeout_s is not None else 4 * self.timeout_s


@dataclass(frozen=True)
class ImageResolution:
    """Outcome of :func:`resolve_image`.

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


class UnreadableImageError(OSError):
    """The file exists but is not a decodable, acceptable image."""


class _FetchError(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------- image decoding


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
        raise UnreadableImageError(
            f"{label}: image is {width}x{height} = {width * height} pixels, over the "
            f"{limit}-pixel limit (possible decompression bomb)"
        )


class _bomb_guard:
    """Turn Pillow decompression-bomb warnings/errors into UnreadableImageError."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._cw = warnings.catch_warnings()

    def __enter__(self) -> None:
        self._cw.__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._cw.__exit__(exc_type, exc, tb)
        if exc_type is None:
            return False
        if issubclass(exc_type, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise UnreadableImageError(
                f"{self.label}: rejected as possible decompression bomb ({exc})"
            ) from exc
        return False


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not make a good image unreadable
        orientation = 1
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def validate_image_file(path: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Fully decode ``path`` and return its (EXIF-oriented) ``(width, height)``.

    Raises :class:`UnreadableImageError` with a human-readable reason naming
    the file if it is not an acceptable, completely decodable image.
    ``OSError`` from the filesystem (missing, permission) propagates as-is.
    """
    label = str(path)
    try:
        with _bomb_guard(label):
            with Image.open(path, formats=_open_formats()) as im:
                _check_pixels(im.size, max_pixels, label)
                im.verify()
            # verify() leaves the image unusable; re-open and decode every pixel
            # of the first frame (catches truncated JPEGs, bad zlib streams...).
            with Image.open(path, formats=_open_formats()) as im:
                _check_pixels(im.size, max_pixels, label)
                im.load()
                size = _oriented_size(im)
    except UnreadableImageError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise UnreadableImageError(
            f"{label}: not a recognised image (allowed formats: {', '.join(_open_formats())})"
        ) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # Pillow plugins raise many types on hostile input
        raise UnreadableImageError(f"{label}: image failed to decode ({type(exc).__name__}: {exc})") from exc
    return size


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


def open_rgb(path: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as a fully loaded RGB image, EXIF orientation applied.

    Handles P (incl. transparency), RGBA/LA (composited on white), CMYK,
    16-bit/32-bit grayscale (scaled to 8 bit), L and 1.  Animated images yield
    their first frame.  The returned image does not hold the file open.

    Raises :class:`UnreadableImageError` for undecodable/unsupported/oversized
    images; filesystem errors (e.g. ``FileNotFoundError``) propagate.
    """
    path = Path(path)
    label = str(path)
    try:
        with _bomb_guard(label):
            with Image.open(path, formats=_open_formats()) as src:
                _check_pixels(src.size, max_pixels, label)
                if getattr(src, "n_frames", 1) > 1:
                    src.seek(0)
                oriented = ImageOps.exif_transpose(src)  # loads; always a new image
                assert oriented is not None
                rgb = _to_rgb(oriented)
                rgb.load()
                return rgb
    except UnreadableImageError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise UnreadableImageError(
            f"{label}: not a recognised image (allowed formats: {', '.join(_open_formats())})"
        ) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # Pillow plugins raise many types on hostile input
        raise UnreadableImageError(f"{label}: image failed to decode ({type(exc).__name__}: {exc})") from exc


# ------------------------------------------------------------------ local files


def _is_within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _resolve_local(
    ref: str, *, base_dir: Path, data_root: Path | None, max_pixels: int | None
) -> ImageResolution:
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
        width, height = validate_image_file(real_path, max_pixels=max_pixels)
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


# ------------------------------------------------------------ address checking


def _ip_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-global"
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_refusal_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be connected to by default, or ``None`` if public.

    Refuses private, loopback, link-local, multicast, reserved, unspecified and
    other non-global addresses, for IPv4 and IPv6, including IPv4 addresses
    embedded in IPv6 (IPv4-mapped, 6to4, Teredo, NAT64).  Unparseable input is
    refused too.
    """
    try:
        ip = ipaddress.ip_address(address if not isinstance(address, str) else address.strip("[]"))
    except ValueError:
        return f"not an IP address: {address!r}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A connection to ::ffff:a.b.c.d goes to a.b.c.d: judge that address.
        kind = _ip_refusal(ip.ipv4_mapped)
        if kind is not None:
            return f"IPv4-mapped IPv6 address {ip} maps to {kind} address {ip.ipv4_mapped}"
        return None
    kind = _ip_refusal(ip)
    if kind is not None:
        return f"{kind} address {ip}"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[tuple[str, ipaddress.IPv4Address]] = []
        if ip.sixtofour is not None:
            embedded.append(("6to4", ip.sixtofour))
        if ip.teredo is not None:
            embedded.extend(("Teredo", v4) for v4 in ip.teredo)
        if ip in _NAT64:
            embedded.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        for label, v4 in embedded:
            kind = _ip_refusal(v4)
            if kind is not None:
                return f"{label} IPv6 address {ip} embeds {kind} address {v4}"
    return None


def is_allowed_address(address: str, *, allow_private: bool = False) -> bool:
    """True if connecting to ``address`` is allowed under ``allow_private``."""
    if allow_private:
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return True
    return address_refusal_reason(address) is None


def resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (deduplicated, in resolver order).

    Module-level so tests can monkeypatch it.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _check_addresses(addresses: list[str], host: str, allow_private: bool) -> None:
    if not addresses:
        raise _FetchError("fetch_failed", f"host {host!r} resolved to no addresses")
    for addr in addresses:
        if allow_private:
            if not is_allowed_address(addr, allow_private=True):
                raise _FetchError("refused", f"host {host!r} resolved to unusable address {addr!r}")
            continue
        why = address_refusal_reason(addr)
        if why is not None:
            raise _FetchError("refused", f"host {host!r} resolves to {why}; refusing to connect")


# --------------------------------------------------------------------- fetching


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP connection to a pre-checked IP; ``Host`` header keeps the hostname."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._pinned_ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover
            pass


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS connection to a pre-checked IP; SNI and cert check use the hostname."""

    def __init__(self, host: str, port: int, ip: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._pinned_ip = ip
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request-target) or raise _FetchError('refused')."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _FetchError("refused", f"invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _FetchError("refused", f"URL scheme {scheme or '(none)'!r} not allowed (http/https only): {url}")
    host = parts.hostname
    if not host:
        raise _FetchError("refused", f"URL has no host: {url}")
    if port is None:
        port = 443 if scheme == "https" else 80
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return scheme, host, port, path


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _content_type(resp: http.client.HTTPResponse) -> str:
    raw = resp.getheader("Content-Type") or ""
    return raw.split(";", 1)[0].strip().lower()


_tmp_lock = threading.Lock()
_tmp_dir: Path | None = None


def _process_download_dir() -> Path:
    """Per-process directory for fetched images when no cache_dir is set.

    Removed at interpreter exit; pass ``FetchPolicy.cache_dir`` for files that
    must outlive the process.
    """
    global _tmp_dir
    with _tmp_lock:
        if _tmp_dir is None or not _tmp_dir.is_dir():
            _tmp_dir = Path(tempfile.mkdtemp(prefix="scene_matcher_images_"))
            atexit.register(shutil.rmtree, str(_tmp_dir), True)
        return _tmp_dir


def _cache_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _cache_lookup(cache_dir: Path, key: str, url: str, max_pixels: int | None) -> ImageResolution | None:
    for suffix in _CACHE_SUFFIXES:
        cached = cache_dir / f"{key}{suffix}"
        try:
            st = cached.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            continue
        try:
            width, height = validate_image_file(cached, max_pixels=max_pixels)
        except OSError:
            # Corrupt/stale cache entry: drop it and fetch again.
            try:
                cached.unlink()
            except OSError:
                pass
            continue
        return ImageResolution("ok", path=cached, width=width, height=height)
    return None


def _download(
    url: str, policy: FetchPolicy, dest_dir: Path, key: str, max_pixels: int | None
) -> ImageResolution:
    deadline = time.monotonic() + policy.deadline_s
    current = url
    hops = 0
    while True:
        scheme, host, port, target = _split_url(current)
        addresses = resolve_host(host, port) if _literal_ip(host) is None else [_literal_ip(host)]
        _check_addresses(addresses, host, policy.allow_private)

        conn = _connect(scheme, host, port, addresses, policy.timeout_s, current)
        try:
            try:
                conn.putrequest("GET", target, skip_accept_encoding=True)
                conn.putheader("User-Agent", _USER_AGENT)
                conn.putheader("Accept", ", ".join(sorted(policy.allowed_content_types)))
                conn.putheader("Accept-Encoding", "identity")
                conn.putheader("Connection", "close")
                conn.endheaders()
                resp = conn.getresponse()
            except (TimeoutError, socket.timeout) as exc:
                raise _FetchError("fetch_failed", f"timeout after {policy.timeout_s}s waiting for {current}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _FetchError("fetch_failed", f"request to {current} failed: {type(exc).__name__}: {exc}") from exc

            if resp.status in _REDIRECT_CODES:
                location = resp.getheader("Location")
                if not location:
                    raise _FetchError("fetch_failed", f"HTTP {resp.status} redirect without Location from {current}")
                hops += 1
                if hops > policy.max_redirects:
                    raise _FetchError(
                        "fetch_failed", f"too many redirects (> {policy.max_redirects}) fetching {url}"
                    )
                current = urljoin(current, location.strip())
                if time.monotonic() > deadline:
                    raise _FetchError("fetch_failed", f"timeout: total fetch time over {policy.deadline_s}s for {url}")
                continue  # finally closes this connection; next hop is re-checked

            if resp.status != 200:
                raise _FetchError("fetch_failed", f"HTTP {resp.status} {resp.reason} fetching {current}")

            ctype = _content_type(resp)
            if ctype not in policy.allowed_content_types:
                raise _FetchError(
                    "fetch_failed",
                    f"content-type {ctype or '(missing)'!r} not allowed for {current} "
                    f"(allowed: {', '.join(sorted(policy.allowed_content_types))})",
                )
            encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _FetchError("fetch_failed", f"unsupported content-encoding {encoding!r} from {current}")
            length = resp.getheader("Content-Length")
            if length is not None:
                try:
                    declared = int(length)
                except ValueError:
                    declared = -1
                if declared > policy.max_bytes:
                    raise _FetchError(
                        "fetch_failed",
                        f"response too large: Content-Length {declared} > max_bytes {policy.max_bytes} for {current}",
                    )
            return _stream_to_file(resp, current, url, ctype, policy, dest_dir, key, deadline, max_pixels)
        finally:
            conn.close()


def _connect(
    scheme: str, host: str, port: int, addresses: list[str], timeout: float, url: str
) -> http.client.HTTPConnection:
    last_exc: Exception | None = None
    timed_out = False
    context = ssl.create_default_context() if scheme == "https" else None
    for ip in addresses:
        if context is not None:
            conn: http.client.HTTPConnection = _PinnedHTTPSConnection(host, port, ip, timeout, context)
        else:
            conn = _PinnedHTTPConnection(host, port, ip, timeout)
        try:
            conn.connect()
            return conn
        except (TimeoutError, socket.timeout) as exc:
            conn.close()
            last_exc = exc
            timed_out = True
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            last_exc = exc
            timed_out = False
    if last_exc is not None and timed_out:
        raise _FetchError("fetch_failed", f"timeout after {timeout}s connecting to {url}") from last_exc
    raise _FetchError(
        "fetch_failed", f"could not connect to {url}: {type(last_exc).__name__}: {last_exc}"
    ) from last_exc


def _stream_to_file(
    resp: http.client.HTTPResponse,
    current: str,
    url: str,
    ctype: str,
    policy: FetchPolicy,
    dest_dir: Path,
    key: str,
    deadline: float,
    max_pixels: int | None,
) -> ImageResolution:
    dest_dir.mkdir(parents=True, exist_ok=True)
    suffix = _CONTENT_TYPE_SUFFIX.get(ctype, ".img")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        total = 0
        with os.fdopen(fd, "wb") as out:
            while True:
                if time.monotonic() > deadline:
                    raise _FetchError("fetch_failed", f"timeout: total fetch time over {policy.deadline_s}s for {current}")
                try:
                    chunk = resp.read(min(_READ_CHUNK, policy.max_bytes + 1 - total))
                except (TimeoutError, socket.timeout) as exc:
                    raise _FetchError("fetch_failed", f"timeout after {policy.timeout_s}s reading {current}") from exc
                except (OSError, http.client.HTTPException) as exc:
                    raise _FetchError(
                        "fetch_failed", f"error reading {current}: {type(exc).__name__}: {exc}"
                    ) from exc
                if not chunk:
                    break
                total += len(chunk)
                if total > policy.max_bytes:
                    raise _FetchError(
                        "fetch_failed",
                        f"response too large: more than max_bytes {policy.max_bytes} bytes from {current}",
                    )
                out.write(chunk)
        if total == 0:
            raise _FetchError("fetch_failed", f"empty response body from {current}")
        try:
            width, height = validate_image_file(tmp, max_pixels=max_pixels)
        except OSError as exc:
            detail = str(exc).replace(str(tmp), "downloaded body")
            raise _FetchError("fetch_failed", f"{current} did not decode as an image: {detail}") from exc
        final = dest_dir / f"{key}{suffix}"
        os.replace(tmp, final)
        return ImageResolution("ok", path=final, width=width, height=height)
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass


def _resolve_url(ref: str, *, policy: FetchPolicy, max_pixels: int | None) -> ImageResolution:
    try:
        _scheme, host, _port, _target = _split_url(ref)
    except _FetchError as exc:
        return ImageResolution(exc.status, reason=exc.reason)  # type: ignore[arg-type]
    if not policy.enabled:
        return ImageResolution("not_fetched", reason=f"URL fetching is disabled by policy: {ref}")

    literal = _literal_ip(host)
    if literal is not None and not policy.allow_private:
        why = address_refusal_reason(literal)
        if why is not None:
            return ImageResolution("refused", reason=f"{ref}: {why}; refusing to connect")

    key = _cache_key(ref)
    if policy.cache_dir is not None:
        hit = _cache_lookup(policy.cache_dir, key, ref, max_pixels)
        if hit is not None:
            return hit
        dest = policy.cache_dir
    else:
        dest = _process_download_dir()

    try:
        return _download(ref, policy, dest, key, max_pixels)
    except _FetchError as exc:
        reason = exc.reason if ref in exc.reason else f"{ref}: {exc.reason}"
        return ImageResolution(exc.status, reason=reason)  # type: ignore[arg-type]
    except socket.gaierror as exc:
        return ImageResolution("fetch_failed", reason=f"{ref}: DNS lookup for {host!r} failed: {exc}")
    except ValueError as exc:  # e.g. UnicodeError from IDNA-encoding an invalid host name
        return ImageResolution("fetch_failed", reason=f"{ref}: cannot resolve host {host!r}: {exc}")
    except (TimeoutError, socket.timeout):
        return ImageResolution("fetch_failed", reason=f"{ref}: timeout after {policy.timeout_s}s")
    except OSError as exc:
        return ImageResolution("fetch_failed", reason=f"{ref}: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ entry point


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
        return _resolve_url(ref, policy=policy, max_pixels=max_pixels)
    return _resolve_local(ref, base_dir=Path(base_dir), data_root=data_root, max_pixels=max_pixels)
