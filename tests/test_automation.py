"""Automation: the catalog-file sensor (cursor = the file's fingerprint, a change requests the main job's
assets as one backfill) and the nightly full-export schedule, evaluated tick by tick against a real
Dagster instance."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipelines.catalog.sensors import CATALOG_SHA_TAG, catalog_file_sensor
from scene_assets.catalog import catalog_changed, file_fingerprint
from scene_assets.indexes.store import sha256_of_file
from pipelines.definitions import build_defs
from pipelines.embeddings.partitions import catalog_shards
from pipelines.export.resources import SceneInbox
from pipelines.export.sensors import nightly_full_export, weekly_full_export
from pipelines.resources import CatalogSource
from scene_assets.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "sample"
MAIN_JOB_ASSETS = {
    "cleaned_catalog", "catalog_issues", "enriched_catalog", "product_image_features", "product_text_vectors",
    "image_text_alignment", "product_image_vectors", "scene_index",
}
SHARDED = {"product_image_features", "product_text_vectors"}


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture()
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog" / "products.csv"
    path.parent.mkdir()
    shutil.copyfile(SAMPLE / "products.csv", path)
    return path


@pytest.fixture()
def defs(catalog: Path) -> dg.Definitions:
    return build_defs({"catalog_source": CatalogSource(path=str(catalog), fetch_remote_images=False)})


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    return catalog_file_sensor(_sensor_context(defs, instance, cursor))


def _sensor_context(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    # The Definitions give the sensor its asset graph; the resource is handed over explicitly.
    return dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                   resources={"catalog_source": defs.resources["catalog_source"]})


def _requested_assets(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_graph_subset.asset_keys}


def test_fingerprint_reuses_hash_only_for_an_untouched_file(catalog: Path):
    first = file_fingerprint(catalog)
    assert first == {"path": str(catalog), "size": catalog.stat().st_size, "mtime_ns": catalog.stat().st_mtime_ns,
                     "sha256": sha256_of_file(catalog)}
    # Same stat: the stored hash is trusted (a fake one proves the file was not re-read).
    assert file_fingerprint(catalog, {**first, "sha256": "stored"})["sha256"] == "stored"
    # Touched: re-hashed, and the same bytes are not a change.
    os.utime(catalog, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    touched = file_fingerprint(catalog, {**first, "sha256": "stored"})
    assert touched["sha256"] == first["sha256"] and not catalog_changed(first, touched)
    assert catalog_changed(None, first)
    assert catalog_changed(first, {**first, "path": "/elsewhere/products.csv"})
    assert file_fingerprint(catalog.parent / "missing.csv") is None


def test_catalog_sensor_requests_main_job_assets_only_when_the_file_changes(defs, instance, catalog: Path):
    # First tick: a catalog the sensor has never seen -> one backfill of the catalog and everything the
    # main job builds from it, every shard of the sharded assets included.
    first = _tick(defs, instance, None)
    assert isinstance(first, dg.SensorResult)
    (request,) = first.run_requests
    assert request.requires_backfill_daemon()
    assert _requested_assets(request) == MAIN_JOB_ASSETS
    for name in SHARDED:
        subset = request.asset_graph_subset.get_partitions_subset(dg.AssetKey(name))
        assert set(subset.get_partition_keys()) == set(catalog_shards.get_partition_keys())
    cursor = json.loads(first.cursor)
    assert cursor["sha256"] == sha256_of_file(catalog) and cursor["path"] == str(catalog)
    assert request.tags[CATALOG_SHA_TAG] == cursor["sha256"][:16]
    # The request passes Dagster's own check that it stays inside the sensor's asset selection.
    sensor_def = defs.resolve_sensor_def("catalog_file_sensor")
    validated = sensor_def.evaluate_tick(_sensor_context(defs, instance))
    assert [_requested_assets(r) for r in validated.run_requests] == [MAIN_JOB_ASSETS]

    # Unchanged: no request, cursor kept.
    unchanged = _tick(defs, instance, first.cursor)
    assert not unchanged.run_requests and unchanged.skip_reason and "unchanged" in str(unchanged.skip_reason)
    assert json.loads(unchanged.cursor) == cursor

    # Touched with the same bytes: still no request, but the cursor records the new mtime.
    os.utime(catalog, ns=(cursor["mtime_ns"] + 10**9, cursor["mtime_ns"] + 10**9))
    touched = _tick(defs, instance, unchanged.cursor)
    assert not touched.run_requests
    assert json.loads(touched.cursor)["mtime_ns"] == cursor["mtime_ns"] + 10**9

    # New bytes: exactly one request, and the cursor advances to the new hash.
    with catalog.open("a") as handle:
        handle.write('999.999.99,NEWTHING,"Chair",White,40 cm,"A brand new chair",\n')
    changed = _tick(defs, instance, touched.cursor)
    (again,) = changed.run_requests
    assert _requested_assets(again) == MAIN_JOB_ASSETS
    new_cursor = json.loads(changed.cursor)
    assert new_cursor["sha256"] == sha256_of_file(catalog) != cursor["sha256"]
    assert new_cursor["size"] > cursor["size"]

    # And nothing again after that.
    after = _tick(defs, instance, changed.cursor)
    assert not after.run_requests and json.loads(after.cursor) == new_cursor


def test_catalog_sensor_skips_a_missing_file_and_keeps_its_cursor(tmp_path: Path, instance):
    defs = build_defs({"catalog_source": CatalogSource(path=str(tmp_path / "gone.csv"))})
    result = _tick(defs, instance, None)
    assert isinstance(result, dg.SkipReason) and "gone.csv" in str(result.skip_message)


def test_automation_is_registered_and_off_by_default():
    from pipelines.definitions import defs

    sensor = defs.resolve_sensor_def("catalog_file_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 60
    nightly, weekly = defs.resolve_schedule_def("nightly_full_export"), defs.resolve_schedule_def("weekly_full_export")
    assert (nightly.cron_schedule, weekly.cron_schedule) == ("0 2 * * *", "0 3 * * 1")
    assert nightly.job_name == weekly.job_name == "export_recommendations_job"
    assert nightly.default_status == weekly.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.fixture()
def inbox(tmp_path: Path) -> SceneInbox:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for image in sorted((SAMPLE / "images" / "scenes").glob("*.jpg"))[:3]:
        shutil.copyfile(image, folder / image.name)
    return SceneInbox(folder=str(folder), manifests_dir=str(tmp_path / "batches"))


def test_nightly_schedule_creates_a_batch_of_every_scene_and_a_run_request(instance, inbox: SceneInbox):
    when = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone.utc)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources={"scene_inbox": inbox})
    request = nightly_full_export(context)
    assert isinstance(request, dg.RunRequest)
    key = request.partition_key
    assert key.startswith("full-20261124T020000Z-") and request.run_key == key
    assert instance.get_dynamic_partitions("scene_batches") == [key]
    manifest = json.loads(Path(inbox.manifest_path(key)).read_text())
    assert sorted(f["name"] for f in manifest["files"]) == sorted(p.name for p in inbox.path().iterdir())
    # The weekly schedule runs the same body: the same scheduled time gives the same batch.
    weekly = weekly_full_export(dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                                          resources={"scene_inbox": inbox}))
    assert weekly.partition_key == key
    assert instance.get_dynamic_partitions("scene_batches") == [key]


def test_nightly_schedule_skips_an_empty_inbox(tmp_path: Path, instance):
    inbox = SceneInbox(folder=str(tmp_path / "empty"), manifests_dir=str(tmp_path / "batches"))
    context = dg.build_schedule_context(instance=instance, resources={"scene_inbox": inbox})
    assert isinstance(nightly_full_export(context), dg.SkipReason)
    assert instance.get_dynamic_partitions("scene_batches") == []
