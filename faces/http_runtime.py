"""The serving runtime behind the HTTP app (faces/http_app.py): where the recommender comes from
(:class:`RecommenderProvider`), the per-app limits (:class:`ServingSettings`), the served state with its
reload thread, answer cache, model slots and Prometheus metrics (:class:`ServingRuntime`), and the two
ASGI middlewares (body cap while streaming, per-endpoint metrics). No Dagster imports."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faces.answer_cache import AnswerCache, EncodedAnswer, LocalAnswerCache, RedisAnswerCache
from scene_assets.feedback import FeedbackStore, RecommendationLog, ScenePhotoArchive
from scene_assets.ranking.variants import VariantPlan
from scene_assets.matching import Recommender
from scene_assets.memory import release_free_memory
from scene_assets.recommender_bundle import LoadedRecommender, with_scorer

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MATCH_PATH = "/match"  # the route with its own latency histogram; it and /feedback have streamed body caps
FEEDBACK_PATH = "/feedback"
FEEDBACK_MAX_BYTES = 4096  # one event is a few hundred bytes
# the scoring configuration that serves every answer until A/B variants exist (#20)
DEFAULT_VARIANT = "default"

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
    * ``cache_size``: entries of the in-process LRU answer cache (0 disables it).
    * ``redis_url``: a Redis shared by the replicas for answers (``faces.answer_cache``; the CLI reads
      ``$SCENE_MATCHER_REDIS_URL``); None = only the in-process cache. ``redis_ttl_s``: entries' lifetime;
      ``redis_retry_after_s``: how long Redis is skipped after a failed call.
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
    * ``feedback_db_url``: where served recommendations and shopper feedback are recorded
      (``scene_assets.feedback``: a ``sqlite:///`` file, or PostgreSQL; the CLI defaults it to
      ``$SCENE_MATCHER_FEEDBACK_DB_URL``, else a SQLite file under the data folder); None = ``/feedback``
      answers 503 and nothing is recorded. ``scene_photos_dir``: where the scene photos of recorded
      recommendations are kept (content-addressed; ``scene_assets.feedback.ScenePhotoArchive``); None = not kept.
    * ``variants``: an A/B plan (``scene_assets.ranking.variants.VariantPlan``): each ``/match`` with a
      ``session_id`` is scored with its shopper's variant (stable hash of the session id); None = every
      answer is the ``default`` variant.
    """

    max_upload_bytes: int = 10 * MiB
    max_pixels: int = 40_000_000
    max_k: int = 100
    default_k: int = 10
    cache_size: int = 256
    redis_url: str | None = None
    redis_ttl_s: int = 3600
    redis_retry_after_s: float = 5.0
    reload_interval_s: float = 10.0
    reload_max_backoff_s: float = 300.0
    allow_url_fetch: bool = False
    url_fetch_timeout_s: float = 10.0
    request_timeout_s: float | None = 60.0
    max_concurrency: int = field(default_factory=_default_concurrency)
    feedback_db_url: str | None = None
    scene_photos_dir: str | None = None
    variants: VariantPlan | None = None

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_k", "default_k", "max_concurrency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ServingSettings.{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"ServingSettings.cache_size must be an integer >= 0, got {self.cache_size!r}")
        if isinstance(self.redis_ttl_s, bool) or not isinstance(self.redis_ttl_s, int) or self.redis_ttl_s < 1:
            raise ValueError(f"ServingSettings.redis_ttl_s must be an integer >= 1, got {self.redis_ttl_s!r}")
        if self.redis_url is not None and not str(self.redis_url).startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"ServingSettings.redis_url must be a redis://, rediss:// or unix:// URL, got {self.redis_url!r}")
        if self.default_k > self.max_k:
            raise ValueError(f"ServingSettings.default_k ({self.default_k}) > max_k ({self.max_k})")
        for name in ("reload_interval_s", "reload_max_backoff_s", "url_fetch_timeout_s", "redis_retry_after_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServingSettings.{name} must be > 0, got {getattr(self, name)!r}")
        if self.request_timeout_s is not None and not self.request_timeout_s > 0:
            raise ValueError(f"ServingSettings.request_timeout_s must be > 0 or None, got {self.request_timeout_s!r}")


# --------------------------------------------------------------------------------------------
# per-app runtime
# --------------------------------------------------------------------------------------------


class Metrics:
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
        self.shared_cache_hits = Counter("scene_matcher_shared_cache_hits",
                                         "/match answers found in the shared Redis cache (another replica's)", registry=r)
        self.shared_cache_errors = Counter("scene_matcher_shared_cache_errors",
                                           "Failed calls to the shared Redis cache (served without it)",
                                           ["operation"], registry=r)
        self.index_products = Gauge("scene_matcher_index_products", "Products in the served index", registry=r)
        self.index = Info("scene_matcher_index", "Served index version and encoder fingerprint", registry=r)
        self.ready = Gauge("scene_matcher_ready", "1 when a recommender is loaded", registry=r)
        self.reloads = Counter("scene_matcher_reloads", "Recommender loads by result", ["result"], registry=r)
        self.inflight = Gauge("scene_matcher_model_calls_in_progress", "Model calls running now", registry=r)
        # What the alert rules and the dashboard (deploy/monitoring/) watch besides requests and latency
        self.stage_seconds = Histogram(
            "scene_matcher_stage_seconds", "Time of each stage of a computed /match answer", ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r)
        self.candidate_depth = Histogram(
            "scene_matcher_result_candidate_depth",
            "Where each returned product sat among the stage-1 candidates by visual similarity (fraction; "
            "1.0 = the last candidate). Many results near 1.0: stage 1 returns too few candidates",
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0), registry=r)
        self.top1_confidence = Histogram(
            "scene_matcher_top1_confidence", "Confidence of the first result of each computed /match answer",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=r)
        self.index_written = Gauge("scene_matcher_index_written_timestamp_seconds",
                                   "When the served index bundle was written (Unix time)", registry=r)
        for result in ("success", "failure"):
            self.reloads.labels(result=result)  # export zeros before the first reload
        for operation in ("get", "set"):
            self.shared_cache_errors.labels(operation=operation)


def observe_answer(metrics: Metrics, result: Any) -> None:
    """Record a computed answer's stage times, candidate depths and top-1 confidence."""
    for stage, ms in result.timings_ms.items():
        if stage != "total":
            metrics.stage_seconds.labels(stage=stage).observe(ms / 1000)
    for depth in result.candidate_depths:
        metrics.candidate_depth.observe(depth)
    if result.items:
        metrics.top1_confidence.observe(result.items[0].confidence)


def _unix_time(text: Any) -> float | None:
    """Unix time of an ISO-8601 timestamp (``2026-12-06T14:00:00Z``), None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
class Served:
    """What one request uses from start to end (read once, so a swap mid-request is harmless)."""

    version: str
    recommender: Recommender
    info: dict
    encoder_fingerprint: str
    products: int
    loaded_at: str
    # A/B variants pinned to a learned scorer version: name -> (that view of the recommender, its version)
    variants: Mapping[str, tuple[Recommender, str]] = field(default_factory=dict)

    def for_variant(self, name: str) -> tuple[Recommender, str]:
        """(recommender, version) a variant is served by: its pinned scorer's view, else the served one."""
        return self.variants.get(name) or (self.recommender, self.version)


class ServingRuntime:
    """State of one app: the served recommender, the reload thread, the cache and the metrics."""

    def __init__(self, provider: RecommenderProvider, settings: ServingSettings) -> None:
        self.provider = provider
        self.settings = settings
        self.metrics = Metrics()
        self.served: Served | None = None
        self.not_ready_reason = "server starting"
        self.last_reload_error: str | None = None
        shared = None
        if settings.redis_url:
            shared = RedisAnswerCache(settings.redis_url, ttl_s=settings.redis_ttl_s,
                                      retry_after_s=settings.redis_retry_after_s,
                                      on_error=lambda op: self.metrics.shared_cache_errors.labels(operation=op).inc())
        self._cache = AnswerCache(LocalAnswerCache(settings.cache_size), shared)
        self.feedback: FeedbackStore | None = None
        self.recommendation_log: RecommendationLog | None = None
        if settings.feedback_db_url:
            self.feedback = FeedbackStore(settings.feedback_db_url)
            self.recommendation_log = RecommendationLog(
                self.feedback, photos=ScenePhotoArchive(settings.scene_photos_dir) if settings.scene_photos_dir else None)
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
    async def cache_get(self, key: str) -> EncodedAnswer | None:
        """The encoded answer cached under ``key``: the local LRU on the event loop (a dict access), then
        Redis, when configured, in a worker thread (a network round trip must not block the loop)."""
        value = self._cache.local.get(key)
        if value is not None or self._cache.shared is None:
            return value
        value, tier = await anyio.to_thread.run_sync(self._cache.get_shared, key)
        if tier == "shared":
            self.metrics.shared_cache_hits.inc()
        return value

    async def cache_put(self, key: str, value: EncodedAnswer) -> None:
        if self._cache.shared is None:
            self._cache.put(key, value)
        else:
            await anyio.to_thread.run_sync(self._cache.put, key, value)

    def close(self) -> None:
        self._cache.close()
        if self.recommendation_log is not None:
            self.recommendation_log.close()  # writes what is queued
        if self.feedback is not None:
            self.feedback.close()

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
                loaded = self.provider.load()
                new_version, recommender, info = _loaded_fields(loaded)
                fp = _encoder_fingerprint(recommender, info)
                products = int(info.get("products") or len(recommender.product_ids))
                # a variant's pinned scorer that cannot serve this bundle fails the whole load (the old
                # version keeps serving): half an A/B test must not silently fall back to the control
                pinned = self.settings.variants.pinned_scorers if self.settings.variants is not None else {}
                variants = {}
                for name, folder in pinned.items():
                    view = with_scorer(loaded, folder)
                    variants[name] = (view.recommender, view.version)
            except Exception as exc:
                log.exception("loading recommender version %s failed; %s", version,
                              "keeping version " + self.served.version if self.served else "nothing to serve")
                self._record_failure(version, f"loading version {version} failed: {type(exc).__name__}: {exc}")
                return False
            old = self.served
            if variants:
                info = info | {"variant_versions": {name: version for name, (_, version) in variants.items()}}
            self.served = Served(new_version, recommender, info, fp, products,
                                  datetime.now(timezone.utc).isoformat(timespec="seconds"), variants)
            # Entries of the old version can never be hit again (the version is in the key).
            self._cache.clear_local()
            self._failed_version, self._failures, self.last_reload_error = None, 0, None
            self.not_ready_reason = ""
            m = self.metrics
            m.reloads.labels(result="success").inc()
            m.index_products.set(products)
            m.index.info({"version": new_version, "encoder_fingerprint": fp})
            written = _unix_time(info.get("written_at"))
            if written is not None:
                m.index_written.set(written)
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
                # malloc_trim only: a full gc.collect() here held the GIL ~0.4 s under load (py-spy),
                # stalling every cached answer meanwhile; the finished requests left no cycles to collect
                release_free_memory(collect=False)

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


class BodyLimitMiddleware:
    """Caps the request body of the POST routes in ``limits`` (path -> (bytes, what the 413 says)) while
    it streams in.

    A declared ``Content-Length`` over the cap is refused before reading anything; otherwise the
    bytes are counted as they arrive (chunked uploads too) and the read fails with a 413 as soon as
    the cap is passed, so the multipart parser never spools an unbounded body. (FastAPI's own
    ``max_body_size`` would answer in plain text; this keeps the JSON error shape.)"""

    def __init__(self, app: ASGIApp, limits: dict[str, tuple[int, str]]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        max_body_bytes, detail = limit
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > max_body_bytes:
            response = JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        total = 0

        async def limited_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > max_body_bytes:
                    # FastAPI re-raises HTTPExceptions raised while it parses the form.
                    raise HTTPException(413, detail, headers={"Connection": "close"})
            return message

        await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Counts every response by route template and status; times ``/match``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
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
            endpoint = getattr(route, "path", None) or (MATCH_PATH if scope["path"] == MATCH_PATH else "unmatched")
            if endpoint == MATCH_PATH:
                self.metrics.match_latency.observe(time.perf_counter() - t0)
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
