"""HTTP API for the recommender: ``POST /match`` (scene photo -> products), ``/health``, ``/ready``,
``/metrics`` (Prometheus) and the OpenAPI schema.

Plain Python (FastAPI + uvicorn), no Dagster imports: whatever materializes the index (a Dagster job,
the CLI, a cron) only has to make a :class:`RecommenderProvider` report a new ``version()``; the
server polls it in a background thread, loads the new recommender next to the old one and swaps
them atomically, so requests never see a half-loaded index and a failed load leaves the old one
serving.

Everything an app owns (current recommender, answer cache, Prometheus registry, reload thread) lives
on one :class:`ServingRuntime` per :func:`create_app` call, so two apps in one process share nothing.

Request flow of ``/match``: body size capped while it streams in (:class:`BodyLimitMiddleware`),
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
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faces.answer_cache import EncodedAnswer
from faces.http_runtime import (
    DEFAULT_VARIANT,
    FEEDBACK_MAX_BYTES,
    FEEDBACK_PATH,
    MATCH_PATH,
    BodyLimitMiddleware,
    MetricsMiddleware,
    RecommenderProvider,
    ServingRuntime,
    ServingSettings,
    observe_answer,
)
from scene_assets import vocabulary as vocab
from scene_assets.images import (
    FetchError,
    FetchPolicy,
    ImageTooLargeError,
    UnreadableImageError,
    fetch_image,
    open_rgb,
)
from scene_assets.matching import Recommender
from scene_assets.memory import limit_malloc_arenas
from scene_assets.ranking import FACTORS, RankingConfig, ScoringWeights
from scene_assets.ranking.config import FusionChoice
from scene_assets.feedback import EVENTS, FeedbackError, ServedRecommendation, UnknownRecommendation, new_recommendation_id
from scene_assets.scene_analysis import ROOM_TYPES

log = logging.getLogger(__name__)

__all__ = [
    "RecommenderProvider",
    "ServingSettings",
    "create_app",
    "serve",
]

_READ_CHUNK = 64 * 1024
# Multipart framing + the small text fields of /match on top of the image itself; the streaming
# body cap is max_upload_bytes + this, the exact per-file cap is applied when the upload is read.
_FORM_OVERHEAD_BYTES = 64 * 1024
_MAX_CAPTION_CHARS = 2000
_MAX_SESSION_CHARS = 128
# Per-request scoring weights: each within [0, MAX_REQUEST_WEIGHT]. The score is a weighted mean, so only
# ratios matter; the cap keeps a request from drowning every other factor by orders of magnitude.
MAX_REQUEST_WEIGHT = 10.0
_MAX_WEIGHTS_CHARS = 1000
_CATEGORY_NAMES: frozenset[str] = frozenset(vocab.CATEGORIES) | frozenset(vocab.CATEGORY_GROUP.values())
# Literal over the room vocabulary: FastAPI validates it (422 otherwise) and lists it in OpenAPI.
RoomName = Literal[ROOM_TYPES]  # type: ignore[valid-type]
_RANKING_DEFAULTS = RankingConfig()


def _form_limits(name: str) -> dict:
    """A /match form field's description and numeric limits, taken from RankingConfig (so FastAPI
    answers 422 and documents the same bounds the engine enforces)."""
    help_ = RankingConfig.field_help(name)
    return {"description": help_["description"], **{k: help_[k] for k in ("ge", "le") if k in help_}}


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


class FeedbackEvent(BaseModel):
    """One shopper event on a product of a served recommendation (``POST /feedback``, JSON)."""

    model_config = ConfigDict(extra="forbid")
    recommendation_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{32}$", description="The recommendation_id of the /match answer.")
    scene_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$",
        description="Instead of recommendation_id: sha256 of the scene photo's bytes (its latest recommendation, "
                    "in session_id when given).")
    product_id: str = Field(min_length=1, max_length=256, description="A product the recommendation listed.")
    event: Literal[EVENTS] = Field(description="impression, click, add_to_cart or purchase.")
    session_id: str | None = Field(None, max_length=_MAX_SESSION_CHARS, description="Optional shopper session id.")

    @model_validator(mode="after")
    def _one_reference(self) -> "FeedbackEvent":
        if (self.recommendation_id is None) == (self.scene_sha256 is None):
            raise ValueError("give exactly one of recommendation_id and scene_sha256")
        return self


def answer_response(encoded: bytes, *, index_version: str, cached: bool, took_ms: float,
                    recommendation_id: str | None = None, variant: str | None = None) -> Response:
    """A ``/match`` response from an encoded answer (``answer_cache.encode_answer``: a JSON object) with
    this request's own fields spliced in front of its members, so a cached answer is sent without being
    decoded and encoded again."""
    if not encoded.startswith(b"{"):
        raise ValueError("an encoded answer is a JSON object")
    fields: dict[str, Any] = {"index_version": index_version, "cached": cached, "took_ms": took_ms}
    if recommendation_id is not None:
        fields.update(recommendation_id=recommendation_id, variant=variant)
    head = json.dumps(fields, separators=(",", ":")).encode()
    members = encoded[1:]
    body = head if members.strip() == b"}" else head[:-1] + b"," + members
    return Response(body, media_type="application/json")


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
    runtime = ServingRuntime(provider, settings)
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
            runtime.close()

    app = FastAPI(
        title="scene-matcher",
        summary="Recommends catalog products that fit an interior scene photo",
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = runtime
    # Added last = outermost: the metrics middleware also counts the 413s of the body limit.
    app.add_middleware(BodyLimitMiddleware, limits={
        MATCH_PATH: (settings.max_upload_bytes + _FORM_OVERHEAD_BYTES,
                     f"request body too large: uploads are limited to {settings.max_upload_bytes} bytes"),
        FEEDBACK_PATH: (FEEDBACK_MAX_BYTES, f"request body too large: a feedback event is at most {FEEDBACK_MAX_BYTES} bytes")})
    app.add_middleware(MetricsMiddleware, metrics=metrics)

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
        MATCH_PATH,
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
        fusion: Annotated[FusionChoice, Form(
            description=RankingConfig.field_help("fusion")["description"])] = _RANKING_DEFAULTS.fusion,
        diversity: Annotated[Literal["mmr", "category_cap", "none"], Form(
            description=RankingConfig.field_help("diversity")["description"])] = _RANKING_DEFAULTS.diversity or "none",
        mmr_lambda: Annotated[float, Form(
            **_form_limits("mmr_lambda"))] = _RANKING_DEFAULTS.mmr_lambda,
        category_cap: Annotated[int, Form(
            **_form_limits("category_cap"))] = _RANKING_DEFAULTS.category_cap,
        collapse_variants: Annotated[bool, Form(
            description=RankingConfig.field_help("collapse_variants")["description"])] = (
                _RANKING_DEFAULTS.collapse_variants),
        session_id: Annotated[str | None, Form(
            max_length=_MAX_SESSION_CHARS,
            description="Optional shopper session id, recorded with the recommendation and its feedback "
                        "(POST /feedback).")] = None,
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
        session = session_id.strip() if session_id and session_id.strip() else None
        variant = settings.variants.assign(session) if settings.variants is not None else None
        variant_name = variant.name if variant is not None else DEFAULT_VARIANT
        overrides = _request_weights(weights)
        if overrides is None and variant is not None and variant.weights:
            overrides = dict(variant.weights)  # the shopper's A/B variant; weights sent with the request win
        if fusion == "auto" and variant is not None and variant.fusion is not None:
            fusion = variant.fusion
        recommender, version = served.for_variant(variant_name)
        try:
            request_weights = None if overrides is None else _request_scoring_weights(recommender, overrides)
        except ValueError as exc:  # every weight 0
            raise HTTPException(422, f"weights: {exc}") from None
        try:  # the same typed config, with the same limits, as the CLI and the export job
            ranking = RankingConfig(weights=request_weights, fusion=fusion, diversity=diversity, mmr_lambda=mmr_lambda,
                                    category_cap=category_cap, collapse_variants=collapse_variants)
        except ValueError as exc:
            raise HTTPException(422, f"ranking options: {exc}") from None

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
                  "exclude_categories": sorted(exclude) or None, "room": room, "weights": overrides,
                  "ranking": ranking.model_dump(exclude={"weights"}), "variant": variant_name}
        scene_sha256 = hashlib.sha256(data).hexdigest()
        key = _cache_key(scene_sha256, version, params)
        result = await runtime.cache_get(key)
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
                        exclude_categories=exclude or None, room=room, **ranking.recommend_options())
                except ValueError as exc:  # engine-side validation of the request
                    raise _RequestError(422, str(exc)) from exc
                observe_answer(metrics, res)
                return res.to_dict()

            result = EncodedAnswer.of(await runtime.run_model(work))
            await runtime.cache_put(key, result)
        # every answer served (cached ones too) is a recommendation shoppers may act on (POST /feedback)
        recommendation_id = new_recommendation_id()
        if runtime.recommendation_log is not None:
            runtime.recommendation_log.submit(ServedRecommendation(
                recommendation_id, scene_sha256, version, variant_name, result.product_ids, session,
                photo=data))
        return answer_response(result.body, index_version=version, cached=cached,
                               took_ms=round((time.perf_counter() - t0) * 1000, 2),
                               recommendation_id=recommendation_id, variant=variant_name)

    @app.post(
        FEEDBACK_PATH,
        status_code=202,
        summary="Record what a shopper did with a recommended product",
        responses={
            404: {"description": "No recommendation with that id (or none served for that scene)"},
            413: {"description": f"Body over {FEEDBACK_MAX_BYTES} bytes"},
            422: {"description": "Not an event of a product the recommendation listed, or invalid fields"},
            503: {"description": "Feedback capture is off on this server"},
        },
    )
    async def feedback(event: FeedbackEvent) -> JSONResponse:
        store, served_log = runtime.feedback, runtime.recommendation_log
        if store is None or served_log is None:
            raise HTTPException(503, "feedback capture is off on this server (serve --feedback-db-url)")

        def record() -> int:
            kwargs = event.model_dump()
            try:
                return store.append_event(**kwargs)
            except UnknownRecommendation:
                # the recommendation may still be queued for the database (RecommendationLog): write it, retry
                served_log.flush()
                return store.append_event(**kwargs)

        try:  # committed before the 202: an acknowledged event survives the process being killed
            event_id = await anyio.to_thread.run_sync(record)
        except FeedbackError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return JSONResponse({"event_id": event_id}, status_code=202)

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
    access_log: bool = False,
) -> None:
    """Run the API with uvicorn until interrupted (one process: the recommender, its cache and the
    reload thread live in it; scale out with more processes behind a balancer). ``access_log``: uvicorn's
    line per request (off by default: ``/metrics`` counts requests by endpoint and status, and a balancer in
    front logs them; the line cost ~3 % of a cached answer's CPU)."""
    import uvicorn

    # Before any worker thread exists: per-thread malloc arenas otherwise hold hundreds of MB of
    # freed CNN activations (measured: bench/bench_serving.py).
    limit_malloc_arenas(2)
    uvicorn.run(create_app(provider, settings), host=host, port=port, log_level=log_level, access_log=access_log)
