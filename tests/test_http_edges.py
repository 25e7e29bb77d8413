"""Every request gets an HTTP answer: oversized bodies are refused with 413 before they are read, and
malformed multipart or HTTP is a 4xx, never a 5xx or a dropped connection. Checked with raw sockets
(what a broken client or a scanner sends) as well as httpx."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.test_serving import MAX_UPLOAD, PRODUCT_IDS, SCENE_JPEG, FakeProvider, _build, _settings, running


@pytest.fixture(scope="module")
def server():
    with running(FakeProvider({"v1": _build(PRODUCT_IDS)}, "v1"), _settings()) as client:
        yield client


def _raw(client: httpx.Client, payload: bytes, *, read_timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``payload`` as is, then read until the server answers; (status, whole response)."""
    url = client.base_url
    with socket.create_connection((url.host, url.port), timeout=read_timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    response = b"".join(chunks)
    assert response.startswith(b"HTTP/1.1 "), f"no HTTP answer, got {response[:200]!r}"
    return int(response.split(b" ", 2)[1]), response


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def _request(headers: dict[str, str], body: bytes = b"", path: str = "/match") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode() + body


def test_oversized_content_length_is_413_before_the_body_is_sent(server):
    # only the headers go out: a server that waited for the body would time out here
    status, response = _raw(server, _request({"Content-Type": "multipart/form-data; boundary=b",
                                              "Content-Length": str(50 * MAX_UPLOAD)}), read_timeout=10)
    assert status == 413 and b"too large" in response.lower() and b"connection: close" in response.lower()


@pytest.mark.parametrize("content_type,body", [
    ("multipart/form-data; boundary=abc", b"this is not multipart at all"),
    ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
                                          + SCENE_JPEG[:500]),  # no closing boundary
    ("multipart/form-data", b"--abc\r\n\r\n--abc--\r\n"),  # no boundary parameter
    ("multipart/form-data; boundary=abc", b"--abc\r\nno-colon-header\r\n\r\nx\r\n--abc--\r\n"),
    ("application/json", b'{"image": "x"}'),
    ("text/plain", b"\x00\xff" * 100),
], ids=["not-multipart", "unterminated", "no-boundary", "bad-part-header", "json", "binary-text"])
def test_malformed_bodies_are_4xx_never_5xx(server, content_type, body):
    status, response = _raw(server, _request({"Content-Type": content_type, "Content-Length": str(len(body))}, body))
    assert status in (400, 413, 422), response[:500]
    via_httpx = server.post("/match", content=body, headers={"Content-Type": content_type})
    assert via_httpx.status_code == status


def test_garbage_http_gets_a_400_not_a_dropped_connection(server):
    status, _ = _raw(server, b"NOT-HTTP \x00\x01\x02\r\n\r\n")
    assert status == 400


def test_server_still_answers_after_the_abuse(server):
    r = server.post("/match", files={"image": ("scene.jpg", SCENE_JPEG, "image/jpeg")}, data={"k": "3"})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
