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
import numpy as np
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
    settings = _settings(feedback_db_url=url, scene_photos_dir=str(tmp_path / "scenes"))
    with running(FakeProvider(recommenders, "v1"), settings) as client:
        yield client, url, tmp_path / "scenes"


def test_match_answers_carry_a_recommendation_id_and_feedback_is_recorded(feedback_client):
    from scene_assets.feedback import ScenePhotoArchive
    from tests.test_serving import _wait_for

    client, url, scenes = feedback_client
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
    # the photo the shopper reacted to is kept, once, by the sha256 the events name (for learning from them)
    archive = ScenePhotoArchive(scenes)
    _wait_for(lambda: archive.read(events[0]["scene_sha256"]) == SCENE_JPEG, 5, "the scene photo archived")
    assert len(list(scenes.rglob("*"))) == 2  # one folder, one photo
    assert archive.keep(events[0]["scene_sha256"], SCENE_JPEG) is False


def test_feedback_input_is_validated_and_bounded(feedback_client):
    client, _, _ = feedback_client
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
    events = store.events_after(0)
    assert [e["event_id"] for e in events] == acknowledged and len(acknowledged) == 9
    store.close()
    # the server's defaults keep the photos under the data folder too
    assert (data / "feedback" / "scenes" / events[0]["scene_sha256"][:2] / events[0]["scene_sha256"]).is_file()


# --------------------------------------------------------------------------------------------
# training pairs


def _events(rows) -> "pl.DataFrame":
    import polars as pl

    from scene_assets.feedback import events_frame

    return events_frame([{"event_id": i + 1, "recommendation_id": r, "product_id": p, "rank": k, "event": e,
                          "variant": "default", "session_id": None, "created_at": 0.0, "scene_sha256": s,
                          "index_version": "v1"} for i, (r, s, p, k, e) in enumerate(rows)]) if rows else events_frame([])


def test_feedback_pairs_weigh_events_once_per_recommendation_and_correct_for_position():
    from scene_assets.feedback import EVENT_WEIGHTS, examination_propensity, feedback_pairs

    rows = [
        ("r1", "S", "a", 1, "impression"), ("r1", "S", "a", 1, "click"), ("r1", "S", "a", 1, "click"),  # one click
        ("r1", "S", "b", 2, "impression"),                                   # shown, passed over: a negative
        ("r1", "S", "c", 8, "purchase"),                                     # engaged without an impression row
        ("r2", "S", "a", 1, "add_to_cart"),                                  # a second recommendation of scene S
        ("r3", "T", "b", 3, "impression"),
    ]
    pairs, propensity = feedback_pairs(_events(rows))
    # too few impressions to estimate: the 1/log2(r+1) prior, non-increasing
    assert propensity == pytest.approx({1: 1.0, 2: 1 / np.log2(3), 3: 0.5, 8: 1 / np.log2(9)})
    got = {(r["scene_sha256"], r["product_id"]): r for r in pairs.iter_rows(named=True)}
    assert set(got) == {("S", "a"), ("S", "b"), ("S", "c"), ("T", "b")}
    assert got[("S", "a")]["label"] == 1 and got[("S", "a")]["recommendations"] == 2
    assert got[("S", "a")]["weight"] == pytest.approx(EVENT_WEIGHTS["click"] + EVENT_WEIGHTS["add_to_cart"])
    assert got[("S", "a")]["best_event"] == "add_to_cart"
    assert got[("S", "c")]["weight"] == pytest.approx(EVENT_WEIGHTS["purchase"] * np.log2(9))  # inverse propensity
    assert (got[("S", "b")]["label"], got[("S", "b")]["best_event"]) == (0, "impression")
    assert got[("S", "b")]["weight"] == pytest.approx(1 / np.log2(3))
    assert got[("T", "b")]["weight"] == pytest.approx(0.5)
    empty, none = feedback_pairs(_events([]))
    assert empty.is_empty() and none == {} and empty.columns == pairs.columns


def test_examination_propensity_is_measured_where_impressions_suffice():
    import polars as pl

    from scene_assets.feedback import examination_propensity

    per_rank = pl.DataFrame({"rank": [1, 2, 3, 4], "impressions": [1000, 1000, 1000, 10], "engaged": [200, 100, 120, 9]})
    p = examination_propensity(per_rank, min_impressions=50)
    # rank 2: .1/.2; rank 3 measured higher than rank 2, kept at it; rank 4 too few: the 1/log2(5) prior
    assert p == pytest.approx({1: 1.0, 2: 0.5, 3: 0.5, 4: 1 / np.log2(5)})


# --------------------------------------------------------------------------------------------
# pipeline


def test_sensor_partitions_new_events_and_pairs_read_every_partition(tmp_path: Path):
    import dagster as dg

    from pipelines.feedback.assets import feedback_events, feedback_pairs
    from pipelines.feedback.resources import FeedbackDatabase
    from pipelines.feedback.sensors import feedback_sensor
    from pipelines.io_managers import PolarsParquetIOManager
    from scene_assets.feedback import feedback_pairs as make_pairs, events_frame

    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)
    store.record_recommendations([_served("r1", ("a", "b", "c"), scene="S" * 64), _served("r2", ("a", "d"), scene="T" * 64)])
    for product, event in (("a", "impression"), ("b", "impression"), ("a", "click"), ("c", "purchase")):
        store.append_event(recommendation_id="r1", product_id=product, event=event)
    resources = {"feedback_db": FeedbackDatabase(url=url), "io_manager": PolarsParquetIOManager(base_dir=str(tmp_path / "wh"))}
    with dg.instance_for_test() as instance:
        def sense(cursor=None):
            return feedback_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                           resources={"feedback_db": FeedbackDatabase(url=url)}))

        first = sense()
        assert isinstance(first, dg.SensorResult) and first.cursor == "4"
        key = first.run_requests[0].partition_key
        assert key == "000000000001-000000000004"
        instance.add_dynamic_partitions("feedback_event_ranges", [key])
        run = dg.materialize([feedback_events], partition_key=key, instance=instance, resources=resources)
        meta = run.asset_materializations_for_node("feedback_events")[0].metadata
        assert meta["events"].value == 4 and meta["last_event_id"].value == 4 and "preview" in meta
        assert isinstance(sense(first.cursor), dg.SkipReason)  # nothing new

        store.append_event(recommendation_id="r2", product_id="d", event="add_to_cart")
        second = sense(first.cursor)
        assert second.cursor == "5" and second.run_requests[0].partition_key == "000000000005-000000000005"
        instance.add_dynamic_partitions("feedback_event_ranges", [second.run_requests[0].partition_key])
        assert dg.materialize([feedback_events], partition_key=second.run_requests[0].partition_key, instance=instance,
                              resources=resources).success
        pairs_run = dg.materialize([feedback_events, feedback_pairs], selection=[feedback_pairs], instance=instance,
                                   resources=resources)
        pairs = pairs_run.output_for_node("feedback_pairs")
        expected, _ = make_pairs(events_frame(store.events_after(0)))
        assert pairs.equals(expected) and pairs.height == 4  # a, b, c of scene S; d of scene T
        pairs_meta = pairs_run.asset_materializations_for_node("feedback_pairs")[0].metadata
        assert (pairs_meta["events"].value, pairs_meta["positives"].value, pairs_meta["negatives"].value) == (5, 3, 1)
        assert "propensity_by_rank" in pairs_meta
    store.close()


def test_feedback_assets_are_in_the_project_definitions():
    from pipelines.definitions import defs

    repo = defs.get_repository_def()
    assert {"feedback_events", "feedback_pairs"} <= {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert repo.get_sensor_def("feedback_sensor") and repo.get_job("feedback_events_job")


# --------------------------------------------------------------------------------------------
# A/B variants


def test_variant_plan_assigns_shoppers_stably_by_share(tmp_path: Path):
    from scene_assets.ranking.variants import VariantPlan, VariantPlanError

    path = tmp_path / "plan.yaml"
    path.write_text("salt: s1\nvariants:\n  - {name: control, share: 0.7}\n  - {name: colour, share: 0.3, weights: {color: 2}}\n")
    plan = VariantPlan.load(path)
    assert plan.control.name == "control" and plan.variants[1].weights == {"color": 2}
    assigned = [plan.assign(f"shopper-{i}").name for i in range(20000)]
    assert abs(assigned.count("colour") / len(assigned) - 0.3) < 0.015  # the shares hold over many shoppers
    assert [plan.assign(f"shopper-{i}").name for i in range(200)] == assigned[:200]  # and per shopper
    assert plan.assign(None).name == "control"  # no session: the control
    resalted = VariantPlan.from_dict({**plan.to_dict(), "salt": "s2"})
    assert sum(resalted.assign(f"shopper-{i}").name != a for i, a in enumerate(assigned[:2000])) > 500  # reshuffled
    bad = {"shares": {"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]},
           "names": {"variants": [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}]},
           "factor": {"variants": [{"name": "a", "share": 1, "weights": {"sparkle": 1}}]},
           "weight": {"variants": [{"name": "a", "share": 1, "weights": {"color": -1}}]},
           "key": {"variants": [{"name": "a", "share": 1}], "extra": 1},
           "empty": {"variants": []}}
    for what, data in bad.items():
        with pytest.raises(VariantPlanError, match="plan.json"):
            VariantPlan.from_dict(data, "plan.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(VariantPlanError, match="broken.json: not valid JSON"):
        VariantPlan.load(broken)


def test_match_serves_each_shopper_its_variant_and_records_it(recommenders, tmp_path: Path):
    from scene_assets.ranking.variants import Variant, VariantPlan

    plan = VariantPlan((Variant("control", 0.5), Variant("visual-only", 0.5, {"visual": 1.0, "color": 0.0, "style": 0.0})),
                       salt="t")
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    sessions = {name: next(f"s{i}" for i in range(1000) if plan.assign(f"s{i}").name == name) for name in ("control", "visual-only")}
    with running(FakeProvider(recommenders, "v1"), _settings(feedback_db_url=url, variants=plan)) as client:
        answers = {name: _post(client, k="3", session_id=session).json() for name, session in sessions.items()}
        assert {name: a["variant"] for name, a in answers.items()} == {"control": "control", "visual-only": "visual-only"}
        assert answers["visual-only"]["weights"]["color"] == 0.0 and answers["control"]["weights"]["color"] > 0
        assert answers["visual-only"]["cached"] is False  # another variant is another answer, not the cached one
        assert _post(client, k="3").json()["variant"] == "control"  # no session id
        again = _post(client, k="3", session_id=sessions["visual-only"]).json()
        assert again["variant"] == "visual-only" and again["cached"] is True
        rid = answers["visual-only"]["recommendation_id"]
        assert client.post("/feedback", json={"recommendation_id": rid, "product_id": answers["visual-only"]["items"][0]["product_id"],
                                              "event": "click"}).status_code == 202
    store = FeedbackStore(url)
    assert [(e["variant"], e["session_id"]) for e in store.events_after(0)] == [("visual-only", sessions["visual-only"])]
    store.close()


def test_ab_report_rates_intervals_mlflow_runs_and_plot(tmp_path: Path):
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from pipelines.evaluation.resources import MlflowTracking
    from pipelines.feedback.assets import ab_report, feedback_events
    from pipelines.feedback.partitions import range_key
    from pipelines.feedback.resources import FeedbackDatabase
    from pipelines.io_managers import PolarsParquetIOManager
    from pipelines.resources import ProjectStorage
    from scene_assets.feedback import wilson_interval

    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)
    served = [ServedRecommendation(f"a{i}", "S" * 64, "v1", "control", ["x", "y"], f"s{i}") for i in range(40)]
    served += [ServedRecommendation(f"b{i}", "S" * 64, "v1", "colour", ["x", "y"], f"t{i}") for i in range(40)]
    store.record_recommendations(served)
    for i in range(4):
        store.append_event(recommendation_id=f"a{i}", product_id="x", event="click")
    for i in range(20):
        store.append_event(recommendation_id=f"b{i}", product_id="y", event="click")
        if i < 5:
            store.append_event(recommendation_id=f"b{i}", product_id="y", event="purchase")
    last = store.max_event_id()
    store.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resources = {"feedback_db": FeedbackDatabase(url=url), "io_manager": PolarsParquetIOManager(base_dir=str(tmp_path / "wh")),
                 "mlflow_tracking": MlflowTracking(tracking_uri=uri, experiment="t", artifact_root=str(tmp_path / "art")),
                 "storage": ProjectStorage(data_dir=str(tmp_path / "data"))}
    with dg.instance_for_test() as instance:
        key = range_key(1, last)
        instance.add_dynamic_partitions("feedback_event_ranges", [key])
        assert dg.materialize([feedback_events], partition_key=key, instance=instance, resources=resources).success
        run = dg.materialize([feedback_events, ab_report], selection=[ab_report], instance=instance, resources=resources)
    rates = {r["variant"]: r for r in run.output_for_node("ab_report").iter_rows(named=True)}
    assert rates["control"]["served"] == rates["colour"]["served"] == 40
    assert rates["control"]["ctr"] == pytest.approx(4 / 40) and rates["colour"]["ctr"] == pytest.approx(20 / 40)
    assert rates["colour"]["purchase_rate"] == pytest.approx(5 / 40) and rates["control"]["purchase_rate"] == 0
    assert (rates["colour"]["ctr_low"], rates["colour"]["ctr_high"]) == pytest.approx(wilson_interval(20, 40))
    meta = run.asset_materializations_for_node("ab_report")[0].metadata
    assert meta["leader"].value == "colour" and meta["decided"].value is True  # .35-.65 clears .04-.23
    assert Path(meta["plot"].value).is_file() and {"mlflow_run_control", "mlflow_run_colour"} <= set(meta)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("t-ab")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["variant"] for r in runs) == ["colour", "control"]
    colour = next(r for r in runs if r.data.tags["variant"] == "colour")
    assert colour.data.metrics["ctr"] == pytest.approx(0.5) and colour.data.metrics["served"] == 40
    assert [a.path for a in client.list_artifacts(colour.info.run_id)] == ["variant_rates.png"]


def test_wilson_interval():
    from scene_assets.feedback import wilson_interval

    low, high = wilson_interval(0, 10)
    assert low == 0 and 0.25 < high < 0.35
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))
