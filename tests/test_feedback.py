"""Shopper feedback capture (#20): every /match answer carries a recommendation id and the variant that
served it; POST /feedback records events on its products in a durable store (scene_assets.feedback):
SQLite by default, PostgreSQL on the throwaway server; validated and bounded; an acknowledged event
survives the server process being killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from scene_assets.feedback import EVENTS, FeedbackError, FeedbackStore, RecommendationLog, ServedRecommendation, UnknownRecommendation
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 (the fixture)
from tests.test_serving import SCENE_JPEG, FakeProvider, _post, _settings, recommenders, running  # noqa: F401 (recommenders: a fixture)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _served(rec_id: str, products=("p1", "p2", "p3"), scene="a" * 64, session=None, at=None) -> ServedRecommendation:
    return ServedRecommendation(rec_id, scene, "v1", "default", list(products), session,
                                **({"served_at": at} if at is not None else {}))


def _exercise_store(store: FeedbackStore) -> None:
    store.record_recommendations([_served("r1"), _served("r2", ("p9",), scene="a" * 64, session="s1", at=time.time() + 1)])
    first = store.append_event(recommendation_id="r1", product_id="p2", event="click", session_id="s9")
    second = store.append_event(scene_sha256="a" * 64, product_id="p9", event="purchase")  # the latest: r2
    assert second > first
    events = store.events_after(0)
    assert [(e["event_id"], e["recommendation_id"], e["product_id"], e["rank"], e["event"], e["variant"], e["session_id"])
            for e in events] == [(first, "r1", "p2", 2, "click", "default", "s9"), (second, "r2", "p9", 1, "purchase", "default", "s1")]
    assert events[0]["scene_sha256"] == "a" * 64 and events[0]["index_version"] == "v1"
    assert [e["event_id"] for e in store.events_after(first)] == [second]  # a consumer's cursor
    with pytest.raises(UnknownRecommendation):
        store.append_event(recommendation_id="nope", product_id="p1", event="click")
    with pytest.raises(UnknownRecommendation):
        store.append_event(scene_sha256="b" * 64, product_id="p1", event="click")
    with pytest.raises(FeedbackError, match="not in recommendation 'r1'"):
        store.append_event(recommendation_id="r1", product_id="p9", event="click")
    with pytest.raises(FeedbackError, match="one of impression"):
        store.append_event(recommendation_id="r1", product_id="p1", event="like")
    assert len(store.events_after(0)) == 2  # refused events leave nothing behind
    assert set(EVENTS) == {"impression", "click", "add_to_cart", "purchase"}


def test_sqlite_store_records_validates_and_pages_events(tmp_path: Path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    _exercise_store(store)
    store.close()
    reopened = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")  # durable across processes
    assert len(reopened.events_after(0)) == 2
    reopened.close()


def test_postgres_store(postgres_server: PostgresServer):  # noqa: F811 (the imported fixture)
    """The same on PostgreSQL (SCENE_MATCHER_FEEDBACK_DB_URL), in a database of its own on the throwaway server."""
    from tests.postgres_server import _create_databases

    _create_databases(postgres_server.host, postgres_server.port, ["feedback"])
    store = FeedbackStore(postgres_server.sqlalchemy_url("feedback"))
    _exercise_store(store)
    store.close()


def test_recommendation_log_writes_in_batches_and_flushes_on_demand(tmp_path: Path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    log = RecommendationLog(store, flush_interval_s=10.0)  # nothing is written by the timer in this test
    for i in range(5):
        log.submit(_served(f"q{i}"))
    assert log.flush(5.0)
    assert all(store.served(f"q{i}") is not None for i in range(5)) and log.failures == 0
    log.submit(_served("q0"))  # a duplicate id: the batch fails, is counted, the writer goes on
    log.submit(_served("q9"))
    assert log.flush(5.0) and log.failures == 2
    log.submit(_served("q10"))
    log.close()  # writes what is queued
    assert store.served("q10") is not None
    store.close()


# --------------------------------------------------------------------------------------------
# HTTP


@pytest.fixture
def feedback_client(recommenders, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(FakeProvider(recommenders, "v1"), _settings(feedback_db_url=url)) as client:
        yield client, url


def test_match_answers_carry_a_recommendation_id_and_feedback_is_recorded(feedback_client):
    client, url = feedback_client
    first, again = _post(client, k="3", session_id="shopper-1"), _post(client, k="3")
    assert first.status_code == again.status_code == 200
    a, b = first.json(), again.json()
    assert b["cached"] is True and a["variant"] == b["variant"] == "default"
    assert len(a["recommendation_id"]) == 32 and a["recommendation_id"] != b["recommendation_id"]  # one per answer
    product = a["items"][1]["product_id"]
    accepted = client.post("/feedback", json={"recommendation_id": a["recommendation_id"], "product_id": product,
                                              "event": "add_to_cart"})
    assert accepted.status_code == 202, accepted.text
    # by scene hash: the latest recommendation of that photo (the cached answer's)
    by_scene = client.post("/feedback", json={"scene_sha256": hashlib.sha256(SCENE_JPEG).hexdigest(),
                                              "product_id": b["items"][0]["product_id"], "event": "click"})
    assert by_scene.status_code == 202, by_scene.text
    store = FeedbackStore(url)
    events = store.events_after(0)
    assert [(e["recommendation_id"], e["product_id"], e["rank"], e["event"], e["session_id"]) for e in events] == [
        (a["recommendation_id"], product, 2, "add_to_cart", "shopper-1"),
        (b["recommendation_id"], b["items"][0]["product_id"], 1, "click", None)]
    assert accepted.json()["event_id"] == events[0]["event_id"]
    store.close()


def test_feedback_input_is_validated_and_bounded(feedback_client):
    client, _ = feedback_client
    answer = _post(client, k="2").json()
    rid, listed = answer["recommendation_id"], answer["items"][0]["product_id"]
    cases = {
        404: [{"recommendation_id": "0" * 32, "product_id": listed, "event": "click"},
              {"scene_sha256": "f" * 64, "product_id": listed, "event": "click"}],
        422: [{"recommendation_id": rid, "product_id": "not-listed", "event": "click"},
              {"recommendation_id": rid, "product_id": listed, "event": "like"},
              {"recommendation_id": rid, "product_id": listed},
              {"product_id": listed, "event": "click"},
              {"recommendation_id": rid, "scene_sha256": "f" * 64, "product_id": listed, "event": "click"},
              {"recommendation_id": "not-hex", "product_id": listed, "event": "click"},
              {"recommendation_id": rid, "product_id": listed, "event": "click", "extra": 1},
              {"recommendation_id": rid, "product_id": listed, "event": "click", "session_id": "s" * 129}],
    }
    for status, bodies in cases.items():
        for body in bodies:
            response = client.post("/feedback", json=body)
            assert response.status_code == status, (body, response.status_code, response.text)
            assert "detail" in response.json()
    assert client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    # over the cap: refused from its Content-Length before the body is read, on a raw socket
    port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n")
        head = raw.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    padded = json.dumps({"recommendation_id": rid, "product_id": listed, "event": "click", "session_id": "x" * 5000})
    assert client.post("/feedback", content=padded, headers={"content-type": "application/json"}).status_code == 413


def test_feedback_off_answers_503(recommenders):
    with running(FakeProvider(recommenders, "v1"), _settings()) as client:
        answer = _post(client, k="2").json()
        assert answer["recommendation_id"] and answer["variant"] == "default"
        response = client.post("/feedback", json={"recommendation_id": answer["recommendation_id"],
                                                  "product_id": answer["items"][0]["product_id"], "event": "click"})
        assert response.status_code == 503 and "feedback capture is off" in response.json()["detail"]


def test_an_acknowledged_event_survives_sigkill(tmp_path: Path):
    """A real `scene-matcher serve` process (fake-encoder bundle) with the default SQLite store under its
    data folder: events answered 202 are in the database after the process is SIGKILLed."""
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from serving_process import fake_bundle, free_port

    bundle, scenes = fake_bundle(tmp_path / "bundle", n_products=40)
    port, data = free_port(), tmp_path / "data"
    env = {**os.environ, "SCENE_MATCHER_DATA_DIR": str(data), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("SCENE_MATCHER_FEEDBACK_DB_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "faces.cli", "serve", "--index", str(bundle), "--port", str(port),
                                "--device", "cpu"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    acknowledged = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, process.stderr.read()[-2000:]
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.2)
            for i, scene in enumerate(scenes[:3]):
                answer = client.post("/match", files={"image": ("s.jpg", scene, "image/jpeg")}, data={"k": "3"}).json()
                for item in answer["items"]:
                    response = client.post("/feedback", json={"recommendation_id": answer["recommendation_id"],
                                                              "product_id": item["product_id"], "event": EVENTS[i]})
                    assert response.status_code == 202, response.text
                    acknowledged.append(response.json()["event_id"])
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    store = FeedbackStore(f"sqlite:///{data / 'feedback' / 'feedback.db'}")
    assert [e["event_id"] for e in store.events_after(0)] == acknowledged and len(acknowledged) == 9
    store.close()
