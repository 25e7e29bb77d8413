"""Where `/match` answers are cached: an in-process LRU (the embedded default) and, when a Redis URL
is configured (``SCENE_MATCHER_REDIS_URL``), a Redis shared by every replica behind the load balancer.

Keys already name the image bytes' sha256, the request parameters and the served index version
(``http_app._cache_key``), so replicas serving the same index share entries, and a new index version
never hits an old answer; Redis entries expire after ``ttl_s``.

A Redis outage degrades to "no shared cache", never to an error or a slow request: every Redis call
has a short socket timeout, a failure is logged once and counted
(``scene_matcher_shared_cache_errors_total``), and Redis is skipped for ``retry_after_s`` before it is
tried again. The local LRU keeps answering hits meanwhile.

Answers are cached as their encoded JSON (``bytes``), as they are sent: a hit is served without
decoding and re-encoding the answer (encoding it was the largest single cost of a cached request:
14 % of its CPU, measured with py-spy under wrk), and Redis stores the same bytes."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from cachetools import LRUCache

log = logging.getLogger(__name__)

KEY_PREFIX = "scene-matcher:answer:"


def encode_answer(answer: dict) -> bytes:
    """The answer as cached and sent: compact JSON, UTF-8, NaN refused (as ``JSONResponse`` encodes)."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class EncodedAnswer:
    """A cached answer: its encoded JSON (sent as it is) and the product ids it lists, in rank order
    (what the feedback log records for each time it is served, without decoding it)."""

    body: bytes
    product_ids: tuple[str, ...]

    @classmethod
    def of(cls, answer: dict) -> "EncodedAnswer":
        return cls(encode_answer(answer), tuple(str(item["product_id"]) for item in answer.get("items", [])))

    @classmethod
    def parse(cls, raw: bytes) -> "EncodedAnswer | None":
        """From stored bytes; None when they are not an answer (another writer, a truncated value)."""
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                return None
            ids = tuple(str(item["product_id"]) for item in answer.get("items", []))
        except (ValueError, TypeError, KeyError):
            return None
        return cls(bytes(raw), ids)


class LocalAnswerCache:
    """Thread-safe LRU of encoded answers; ``size`` 0 disables it."""

    def __init__(self, size: int) -> None:
        self._entries: LRUCache | None = LRUCache(maxsize=size) if size else None
        self._lock = threading.Lock()

    def get(self, key: str) -> EncodedAnswer | None:
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: EncodedAnswer) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries[key] = value

    def clear(self) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.clear()


class RedisAnswerCache:
    """Answers in Redis as JSON under ``KEY_PREFIX + key`` with a TTL; never raises to the caller."""

    def __init__(self, url: str, *, ttl_s: int = 3600, socket_timeout_s: float = 0.25, retry_after_s: float = 5.0,
                 on_error: Callable[[str], None] | None = None) -> None:
        import redis

        if ttl_s < 1:
            raise ValueError(f"redis answer cache ttl_s must be >= 1, got {ttl_s}")
        self.url = url
        self.ttl_s = int(ttl_s)
        self.retry_after_s = float(retry_after_s)
        self._client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                            socket_connect_timeout=socket_timeout_s, retry_on_timeout=False)
        self._errors = (redis.RedisError, OSError)
        self._on_error = on_error
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """False while skipping Redis after a failure."""
        return time.monotonic() >= self._down_until

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.available:
            return None
        try:
            return fn()
        except self._errors as exc:
            with self._lock:
                first = self.available
                self._down_until = time.monotonic() + self.retry_after_s
            if first:  # once per outage window, not once per request
                log.warning("shared answer cache %s: %s failed (%s: %s); serving without it for %.0f s",
                            _redacted(self.url), what, type(exc).__name__, exc, self.retry_after_s)
            if self._on_error is not None:
                self._on_error(what)
            return None

    def get(self, key: str) -> EncodedAnswer | None:
        raw = self._call("get", lambda: self._client.get(KEY_PREFIX + key))
        # parsed once here, before the local LRU keeps it and it is sent as it is; not an answer (not
        # ours, truncated): a miss, recomputed and overwritten
        return None if raw is None else EncodedAnswer.parse(raw)

    def put(self, key: str, value: EncodedAnswer) -> None:
        self._call("set", lambda: self._client.set(KEY_PREFIX + key, value.body, ex=self.ttl_s))

    def close(self) -> None:
        self._client.close()


class AnswerCache:
    """The local LRU in front of the optional shared Redis cache: a local hit costs no network; a
    Redis hit (another replica's answer) is copied into the local LRU."""

    def __init__(self, local: LocalAnswerCache, shared: RedisAnswerCache | None = None) -> None:
        self.local = local
        self.shared = shared

    def get_shared(self, key: str) -> tuple[EncodedAnswer | None, str | None]:
        """The shared tier, after a miss in ``local`` (a network round trip: callers on an event loop run it
        in a thread): (encoded answer, "shared") or (None, None)."""
        if self.shared is not None:
            value = self.shared.get(key)
            if value is not None:
                self.local.put(key, value)
                return value, "shared"
        return None, None

    def put(self, key: str, value: EncodedAnswer) -> None:
        self.local.put(key, value)
        if self.shared is not None:
            self.shared.put(key, value)

    def clear_local(self) -> None:
        """Drop this process's entries (on an index swap); shared entries expire by TTL, and the version
        in their key keeps them from being served for another index."""
        self.local.clear()

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


def _redacted(url: str) -> str:
    """The URL without a password (it goes into logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
