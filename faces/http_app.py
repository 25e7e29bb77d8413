"""HTTP API for the recommender: ``POST /match`` (scene photo -> products), ``/health``, ``/ready``,
``/metrics`` (Prometheus) and the OpenAPI schema.

Plain Python (FastAPI + uvicorn), no Dagster imports: whatever materializes the index (a Dagster job,
the CLI, a cron) only has to make a :class:`RecommenderProvider` report a new ``version()``; the
server polls it in a background thread, loads the new recommender next to the old one and swaps
them atomically, so requests never see a half-loaded index and a failed load leaves the old one
serving.

Everything an app owns (current recommender, answer cache, Prometheus registry, reload thread) lives
on one :class:`_ServingRuntime` per :func:`create_app` call, so two apps in one process share nothing.

Request flow of ``/match``: body size capped while it streams in (:class:`_BodyLimitMiddleware`),
the upload read in chunks up to ``max_upload_bytes``, answer cache looked up by sha256(bytes) +
parameters + index version, then - off the event loop and behind ``max_concurrency`` model slots -
the image header is checked against ``max_pixels`` *before* any pixel is decoded, the image is
decoded by :func:`scene_assets.images.open_rgb` (the project's one safe decoder: allowed
formats only, EXIF orientation, decompression-bomb guard) and :meth:`Recommender.recommend` runs.
The declared content type of an upload is ignored: Pillow sniffs the bytes.
"""

# No ``from __future__ import annotations`` here: the /match parameters are declared inside
# create_app with per-app limits (``le=settings.max_k``), and FastAPI can only see those when the
# annotations are evaluated where they are written.
import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread
from cachetools import LRUCache
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scene_assets import vocabulary as vocab
from scene_assets.images import (
    FetchError,
    FetchPolicy,
    ImageTooLargeError,
    UnreadableImageError,
    fetch_image,
    open_rgb,
)
from scene_assets.memory import limit_malloc_arenas, release_free_memory
from scene_assets.matching import Recommender
from scene_assets.ranking import FACTORS, ScoringWeights
from scene_assets.recommender_bundle import LoadedRecommender
from scene_assets.scene_analysis import ROOM_TYPES

log = logging.getLogger(__name__)

__all__ = [
    "RecommenderProvider",
    "ServingSettings",
    "create_app",
    "serve",
]

MiB = 1024 * 1024
_READ_CHUNK = 64 * 1024
# Multipart framing + the small text fields of /match on top of the image itself; the streaming
# body cap is max_upload_bytes + this, the exact per-file cap is applied when the upload is read.
_FORM_OVERHEAD_BYTES = 64 * 1024
_MAX_CAPTION_CHARS = 2000
# Per-request scoring weights: each within [0, MAX_REQUEST_WEIGHT]. The score is a weighted mean, so only
# ratios matter; the cap keeps a request from drowning every other factor by orders of magnitude.
MAX_REQUEST_WEIGHT = 10.0
_MAX_WEIGHTS_CHARS = 1000
_MATCH_PATH = "/match"
_CATEGORY_NAMES: frozenset[str] = frozenset(vocab.CATEGORIES) | frozenset(vocab.CATEGORY_GROUP.values())
# Literal over the room vocabulary: FastAPI validates it (422 otherwise) and lists it in OpenAPI.
RoomName = Literal[ROOM_TYPES]  # type: ignore[valid-type]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# provider protocol and settings
# --------------------------------------------------------------------------------------------


@runtime_checkable
class RecommenderProvider(Protocol):
    """Where the server gets its recommender from (the bundle providers: faces/providers.py).

    ``version()`` must be cheap (it is polled every ``reload_interval_s``): an id of the currently
    materialized index, e.g. a Dagster event id or the manifest sha256; ``None`` while nothing is
    materialized yet. ``load()`` is the expensive part (reads the index, builds the encoder) and is
    only called from a background thread when the version differs from the one being served."""

    def version(self) -> str | None: ...

    def load(self) -> LoadedRecommender: ...


def _default_concurrency() -> int:
    # A query already uses every core of a small machine (torch intra-op threads); two at once
    # only interleave and double the memory. Bigger machines get a second slot.
    return 1 if (os.cpu_count() or 1) <= 4 else 2


@dataclass
class ServingSettings:
    """Limits and knobs of one app (all per app; nothing is process-global).

    * ``max_upload_bytes``: largest accepted image upload (and URL download); bigger -> 413. The
      request body is counted while it streams in, so an oversized upload is never buffered whole.
    * ``max_pixels``: largest accepted width x height, checked from the image header before any
      pixel is decoded; bigger (or Pillow's decompression-bomb error) -> 413. Pillow's own global
      limit (``Image.MAX_IMAGE_PIXELS``) applies too when it is lower.
    * ``max_k`` / ``default_k``: bounds and default of the ``k`` form field.
    * ``cache_size``: entries of the LRU answer cache (0 disables it).
    * ``reload_interval_s``: how often ``provider.version()`` is polled by the background thread; a
      changed version is loaded in that thread and swapped in atomically; a failed load keeps the
      old recommender serving (logged, counted in ``scene_matcher_reloads_total{result="failure"}``)
      and the same version is retried with exponential backoff (up to ``reload_max_backoff_s``).
    * ``allow_url_fetch``: accept ``image_url`` instead of an upload. Fetching goes through
      ``scene_assets.images``' SSRF-safe fetcher: private, loopback, link-local (and other non-global)
      addresses are refused, every redirect hop is re-checked, the body is capped.
    * ``url_fetch_timeout_s``: socket timeout of that fetch (the whole fetch is bounded by
      ``4 *`` this, and by ``request_timeout_s``).
    * ``request_timeout_s``: longest a ``/match`` request waits for a free model slot (and for a
      URL fetch); then 503. A model call that has started is not interrupted (threads cannot be),
      its answer is returned and cached. ``None``: wait forever.
    * ``max_concurrency``: model calls (decode + recommend) running at once; the rest queue. Default
      1 on machines with <= 4 cores, else 2.
    """

    max_upload_bytes: int = 10 * MiB
    max_pixels: int = 40_000_000
    max_k: int = 100
    default_k: int = 10
    cache_size: int = 256
    reload_interval_s: float = 10.0
    reload_max_backoff_s: float = 300.0
    allow_url_fetch: bool = False
    url_fetch_timeout_s: float = 10.0
    request_timeout_s: float | None = 60.0
    max_concurrency: int = field(default_factory=_default_concurrency)

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_k", "default_k", "max_concurrency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ServingSettings.{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"ServingSettings.cache_size must be an integer >= 0, got {self.cache_size!r}")
        if self.default_k > self.max_k:
            raise ValueError(f"ServingSettings.default_k ({self.default_k}) > max_k ({self.max_k})")
        for name in ("reload_interval_s", "reload_max_backoff_s", "url_fetch_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServingSettings.{name} must be > 0, got {getattr(self, name)!r}")
        if self.request_timeout_s is not None and not self.request_timeout_s > 0:
            raise ValueError(f"ServingSettings.request_timeout_s must be > 0 or None, got {self.request_timeout_s!r}")


# --------------------------------------------------------------------------------------------
# errors and image handling
# --------------------------------------------------------------------------------------------


class _RequestError(Exception):
    """A client error found in a worker thread; becomes an HTTP error with ``detail``."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def _decode_image(data: bytes, label: str, max_pixels: int) -> Image.Image:
    """Decode untrusted image bytes into an RGB image, or raise :class:`_RequestError`.

    :func:`scene_assets.images.open_rgb` checks the size from the header against ``max_pixels``
    (and Pillow's own limit) before any pixel is decoded, so a decompression bomb is refused (413)
    before it is decoded; then it decodes every pixel (a truncated file fails here, 400).
    ``label`` (the upload's filename) names the image in error messages."""
    if not data:
        raise _RequestError(400, f"{label}: empty image (0 bytes)")
    try:
        return open_rgb(data, max_pixels=max_pixels, label=label)
    except ImageTooLargeError as exc:
        raise _RequestError(413, str(exc)) from exc
    except UnreadableImageError as exc:
        raise _RequestError(400, str(exc)) from exc


def _split_categories(values: list[str] | None) -> list[str]:
    """Repeated fields and comma-separated lists, stripped, de-duplicated, order kept."""
    out: list[str] = []
    for v in values or []:
        for part in str(v).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _request_weights(text: str | None) -> dict[str, float] | None:
    """The ``weights`` form field: a JSON object of factor name -> weight, each a finite number in
    [0, MAX_REQUEST_WEIGHT]; None when absent or empty. Anything else is a 422 saying what is wrong."""
    if text is None or not text.strip():
        return None

    def refuse(reason: str) -> HTTPException:
        return HTTPException(422, f"weights: {reason}; send a JSON object of factor weights, e.g. "
                                  f'{{"visual": 1, "color": 0.5}}, with factors from {list(FACTORS)}, each a '
                                  f"number in [0, {MAX_REQUEST_WEIGHT:g}]")

    try:
        given = json.loads(text)
    except ValueError as exc:
        raise refuse(f"not valid JSON ({exc})") from None
    if not isinstance(given, dict) or not given:
        raise refuse(f"expected a non-empty JSON object, got {json.dumps(given)[:80]}")
    unknown = sorted(set(given) - set(FACTORS))
    if unknown:
        raise refuse(f"unknown factor(s) {unknown}")
    out = {}
    for name, value in sorted(given.items()):
        # bool is an int to Python, NaN / Infinity parse as JSON here, and a huge integer overflows a float.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse(f"{name} must be a finite number, got {json.dumps(value)[:40]}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise refuse(f"{name} must be a finite number, got {json.dumps(value)[:40]}")
        if not 0 <= number <= MAX_REQUEST_WEIGHT:
            raise refuse(f"{name} = {number:g} is outside [0, {MAX_REQUEST_WEIGHT:g}]")
        out[name] = number
    return out


def _request_scoring_weights(recommender: Recommender, overrides: dict[str, float]) -> ScoringWeights:
    """The served weights with ``overrides`` replacing the factors they name. Passed to
    ``Recommender.recommend(weights=...)``, which scores this request with them (the hand-weighted mix,
    like ``--weights``) and leaves the served recommender as it is. Raises ValueError when every
    weight ends up 0."""
    return ScoringWeights(**(recommender.weights.to_dict() | overrides))


def _cache_key(sha: str, version: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps({"image": sha, "version": version, "params": params}, sort_keys=True).encode()
    ).hexdigest()


# --------------------------------------------------------------------------------------------
# per-app runtime
# --------------------------------------------------------------------------------------------


class _Metrics:
    """The app's Prometheus metrics, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("scene_matcher_http_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.match_latency = Histogram(
            "scene_matcher_match_latency_seconds", "Wall time of POST /match requests (all outcomes)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=r)
        self.cache_hits = Counter("scene_matcher_cache_hits", "/match answers served from the cache", registry=r)
        self.cache_misses = Counter("scene_matcher_cache_misses", "/match answers computed (cache misses)",
                                    registry=r)
        self.index_products = Gauge("scene_matcher_index_products", "Products in the served index", registry=r)
        self.index = Info("scene_matcher_index", "Served index version and encoder fingerprint", registry=r)
        self.ready = Gauge("scene_matcher_ready", "1 when a recommender is loaded", registry=r)
        self.reloads = Counter("scene_matcher_reloads", "Recommender loads by result", ["result"], registry=r)
        self.inflight = Gauge("scene_matcher_model_calls_in_progress", "Model calls running now", registry=r)
        for result in ("success", "failure"):
            self.reloads.labels(result=result)  # export zeros before the first reload


def _loaded_fields(loaded: Any) -> tuple[str, Recommender, dict]:
    version, recommender, info = loaded.version, loaded.recommender, loaded.info
    if not version:
        raise ValueError("provider.load() returned an empty version")
    if not hasattr(recommender, "recommend"):
        raise TypeError(f"provider.load() returned {type(recommender).__name__} as recommender")
    return str(version), recommender, dict(info or {})


def _encoder_fingerprint(recommender: Any, info: dict) -> str:
    fp = info.get("encoder_fingerprint")
    if fp:
        return str(fp)
    try:
        return str(recommender.encoder.fingerprint())
    except Exception:  # a fingerprint is nice to show, never worth failing a load for
        return "unknown"


@dataclass(frozen=True)
class _Served:
    """What one request uses from start to end (read once, so a swap mid-request is harmless)."""

    version: str
    recommender: Recommender
    info: dict
    encoder_fingerprint: str
    products: int
    loaded_at: str


class _ServingRuntime:
    """State of one app: the served recommender, the reload thread, the cache and the metrics."""

    def __init__(self, provider: RecommenderProvider, settings: ServingSettings) -> None:
        self.provider = provider
        self.settings = settings
        self.metrics = _Metrics()
        self.served: _Served | None = None
        self.not_ready_reason = "server starting"
        self.last_reload_error: str | None = None
        self._cache: LRUCache | None = LRUCache(maxsize=settings.cache_size) if settings.cache_size else None
        self._cache_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        # Model calls running, and whether any finished since the last heap trim (guarded by the GIL:
        # plain int/bool updates from the event loop, read by the poll thread).
        self._model_calls = 0
        self._dirty_heap = False
        self._last_call_end = 0.0
        self._thread: threading.Thread | None = None
        self._failed_version: str | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.model_slots: anyio.Semaphore | None = None  # made in the lifespan (needs the event loop)

    # -- cache ------------------------------------------------------------------------------
    def cache_get(self, key: str) -> dict | None:
        if self._cache is None:
            return None
        with self._cache_lock:
            return self._cache.get(key)

    def cache_put(self, key: str, value: dict) -> None:
        if self._cache is None:
            return
        with self._cache_lock:
            self._cache[key] = value

    # -- reload -----------------------------------------------------------------------------
    def check_for_update(self) -> bool:
        """Poll the provider once; load and swap in a new version. True when a swap happened.
        Never raises: failures are logged, counted and shown in /ready."""
        with self._reload_lock:  # the initial load and the poller never load twice at once
            try:
                version = self.provider.version()
            except Exception as exc:
                self._record_failure(None, f"provider.version() failed: {type(exc).__name__}: {exc}")
                return False
            if version is None:
                if self.served is None:
                    self.not_ready_reason = "no index materialized yet (provider.version() is None)"
                return False
            version = str(version)
            if self.served is not None and self.served.version == version:
                return False
            if version == self._failed_version and time.monotonic() < self._retry_at:
                return False  # backing off a version that failed to load
            t0 = time.perf_counter()
            try:
                new_version, recommender, info = _loaded_fields(self.provider.load())
                fp = _encoder_fingerprint(recommender, info)
                products = int(info.get("products") or len(recommender.product_ids))
            except Exception as exc:
                log.exception("loading recommender version %s failed; %s", version,
                              "keeping version " + self.served.version if self.served else "nothing to serve")
                self._record_failure(version, f"loading version {version} failed: {type(exc).__name__}: {exc}")
                return False
            old = self.served
            self.served = _Served(new_version, recommender, info, fp, products,
                                  datetime.now(timezone.utc).isoformat(timespec="seconds"))
            # Entries of the old version can never be hit again (the version is in the key).
            with self._cache_lock:
                if self._cache is not None:
                    self._cache.clear()
            self._failed_version, self._failures, self.last_reload_error = None, 0, None
            self.not_ready_reason = ""
            m = self.metrics
            m.reloads.labels(result="success").inc()
            m.index_products.set(products)
            m.index.info({"version": new_version, "encoder_fingerprint": fp})
            m.ready.set(1)
            log.info("serving recommender version %s (%d products, encoder %s; was %s) loaded in %.1f s",
                     new_version, products, fp, old.version if old else None, time.perf_counter() - t0)
            del old
            release_free_memory()  # the load's temporaries (Parquet buffers, the old index) go back to the OS
            return True

    def _record_failure(self, version: str | None, message: str) -> None:
        self.metrics.reloads.labels(result="failure").inc()
        self.last_reload_error = message
        if version is not None:
            self._failures = self._failures + 1 if version == self._failed_version else 1
            self._failed_version = version
            backoff = min(self.settings.reload_interval_s * 2 ** (self._failures - 1),
                          self.settings.reload_max_backoff_s)
            self._retry_at = time.monotonic() + backoff
        if self.served is None:
            self.not_ready_reason = message
        log.warning("%s", message)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            quiet = self._model_calls == 0 and time.monotonic() - self._last_call_end >= 1.0
            if not self.check_for_update() and self._dirty_heap and quiet:
                # While idle, hand heap pages freed by finished requests back to the OS (CNN
                # activations at many image sizes; ~120 MiB in bench_serving). Never during a model
                # call: malloc_trim holds the allocator lock and would stall it.
                self._dirty_heap = False
                release_free_memory()

    def start_polling(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="scene-matcher-reload", daemon=True)
        self._thread.start()

    def stop_polling(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # a load() in progress cannot be interrupted; it is a daemon
                log.warning("reload thread still busy (loading?) at shutdown; not waiting for it")
            self._thread = None

    # -- model calls ------------------------------------------------------------------------
    async def run_model(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread once one of ``max_concurrency`` slots is free.

        Only the wait for a slot is bounded by ``request_timeout_s``: the thread is never abandoned
        mid-call, because an abandoned call would keep its CPU/GPU while a new one starts and an
        overloaded server would pile up work instead of shedding it."""
        assert self.model_slots is not None, "app lifespan not started"
        timeout = self.settings.request_timeout_s
        try:
            with anyio.fail_after(timeout):
                await self.model_slots.acquire()
        except TimeoutError:
            raise HTTPException(503, f"server busy: no model slot free within {timeout} s; retry later",
                                headers={"Retry-After": "1"}) from None
        try:
            self.metrics.inflight.inc()
            self._model_calls += 1
            try:
                return await anyio.to_thread.run_sync(fn)
            finally:
                self._model_calls -= 1
                self._dirty_heap = True
                self._last_call_end = time.monotonic()
                self.metrics.inflight.dec()
        finally:
            self.model_slots.release()


# --------------------------------------------------------------------------------------------
# ASGI middleware
# --------------------------------------------------------------------------------------------


class _BodyLimitMiddleware:
    """Caps the request body of ``POST /match`` while it streams in.

    A declared ``Content-Length`` over the cap is refused before reading anything; otherwise the
    bytes are counted as they arrive (chunked uploads too) and the read fails with a 413 as soon as
    the cap is passed, so the multipart parser never spools an unbounded body. (FastAPI's own
    ``max_body_size`` would answer in plain text; this keeps the JSON error shape.)"""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def _detail(self) -> str:
        return f"request body too large: uploads are limited to {self.max_upload_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != _MATCH_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.max_body_bytes:
            response = JSONResponse({"detail": self._detail()}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        total = 0

        async def limited_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_body_bytes:
                    # FastAPI re-raises HTTPExceptions raised while it parses the form.
                    raise HTTPException(413, self._detail(), headers={"Connection": "close"})
            return message

        await self.app(scope, limited_receive, send)


class _MetricsMiddleware:
    """Counts every response by route template and status; times ``/match``."""

    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # the route template, not the raw path: unknown paths must not create new label values.
            # /match may be answered before routing (the body limit's early 413): name it directly.
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or (_MATCH_PATH if scope["path"] == _MATCH_PATH else "unmatched")
            if endpoint == _MATCH_PATH:
                self.metrics.match_latency.observe(time.perf_counter() - t0)
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()


# --------------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------------


_MATCH_DESCRIPTION = """Recommend catalog products for a scene photo.

Send the image as a multipart file in `image` (any name / declared type: the bytes are sniffed), or
its `http(s)` address in `image_url` when the server allows URL fetching. The answer is the
recommendation result (`items` with `product_id`, `score`, `confidence`, per-factor `factors`, the
matched `region`; the `scene` analysis; `calibrated` and `confidence_method` say whether
`confidence` is a calibrated probability) plus `index_version`, `cached` and `took_ms`.

Errors: 400 empty / undecodable / truncated image, or an `image_url` that is disabled or refused;
413 upload or pixel count over the limits; 422 invalid form fields (`k` range, `room`, `weights`, unknown
categories, no image); 503 no index loaded yet, or server busy."""


def create_app(provider: RecommenderProvider, settings: ServingSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``provider``'s recommender (see the module docstring).

    The lifespan does the initial load (the app starts even when it fails or nothing is
    materialized yet: ``/ready`` then answers 503 with the reason) and runs the reload thread.
    The app's runtime state is reachable as ``app.state.serving`` (for diagnostics)."""
    settings = settings or ServingSettings()
    runtime = _ServingRuntime(provider, settings)
    metrics = runtime.metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.model_slots = anyio.Semaphore(settings.max_concurrency)
        # In a worker thread: a load may take long and must not stall the event loop of a server
        # that shares the loop with other apps.
        await anyio.to_thread.run_sync(runtime.check_for_update)
        if runtime.served is None:
            log.warning("starting without a recommender: %s", runtime.not_ready_reason)
        runtime.start_polling()
        try:
            yield
        finally:
            runtime.stop_polling()

    app = FastAPI(
        title="scene-matcher",
        summary="Recommends catalog products that fit an interior scene photo",
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = runtime
    # Added last = outermost: the metrics middleware also counts the 413s of the body limit.
    app.add_middleware(_BodyLimitMiddleware, max_body_bytes=settings.max_upload_bytes + _FORM_OVERHEAD_BYTES,
                       max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    def json_error(status: int, detail: Any, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(_RequestError)
    async def _request_error(request: Request, exc: _RequestError) -> JSONResponse:
        return json_error(exc.status_code, exc.detail)

    async def read_upload(upload: UploadFile) -> bytes:
        """The upload's bytes, read in chunks and refused (413) past ``max_upload_bytes``."""
        cap = settings.max_upload_bytes
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await upload.read(min(_READ_CHUNK, cap + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise _RequestError(413, f"{upload.filename or 'upload'}: image is larger than the "
                                         f"{cap}-byte upload limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def fetch_url(url: str) -> tuple[bytes, str]:
        """Download ``image_url`` into memory with the SSRF-safe fetcher of ``scene_assets.images``."""
        timeout = settings.url_fetch_timeout_s
        total = 4 * timeout if settings.request_timeout_s is None else min(4 * timeout, settings.request_timeout_s)
        policy = FetchPolicy(enabled=True, timeout_s=timeout, total_timeout_s=total,
                             max_bytes=settings.max_upload_bytes, allow_private=False, max_redirects=3)

        def fetch() -> bytes:
            try:
                return fetch_image(url, policy).data
            except FetchError as exc:
                raise _RequestError(400, f"image_url {exc.status}: {exc.reason}") from exc

        return await anyio.to_thread.run_sync(fetch), url

    def no_image() -> RequestValidationError:
        return RequestValidationError([{
            "type": "missing", "loc": ("body", "image"), "input": None,
            "msg": "Field required: upload the scene photo as a file in the 'image' form field"
                   + (" (or give image_url)" if settings.allow_url_fetch else ""),
        }])

    @app.post(
        _MATCH_PATH,
        summary="Recommend products for a scene photo",
        description=_MATCH_DESCRIPTION,
        responses={
            400: {"description": "Empty, undecodable or truncated image; image_url disabled or refused"},
            413: {"description": "Upload larger than max_upload_bytes, or more pixels than max_pixels"},
            422: {"description": "Invalid form fields"},
            503: {"description": "No recommender loaded yet, or server busy"},
        },
    )
    async def match(
        image: Annotated[UploadFile | None, File(
            description=f"The scene photo (JPEG, PNG, WebP, GIF, BMP or TIFF; at most "
                        f"{settings.max_upload_bytes} bytes and {settings.max_pixels} pixels). "
                        "Required unless image_url is given.")] = None,
        caption: Annotated[str | None, Form(
            max_length=_MAX_CAPTION_CHARS,
            description="Optional text describing the scene or what is wanted; adds a text-match factor.")] = None,
        k: Annotated[int, Form(ge=1, le=settings.max_k,
                               description="Number of products to return.")] = settings.default_k,
        include_categories: Annotated[list[str] | None, Form(
            description="Only these categories (or category groups) of scene_assets.vocabulary; "
                        "comma-separated and/or repeated.")] = None,
        exclude_categories: Annotated[list[str] | None, Form(
            description="Never these categories (or groups); comma-separated and/or repeated.")] = None,
        room: Annotated[RoomName | None, Form(
            description="The scene's room type, if known: keeps only products that belong there and "
                        "replaces the predicted room.")] = None,
        image_url: Annotated[str | None, Form(
            description="http(s) address of the scene photo instead of an upload; only when the server "
                        "enables URL fetching (private, loopback and link-local addresses are refused).",
        )] = None,
        weights: Annotated[str | None, Form(
            max_length=_MAX_WEIGHTS_CHARS,
            description="Optional scoring weights for this request: a JSON object of factor name -> weight, "
                        f"e.g. {{\"visual\": 1, \"color\": 0.5}}. Factors: {', '.join(FACTORS)}; each weight a "
                        f"finite number in [0, {MAX_REQUEST_WEIGHT:g}], not all 0. Named factors replace the served "
                        "weights, the others keep them; given weights use the weighted mix, not the learned "
                        "ranker.")] = None,
    ) -> JSONResponse:
        t0 = time.perf_counter()
        served = runtime.served  # one read: a reload during this request does not mix versions
        if served is None:
            raise HTTPException(503, f"not ready: no recommender loaded ({runtime.not_ready_reason})",
                                headers={"Retry-After": "5"})
        include = _split_categories(include_categories)
        exclude = _split_categories(exclude_categories)
        unknown = sorted(set(include + exclude) - _CATEGORY_NAMES)
        if unknown:
            raise HTTPException(422, f"unknown categories {unknown}; use the categories of "
                                     "scene_assets.vocabulary.CATEGORIES or their groups")
        caption = caption.strip() if caption and caption.strip() else None
        overrides = _request_weights(weights)
        recommender = served.recommender
        try:
            request_weights = None if overrides is None else _request_scoring_weights(recommender, overrides)
        except ValueError as exc:  # every weight 0
            raise HTTPException(422, f"weights: {exc}") from None

        url = image_url.strip() if image_url and image_url.strip() else None
        if url is not None:
            if not settings.allow_url_fetch:
                raise HTTPException(400, "image_url is disabled on this server (allow_url_fetch is off); "
                                         "upload the image in the 'image' form field instead")
            if image is not None:
                raise HTTPException(400, "give either an 'image' upload or an 'image_url', not both")
            data, label = await fetch_url(url)
        elif image is None:
            raise no_image()
        else:
            label = repr(image.filename) if image.filename else "uploaded image"
            data = await read_upload(image)
        if not data:
            raise _RequestError(400, f"{label}: empty image (0 bytes)")

        params = {"k": k, "caption": caption, "include_categories": sorted(include) or None,
                  "exclude_categories": sorted(exclude) or None, "room": room, "weights": overrides}
        key = _cache_key(hashlib.sha256(data).hexdigest(), served.version, params)
        result = runtime.cache_get(key)
        cached = result is not None
        if cached:
            metrics.cache_hits.inc()
        else:
            metrics.cache_misses.inc()

            def work() -> dict:
                img = _decode_image(data, label, settings.max_pixels)
                try:
                    res = recommender.recommend(
                        img, k=k, caption=caption, include_categories=include or None,
                        exclude_categories=exclude or None, room=room, weights=request_weights)
                except ValueError as exc:  # engine-side validation of the request
                    raise _RequestError(422, str(exc)) from exc
                return res.to_dict()

            result = await runtime.run_model(work)
            runtime.cache_put(key, result)
        body = dict(result)
        body["index_version"] = served.version
        body["cached"] = cached
        body["took_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return JSONResponse(body)

    @app.get("/health", summary="Liveness: 200 while the process runs")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: 200 with the served index when a recommender is loaded, else 503",
             responses={503: {"description": "No recommender loaded yet"}})
    async def ready() -> JSONResponse:
        served = runtime.served
        if served is None:
            return JSONResponse({"ready": False, "reason": runtime.not_ready_reason}, status_code=503)
        return JSONResponse(jsonable_encoder({
            "ready": True,
            "version": served.version,
            "products": served.products,
            "encoder_fingerprint": served.encoder_fingerprint,
            "loaded_at": served.loaded_at,
            "calibrated": bool(getattr(served.recommender, "calibrated", False)),
            "info": served.info,
            "last_reload_error": runtime.last_reload_error,
        }))

    @app.get("/metrics", summary="Prometheus metrics of this app", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(
    provider: RecommenderProvider,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServingSettings | None = None,
    log_level: str = "info",
) -> None:
    """Run the API with uvicorn until interrupted (one process: the recommender, its cache and the
    reload thread live in it; scale out with more processes behind a balancer)."""
    import uvicorn

    # Before any worker thread exists: per-thread malloc arenas otherwise hold hundreds of MB of
    # freed CNN activations (measured: bench/bench_serving.py).
    limit_malloc_arenas(2)
    uvicorn.run(create_app(provider, settings), host=host, port=port, log_level=log_level)
