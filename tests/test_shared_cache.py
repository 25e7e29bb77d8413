"""Two replicas share /match answers through a real Redis; a Redis outage mid-load costs no request."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from faces.answer_cache import KEY_PREFIX, EncodedAnswer, RedisAnswerCache, encode_answer
from faces.http_app import ServingSettings
from tests.redis_server import throwaway_redis
from tests.test_serving import (
    PRODUCT_IDS,
    FakeProvider,
    _build,
    _metric_samples,
    _post,
    _sample,
    _settings,
    _wait_for,
    running,
)


@pytest.fixture(scope="module")
def recommenders():
    return {"v1": _build(PRODUCT_IDS)}


@pytest.fixture()
def redis_server():
    with throwaway_redis() as server:
        yield server


def test_settings_refuse_a_bad_redis_url_or_ttl():
    with pytest.raises(ValueError, match="redis://"):
        ServingSettings(redis_url="localhost:6379")
    with pytest.raises(ValueError, match="redis_ttl_s"):
        ServingSettings(redis_url="redis://127.0.0.1:1/0", redis_ttl_s=0)


def test_two_replicas_share_answers_and_survive_a_redis_outage(recommenders, redis_server):
    settings = _settings(redis_url=redis_server.url, redis_ttl_s=120, redis_retry_after_s=0.5)
    with running(FakeProvider(recommenders, "v1"), settings) as a, running(FakeProvider(recommenders, "v1"), settings) as b:
        first = _post(a, k="5", caption="shared")
        second = _post(b, k="5", caption="shared")  # the other replica: its own LRU is empty
        assert first.status_code == second.status_code == 200
        assert first.json()["cached"] is False and second.json()["cached"] is True
        assert [i["product_id"] for i in second.json()["items"]] == [i["product_id"] for i in first.json()["items"]]
        assert _sample(_metric_samples(b), "scene_matcher_shared_cache_hits_total") == 1
        keys = redis.Redis.from_url(redis_server.url).keys(KEY_PREFIX + "*")
        assert len(keys) == 1
        assert 0 < redis.Redis.from_url(redis_server.url).ttl(keys[0]) <= 120

        # Redis dies while both replicas take traffic: every request is still answered
        def request(i: int) -> int:
            return _post((a, b)[i % 2], k=str(1 + i % 9), caption=f"outage {i % 13}").status_code

        with ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(request, i) for i in range(40)]
            time.sleep(0.2)
            redis_server.kill()
            pending += [pool.submit(request, i) for i in range(40, 80)]
            statuses = [f.result() for f in pending]
        assert statuses == [200] * 80
        errors = sum(v for (name, _), v in _metric_samples(a).items() if name == "scene_matcher_shared_cache_errors_total")
        errors += sum(v for (name, _), v in _metric_samples(b).items() if name == "scene_matcher_shared_cache_errors_total")
        assert errors >= 1
        # while it is down the local cache still answers repeats
        assert _post(a, k="5", caption="shared").json()["cached"] is True

        # back up (empty, on the same port): after the retry window the replicas share again
        redis_server.start()
        time.sleep(0.6)
        assert _post(a, k="3", caption="after the outage").json()["cached"] is False
        _wait_for(lambda: _post(b, k="3", caption="after the outage").json()["cached"], 5, "a shared hit after Redis came back")


def test_redis_cache_never_raises_and_skips_redis_while_down(redis_server):
    errors: list[str] = []
    cache = RedisAnswerCache(redis_server.url, ttl_s=60, retry_after_s=30, on_error=errors.append)
    answer = EncodedAnswer.of({"items": [{"product_id": "p1"}, {"product_id": "p2"}], "title": "Fåtölj"})
    cache.put("k", answer)
    assert cache.get("k") == answer and answer.product_ids == ("p1", "p2") and cache.get("missing") is None
    # not an answer (another writer, a truncated value): a miss, never sent
    client = redis.Redis.from_url(redis_server.url)
    client.set(KEY_PREFIX + "truncated", answer.body[:-3])
    client.set(KEY_PREFIX + "not-an-object", b"[1, 2]")
    client.set(KEY_PREFIX + "no-product-ids", b'{"items": [{"title": "x"}]}')
    assert cache.get("truncated") is None and cache.get("not-an-object") is None and cache.get("no-product-ids") is None
    redis_server.kill()
    assert cache.get("k") is None and errors == ["get"] and not cache.available
    cache.put("k2", EncodedAnswer.of({"x": 1}))  # skipped: no second error, no wait for a timeout
    assert errors == ["get"]
    cache.close()


def test_an_encoded_answer_is_sent_with_the_request_fields_spliced_in():
    """A cached answer is sent as it was encoded, with index_version / cached / took_ms in front: the
    same JSON object as the answer with those fields set, for any answer (empty, non-ASCII)."""
    import json as json_module

    from faces.http_app import answer_response

    for answer in ({"items": [{"title": "Fåtölj", "score": 0.5}], "calibrated": True}, {}):
        response = answer_response(encode_answer(answer), index_version="v1", cached=True, took_ms=1.25)
        assert response.media_type == "application/json"
        assert json_module.loads(response.body) == {**answer, "index_version": "v1", "cached": True, "took_ms": 1.25}
    with pytest.raises(ValueError):
        encode_answer({"score": float("nan")})  # refused as JSONResponse refuses it
    with pytest.raises(ValueError):
        answer_response(b"[1]", index_version="v1", cached=False, took_ms=0.0)
