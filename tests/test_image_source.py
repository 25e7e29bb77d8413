"""Tests for scene_assets.images: the decoder, local references and the URL fetcher.

Every bad input is generated in tmp_path; every HTTP server is a local
``http.server`` thread on 127.0.0.1 that the test starts and shuts down.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from scene_assets.images import fetch as image_fetch
from scene_assets.images import (
    FetchError,
    FetchPolicy,
    ImageResolution,
    ImageTooLargeError,
    UnreadableImageError,
    address_refusal_reason,
    fetch_image,
    is_allowed_address,
    open_rgb,
    resolve_image,
    validate_image,
)

# ------------------------------------------------------------------ helpers


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _noisy_rgb(size=(64, 48), seed=0) -> Image.Image:
    rnd = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rnd.randrange(256) for _ in range(size[0] * size[1] * 3)))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares width x height (a decompression bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _resolve(ref, tmp_path: Path, **kw) -> ImageResolution:
    kw.setdefault("policy", FetchPolicy())
    return resolve_image(ref, base_dir=tmp_path, **kw)


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if anything tries to open a TCP connection."""
    attempts: list = []

    def boom(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"connection attempted: {args!r}")

    monkeypatch.setattr(image_fetch.socket, "create_connection", boom)
    return attempts


# ------------------------------------------------------------ local: good files


def test_ok_jpeg(tmp_path):
    Image.new("RGB", (32, 24), (200, 10, 10)).save(tmp_path / "a.jpg", "JPEG")
    res = _resolve("a.jpg", tmp_path)
    assert res.status == "ok" and res.ok
    assert res.reason == ""
    assert res.path == (tmp_path / "a.jpg").resolve()
    assert (res.width, res.height) == (32, 24)
    im = open_rgb(res.path)
    assert im.mode == "RGB" and im.size == (32, 24)


def test_png_with_alpha_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    im.putpixel((1, 0), (255, 0, 0, 255))  # opaque red
    im.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black
    im.save(tmp_path / "alpha.png")
    res = _resolve("alpha.png", tmp_path)
    assert res.status == "ok", res.reason
    rgb = open_rgb(res.path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (255, 0, 0)
    assert all(120 <= c <= 135 for c in rgb.getpixel((2, 0)))


@pytest.mark.parametrize(
    "name, make, expect",
    [
        ("cmyk.jpg", lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "red"),
        ("gray.png", lambda: Image.new("L", (8, 8), 77), (77, 77, 77)),
        ("gray.jpg", lambda: Image.new("L", (8, 8), 77), "gray77"),
        ("la.png", lambda: Image.new("LA", (8, 8), (0, 0)), (255, 255, 255)),
        ("bilevel.png", lambda: Image.new("1", (8, 8), 1), (255, 255, 255)),
        ("palette.png", lambda: Image.new("RGB", (8, 8), (0, 0, 255)).convert("P"), (0, 0, 255)),
    ],
)
def test_modes_convert_to_rgb(tmp_path, name, make, expect):
    make().save(tmp_path / name)
    res = _resolve(name, tmp_path)
    assert res.status == "ok", res.reason
    rgb = open_rgb(res.path)
    assert rgb.mode == "RGB" and rgb.size == (8, 8)
    px = rgb.getpixel((4, 4))
    if expect == "red":
        assert px[0] > 200 and px[1] < 60 and px[2] < 60, px
    elif expect == "gray77":
        assert all(abs(c - 77) <= 3 for c in px), px
    else:
        assert px == expect


def test_palette_with_transparency_composited_on_white(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.putpixel((1, 1), 1)
    im.save(tmp_path / "ptrans.png", transparency=0)
    rgb = open_rgb(tmp_path / "ptrans.png")
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 1)) == (0, 255, 0)


def test_16bit_png_scaled_not_clipped(tmp_path):
    im = Image.new("I;16", (3, 1))
    im.putpixel((0, 0), 65535)
    im.putpixel((1, 0), 32768)
    im.putpixel((2, 0), 0)
    im.save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")
    res = _resolve("deep.png", tmp_path)
    assert res.status == "ok", res.reason
    rgb = open_rgb(res.path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (128, 128, 128)  # naive convert would clip to 255
    assert rgb.getpixel((2, 0)) == (0, 0, 0)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as check:
        assert check.n_frames == 3
    res = _resolve("anim.gif", tmp_path)
    assert res.status == "ok", res.reason
    r, g, b = open_rgb(res.path).getpixel((5, 5))
    assert r > 200 and g < 50 and b < 50


def test_exif_orientation_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    res = _resolve("rot.jpg", tmp_path)
    assert res.status == "ok", res.reason
    assert (res.width, res.height) == (20, 40)
    rgb = open_rgb(res.path)
    assert rgb.size == (20, 40)
    # After a 90° clockwise turn the left band is on top.
    assert sum(rgb.getpixel((10, 2))) > 600
    assert sum(rgb.getpixel((10, 37))) < 100


def test_absolute_path_and_data_root_inside(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (5, 5)).save(tmp_path / "imgs" / "x.png")
    os.symlink(tmp_path / "imgs" / "x.png", tmp_path / "link.png")  # symlink staying inside root
    res = resolve_image(str(tmp_path / "imgs" / "x.png"), base_dir=Path("/nonexistent"), policy=FetchPolicy(), data_root=tmp_path)
    assert res.status == "ok", res.reason
    res = _resolve("link.png", tmp_path, data_root=tmp_path)
    assert res.status == "ok", res.reason
    assert res.path == (tmp_path / "imgs" / "x.png").resolve()


# ------------------------------------------------------------- local: bad files


def test_missing_and_empty_ref(tmp_path):
    res = _resolve("nope.jpg", tmp_path)
    assert res.status == "missing" and "nope.jpg" in res.reason and res.path is None
    for ref in (None, "", "   "):
        res = _resolve(ref, tmp_path)
        assert res.status == "missing" and res.reason


def test_broken_symlink_is_missing(tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    res = _resolve("dangling.jpg", tmp_path, data_root=tmp_path)
    assert res.status == "missing" and "dangling.jpg" in res.reason


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    _noisy_rgb((128, 128)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    res = _resolve("trunc.jpg", tmp_path)
    assert res.status == "unreadable"
    assert "trunc.jpg" in res.reason and "decode" in res.reason
    with pytest.raises(UnreadableImageError):
        open_rgb(tmp_path / "trunc.jpg")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    res = _resolve("empty.jpg", tmp_path)
    assert res.status == "unreadable" and "empty" in res.reason and "empty.jpg" in res.reason


def test_text_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not an image\n")
    res = _resolve("notes.jpg", tmp_path)
    assert res.status == "unreadable" and "notes.jpg" in res.reason
    with pytest.raises(UnreadableImageError):
        open_rgb(tmp_path / "notes.jpg")


def test_directory(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    res = _resolve("folder.jpg", tmp_path)
    assert res.status == "unreadable" and "directory" in res.reason and "folder.jpg" in res.reason


def test_symlink_escaping_data_root(tmp_path):
    outside = tmp_path / "outside"
    root = tmp_path / "root"
    outside.mkdir()
    root.mkdir()
    Image.new("RGB", (5, 5)).save(outside / "secret.png")
    os.symlink(outside / "secret.png", root / "evil.png")
    res = resolve_image("evil.png", base_dir=root, policy=FetchPolicy(), data_root=root)
    assert res.status == "refused" and "outside data root" in res.reason and "evil.png" in res.reason
    assert res.path is None
    # ../ traversal is refused the same way, and without data_root the file is fine.
    res = resolve_image("../outside/secret.png", base_dir=root, policy=FetchPolicy(), data_root=root)
    assert res.status == "refused"
    assert resolve_image("evil.png", base_dir=root, policy=FetchPolicy()).status == "ok"


@pytest.mark.parametrize(
    "size",
    [
        (100_000, 100_000),  # > 2 * Pillow's limit: Pillow's DecompressionBombError
        (10_000, 10_000),  # 100 MP: Pillow warning (turned into error) and our 64 MP limit
        (9_000, 8_000),  # 72 MP: only our 64 MP limit catches it
    ],
)
def test_decompression_bomb_header(tmp_path, size):
    (tmp_path / "bomb.png").write_bytes(_png_header_only(*size))
    assert (tmp_path / "bomb.png").stat().st_size < 200
    res = _resolve("bomb.png", tmp_path)
    assert res.status == "unreadable"
    assert "bomb.png" in res.reason and "decompression bomb" in res.reason
    with pytest.raises(UnreadableImageError):
        open_rgb(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS  # global protection untouched


def test_max_pixels_parameter(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    assert _resolve("small.png", tmp_path, max_pixels=100).status == "unreadable"
    with pytest.raises(UnreadableImageError):
        open_rgb(tmp_path / "small.png", max_pixels=100)
    assert open_rgb(tmp_path / "small.png").size == (20, 20)


def test_unsupported_format_not_opened(tmp_path):
    # EPS would invoke Ghostscript; it must never be handed to a plugin.
    (tmp_path / "x.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    res = _resolve("x.eps", tmp_path)
    assert res.status == "unreadable" and "x.eps" in res.reason


# ------------------------------------------------- one decoder: path, bytes, file object


class _Unseekable(io.RawIOBase):
    """A read-only stream that cannot seek (a socket or a pipe, as far as the decoder can tell)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.fixture
def no_temp_files(monkeypatch):
    """Fail the test if anything creates a temp file or folder."""
    import tempfile

    def boom(*args, **kwargs):
        raise AssertionError("a temp file was created")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile",
                 "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, boom)


def test_path_bytes_and_file_objects_decode_alike(tmp_path, no_temp_files):
    im = Image.new("RGBA", (6, 4), (0, 0, 255, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))  # transparent: composited on white whatever the input
    data = _png_bytes(im)
    (tmp_path / "a.png").write_bytes(data)
    expected = open_rgb(tmp_path / "a.png").tobytes()
    with open(tmp_path / "a.png", "rb") as handle:
        from_handle = open_rgb(handle)
        assert not handle.closed  # the caller's file stays the caller's
    for source in (str(tmp_path / "a.png"), data, bytearray(data), memoryview(data), io.BytesIO(data),
                   _Unseekable(data)):
        decoded = open_rgb(source)
        assert decoded.mode == "RGB" and decoded.tobytes() == expected, type(source)
    assert from_handle.tobytes() == expected
    assert from_handle.getpixel((0, 0)) == (255, 255, 255)
    for source in (data, io.BytesIO(data), _Unseekable(data)):
        assert validate_image(source) == (6, 4)


def test_file_object_is_read_from_its_position(tmp_path):
    data = _png_bytes(Image.new("RGB", (3, 5), (9, 9, 9)))
    stream = io.BytesIO(b"prefix" + data)
    stream.seek(len(b"prefix"))
    assert validate_image(stream) == (3, 5)  # decoded twice (verify, then load), both from there
    stream.seek(len(b"prefix"))
    assert open_rgb(stream).size == (3, 5)


def test_errors_name_the_label_the_file_or_the_stream(tmp_path):
    text = b"not an image at all\n" * 10
    with pytest.raises(UnreadableImageError, match="upload.jpg: not a recognised image"):
        open_rgb(text, label="upload.jpg")
    with pytest.raises(UnreadableImageError, match="image bytes: not a recognised image"):
        open_rgb(text)
    (tmp_path / "notes.jpg").write_bytes(text)
    with open(tmp_path / "notes.jpg", "rb") as handle:
        with pytest.raises(UnreadableImageError, match="notes.jpg: not a recognised image"):
            validate_image(handle)
    half = _png_bytes(_noisy_rgb())[:300]
    with pytest.raises(UnreadableImageError, match="half.png: image failed to decode"):
        validate_image(half, label="half.png")


def test_too_many_pixels_is_its_own_error(tmp_path):
    data = _png_bytes(Image.new("RGB", (20, 20)))
    with pytest.raises(ImageTooLargeError, match=r"big.png: image is 20x20 = 400 pixels, over the 100-pixel limit"):
        open_rgb(data, max_pixels=100, label="big.png")
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        validate_image(_png_header_only(30000, 30000))  # Pillow's own bomb error, from the header
    assert issubclass(ImageTooLargeError, UnreadableImageError)
    with pytest.raises(UnreadableImageError) as not_image:
        open_rgb(b"plain text")
    assert not isinstance(not_image.value, ImageTooLargeError)


# ---------------------------------------------------------- URLs without network


def test_url_with_fetching_disabled(tmp_path, no_connect):
    res = _resolve("https://example.com/a.jpg", tmp_path)
    assert res.status == "not_fetched" and "https://example.com/a.jpg" in res.reason
    assert not no_connect


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://10.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/a.jpg",
        "http://[::ffff:127.0.0.1]/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://localhost/a.jpg",
        "http://2130706433/a.jpg",  # decimal-encoded 127.0.0.1, caught after getaddrinfo
    ],
)
def test_private_urls_refused_without_connecting(tmp_path, no_connect, url):
    res = _resolve(url, tmp_path, policy=FetchPolicy(enabled=True))
    assert res.status == "refused", res
    assert url in res.reason
    assert not no_connect


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "data:image/png;base64,AAAA", "gopher://x/"])
def test_bad_schemes_refused(tmp_path, no_connect, url):
    res = _resolve(url, tmp_path, policy=FetchPolicy(enabled=True))
    assert res.status == "refused" and "scheme" in res.reason


def test_resolver_result_with_any_private_address_refused(tmp_path, monkeypatch, no_connect):
    seen = []

    def fake_resolve(host, port):
        seen.append((host, port))
        return ["93.184.216.34", "10.1.2.3"]

    monkeypatch.setattr(image_fetch, "resolve_host", fake_resolve)
    res = _resolve("http://mixed.example.test/a.jpg", tmp_path, policy=FetchPolicy(enabled=True))
    assert res.status == "refused" and "10.1.2.3" in res.reason
    assert seen == [("mixed.example.test", 80)]
    assert not no_connect


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "100.64.0.1",
        "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "[::1]", "not-an-ip", "",
    ],
)
def test_address_checker_refuses(addr):
    assert address_refusal_reason(addr) is not None
    assert not is_allowed_address(addr)


@pytest.mark.parametrize("addr", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_address_checker_allows_public(addr):
    assert address_refusal_reason(addr) is None
    assert is_allowed_address(addr)


def test_allow_private_flag_on_checker():
    assert is_allowed_address("127.0.0.1", allow_private=True)
    assert not is_allowed_address("bogus", allow_private=True)


def test_policy_defaults_and_validation(tmp_path):
    p = FetchPolicy()
    assert p.enabled is False and p.allow_private is False
    assert p.timeout_s == 10 and p.max_bytes == 20 * 1024 * 1024 and p.max_redirects == 3
    assert p.allowed_content_types == {"image/jpeg", "image/png", "image/webp", "image/gif"}
    assert FetchPolicy(cache_dir=str(tmp_path)).cache_dir == tmp_path
    with pytest.raises(ValueError):
        FetchPolicy(timeout_s=0)
    with pytest.raises(ValueError):
        FetchPolicy(max_bytes=0)


# --------------------------------------------------------------- local server


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Host")))
        route = srv.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_error(404)
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _send(handler, body: bytes, ctype: str, status=200, length=True):
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def local_server(routes):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.routes = routes
    server.requests = []
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


PRIVATE_OK = FetchPolicy(enabled=True, allow_private=True, timeout_s=3)
RED_PNG = _png_bytes(Image.new("RGB", (12, 7), (255, 0, 0)))


def test_fetch_ok_and_cached(tmp_path):
    cache = tmp_path / "cache"
    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=3, cache_dir=cache)
    routes = {"/img.png": lambda h: _send(h, RED_PNG, "image/png; charset=binary")}
    with local_server(routes) as (srv, base):
        url = f"{base}/img.png"
        first = _resolve(url, tmp_path, policy=policy)
        assert first.status == "ok", first.reason
        assert (first.width, first.height) == (12, 7)
        assert first.path == cache / (hashlib.sha256(url.encode()).hexdigest() + ".png")
        assert first.path.read_bytes() == RED_PNG
        second = _resolve(url, tmp_path, policy=policy)
        assert second == first
        assert len(srv.requests) == 1  # served from cache
        assert open_rgb(second.path).getpixel((0, 0)) == (255, 0, 0)
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temp leftovers


def test_fetch_without_cache_dir_refetches(tmp_path):
    with local_server({"/img.png": lambda h: _send(h, RED_PNG, "image/png")}) as (srv, base):
        a = _resolve(f"{base}/img.png", tmp_path, policy=PRIVATE_OK)
        b = _resolve(f"{base}/img.png", tmp_path, policy=PRIVATE_OK)
        assert a.status == b.status == "ok"
        assert a.path.is_file()
        assert len(srv.requests) == 2


def test_corrupt_cache_entry_is_refetched(tmp_path):
    cache = tmp_path / "cache"
    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=3, cache_dir=cache)
    with local_server({"/img.png": lambda h: _send(h, RED_PNG, "image/png")}) as (srv, base):
        url = f"{base}/img.png"
        cache.mkdir()
        (cache / (hashlib.sha256(url.encode()).hexdigest() + ".png")).write_bytes(b"garbage")
        res = _resolve(url, tmp_path, policy=policy)
        assert res.status == "ok" and res.path.read_bytes() == RED_PNG
        assert len(srv.requests) == 1


def test_connects_to_checked_ip_with_host_header(tmp_path, monkeypatch):
    monkeypatch.setattr(image_fetch, "resolve_host", lambda host, port: ["127.0.0.1"])
    with local_server({"/img.png": lambda h: _send(h, RED_PNG, "image/png")}) as (srv, base):
        port = srv.server_address[1]
        res = _resolve(f"http://images.example.test:{port}/img.png", tmp_path, policy=PRIVATE_OK)
        assert res.status == "ok", res.reason
        assert srv.requests == [("/img.png", f"images.example.test:{port}")]


@pytest.mark.parametrize(
    "route, needle",
    [
        (lambda h: _send(h, b"<html><body>hi</body></html>", "text/html"), "content-type"),
        (lambda h: _send(h, b"<html><body>not a jpeg</body></html>", "image/jpeg"), "decode"),
        (lambda h: _send(h, RED_PNG, "image/svg+xml"), "content-type"),
        (lambda h: _send(h, b"", "image/png"), "empty"),
        (lambda h: _send(h, b"nope", "text/plain", status=500), "HTTP 500"),
    ],
)
def test_fetch_failures(tmp_path, route, needle):
    cache = tmp_path / "cache"
    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=3, cache_dir=cache)
    with local_server({"/x": route}) as (srv, base):
        res = _resolve(f"{base}/x", tmp_path, policy=policy)
    assert res.status == "fetch_failed", res
    assert needle in res.reason and f"{base}/x" in res.reason
    assert res.path is None
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached


def test_404(tmp_path):
    with local_server({}) as (srv, base):
        res = _resolve(f"{base}/missing.png", tmp_path, policy=PRIVATE_OK)
    assert res.status == "fetch_failed" and "404" in res.reason


def test_too_large_streamed_body_stops_early(tmp_path):
    sent = {"bytes": 0}
    done = threading.Event()
    total_offered = 256 * 1024 * 1024

    def endless(h):
        try:
            h.send_response(200)
            h.send_header("Content-Type", "image/png")  # no Content-Length
            h.end_headers()
            chunk = b"\0" * 65536
            while sent["bytes"] < total_offered and not h.server.stop.is_set():
                h.wfile.write(chunk)
                sent["bytes"] += len(chunk)
        finally:
            done.set()

    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=3, max_bytes=100_000)
    with local_server({"/big": endless}) as (srv, base):
        t0 = time.monotonic()
        res = _resolve(f"{base}/big", tmp_path, policy=policy)
        elapsed = time.monotonic() - t0
        assert done.wait(5)
    assert res.status == "fetch_failed" and "max_bytes" in res.reason
    assert elapsed < 2
    assert sent["bytes"] < 64 * 1024 * 1024  # the client hung up long before the end


def test_declared_content_length_too_large(tmp_path):
    def huge(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(10**10))
        h.end_headers()
        h.wfile.flush()
        h.server.stop.wait(5)  # never sends the body

    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=3, max_bytes=1000)
    with local_server({"/huge": huge}) as (srv, base):
        t0 = time.monotonic()
        res = _resolve(f"{base}/huge", tmp_path, policy=policy)
        assert time.monotonic() - t0 < 1.5
    assert res.status == "fetch_failed" and "Content-Length" in res.reason


def test_server_never_answers_times_out(tmp_path):
    def silent(h):
        h.server.stop.wait(5)  # sleeps longer than the client timeout; released at shutdown

    policy = FetchPolicy(enabled=True, allow_private=True, timeout_s=0.5)
    with local_server({"/slow": silent}) as (srv, base):
        t0 = time.monotonic()
        res = _resolve(f"{base}/slow", tmp_path, policy=policy)
        elapsed = time.monotonic() - t0
    assert res.status == "fetch_failed" and "timeout" in res.reason
    assert 0.4 < elapsed < 2.5


def test_connection_refused_is_fetch_failed(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = _resolve(f"http://127.0.0.1:{port}/a.png", tmp_path, policy=PRIVATE_OK)
    assert res.status == "fetch_failed"


# ---------------------------------------------------------------- redirects


def _redirect(location, status=302):
    def route(h):
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def test_fetch_image_keeps_the_body_in_memory(tmp_path, no_temp_files):
    routes = {"/r": _redirect("/img.png"), "/img.png": lambda h: _send(h, RED_PNG, "image/png")}
    with local_server(routes) as (srv, base):
        fetched = fetch_image(f"{base}/r", PRIVATE_OK)
    assert fetched.data == RED_PNG and fetched.content_type == "image/png"
    assert fetched.url == f"{base}/img.png"  # where it finally came from
    assert open_rgb(fetched.data).getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(FetchError) as refused:
        fetch_image("http://10.1.2.3/scene.jpg", FetchPolicy(enabled=True))
    assert refused.value.status == "refused" and "private" in refused.value.reason
    with pytest.raises(FetchError) as disabled:
        fetch_image("https://example.com/a.jpg", FetchPolicy())
    assert disabled.value.status == "not_fetched"


def test_redirect_followed(tmp_path):
    routes = {"/r": _redirect("/img.png", 301), "/img.png": lambda h: _send(h, RED_PNG, "image/png")}
    with local_server(routes) as (srv, base):
        res = _resolve(f"{base}/r", tmp_path, policy=PRIVATE_OK)
        assert res.status == "ok", res.reason
        assert [p for p, _ in srv.requests] == ["/r", "/img.png"]


def test_too_many_redirects(tmp_path):
    with local_server({"/loop": _redirect("/loop")}) as (srv, base):
        res = _resolve(f"{base}/loop", tmp_path, policy=FetchPolicy(enabled=True, allow_private=True, max_redirects=2))
        assert res.status == "fetch_failed" and "too many redirects" in res.reason
        assert len(srv.requests) == 3


def test_redirect_to_bad_scheme_refused(tmp_path):
    with local_server({"/r": _redirect("file:///etc/passwd")}) as (srv, base):
        res = _resolve(f"{base}/r", tmp_path, policy=PRIVATE_OK)
    assert res.status == "refused" and "scheme" in res.reason


def test_redirect_hop_to_private_address_refused(tmp_path, monkeypatch):
    """First hop is a 'public' name (served by loopback, which the patched checker
    lets through); the redirect target resolves to a private address and must be
    refused before any connection to it is made."""
    real_checker = image_fetch.address_refusal_reason

    def checker(addr):
        return None if addr == "127.0.0.1" else real_checker(addr)

    lookups = []

    def fake_resolve(host, port):
        lookups.append(host)
        return {"public.example.test": ["127.0.0.1"], "internal.example.test": ["10.20.30.40"]}[host]

    monkeypatch.setattr(image_fetch, "address_refusal_reason", checker)
    monkeypatch.setattr(image_fetch, "resolve_host", fake_resolve)
    connects = []
    real_create = socket.create_connection

    def tracking_create(addr, *a, **kw):
        connects.append(addr)
        return real_create(addr, *a, **kw)

    monkeypatch.setattr(image_fetch.socket, "create_connection", tracking_create)

    policy = FetchPolicy(enabled=True, timeout_s=3)  # allow_private=False
    with local_server({"/r": _redirect("http://internal.example.test/secret.png")}) as (srv, base):
        port = srv.server_address[1]
        res = _resolve(f"http://public.example.test:{port}/r", tmp_path, policy=policy)
        assert [p for p, _ in srv.requests] == ["/r"]
    assert res.status == "refused", res
    assert "10.20.30.40" in res.reason
    assert lookups == ["public.example.test", "internal.example.test"]
    assert connects == [("127.0.0.1", port)]


def test_redirect_to_literal_private_ip_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(image_fetch, "resolve_host", lambda host, port: ["127.0.0.1"])
    real_checker = image_fetch.address_refusal_reason
    monkeypatch.setattr(
        image_fetch, "address_refusal_reason", lambda a: None if a == "127.0.0.1" else real_checker(a)
    )
    with local_server({"/r": _redirect("http://169.254.169.254/latest/meta-data/")}) as (srv, base):
        port = srv.server_address[1]
        res = _resolve(f"http://cdn.example.test:{port}/r", tmp_path, policy=FetchPolicy(enabled=True, timeout_s=3))
    assert res.status == "refused" and "169.254.169.254" in res.reason


def test_fifo_is_not_opened(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block forever
    res = _resolve("pipe.jpg", tmp_path)
    assert res.status == "unreadable" and "not a regular file" in res.reason


def test_invalid_host_name_does_not_raise(tmp_path):
    res = _resolve("http://" + "a" * 64 + ".example/x.jpg", tmp_path, policy=FetchPolicy(enabled=True))
    assert res.status == "fetch_failed" and res.reason


def test_https_to_plain_http_server_fails_cleanly(tmp_path):
    with local_server({"/img.png": lambda h: _send(h, RED_PNG, "image/png")}) as (srv, base):
        url = base.replace("http://", "https://") + "/img.png"
        res = _resolve(url, tmp_path, policy=PRIVATE_OK)
    assert res.status == "fetch_failed" and url in res.reason
