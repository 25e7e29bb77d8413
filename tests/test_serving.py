"""Tests for faces.http_app against a REAL uvicorn server on a free loopback port, spoken to over
HTTP with httpx. The recommenders are tiny (FakeEncoder, a synthetic 14-product catalog), so the whole
file runs in seconds and needs no model weights."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import polars as pl
import pytest
import uvicorn
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families

from scene_assets.encoders import FakeEncoder
from scene_assets.matching import Recommender
from scene_assets.ranking import FACTORS
from scene_assets.regions import RegionConfig
from scene_assets.scene_analysis import ROOM_TYPES
from faces.http_app import RecommenderProvider, ServingSettings, create_app
from scene_assets.recommender_bundle import LoadedRecommender
from tests.drawing import product_image

FAST_REGIONS = RegionConfig(short_side=64, max_long_side=128, grids=(2,))

# (product_id, category, colour, shape)
_PRODUCTS = [
    ("lamp-1", "lighting", (240, 205, 50), "disc"),
    ("lamp-2", "lighting", (245, 245, 242), "triangle"),
    ("lamp-3", "lighting", (25, 25, 25), "cross"),
    ("lamp-4", "lighting", (190, 35, 45), "ring"),
    ("sofa-1", "seating", (40, 80, 170), "box"),
    ("chair-1", "seating", (190, 35, 45), "triangle"),
    ("chair-2", "seating", (110, 72, 42), "cross"),
    ("table-1", "tables", (110, 72, 42), "box"),
    ("table-2", "tables", (25, 25, 25), "disc"),
    ("rug-1", "rugs", (235, 160, 180), "stripes"),
    ("rug-2", "rugs", (190, 35, 45), "stripes"),
    ("towel-1", "towels", (245, 245, 242), "stripes"),
    ("vase-1", "vases", (70, 135, 70), "disc"),
    ("bed-1", "beds", (245, 245, 242), "box"),
]
PRODUCT_IDS = [p[0] for p in _PRODUCTS]
V2_IDS = [f"{pid}-v2" for pid in PRODUCT_IDS]

# Small limits so the 413 paths are cheap to hit; the scene below is 480x320 = 153,600 pixels.
MAX_UPLOAD = 200_000
MAX_PIXELS = 300_000


_IMAGES = {pid: product_image(colour, shape, i) for i, (pid, _c, colour, shape) in enumerate(_PRODUCTS)}


def _scene_bytes(pids=("sofa-1", "lamp-1", "table-1", "rug-1", "chair-1", "vase-1"), fmt="JPEG",
                 tint: int = 0) -> bytes:
    scene = Image.new("RGB", (480, 320), (236, 232, 224))
    for n, pid in enumerate(pids):
        scene.paste(_IMAGES[pid], ((n % 3) * 160, (n // 3) * 160))
    if tint:  # a coloured corner makes otherwise equal scenes distinct images
        ImageDraw.Draw(scene).rectangle([0, 0, 40, 40], fill=(30 * tint % 256, 90, 200))
    buf = io.BytesIO()
    scene.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


SCENE_JPEG = _scene_bytes()


def _build(ids: list[str]) -> Recommender:
    enc = FakeEncoder(dim=16)
    catalog = pl.DataFrame({
        "product_id": ids,
        "title": [pid.upper() for pid in ids],
        "category": [p[1] for p in _PRODUCTS],
        "product_type": [p[1] for p in _PRODUCTS],
        "colors": [[] for _ in _PRODUCTS],
    })
    vectors = enc.encode_images([_IMAGES[p[0]] for p in _PRODUCTS])
    text = enc.encode_texts([f"{pid} {p[1]}" for pid, p in zip(ids, _PRODUCTS)])
    return Recommender.from_vectors(enc, catalog, ids, vectors, space="joint", center=False,
                                    text_vectors=(ids, text), region_config=FAST_REGIONS)


@pytest.fixture(scope="module")
def recommenders() -> dict[str, Recommender]:
    """v1: the catalog's ids; v2: the same products under ids ending in '-v2' (so answers show
    which recommender produced them)."""
    return {"v1": _build(PRODUCT_IDS), "v2": _build(V2_IDS)}


class FakeProvider:
    """A provider whose version the test sets; versions in ``fail`` raise on load."""

    def __init__(self, recommenders: dict[str, Recommender], version: str | None) -> None:
        self.recommenders = recommenders
        self.current = version
        self.fail: set[str] = set()
        self.loads: list[str] = []

    def version(self) -> str | None:
        return self.current

    def load(self) -> LoadedRecommender:
        v = self.current
        self.loads.append(v)
        if v in self.fail:
            raise RuntimeError(f"simulated broken index {v}")
        rec = self.recommenders[v]
        return LoadedRecommender(v, rec, {"index_dir": f"/indexes/{v}", "products": len(rec.product_ids)})


@contextlib.contextmanager
def running(provider: RecommenderProvider, settings: ServingSettings) -> Iterator[httpx.Client]:
    """A real uvicorn server for ``create_app(provider, settings)`` on a free loopback port, in a
    background thread; yields an httpx client for it and shuts the server down afterwards."""
    app = create_app(provider, settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.01)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


def _settings(**overrides) -> ServingSettings:
    base = dict(max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS, max_k=20, default_k=5, cache_size=64,
                reload_interval_s=0.1, max_concurrency=2, request_timeout_s=20.0)
    base.update(overrides)
    return ServingSettings(**base)


@pytest.fixture(scope="module")
def client(recommenders) -> Iterator[httpx.Client]:
    """The shared server: version v1 loaded, never reloaded."""
    with running(FakeProvider(recommenders, "v1"), _settings()) as c:
        yield c


def _post(client: httpx.Client, data: bytes = SCENE_JPEG, filename: str = "scene.jpg",
          content_type: str = "image/jpeg", **fields) -> httpx.Response:
    return client.post("/match", files={"image": (filename, data, content_type)}, data=fields)


def _metric_samples(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _sample(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# happy path


def test_match_returns_products_of_the_catalog(client):
    r = _post(client, k="4")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 4
    ids = [it["product_id"] for it in body["items"]]
    assert len(set(ids)) == 4 and set(ids) <= set(PRODUCT_IDS)
    for it in body["items"]:
        assert set(it["factors"]) == set(FACTORS)
        assert 0.0 <= it["confidence"] <= 1.0 and 0.0 <= it["score"] <= 1.0
        assert it["title"] == it["product_id"].upper()
    assert body["calibrated"] is False and body["confidence_method"].startswith("logistic")
    assert body["index_version"] == "v1" and body["cached"] is False
    assert body["took_ms"] >= 0 and body["params"]["k"] == 4
    assert [it["rank"] for it in body["items"]] == [1, 2, 3, 4]


def test_default_k_and_declared_type_is_not_trusted(client):
    png = _scene_bytes(fmt="PNG")
    r = _post(client, png, filename="scene.txt", content_type="text/plain")  # bytes are a PNG
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 5  # ServingSettings.default_k of the test app


def test_caption_and_filters_are_passed_through(client):
    caption = "a cosy reading corner with warm light"
    r = _post(client, caption=caption, include_categories="lighting", k="3")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {it["category"] for it in body["items"]} == {"lighting"} and len(body["items"]) == 3
    assert body["params"]["caption"] == caption and body["scene"]["caption"] == caption
    assert body["params"]["include_categories"] == ["lighting"]

    # repeated and comma-separated values; excludes; room restricts and overrides the room posterior
    r = client.post("/match", files={"image": ("scene.jpg", SCENE_JPEG, "image/jpeg")},
                    data={"include_categories": ["lighting,seating", "tables"], "exclude_categories": "seating",
                          "room": "Living Room", "k": "10"})
    assert r.status_code == 200, r.text
    body = r.json()
    cats = {it["category"] for it in body["items"]}
    assert cats and cats <= {"lighting", "tables"}
    assert body["params"]["room"] == "Living Room" and body["params"]["exclude_categories"] == ["seating"]
    assert body["scene"]["room_probs"]["Living Room"] >= 0.0  # scene analysis is part of the answer


def test_cache_hit_on_same_image_and_params(client):
    before = _metric_samples(client)
    fields = {"k": "6", "caption": "cache test"}
    first = _post(client, **fields)
    second = _post(client, filename="another-name.jpg", **fields)  # same bytes, same params
    other_k = _post(client, k="7", caption="cache test")
    assert first.status_code == second.status_code == other_k.status_code == 200
    assert first.json()["cached"] is False and second.json()["cached"] is True
    assert other_k.json()["cached"] is False  # different parameters, different key
    assert [it["product_id"] for it in second.json()["items"]] == [it["product_id"] for it in first.json()["items"]]
    after = _metric_samples(client)
    assert _sample(after, "scene_matcher_cache_hits_total") == _sample(before, "scene_matcher_cache_hits_total") + 1
    assert (_sample(after, "scene_matcher_cache_misses_total")
            == _sample(before, "scene_matcher_cache_misses_total") + 2)


# --------------------------------------------------------------------------------------------
# bad input


def test_truncated_jpeg_is_400_naming_the_file(client):
    r = _post(client, SCENE_JPEG[: len(SCENE_JPEG) // 2], filename="half.jpg")
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "half.jpg" in detail and "truncated" in detail.lower()


def test_text_named_jpg_is_400(client):
    r = _post(client, b"this is a shopping list, not a photo\n" * 20, filename="notes.jpg")
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "notes.jpg" in detail and "not a recognised image" in detail


def test_zero_bytes_is_400(client):
    r = _post(client, b"", filename="empty.jpg")
    assert r.status_code == 400
    assert "empty" in r.json()["detail"] and "empty.jpg" in r.json()["detail"]


def test_too_large_upload_is_413(client):
    noise = np.random.default_rng(0).integers(0, 256, MAX_UPLOAD + 1000, dtype=np.uint8).tobytes()
    r = _post(client, noise, filename="big.jpg")  # just over: caught by the capped upload read
    assert r.status_code == 413 and "big.jpg" in r.json()["detail"]

    huge = b"\xff" * (2 * 1024 * 1024)  # far over: refused from Content-Length before it is read
    r = _post(client, huge, filename="huge.jpg")
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    samples = _metric_samples(client)  # answered before routing, still counted under /match
    assert _sample(samples, "scene_matcher_http_requests_total", endpoint="/match", status="413") >= 2


def test_too_large_chunked_upload_is_cut_off_while_streaming(client):
    """No Content-Length (chunked transfer): the body is counted as it arrives and refused once past
    the cap, without the server waiting for (or spooling) the rest."""
    boundary = "testboundary1234"
    before = _metric_samples(client)

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"stream.jpg\"\r\n"
               f"Content-Type: image/jpeg\r\n\r\n").encode()
        for _ in range(24):  # 24 x 16 KiB = 384 KiB, over the 200 kB + form-overhead cap
            yield b"\x00" * 16384
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        r = client.post("/match", content=body(),
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    except httpx.TransportError:  # the server may close before the client has sent everything
        r = None
    if r is not None:
        assert r.status_code == 413 and "too large" in r.json()["detail"]
    # whatever the client saw, the server answered 413 (its own count) and is still serving
    after = _metric_samples(client)
    assert (_sample(after, "scene_matcher_http_requests_total", endpoint="/match", status="413")
            == _sample(before, "scene_matcher_http_requests_total", endpoint="/match", status="413") + 1)
    assert client.get("/health").status_code == 200


def test_too_many_pixels_is_413(client):
    buf = io.BytesIO()
    Image.new("RGB", (700, 500), (120, 130, 140)).save(buf, format="PNG")  # 350k pixels, a few KB
    assert len(buf.getvalue()) < MAX_UPLOAD
    r = _post(client, buf.getvalue(), filename="wide.png", content_type="image/png")
    assert r.status_code == 413
    assert "700x500" in r.json()["detail"] and "wide.png" in r.json()["detail"]


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_413_without_decoding(client):
    bomb = _png_header_only(30000, 30000)  # 900 Mpx declared in 80 bytes: Pillow's own bomb error
    r = _post(client, bomb, filename="bomb.png", content_type="image/png")
    assert r.status_code == 413 and "decompression bomb" in r.json()["detail"]


def test_missing_image_field_is_422(client):
    r = client.post("/match", data={"k": "3"})
    assert r.status_code == 422
    assert any(e["loc"][-1] == "image" for e in r.json()["detail"])
    r = client.post("/match")
    assert r.status_code == 422


@pytest.mark.parametrize("k", ["0", "21", "-3", "three"])
def test_bad_k_is_422(client, k):
    r = _post(client, k=k)
    assert r.status_code == 422
    assert any(e["loc"][-1] == "k" for e in r.json()["detail"])


def test_bad_room_and_unknown_category_are_422(client):
    r = _post(client, room="Garage")
    assert r.status_code == 422 and any(e["loc"][-1] == "room" for e in r.json()["detail"])
    r = _post(client, include_categories="spaceships")
    assert r.status_code == 422 and "spaceships" in r.json()["detail"]


def _weighted_mean(item: dict, weights: dict[str, float]) -> float:
    return sum(weights[f] * item["factors"][f] for f in FACTORS) / sum(weights.values())


def test_per_request_weights_rank_by_them_and_leave_the_served_weights(client, recommenders):
    served = recommenders["v1"].weights.to_dict()
    plain = _post(client, k="8", caption="a yellow lamp").json()
    for item in plain["items"]:
        assert item["score"] == pytest.approx(_weighted_mean(item, served), abs=1e-3)

    overrides = {"visual": 0.1, "color": 5, "text": 0}
    tilted = _post(client, k="8", caption="a yellow lamp", weights=json.dumps(overrides))
    assert tilted.status_code == 200, tilted.text
    body = tilted.json()
    assert body["cached"] is False  # the weights are part of the cache key
    used = served | {k: float(v) for k, v in overrides.items()}  # unnamed factors keep the served weights
    for item in body["items"]:
        assert item["score"] == pytest.approx(_weighted_mean(item, used), abs=1e-3)
    assert [it["product_id"] for it in body["items"]] != [it["product_id"] for it in plain["items"]]

    assert recommenders["v1"].weights.to_dict() == served  # never changed in place
    again = _post(client, k="8", caption="a yellow lamp").json()
    assert again["cached"] is True and again["items"] == plain["items"]


@pytest.mark.parametrize("weights, needle", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "expected a non-empty JSON object"),
    ("{}", "expected a non-empty JSON object"),
    ('{"visual": 1, "sparkle": 2}', "unknown factor(s) ['sparkle']"),
    ('{"visual": -0.5}', "outside [0, 10]"),
    ('{"visual": 10.5}', "outside [0, 10]"),
    ('{"visual": "1"}', "visual must be a finite number"),
    ('{"visual": true}', "visual must be a finite number"),
    ('{"visual": NaN}', "visual must be a finite number"),
    ('{"visual": Infinity}', "visual must be a finite number"),
    ('{"visual": 1' + "0" * 400 + "}", "visual must be a finite number"),
    (json.dumps(dict.fromkeys(FACTORS, 0)), "at least one weight must be > 0"),
])
def test_bad_weights_are_422_saying_why(client, weights, needle):
    r = _post(client, weights=weights)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("weights: ") and needle in detail


def test_ranking_options_per_request(client):
    default = _post(client, k="6").json()
    capped = _post(client, k="6", diversity="category_cap", category_cap="1", collapse_variants="false")
    assert capped.status_code == 200, capped.text
    body = capped.json()
    assert body["cached"] is False  # the ranking options are part of the cache key
    categories = [item["category"] for item in body["items"]]
    # one per category while enough categories remain (capped-out products only fill the list at the end)
    n_distinct = len(set(categories))
    assert len(set(categories[:n_distinct])) == n_distinct
    assert _post(client, k="6").json()["items"] == default["items"]  # the served defaults are untouched


@pytest.mark.parametrize("field, value", [("mmr_lambda", "1.5"), ("category_cap", "0"), ("diversity", "sparkle"),
                                          ("fusion", "magic")])
def test_bad_ranking_options_are_422(client, field, value):
    r = _post(client, **{field: value})
    assert r.status_code == 422, r.text
    assert field in r.text


def test_image_url_disabled_is_400(client):
    r = client.post("/match", data={"image_url": "https://example.com/scene.jpg"})
    assert r.status_code == 400 and "disabled" in r.json()["detail"]


# --------------------------------------------------------------------------------------------
# health, readiness, metrics, schema


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["version"] == "v1" and body["products"] == len(PRODUCT_IDS)
    assert body["info"]["index_dir"] == "/indexes/v1" and len(body["encoder_fingerprint"]) == 16


def test_metrics_show_requests_by_status(client):
    assert _post(client, k="2").status_code == 200
    assert _post(client, b"", filename="e.jpg").status_code == 400
    samples = _metric_samples(client)
    assert _sample(samples, "scene_matcher_http_requests_total", endpoint="/match", status="200") >= 1
    assert _sample(samples, "scene_matcher_http_requests_total", endpoint="/match", status="400") >= 1
    assert _sample(samples, "scene_matcher_match_latency_seconds_count") >= 2
    assert _sample(samples, "scene_matcher_index_products") == len(PRODUCT_IDS)
    assert _sample(samples, "scene_matcher_reloads_total", result="success") == 1
    assert _sample(samples, "scene_matcher_reloads_total", result="failure") == 0
    info = [labels for (name, labels) in samples if name == "scene_matcher_index_info"]
    assert info and dict(info[0])["version"] == "v1" and len(dict(info[0])["encoder_fingerprint"]) == 16
    client.get("/no/such/path")  # unknown paths share one label value
    samples = _metric_samples(client)
    assert _sample(samples, "scene_matcher_http_requests_total", endpoint="unmatched", status="404") >= 1


def test_openapi_documents_match_form(client):
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/match"]["post"]
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(form["properties"]) == {"image", "caption", "k", "include_categories", "exclude_categories",
                                       "room", "image_url", "weights", "fusion", "diversity", "mmr_lambda",
                                       "category_cap", "collapse_variants", "session_id"}
    assert "[0, 10]" in form["properties"]["weights"]["description"]
    # the feedback endpoint is documented with its body and statuses
    feedback = schema["paths"]["/feedback"]["post"]
    assert {"202", "404", "413", "422", "503"} <= set(feedback["responses"])
    # the re-rank options carry RankingConfig's limits, so the schema documents what the engine enforces
    assert (form["properties"]["mmr_lambda"]["minimum"], form["properties"]["mmr_lambda"]["maximum"]) == (0, 1)
    assert (form["properties"]["category_cap"]["minimum"], form["properties"]["category_cap"]["maximum"]) == (1, 100)
    assert form["properties"]["k"]["maximum"] == 20 and form["properties"]["k"]["minimum"] == 1
    room_enum = [s for s in form["properties"]["room"]["anyOf"] if "enum" in s][0]["enum"]
    assert room_enum == list(ROOM_TYPES)
    assert {"/health", "/ready", "/metrics"} <= set(schema["paths"])


# --------------------------------------------------------------------------------------------
# concurrency


def test_concurrent_requests_all_succeed(client):
    images = [_scene_bytes(tint=t) for t in range(1, 9)]  # 8 distinct images: no cache hits
    before = _metric_samples(client)

    def post(data: bytes) -> httpx.Response:
        with httpx.Client(base_url=client.base_url, timeout=30, trust_env=False) as c:
            return c.post("/match", files={"image": ("scene.jpg", data, "image/jpeg")}, data={"k": "3"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, images))
    assert [r.status_code for r in responses] == [200] * 8
    assert all(len(r.json()["items"]) == 3 and r.json()["cached"] is False for r in responses)
    after = _metric_samples(client)
    assert (_sample(after, "scene_matcher_cache_misses_total")
            - _sample(before, "scene_matcher_cache_misses_total")) == 8
    assert _sample(after, "scene_matcher_model_calls_in_progress") == 0


# --------------------------------------------------------------------------------------------
# lifecycle: readiness before the first index, reloads, failed reloads, URL input


def test_not_ready_until_an_index_exists_then_ready(recommenders, client):
    provider = FakeProvider(recommenders, None)
    with running(provider, _settings()) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["ready"] is False and "materialized" in r.json()["reason"]
        r = _post(c)
        assert r.status_code == 503 and "not ready" in r.json()["detail"]
        assert c.get("/health").status_code == 200
        # this app has its own metrics: nothing it has seen is a 200 /match, unlike the shared app's
        samples = _metric_samples(c)
        assert _sample(samples, "scene_matcher_http_requests_total", endpoint="/match", status="503") == 1
        assert _sample(samples, "scene_matcher_http_requests_total", endpoint="/match", status="200") == 0
        assert _sample(samples, "scene_matcher_ready") == 0

        provider.current = "v1"
        _wait_for(lambda: c.get("/ready").status_code == 200, what="/ready after the first version")
        r = _post(c, k="2")
        assert r.status_code == 200 and r.json()["index_version"] == "v1"
        assert r.json()["cached"] is False  # the shared app's cache is not this app's


def test_reload_swaps_version_and_failed_load_keeps_serving(recommenders):
    provider = FakeProvider(recommenders, "v1")
    with running(provider, _settings()) as c:
        first = _post(c, k="3")
        assert first.status_code == 200 and first.json()["index_version"] == "v1"

        provider.current = "v2"
        _wait_for(lambda: c.get("/ready").json().get("version") == "v2", what="/ready to report v2")
        r = _post(c, k="3")  # same image and params as before: the new version must miss the cache
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["index_version"] == "v2" and body["cached"] is False
        assert {it["product_id"] for it in body["items"]} <= set(V2_IDS)

        provider.fail.add("v3")
        provider.current = "v3"
        _wait_for(lambda: _sample(_metric_samples(c), "scene_matcher_reloads_total", result="failure") >= 1,
                  what="a counted reload failure")
        ready = c.get("/ready").json()
        assert ready["ready"] is True and ready["version"] == "v2"
        assert "v3" in ready["last_reload_error"] and "simulated broken index" in ready["last_reload_error"]
        r = _post(c, k="3")
        assert r.status_code == 200 and r.json()["index_version"] == "v2" and r.json()["cached"] is True
        samples = _metric_samples(c)
        assert _sample(samples, "scene_matcher_reloads_total", result="success") == 2
        info = [dict(labels) for (name, labels) in samples if name == "scene_matcher_index_info"]
        assert info[0]["version"] == "v2"


def test_initial_load_failure_still_starts(recommenders):
    provider = FakeProvider(recommenders, "v1")
    provider.fail.add("v1")
    with running(provider, _settings(reload_interval_s=5.0)) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/ready")
        assert r.status_code == 503 and "simulated broken index" in r.json()["reason"]
        assert _post(c).status_code == 503


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(SCENE_JPEG)))
        self.end_headers()
        self.wfile.write(SCENE_JPEG)

    def log_message(self, *args):
        pass


def test_image_url_to_private_addresses_is_refused_without_a_request(recommenders):
    _CountingHandler.hits = 0
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    port = target.server_address[1]
    try:
        with running(FakeProvider(recommenders, "v1"), _settings(allow_url_fetch=True)) as c:
            for url, why in [(f"http://127.0.0.1:{port}/scene.jpg", "loopback"),
                             (f"http://localhost:{port}/scene.jpg", "loopback"),
                             ("http://169.254.169.254/latest/meta-data/", "link-local"),
                             ("http://10.1.2.3/scene.jpg", "private")]:
                r = c.post("/match", data={"image_url": url})
                assert r.status_code == 400, (url, r.text)
                assert "refused" in r.json()["detail"] and why in r.json()["detail"], r.text
            r = c.post("/match", data={"image_url": "file:///etc/passwd"})
            assert r.status_code == 400 and "not allowed" in r.json()["detail"]
            r = c.post("/match", files={"image": ("s.jpg", SCENE_JPEG, "image/jpeg")},
                       data={"image_url": "https://example.com/x.jpg"})
            assert r.status_code == 400 and "not both" in r.json()["detail"]
        assert _CountingHandler.hits == 0  # no request ever reached the loopback server
    finally:
        target.shutdown()
        target.server_close()


def test_image_url_fetch_path_serves_a_fetched_image(recommenders, monkeypatch):
    """The fetch plumbing end to end: with the address check patched to allow loopback (the only
    server a test can reach), a URL is fetched through scene_assets.images and answered like an upload."""
    from scene_assets.images import fetch as image_fetch

    monkeypatch.setattr(image_fetch, "address_refusal_reason", lambda address: None)
    _CountingHandler.hits = 0
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    try:
        with running(FakeProvider(recommenders, "v1"), _settings(allow_url_fetch=True)) as c:
            url = f"http://127.0.0.1:{target.server_address[1]}/scene.jpg"
            r = c.post("/match", data={"image_url": url, "k": "3"})
            assert r.status_code == 200, r.text
            assert r.json()["cached"] is False and len(r.json()["items"]) == 3
            upload = _post(c, k="3")  # same bytes as the fetched image: same cache entry
            assert upload.status_code == 200 and upload.json()["cached"] is True
        assert _CountingHandler.hits == 1
    finally:
        target.shutdown()
        target.server_close()
