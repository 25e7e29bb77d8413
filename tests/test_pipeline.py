"""The Dagster wiring end to end, in-process, on tiny data with the fake encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from pipelines.runner import run_main_job
from scene_assets.indexes import flat, flat_files
from scene_assets.indexes.ids import product_int_id
from scene_assets.embeddings import read_vectors
from scene_assets.indexes.vectors import vector_matrix
from scene_assets.encoders import FakeEncoder
from scene_assets.ranking.catalog import StringColumn
from scene_assets.recommender_bundle import load_recommender
from scene_assets.regions import center_and_normalize
from scene_assets.settings import PROJECT_ROOT, sample_dataset_dir
from tests.pipeline_fakes import tiny_catalog_rows, write_tiny_catalog


def _mapped_file(array: np.ndarray) -> bool:
    import mmap

    while isinstance(array, np.ndarray):
        array = array.base
    return isinstance(array.obj if isinstance(array, memoryview) else array, mmap.mmap)


def _encoded_counts(instance: dg.DagsterInstance, run_id: str, asset: str) -> int:
    """`encoded` as reported by the asset's materialization in that run."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=50).records
    values = {r.asset_materialization.metadata["encoded"].value for r in records if r.run_id == run_id}
    assert len(values) == 1, values
    return values.pop()


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_main_job_then_incremental_rerun(tmp_path: Path, instance: dg.DagsterInstance, fake_defs):
    catalog = write_tiny_catalog(tmp_path / "catalog", tiny_catalog_rows())
    summary = run_main_job(instance=instance, defs=fake_defs(catalog))
    assert summary["success"], summary["lines"]
    scene_dir = next((tmp_path / "data" / "index").glob("scene-*"))
    index, manifest = flat_files.load_index(scene_dir)
    assert manifest["count"] == 11  # products with an image
    assert sorted(manifest["product_ids"]) == [f"p{i:02d}" for i in range(11)]
    for asset in ("product_image_features", "product_text_vectors"):
        assert any(f"check {asset}:vectors_match_catalog passed" in line for line in summary["lines"]), summary["lines"]
    assert any("check scene_index:scene_index_consistent passed" in line for line in summary["lines"])
    recommender, bundle = load_recommender(scene_dir, encoder=FakeEncoder(dim=16))
    assert bundle["count"] == 11 and recommender.index.ntotal == 11

    # Change one product's image, another's description; delete a third.
    rows = tiny_catalog_rows()
    rows[3] = (*rows[3][:4], (1, 2, 3))
    rows[5] = (rows[5][0], rows[5][1], rows[5][2], "A completely new description", rows[5][4])
    del rows[7]
    write_tiny_catalog(tmp_path / "catalog", rows)
    summary = run_main_job(instance=instance, defs=fake_defs(catalog))
    assert summary["success"], summary["lines"]
    embed_run = summary["run_ids"][1]
    assert _encoded_counts(instance, embed_run, "product_image_features") == 1
    assert _encoded_counts(instance, embed_run, "product_text_vectors") == 1

    index, manifest = flat_files.load_index(scene_dir)
    assert manifest["count"] == 10 and "p07" not in manifest["product_ids"]
    # 3 of 11 products changed (> 5 %), so a new mean and a full rebuild.
    assert manifest["build_mode"] == "full"
    features = pl.concat([read_vectors(p) for p in sorted((tmp_path / "data" / "vectors" / "image_features").glob("*.parquet"))])
    assert features["product_id"].n_unique() == features.height == 10
    # The index holds the current (centred) features of the changed product.
    row = features.filter(pl.col("product_id") == "p03")
    query = center_and_normalize(vector_matrix(row), np.asarray(manifest["catalog_mean"], dtype=np.float32))
    scores, ids = flat.search(index, query, 1)
    assert ids[0, 0] == product_int_id("p03") and scores[0, 0] > 0.999
    recommender, bundle = load_recommender(scene_dir, encoder=FakeEncoder(dim=16))
    assert bundle["count"] == 10 and "p07" not in set(recommender.product_ids)
    # the re-ranker's per-product columns were written with the bundle and are memory-mapped (#19); the
    # first run's folder is gone; the answers equal those of columns computed at load
    for column in (recommender.products.room_member, recommender.products.text_matrix):
        assert not column.flags.writeable and _mapped_file(column)
    assert [p.name for p in (scene_dir / "product_columns").iterdir()] == [bundle["version"]]
    computed, _ = load_recommender(scene_dir, encoder=FakeEncoder(dim=16), product_columns=False)
    assert not _mapped_file(computed.products.room_member)
    for name, column in computed.products.columns().items():
        np.testing.assert_array_equal(np.asarray(getattr(recommender.products, name)), column, err_msg=name)
    # ... and so are the descriptive attributes and ids (no Python object per product, no catalog read)
    assert isinstance(recommender.product_ids, StringColumn) and _mapped_file(recommender.info.category.codes)
    assert list(recommender.product_ids) == [str(p) for p in computed.product_ids]
    np.testing.assert_array_equal(recommender.int_ids, computed.int_ids)
    for name in ("title", "product_type", "image_path", "category", "group", "variant_group"):
        assert list(getattr(recommender.info, name)) == list(getattr(computed.info, name)), name
    photo = sorted((sample_dataset_dir() / "images" / "scenes").glob("*.jpg"))[0]
    assert recommender.recommend(photo, k=5).to_dict()["items"] == computed.recommend(photo, k=5).to_dict()["items"]
    for room in ("Bedroom", "Living Room"):
        assert (recommender.recommend(photo, k=5, room=room, exclude_categories="lighting").to_dict()["items"]
                == computed.recommend(photo, k=5, room=room, exclude_categories="lighting").to_dict()["items"])
    # columns written for other products (a stale bundle.json edit) are not used: computed again
    stale = json.loads((scene_dir / "bundle.json").read_text())
    stale["product_columns"]["products_sha256"] = "0" * 64
    (scene_dir / "bundle.json").write_text(json.dumps(stale))
    reloaded, _ = load_recommender(scene_dir, encoder=FakeEncoder(dim=16))
    assert not _mapped_file(reloaded.products.room_member)
    scene_event = instance.get_latest_materialization_event(dg.AssetKey("scene_index"))
    assert scene_event.asset_materialization.metadata["recentred"].value is True
    # the index kind was measured against the search budget (tiny catalog: exact search within it)
    assert manifest["selection"]["chosen"] == "Flat" and manifest["selection"]["within_budget"] is True
    assert scene_event.asset_materialization.metadata["index_choice"].value == "Flat"
    # timed on the region queries of the embedded sample's scene photos (8 scenes x 30 regions)
    assert scene_event.asset_materialization.metadata["search_timed_on"].value == "240 given"
    # the FAISS thread count measured for the chosen index, and its timings, are shown too
    threads = scene_event.asset_materialization.metadata["search_threads"].value
    assert threads >= 1 and "1" in scene_event.asset_materialization.metadata["search_ms_by_threads"].value
    assert "| Flat |" in scene_event.asset_materialization.metadata["index_candidates"].value
    assert scene_event.asset_materialization.metadata["bundle_version"].value == bundle["version"]


def test_catalog_assets_metadata_and_checks(tmp_path: Path, instance: dg.DagsterInstance, fake_defs):
    catalog = write_tiny_catalog(tmp_path / "catalog", tiny_catalog_rows())
    defs = fake_defs(catalog)
    result = defs.resolve_job_def("catalog_job").execute_in_process(instance=instance)
    assert result.success
    products = result.output_for_node("cleaned_catalog", "cleaned_catalog")
    issues = result.output_for_node("cleaned_catalog", "catalog_issues")
    assert products.height == 12 and issues.height == 1
    enriched = result.output_for_node("enriched_catalog")
    assert {"category", "colors", "dimensions_cm", "embedding_text"} <= set(enriched.columns)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"product_ids_unique": True, "image_share": True, "enrichment_complete": True}
    materialization = result.asset_materializations_for_node("cleaned_catalog")[0]
    assert materialization.metadata["dagster/row_count"].value == 12
    assert "preview" in materialization.metadata


def test_definitions_validate():
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "pipelines.definitions"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_alignment_head_reused_for_small_changes(tmp_path: Path, instance: dg.DagsterInstance, fake_defs, monkeypatch):
    """With the default encoder's split (trunk features + head), a small catalog change keeps the
    trained head, so only the changed product's vectors and index entries move."""
    from pipelines.embeddings import assets as embedding_assets
    from scene_assets.embeddings import ImageFeatureStage

    real_of = ImageFeatureStage.of

    def fake_split(encoder):
        stage = real_of(encoder)
        # Pretend the fake encoder has a trainable head: identity-sized projection via the alignment API.
        from scene_assets.alignment import load_projection_artifact  # noqa: F401

        return ImageFeatureStage(stage.fingerprint, stage.dim, stage.encode_batch, lambda x: x)

    monkeypatch.setattr(embedding_assets.ImageFeatureStage, "of", staticmethod(fake_split))
    rows = [(f"p{i:02d}", f"NAME{i}", "Chair", f"A chair number {i}", (i * 20, 100, 200 - i * 10)) for i in range(10)]
    catalog = write_tiny_catalog(tmp_path / "catalog", rows)
    defs = fake_defs(catalog)
    job = defs.resolve_job_def("catalog_job")
    assert job.execute_in_process(instance=instance).success
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    keys = defs.resolve_job_def("embed_shards_job").partitions_def.get_partition_keys()
    ranged = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    assert defs.resolve_job_def("embed_shards_job").execute_in_process(instance=instance, tags=ranged).success
    alignment = defs.resolve_job_def("alignment_job")
    run_config = {"ops": {"image_text_alignment": {"config": {"epochs": 2, "batch_size": 8}}}}
    first = alignment.execute_in_process(instance=instance, run_config=run_config)
    first_meta = first.asset_materializations_for_node("image_text_alignment")[0].metadata
    assert first_meta["trained"].value is True

    # Change 1 of 10 pairs (10 %): above a 5 % threshold → retrain; with 20 % threshold → reuse.
    rows[0] = (*rows[0][:3], "A different chair", rows[0][4])
    write_tiny_catalog(tmp_path / "catalog", rows)
    assert job.execute_in_process(instance=instance).success
    assert defs.resolve_job_def("embed_shards_job").execute_in_process(instance=instance, tags=ranged).success
    lenient = {"ops": {"image_text_alignment": {"config": {"epochs": 2, "batch_size": 8, "retrain_changed_share": 0.2}}}}
    reused = alignment.execute_in_process(instance=instance, run_config=lenient)
    meta = reused.asset_materializations_for_node("image_text_alignment")[0].metadata
    assert meta["reused"].value is True and meta["changed_share"].value == pytest.approx(0.1)
    assert meta["head_sha256"].value == first_meta["head_sha256"].value
    strict = alignment.execute_in_process(instance=instance, run_config={"ops": {"image_text_alignment": {"config": {"epochs": 2, "batch_size": 8, "retrain_changed_share": 0.2, "force_retrain": True}}}})
    assert strict.asset_materializations_for_node("image_text_alignment")[0].metadata["trained"].value is True


def test_encoder_is_chosen_by_environment(monkeypatch):
    from pipelines.definitions import default_resources

    monkeypatch.setenv("SCENE_MATCHER_ENCODER", "open_clip")
    monkeypatch.setenv("SCENE_MATCHER_ENCODER_MODEL", "ViT-B-32")
    monkeypatch.setenv("SCENE_MATCHER_ENCODER_PRETRAINED", "/models/vit-b-32.safetensors")
    encoder = default_resources()["encoder"]
    spec = encoder.spec()
    assert (spec.kind, spec.options.model_name, spec.options.pretrained, spec.device) == ("open_clip", "ViT-B-32", "/models/vit-b-32.safetensors", "auto")
