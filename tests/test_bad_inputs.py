"""Every kind of the bad-input corpus (tests/bad_inputs.py): its expected outcome, a reason naming the
file/row/field, and the good products exactly as they are without it. Then the whole corpus through
the main job: no crash, and every good product reaches the vectors and the index."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.runner import run_main_job
from scene_assets.indexes import flat_files
from scene_assets.embeddings import read_vectors
from scene_assets.images import open_rgb
from tests.bad_inputs import CORPUS, GOOD_IDS, BadInput, serve_corpus_urls, load_kind, outcome_of, reasons_for, write_catalog

GOOD_COLUMNS = ["product_id", "title", "description", "image_status", "image_sha256", "content_hash"]


@pytest.fixture(scope="module")
def corpus_urls():
    with serve_corpus_urls() as (_server, url):
        yield url


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> pl.DataFrame:
    """The good products loaded without any bad input."""
    loaded = load_kind(write_catalog(tmp_path_factory.mktemp("baseline"), ()))
    return loaded.result.products.select(GOOD_COLUMNS).sort("product_id")


def test_corpus_has_at_least_15_kinds():
    assert len({kind.kind for kind in CORPUS}) >= 15


@pytest.mark.parametrize("kind", CORPUS, ids=lambda kind: kind.kind)
def test_bad_input(kind: BadInput, tmp_path: Path, baseline: pl.DataFrame, corpus_urls: str):
    catalog = write_catalog(tmp_path / "catalog", (kind,), corpus_urls)
    loaded = load_kind(catalog, kind.fetch)
    assert outcome_of(kind, loaded) == kind.outcome, loaded.error or reasons_for(loaded.result.issues, kind.product_id)
    if kind.outcome == "file_error":
        for needle in kind.needles:
            assert needle in loaded.error
        return
    reasons = " | ".join(reasons_for(loaded.result.issues, kind.product_id))
    for needle in kind.needles:
        assert needle in reasons, reasons
    if kind.outcome == "text_only":
        # The product stays in the catalog (its text still recommends it) with its image refused.
        row = loaded.result.products.filter(pl.col("product_id") == kind.product_id).row(0, named=True)
        assert row["image_path"] is None and (row["title"] or row["description"])
    if kind.outcome == "image_ok":
        path = loaded.result.products.filter(pl.col("product_id") == kind.product_id)["image_path"].item()
        image = open_rgb(Path(path))
        assert image.mode == "RGB"
        if kind.kind.startswith("EXIF"):
            assert image.size == (40, 80)  # orientation honoured
    # Nothing else lost: the good products are exactly as without the bad input.
    good = loaded.result.products.filter(pl.col("product_id").is_in(GOOD_IDS)).select(GOOD_COLUMNS).sort("product_id")
    assert good.drop("image_sha256", "content_hash").equals(baseline.drop("image_sha256", "content_hash"))
    assert good["image_status"].to_list() == ["ok"] * 3


def test_whole_corpus_through_the_main_job(tmp_path: Path, fake_defs):
    """All local kinds in one catalog: the run succeeds; every product with a readable image is encoded
    and indexed exactly once, every kept product gets a text vector, every bad row is in the issues."""
    kinds = tuple(kind for kind in CORPUS if kind.fetch == "off" and not kind.whole_file)
    catalog = write_catalog(tmp_path / "catalog", kinds)
    with dg.instance_for_test() as instance:
        summary = run_main_job(instance=instance, defs=fake_defs(catalog))
        assert summary["success"], summary["lines"]
        issues = instance.get_latest_materialization_event(dg.AssetKey("catalog_issues"))
        assert issues is not None
    with_image = set(GOOD_IDS) | {kind.product_id for kind in kinds if kind.outcome == "image_ok"}
    kept = with_image | {kind.product_id for kind in kinds if kind.outcome == "text_only"}
    (index_dir,) = (tmp_path / "data" / "index").glob("scene-*")
    index, manifest = flat_files.load_index(index_dir)
    assert sorted(manifest["product_ids"]) == sorted(with_image) and index.ntotal == len(with_image)
    text = pl.concat([read_vectors(p) for p in (tmp_path / "data" / "vectors" / "text").glob("*.parquet")])
    assert set(text["product_id"]) == kept and text.height == len(kept)
    recorded = pl.read_parquet(next((tmp_path / "data" / "warehouse").rglob("catalog_issues*")))
    for kind in kinds:
        if kind.outcome != "image_ok":
            assert reasons_for(recorded, kind.product_id), kind.kind
