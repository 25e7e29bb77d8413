"""The main job with the real default encoder on a slice of the real IKEA catalog (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.embeddings.resources import EncoderResource
from pipelines.runner import run_main_job
from faces.providers import MaterializedBundleProvider
from scene_assets.indexes import flat_files

SLICE = 160


@pytest.mark.slow
def test_main_job_on_ikea_slice_with_default_encoder(ikea_dir: Path, shared_dir: Path, tmp_path: Path, fake_defs):
    products = pl.read_csv(ikea_dir / "products.csv", infer_schema=False).head(SLICE)
    catalog_dir = tmp_path / "catalog"
    (catalog_dir / "images" / "products").mkdir(parents=True)
    for image in products["image"].drop_nulls():
        shutil.copyfile(ikea_dir / image, catalog_dir / image)
    products.write_csv(catalog_dir / "products.csv")
    data = tmp_path / "data"
    defs = fake_defs(catalog_dir / "products.csv", encoder=EncoderResource(kind="default", device="cpu"))
    with dg.instance_for_test() as instance:
        summary = run_main_job(instance=instance, defs=defs)
        assert summary["success"], summary["lines"]
        alignment = instance.get_latest_materialization_event(dg.AssetKey("image_text_alignment")).asset_materialization
        assert alignment.metadata["final_loss"].value < alignment.metadata["initial_loss"].value
        features = instance.get_latest_materialization_event(
            dg.AssetKey("product_image_features")).asset_materialization
        assert features.metadata["image_model_runtime"].value.startswith("CNN trunk: ONNX Runtime")
        # The recommender loads the bundle the latest scene_index materialization names.
        loaded = MaterializedBundleProvider(instance, device="cpu").load()
        result = loaded.recommender.recommend(shared_dir / "seed_catalog" / "scene-1.jpg", k=5)
    assert loaded.info["products"] == products.filter(pl.col("image").is_not_null() & (pl.col("image") != "")).height
    assert len(result.items) == 5 and set(result.product_ids) <= set(products["product_id"])
    assert not result.calibrated and all(0.0 <= item.confidence <= 1.0 for item in result.items)
    assert abs(sum(result.scene.room_probs.values()) - 1.0) < 1e-6
    with_image = products.filter(pl.col("image").is_not_null() & (pl.col("image") != "")).height
    index_dir = next((data / "index").glob("scene-*"))
    index, manifest = flat_files.load_index(index_dir)
    assert manifest["count"] == with_image and manifest["dim"] == loaded.recommender.index.d
    assert all("FAILED" not in line for line in summary["lines"])
