"""Two-stage bundles (#19): a catalog served from the merged, memory-mapped sharded IVF-PQ index with
exact re-scoring, every per-product column and attribute memory-mapped (``scene_assets.two_stage_bundle``)."""

from __future__ import annotations

import json

import faiss
import numpy as np
import polars as pl
import pytest
from PIL import Image

from scene_assets.embeddings import shard_keys, shard_of
from scene_assets.encoders import EncoderSpec, FakeEncoder, FakeOptions
from scene_assets.indexes import sharded_build, vector_sources
from scene_assets.matching import Recommender
from scene_assets.ranking.catalog import StringColumn
from scene_assets.recommender_bundle import BundleError, load_recommender
from scene_assets.two_stage_bundle import chained, write_two_stage_bundle
from tests.drawing import SHAPES, product_image

N = 3000
DIM = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    faiss.omp_set_num_threads(1)
    encoder = FakeEncoder(dim=DIM)
    rng = np.random.default_rng(0)
    pids = [f"sku-{i:05d}" for i in range(N)]
    # products: drawn product photos encoded by the fake encoder, plus noise (so the catalog is not 24 points)
    base = encoder.encode_images([product_image((40 * (i % 6), 90, 200 - 30 * (i % 6)), SHAPES[i % len(SHAPES)], i)
                                  for i in range(24)])
    vectors = base[rng.integers(0, 24, N)] + 0.15 * rng.normal(size=(N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shard = np.array([shard_of(p, 4) for p in pids])
    sources = [vector_sources.ArrayVectorSource(key, [pids[i] for i in np.flatnonzero(shard == s)],
                                                vectors[shard == s]) for s, key in enumerate(shard_keys(4))]
    root = tmp_path_factory.mktemp("two-stage")
    report = sharded_build.build_sharded_index(sources, root / "ivf", fingerprint=encoder.fingerprint(),
                                               memory_budget_bytes=64 << 20, latency_target_ms=5.0, nlist=16, m=4,
                                               tune=False)
    cats = ["seating", "tables", "lighting", "rugs", "not-a-category"]
    catalog = pl.DataFrame({
        "product_id": pids, "title": [f"Product {i}" for i in range(N)], "category": [cats[i % 5] for i in range(N)],
        "colors": [["red"] if i % 3 else ["multicolour"] for i in range(N)], "materials": [["oak"]] * N,
        "room_hints": [["Bedroom"] if i % 4 == 0 else [] for i in range(N)], "style_words": [["rustic"]] * N,
        "variant_group": [f"g{i // 2}" for i in range(N)]})
    text = pl.DataFrame({"product_id": pids[::2], "vector": rng.normal(size=(N // 2, DIM)).astype(np.float32).tolist()})
    bundle_dir = root / "bundle"
    bundle = write_two_stage_bundle(bundle_dir, report.merged.directory, catalog=catalog,
                                    vector_chunks=chained(s.chunks(700) for s in sources), encoder=encoder,
                                    encoder_spec=EncoderSpec(kind="fake", options=FakeOptions(dim=DIM), device="cpu"),
                                    text_vectors=text, chunk_rows=1000)
    return {"encoder": encoder, "pids": pids, "vectors": vectors, "catalog": catalog, "text": text,
            "merged": report.merged.directory, "bundle_dir": bundle_dir, "bundle": bundle, "sources": sources}


def test_two_stage_bundle_serves_like_the_catalog_in_memory(world):
    recommender, bundle = load_recommender(world["bundle_dir"], encoder=world["encoder"])
    assert bundle["kind"] == "two_stage" and bundle["count"] == N
    assert recommender.rescore and isinstance(recommender.product_ids, StringColumn)
    # the exact vectors are mapped for random access, their candidate rows prefetched together
    assert recommender._vector_prefetch is not None and recommender._vector_prefetch(np.array([0, 5, N - 1])) is None
    from scene_assets.recommender_bundle import row_prefetcher

    assert row_prefetcher(np.zeros((4, 3), np.float16)) is None
    assert isinstance(recommender.index.index, faiss.Index) and recommender.index.ntotal == N
    # the same catalog held in memory: index from the folder, exact vectors and columns computed at load
    row = {p: i for i, p in enumerate(world["pids"])}
    order = [row[p] for p in recommender.product_ids]
    reference = Recommender.from_index_dir(
        world["encoder"], world["merged"], world["catalog"], product_vectors=world["vectors"][order], rescore=True,
        text_vectors=(world["text"]["product_id"].to_list(), np.asarray(world["text"]["vector"].to_list(), np.float32)))
    for name, column in reference.products.columns().items():
        stored = np.asarray(getattr(recommender.products, name))
        if column.dtype.kind == "f":  # styles from text logits computed in row chunks: float rounding only
            np.testing.assert_allclose(stored.astype(np.float32), column.astype(np.float32), atol=1e-3 if
                                       name == "text_matrix" else 1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(stored, column, err_msg=name)
    image = Image.new("RGB", (96, 64), (200, 60, 40))
    image.paste(product_image((0, 90, 200), SHAPES[0], 0), (0, 0))
    for options in ({}, {"exclude_categories": "lighting"}, {"room": "Bedroom", "diversity": "category_cap"}):
        got = recommender.recommend(image, k=8, **options)
        want = reference.recommend(image, k=8, **options)
        assert got.product_ids == want.product_ids and len(got.items) == 8, options
        for a, b in zip(got.items, want.items):
            assert a.visual_similarity == pytest.approx(b.visual_similarity, abs=2e-3)
            assert a.title == b.title and a.category == b.category
    assert all(p.startswith("sku-") for p in got.product_ids)


def test_two_stage_bundle_refuses_a_re_merged_index_and_another_encoder(world, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(world["bundle_dir"], copy)
    bundle = json.loads((copy / "bundle.json").read_text())
    with pytest.raises(BundleError, match="encoder"):
        load_recommender(copy, encoder=FakeEncoder(dim=DIM + 1))
    bundle["index_manifest_sha256"] = "0" * 64
    (copy / "bundle.json").write_text(json.dumps(bundle))
    with pytest.raises(BundleError, match="re-merged"):
        load_recommender(copy, encoder=world["encoder"])


def test_vectors_not_of_the_index_are_refused(world, tmp_path):
    few = chained([world["sources"][0].chunks(500)])
    with pytest.raises(ValueError, match="not the index's vectors"):
        write_two_stage_bundle(tmp_path / "b", world["merged"], catalog=world["catalog"], vector_chunks=few,
                               encoder=world["encoder"], encoder_spec=EncoderSpec(kind="fake", options=FakeOptions(dim=DIM)))


def test_scene_matcher_serve_answers_from_a_two_stage_bundle(world):
    """The HTTP server loads it like any bundle folder (``serve --index DIR``): /ready names its
    version, /match answers with products of the merged index."""
    import io

    from faces.providers import DirectoryBundleProvider
    from tests.test_serving import _settings, _wait_for, running

    image = io.BytesIO()
    product_image((0, 90, 200), SHAPES[0], 0).save(image, format="PNG")
    with running(DirectoryBundleProvider(world["bundle_dir"]), _settings()) as client:
        ready = _wait_for(lambda: (r := client.get("/ready")).status_code == 200 and r, what="/ready 200")
        assert world["bundle"]["version"] in json.dumps(ready.json())
        answer = client.post("/match", files={"image": ("scene.png", image.getvalue(), "image/png")}, data={"k": 5})
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        assert len(items) == 5 and all(it["product_id"].startswith("sku-") and it["title"] for it in items)


def test_centred_index_serves_the_learned_projection_like_the_catalog_in_memory(world, tmp_path):
    """A sharded index centred on the catalog mean (as the pipeline builds it over the scene index's
    vectors): the mean is streamed over the shards and saved with the trained index, every shard and
    the bundle's exact vectors are centred on it, queries are centred the same way, and a learned
    scorer's projection serves through the two stages as it does from the catalog held in memory."""
    from scene_assets.learned import LearnedScorer, RegionProjection
    from scene_assets.matching import catalog_mean
    from scene_assets.regions import center_and_normalize

    encoder, sources, vectors = world["encoder"], world["sources"], world["vectors"]
    report = sharded_build.build_sharded_index(sources, tmp_path / "ivf", fingerprint=encoder.fingerprint(),
                                               memory_budget_bytes=64 << 20, latency_target_ms=5.0, nlist=16, m=4,
                                               tune=False, centre=True, vector_space="joint")
    trained = report.trained
    assert trained.centred and trained.manifest["vector_space"] == "joint"
    np.testing.assert_allclose(trained.catalog_mean, catalog_mean(vectors), atol=1e-6)
    assert report.merged.manifest["centred"] and report.merged.manifest["vector_space"] == "joint"
    np.testing.assert_array_equal(np.asarray(report.merged.manifest["catalog_mean"], np.float32), trained.catalog_mean)
    # another centring is another index: the shard folders of the uncentred world are not reused
    uncentred = sharded_build.load_shard(next((world["merged"].parents[1] / "shards" / sources[0].key).iterdir()))
    assert report.shards[0].manifest["version"] != uncentred.manifest["version"]
    assert sharded_build.reuse_reason(trained, N, DIM, encoder.fingerprint(), memory_budget_bytes=64 << 20,
                                      latency_target_ms=5.0) == "centring on the catalog mean was turned off"

    bundle_dir = tmp_path / "bundle"
    bundle = write_two_stage_bundle(bundle_dir, report.merged.directory, catalog=world["catalog"],
                                    vector_chunks=chained(s.chunks(700) for s in sources), encoder=encoder,
                                    encoder_spec=EncoderSpec(kind="fake", options=FakeOptions(dim=DIM), device="cpu"),
                                    text_vectors=world["text"], chunk_rows=1000)
    assert bundle["centred"] and bundle["vector_space"] == "joint"
    rng = np.random.default_rng(3)
    projection = RegionProjection(rng.normal(size=(DIM, 8)).astype(np.float32), rng.normal(size=(DIM, 8)).astype(np.float32))
    scorer = LearnedScorer(projection, trunk_fingerprint=encoder.fingerprint())
    recommender, _ = load_recommender(bundle_dir, encoder=encoder, learned=scorer)
    row = {p: i for i, p in enumerate(world["pids"])}
    order = [row[p] for p in recommender.product_ids]
    centred = center_and_normalize(vectors[order], trained.catalog_mean)
    np.testing.assert_allclose(np.asarray(recommender.stored_vectors(), np.float32), centred, atol=2e-3)
    np.testing.assert_allclose(recommender.catalog_mean, trained.catalog_mean)
    assert recommender.products.projection is not None  # the learned factor is on, not disabled
    reference = Recommender.from_index_dir(
        encoder, report.merged.directory, world["catalog"], product_vectors=centred, rescore=True, learned=scorer,
        text_vectors=(world["text"]["product_id"].to_list(), np.asarray(world["text"]["vector"].to_list(), np.float32)))
    image = Image.new("RGB", (96, 64), (200, 60, 40))
    image.paste(product_image((0, 90, 200), SHAPES[0], 0), (0, 0))
    for options in ({}, {"exclude_categories": "lighting"}):
        got, want = recommender.recommend(image, k=8, **options), reference.recommend(image, k=8, **options)
        assert got.product_ids == want.product_ids and len(got.items) == 8, options
        for a, b in zip(got.items, want.items):
            assert "learned" in a.factors and a.factors["learned"] == pytest.approx(b.factors["learned"], abs=2e-3)
