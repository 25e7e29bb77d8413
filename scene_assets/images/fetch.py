"""Fetching catalog and scene images from ``http(s)`` URLs, safely, into memory.

URL fetching is opt-in (``FetchPolicy.enabled``).  Hosts are resolved with
``socket.getaddrinfo`` and *every* resulting address is checked before a
connection is made; the connection goes to the checked IP (no second DNS
lookup, so no DNS rebinding) with the original ``Host`` header / TLS SNI.
Every redirect hop is re-checked the same way.  Bodies are streamed into
memory with a byte cap and a total deadline, and the ``Content-Type`` is checked.

:func:`fetch_image` returns the body (the HTTP app decodes it like an upload);
:func:`resolve_url` also decodes it and keeps it as a file (``FetchPolicy.cache_dir``,
else a per-process download folder) for the catalog, which records image paths.

Plain Python: stdlib, no Dagster imports.
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import ipaddress
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from scene_assets.indexes.store import write_atomic_bytes
from scene_assets.images.decode import UnreadableImageError, validate_image
from scene_assets.images.resolution import ImageResolution

__all__ = [
    "DEFAULT_ALLOWED_CONTENT_TYPES",
    "DEFAULT_MAX_BYTES",
    "FetchError",
    "FetchPolicy",
    "FetchedImage",
    "address_refusal_reason",
    "fetch_image",
    "is_allowed_address",
    "resolve_host",
    "resolve_url",
]

#: Default cap on downloaded body size.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_ALLOWED_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})

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


class FetchError(Exception):
    """A URL that was refused (``status="refused"``) or could not be fetched (``"fetch_failed"``,
    ``"not_fetched"`` when the policy disables fetching); ``reason`` names the URL."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class FetchedImage:
    """A downloaded body (not decoded yet), the URL it finally came from and its content type."""

    data: bytes
    url: str
    content_type: str


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
        raise FetchError("fetch_failed", f"host {host!r} resolved to no addresses")
    for addr in addresses:
        if allow_private:
            if not is_allowed_address(addr, allow_private=True):
                raise FetchError("refused", f"host {host!r} resolved to unusable address {addr!r}")
            continue
        why = address_refusal_reason(addr)
        if why is not None:
            raise FetchError("refused", f"host {host!r} resolves to {why}; refusing to connect")


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
    """(scheme, host, port, request-target) or raise FetchError('refused')."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError("refused", f"invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("refused", f"URL scheme {scheme or '(none)'!r} not allowed (http/https only): {url}")
    host = parts.hostname
    if not host:
        raise FetchError("refused", f"URL has no host: {url}")
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


def _download(url: str, policy: FetchPolicy) -> FetchedImage:
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
                raise FetchError("fetch_failed", f"timeout after {policy.timeout_s}s waiting for {current}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError("fetch_failed", f"request to {current} failed: {type(exc).__name__}: {exc}") from exc

            if resp.status in _REDIRECT_CODES:
                location = resp.getheader("Location")
                if not location:
                    raise FetchError("fetch_failed", f"HTTP {resp.status} redirect without Location from {current}")
                hops += 1
                if hops > policy.max_redirects:
                    raise FetchError(
                        "fetch_failed", f"too many redirects (> {policy.max_redirects}) fetching {url}"
                    )
                current = urljoin(current, location.strip())
                if time.monotonic() > deadline:
                    raise FetchError("fetch_failed", f"timeout: total fetch time over {policy.deadline_s}s for {url}")
                continue  # finally closes this connection; next hop is re-checked

            if resp.status != 200:
                raise FetchError("fetch_failed", f"HTTP {resp.status} {resp.reason} fetching {current}")

            ctype = _content_type(resp)
            if ctype not in policy.allowed_content_types:
                raise FetchError(
                    "fetch_failed",
                    f"content-type {ctype or '(missing)'!r} not allowed for {current} "
                    f"(allowed: {', '.join(sorted(policy.allowed_content_types))})",
                )
            encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchError("fetch_failed", f"unsupported content-encoding {encoding!r} from {current}")
            length = resp.getheader("Content-Length")
            if length is not None:
                try:
                    declared = int(length)
                except ValueError:
                    declared = -1
                if declared > policy.max_bytes:
                    raise FetchError(
                        "fetch_failed",
                        f"response too large: Content-Length {declared} > max_bytes {policy.max_bytes} for {current}",
                    )
            return FetchedImage(_read_body(resp, current, policy, deadline), current, ctype)
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
        raise FetchError("fetch_failed", f"timeout after {timeout}s connecting to {url}") from last_exc
    raise FetchError(
        "fetch_failed", f"could not connect to {url}: {type(last_exc).__name__}: {last_exc}"
    ) from last_exc


def _read_body(resp: http.client.HTTPResponse, current: str, policy: FetchPolicy, deadline: float) -> bytes:
    """The body, read in chunks and given up past ``max_bytes`` or the deadline."""
    body = bytearray()
    while True:
        if time.monotonic() > deadline:
            raise FetchError("fetch_failed", f"timeout: total fetch time over {policy.deadline_s}s for {current}")
        try:
            chunk = resp.read(min(_READ_CHUNK, policy.max_bytes + 1 - len(body)))
        except (TimeoutError, socket.timeout) as exc:
            raise FetchError("fetch_failed", f"timeout after {policy.timeout_s}s reading {current}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError("fetch_failed", f"error reading {current}: {type(exc).__name__}: {exc}") from exc
        if not chunk:
            break
        if len(body) + len(chunk) > policy.max_bytes:
            raise FetchError(
                "fetch_failed",
                f"response too large: more than max_bytes {policy.max_bytes} bytes from {current}",
            )
        body += chunk
    if not body:
        raise FetchError("fetch_failed", f"empty response body from {current}")
    return bytes(body)


# -------------------------------------------------------------------- entry points


def _naming(ref: str, reason: str) -> str:
    return reason if ref in reason else f"{ref}: {reason}"


def _admit(ref: str, policy: FetchPolicy) -> str:
    """The host of ``ref`` if the policy lets it be fetched at all, else raise FetchError."""
    _scheme, host, _port, _target = _split_url(ref)
    if not policy.enabled:
        raise FetchError("not_fetched", f"URL fetching is disabled by policy: {ref}")
    literal = _literal_ip(host)
    if literal is not None and not policy.allow_private:
        why = address_refusal_reason(literal)
        if why is not None:
            raise FetchError("refused", f"{ref}: {why}; refusing to connect")
    return host


def _fetch_admitted(ref: str, host: str, policy: FetchPolicy) -> FetchedImage:
    try:
        return _download(ref, policy)
    except FetchError as exc:
        raise FetchError(exc.status, _naming(ref, exc.reason)) from exc
    except socket.gaierror as exc:
        raise FetchError("fetch_failed", f"{ref}: DNS lookup for {host!r} failed: {exc}") from exc
    except ValueError as exc:  # e.g. UnicodeError from IDNA-encoding an invalid host name
        raise FetchError("fetch_failed", f"{ref}: cannot resolve host {host!r}: {exc}") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise FetchError("fetch_failed", f"{ref}: timeout after {policy.timeout_s}s") from exc
    except OSError as exc:
        raise FetchError("fetch_failed", f"{ref}: {type(exc).__name__}: {exc}") from exc


def fetch_image(url: str, policy: FetchPolicy) -> FetchedImage:
    """Download ``url`` into memory under ``policy`` (not decoded, not cached).

    Raises :class:`FetchError` (its ``reason`` names the URL) when the URL is refused, fetching is
    disabled, or the download fails.
    """
    return _fetch_admitted(url, _admit(url, policy), policy)


def resolve_url(ref: str, *, policy: FetchPolicy, max_pixels: int | None) -> ImageResolution:
    """Fetch ``ref`` (or take it from ``policy.cache_dir``), decode it fully and keep it as a file.

    Never raises for bad input; the outcome is described by the returned :class:`ImageResolution`.
    """
    try:
        host = _admit(ref, policy)
        key = _cache_key(ref)
        if policy.cache_dir is not None:
            hit = _cache_lookup(policy.cache_dir, key, max_pixels)
            if hit is not None:
                return hit
            dest = policy.cache_dir
        else:
            dest = _process_download_dir()
        fetched = _fetch_admitted(ref, host, policy)
    except FetchError as exc:
        return ImageResolution(exc.status, reason=exc.reason)  # type: ignore[arg-type]
    try:
        width, height = validate_image(fetched.data, max_pixels=max_pixels, label="downloaded body")
    except UnreadableImageError as exc:
        reason = f"{fetched.url} did not decode as an image: {exc}"
        return ImageResolution("fetch_failed", reason=_naming(ref, reason))
    path = dest / f"{key}{_CONTENT_TYPE_SUFFIX.get(fetched.content_type, '.img')}"
    try:
        write_atomic_bytes(path, fetched.data)
    except OSError as exc:
        return ImageResolution("fetch_failed", reason=f"{ref}: {type(exc).__name__}: {exc}")
    return ImageResolution("ok", path=path, width=width, height=height)


# ------------------------------------------------------------------ file cache


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


def _cache_lookup(cache_dir: Path, key: str, max_pixels: int | None) -> ImageResolution | None:
    for suffix in _CACHE_SUFFIXES:
        cached = cache_dir / f"{key}{suffix}"
        try:
            st = cached.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            continue
        try:
            width, height = validate_image(cached, max_pixels=max_pixels)
        except OSError:
            # Corrupt/stale cache entry: drop it and fetch again.
            try:
                cached.unlink()
            except OSError:
                pass
            continue
        return ImageResolution("ok", path=cached, width=width, height=height)
    return None
