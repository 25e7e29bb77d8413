"""Shoppers on the embedded sample, written straight into a feedback database and photo archive (what a
server records): for the tests of the feedback pipeline and the Dagster UI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from scene_assets.feedback import FeedbackStore, ScenePhotoArchive, ServedRecommendation
from scene_assets.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "sample"


def shoppers_on_the_sample(url: str, photos_dir: Path, variants: tuple[str, ...] = ("control",)) -> int:
    """Every sample scene photo served once per variant (its labeled products listed after three others) and
    archived; the shopper looks at the list, clicks the labeled products and buys the first - in the first
    variant; in the others the first labeled product is bought in every other scene and nothing is clicked in
    the rest (so the first variant leads the A/B report). Returns the events recorded."""
    scenes = pl.read_csv(SAMPLE / "scenes.csv")
    labels = pl.read_csv(SAMPLE / "scene_products.csv")
    catalog = pl.read_csv(SAMPLE / "products.csv")["product_id"].to_list()
    store, archive = FeedbackStore(url), ScenePhotoArchive(photos_dir)
    events = 0
    try:
        for i, (sid, image) in enumerate(scenes.select("scene_id", "image").iter_rows()):
            data = (SAMPLE / image).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            archive.keep(sha, data)
            labeled = labels.filter(pl.col("scene_id") == sid)["product_id"].to_list()
            listed = [p for p in catalog if p not in labeled][i % 5: i % 5 + 3] + labeled
            for v, variant in enumerate(variants):
                rid = f"rec-{i}-{variant}"
                store.record_recommendations([ServedRecommendation(rid, sha, "v1", variant, listed, f"shopper-{i}-{v}")])
                for product in listed:
                    store.append_event(recommendation_id=rid, product_id=product, event="impression")
                engaged = labeled if v == 0 else labeled[:1] if i % 2 == 0 else []
                for j, product in enumerate(engaged):
                    store.append_event(recommendation_id=rid, product_id=product, event="purchase" if j == 0 else "click")
                events += len(listed) + len(engaged)
    finally:
        store.close()
    return events


def read_new_feedback() -> str:
    """One tick of the feedback sensor on the instance of $DAGSTER_HOME (the project's resources: the data
    folder's feedback database), then the run it requests. Returns the partition key read."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.feedback.resources import FeedbackDatabase
    from pipelines.feedback.sensors import feedback_sensor

    instance = dg.DagsterInstance.get()
    tick = feedback_sensor(dg.build_sensor_context(instance=instance, resources={"feedback_db": FeedbackDatabase()}))
    (request,) = tick.run_requests
    instance.add_dynamic_partitions("feedback_event_ranges", [request.partition_key])
    result = defs.resolve_job_def("feedback_events_job").execute_in_process(instance=instance,
                                                                           partition_key=request.partition_key)
    assert result.success
    return request.partition_key


if __name__ == "__main__":  # tests/test_ui_browser.py, in the sandbox's environment
    import sys

    from scene_assets import feedback, settings

    data = settings.data_dir()
    print(shoppers_on_the_sample(feedback.configured_url(data), feedback.scene_photos_dir(data), tuple(sys.argv[1:]) or ("control",)))
    print(read_new_feedback())
