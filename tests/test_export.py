"""Batch export: the export domain functions, and the Dagster job driven by its sensor and schedule
on the embedded sample (fake encoder, so it is quick)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.export.resources import SceneInbox
from pipelines.export.sensors import scene_inbox_sensor, weekly_full_export
from scene_assets.export import batch_key, list_scene_images, new_scene_files, watermark_of
from scene_assets.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "sample"


def test_inbox_listing_and_watermark(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.PNG", "sub/c.webp", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / "a.jpg", ns=(1_000, 1_000))
    os.utime(tmp_path / "b.PNG", ns=(2_000, 2_000))
    os.utime(tmp_path / "sub/c.webp", ns=(3_000, 3_000))
    files = list_scene_images(tmp_path)
    assert [f.name for f in files] == ["a.jpg", "b.PNG", "sub/c.webp"]
    mark = watermark_of(files[:2])
    assert mark == (2_000, "b.PNG")
    assert [f.name for f in new_scene_files(tmp_path, mark)] == ["sub/c.webp"]
    os.utime(tmp_path / "a.jpg", ns=(5_000, 5_000))  # rewritten: exported again
    assert [f.name for f in new_scene_files(tmp_path, watermark_of(files))] == ["a.jpg"]
    # Keys are unique per file list and readable.
    assert batch_key("inbox", files[:1], 0).startswith("inbox-19700101T000000Z-")
    assert batch_key("inbox", files[:1], 0) != batch_key("inbox", files[:2], 0)


@pytest.fixture()
def pipeline(tmp_path: Path, materialized_sample_copy):
    inbox = tmp_path / "inbox"
    shutil.copytree(SAMPLE / "images" / "scenes", inbox)
    (inbox / "broken.jpg").write_bytes((SAMPLE / "images" / "scenes").glob("*.jpg").__next__().read_bytes()[:300])
    data = materialized_sample_copy.data
    scene_inbox = SceneInbox(folder=str(inbox), manifests_dir=str(data / "exports" / "batches"))
    defs = materialized_sample_copy.defs(scene_inbox=scene_inbox)
    with materialized_sample_copy.instance() as instance:
        yield {"defs": defs, "instance": instance, "inbox": inbox, "data": data, "scene_inbox": scene_inbox}


def _run_export(pipeline, key: str, k: int = 5) -> dg.ExecuteInProcessResult:
    return pipeline["defs"].resolve_job_def("export_recommendations_job").execute_in_process(
        instance=pipeline["instance"],
        partition_key=key,
        run_config={"ops": {"scene_recommendations": {"config": {"k": k}}}},
    )


def test_sensor_batch_export_writes_parquet_csv_gallery(pipeline):
    instance, inbox = pipeline["instance"], pipeline["inbox"]
    context = dg.build_sensor_context(instance=instance, resources={"scene_inbox": pipeline["scene_inbox"]})
    result = scene_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    key = request.partition_key
    assert key.startswith("inbox-")
    assert result.dynamic_partitions_requests[0].partition_keys == [key]
    instance.add_dynamic_partitions("scene_batches", [key])

    run = _run_export(pipeline, key, k=5)
    assert run.success
    metadata = run.asset_materializations_for_node("scene_recommendations")[0].metadata
    n_scenes = len(list((SAMPLE / "images" / "scenes").glob("*.jpg")))
    assert metadata["scenes"].value == n_scenes + 1
    assert metadata["scenes_failed"].value == 1  # the truncated file is skipped, not fatal
    assert metadata["rows"].value == n_scenes * 5

    out = pipeline["data"] / "exports" / "batches" / key
    recs = pl.read_parquet(out / "recommendations.parquet")
    catalog_ids = set(pl.read_csv(SAMPLE / "products.csv", infer_schema=False)["product_id"])
    assert set(recs["product_id"]) <= catalog_ids  # real product ids, never positions
    assert recs.group_by("scene").len()["len"].to_list() == [5] * n_scenes
    assert recs.filter(pl.col("rank") == 1)["score"].min() > 0
    assert {"factor_visual", "factor_room_fit", "confidence", "index_version"} <= set(recs.columns)
    assert recs["calibrated"].unique().to_list() == [False]
    csv = pl.read_csv(out / "recommendations.csv")
    assert csv.height == recs.height
    failures = pl.read_csv(out / "failures.csv")
    assert failures["scene"].to_list() == ["broken"] and "broken.jpg" in failures["reason"][0]

    html = (out / "gallery" / "index.html").read_text()
    assert html.count('class="scene"') == n_scenes
    assert html.count('class="card"') == n_scenes * 5
    assert recs["product_id"][0] in html and "Skipped scenes" in html
    for src in ["thumbs/" + part.split('"')[0] for part in html.split('src="thumbs/')[1:]]:
        assert (out / "gallery" / src).is_file(), src  # every thumbnail the page links exists

    # Cursor: nothing new -> skip; one new file -> a batch of just that file.
    context = dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"scene_inbox": pipeline["scene_inbox"]})
    assert isinstance(scene_inbox_sensor(context), dg.SkipReason)
    shutil.copyfile(next(inbox.glob("scene_*.jpg")), inbox / "new-room.jpg")
    again = scene_inbox_sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"scene_inbox": pipeline["scene_inbox"]})
    )
    new_key = again.run_requests[0].partition_key
    manifest = json.loads((pipeline["data"] / "exports" / "batches" / f"{new_key}.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["new-room.jpg"]


def test_weekly_schedule_exports_everything(pipeline):
    instance = pipeline["instance"]
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc),
        resources={"scene_inbox": pipeline["scene_inbox"]},
    )
    request = weekly_full_export(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key.startswith("full-20261123T030000Z-")
    assert request.partition_key in instance.get_dynamic_partitions("scene_batches")
    run = _run_export(pipeline, request.partition_key, k=3)
    assert run.success
    metadata = run.asset_materializations_for_node("scene_recommendations")[0].metadata
    assert metadata["scenes_exported"].value == len(list((SAMPLE / "images" / "scenes").glob("*.jpg")))


def test_empty_inbox_is_skipped(tmp_path: Path):
    inbox = SceneInbox(folder=str(tmp_path / "empty"), manifests_dir=str(tmp_path / "m"))
    with dg.instance_for_test() as instance:
        assert isinstance(scene_inbox_sensor(dg.build_sensor_context(instance=instance, resources={"scene_inbox": inbox})), dg.SkipReason)


# --------------------------------------------------------------------------------------------
# one provider policy: the export job, `recommend` and the HTTP app rank a scene identically


def _materialize_learned_scorer(pipeline, trunk_fingerprint: str) -> str:
    """A learned scorer (a calibrator: calibrated confidences, and the learned default weights) saved
    and recorded as the instance's latest learned_scorer materialization; its fingerprint."""
    import numpy as np

    from scene_assets.learned import IsotonicCalibrator, LearnedScorer

    scores = np.linspace(0.0, 1.0, 50)
    scorer = LearnedScorer(calibrator=IsotonicCalibrator.fit(scores, (scores > 0.6).astype(float)),
                           trunk_fingerprint=trunk_fingerprint)
    fingerprint = scorer.fingerprint()
    directory = scorer.save(pipeline["data"] / "models" / "learned" / fingerprint)
    pipeline["instance"].report_runless_asset_event(dg.AssetMaterialization(
        "learned_scorer", metadata={"learned_dir": dg.MetadataValue.path(str(directory)),
                                    "learned_fingerprint": fingerprint}))
    return fingerprint


def _one_scene_batch(pipeline, scene: Path) -> str:
    from pipelines.export.sensors import create_batch

    key = create_batch(pipeline["scene_inbox"], "one", [f for f in list_scene_images(pipeline["inbox"])
                                                        if f.name == scene.name])
    pipeline["instance"].add_dynamic_partitions("scene_batches", [key])
    return key


def _cli_provider(pipeline, monkeypatch, tmp_path: Path):
    """The provider `scene-matcher recommend SCENE` builds, over the test's Dagster instance."""
    from faces.cli import _provider, build_parser

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setattr(dg.DagsterInstance, "get", staticmethod(lambda: pipeline["instance"]))
    return _provider(build_parser().parse_args(["recommend", "scene.jpg", "--device", "cpu"]))


def test_export_recommend_and_http_rank_a_scene_identically(pipeline, monkeypatch, tmp_path: Path):
    from faces.http_app import ServingSettings
    from scene_assets.images import open_rgb
    from tests.test_serving import running

    bundle = json.loads((Path(pipeline["instance"].get_latest_materialization_event(
        dg.AssetKey("scene_index")).asset_materialization.metadata["index_dir"].value) / "bundle.json").read_text())
    fingerprint = _materialize_learned_scorer(pipeline, bundle["encoder_fingerprint"])
    scene = sorted(pipeline["inbox"].glob("scene_*.jpg"))[0]
    k = 5

    run = _run_export(pipeline, _one_scene_batch(pipeline, scene), k=k)
    assert run.success
    metadata = run.asset_materializations_for_node("scene_recommendations")[0].metadata
    exported = pl.read_parquet(Path(str(metadata["parquet"].value))).sort("rank")

    provider = _cli_provider(pipeline, monkeypatch, tmp_path)
    loaded = provider.load()
    recommended = loaded.recommender.recommend(open_rgb(scene), k=k).to_dict()

    with running(provider, ServingSettings(max_concurrency=1)) as client:
        answer = client.post("/match", files={"image": (scene.name, scene.read_bytes(), "image/jpeg")},
                             data={"k": str(k)}).json()

    assert exported["calibrated"].to_list() == [True] * k  # the scorer's calibrator is attached
    products = exported["product_id"].to_list()
    assert [item["product_id"] for item in recommended["items"]] == products
    assert [item["product_id"] for item in answer["items"]] == products
    confidences = exported["confidence"].to_list()  # rounded to 5 decimals; the JSON answers to 4
    assert [item["confidence"] for item in recommended["items"]] == pytest.approx(confidences, abs=6e-5)
    assert [item["confidence"] for item in answer["items"]] == [item["confidence"] for item in recommended["items"]]
    # and all three name the same bundle + scorer
    assert metadata["learned_scorer"].value == fingerprint
    assert answer["index_version"] == loaded.version == metadata["index_version"].value == exported["index_version"][0]
    assert loaded.version == f"{bundle['version']}+{fingerprint[:12]}"

    # Told otherwise (use_learned: false / --no-learned): no scorer in either, and the ranking shows it.
    plain = pipeline["defs"].resolve_job_def("export_recommendations_job").execute_in_process(
        instance=pipeline["instance"], partition_key=_one_scene_batch(pipeline, scene),
        run_config={"ops": {"scene_recommendations": {"config": {"k": k, "use_learned": False}}}})
    plain_rows = pl.read_parquet(Path(str(plain.asset_materializations_for_node(
        "scene_recommendations")[0].metadata["parquet"].value)))
    assert plain_rows["calibrated"].to_list() == [False] * k


def test_a_scorer_fitted_on_another_encoder_is_refused_by_every_face(pipeline, monkeypatch, tmp_path: Path):
    from faces.http_app import ServingSettings
    from scene_assets.recommender_bundle import BundleError
    from tests.test_serving import running

    _materialize_learned_scorer(pipeline, trunk_fingerprint="another-encoder")
    scene = sorted(pipeline["inbox"].glob("scene_*.jpg"))[0]
    run = pipeline["defs"].resolve_job_def("export_recommendations_job").execute_in_process(
        instance=pipeline["instance"], partition_key=_one_scene_batch(pipeline, scene), raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.is_step_failure)
    assert "fitted on encoder features another-encod" in failure.step_failure_data.error.to_string()

    provider = _cli_provider(pipeline, monkeypatch, tmp_path)
    with pytest.raises(BundleError, match="refit it .* or serve without it"):
        provider.load()
    with running(provider, ServingSettings(max_concurrency=1)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503 and "fitted on encoder features another-encod" in ready.json()["reason"]
