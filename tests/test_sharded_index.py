"""Tests for the sharded index kind (scene_assets/indexes/sharded_*.py) and its Dagster assets (seeded faiss SyntheticDataset,
20k x 64-d, 64 lists, one FAISS thread; the whole file runs in well under 30 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import faiss
import numpy as np
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from faiss.contrib.datasets import SyntheticDataset
from faiss.contrib.evaluation import check_ref_knn_with_draws, knn_intersection_measure

from scene_assets.indexes import errors, sharded_build, sharded_files, sharded_params, sharded_serving, vector_sources
from scene_assets.embeddings import shard_keys, shard_of
from scene_assets.indexes.ids import assign_ids
from scene_assets.indexes.vectors import center_and_normalize

FP = "encoder:test-v1"
N_SHARDS = 4
K = 10
BUILD = {"memory_budget_bytes": 64 << 20, "latency_target_ms": 5.0, "nlist": 64, "m": 32}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # fast and deterministic on a busy 2-core machine
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    ds = SyntheticDataset(64, 0, 20_000, 200, metric="IP", seed=1338)
    xb, xq = ds.get_database(), ds.get_queries()
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    pids = [f"sku-{i:05d}" for i in range(xb.shape[0])]
    return xb.astype(np.float32), xq.astype(np.float32), pids


def make_sources(xb: np.ndarray, pids: list[str], n_shards: int = N_SHARDS) -> list[vector_sources.ArrayVectorSource]:
    shard = np.array([shard_of(p, n_shards) for p in pids])
    out = []
    for number, key in enumerate(shard_keys(n_shards)):
        rows = np.flatnonzero(shard == number)
        out.append(vector_sources.ArrayVectorSource(key, [pids[i] for i in rows], xb[rows]))
    return out


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    xb, _, pids = data
    root = tmp_path_factory.mktemp("sharded")
    report = sharded_build.build_sharded_index(make_sources(xb, pids), root, fingerprint=FP, **BUILD)
    return root, report


def exact_ids(xb: np.ndarray, xq: np.ndarray, pids: list[str], k: int = K) -> np.ndarray:
    rows = np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :k]
    return assign_ids(pids)[rows]


def test_choose_params_follows_budget_and_latency():
    big = sharded_params.choose_params(1_000_000, 384, memory_budget_bytes=1 << 30, latency_target_ms=5.0)
    assert big.nlist == 4096 and big.m == 192 and big.factory == "IVF4096,PQ192x8np"  # m capped at dim/2
    assert big.bytes_per_vector == 200 and big.estimated_index_bytes <= 1 << 30
    capped = sharded_params.choose_params(1_000_000, 384, memory_budget_bytes=1 << 30, max_code_bytes=100)
    assert capped.m == 96
    small = sharded_params.choose_params(1_000_000, 384, memory_budget_bytes=60 << 20, latency_target_ms=5.0)
    assert small.m < big.m and 1_000_000 * small.bytes_per_vector + small.fixed_bytes <= 60 << 20
    fast = sharded_params.choose_params(1_000_000, 384, memory_budget_bytes=1 << 30, latency_target_ms=0.3)
    assert fast.nprobe < big.nprobe
    huge = sharded_params.choose_params(100_000_000, 384, memory_budget_bytes=64 << 30, coarse="hnsw", nlist=65_536, train_size=2_600_000)
    assert huge.factory.startswith("IVF65536_HNSW32,") and huge.train_size == 2_600_000
    assert "nlist=" in big.rationale and "PQ m=192" in big.rationale and "nprobe=" in big.rationale
    with pytest.raises(ValueError, match="raise the memory budget"):
        sharded_params.choose_params(1_000_000, 384, memory_budget_bytes=8 << 20)
    tiny = sharded_params.choose_params(11, 16, memory_budget_bytes=1 << 20)
    assert tiny.nlist == 1 and tiny.nbits == 3  # 11 training vectors: 8 centroids per sub-quantizer


def test_trained_index_records_params_and_measured_nprobe(built):
    _, report = built
    manifest = report.trained.manifest
    params = report.trained.params
    assert manifest["count"] == 0 and params.factory == "IVF64,PQ32x8np"
    assert params.nprobe_source == "measured on the training sample"
    assert [row["nprobe"] for row in params.nprobe_sweep] == [1, 2, 4, 8, 16, 32, 64]
    assert "measured on" in params.rationale
    assert faiss.extract_index_ivf(report.trained.load()).nprobe == params.nprobe


def test_merged_equals_one_index_with_the_same_quantizer(built, data):
    xb, xq, pids = data
    root, report = built
    single = report.trained.load()
    single.add_with_ids(xb, assign_ids(pids))
    serving = sharded_serving.open_merged(report.merged.directory)
    for nprobe in (4, report.trained.params.nprobe):
        d_ref, i_ref = single.search(xq, K, params=faiss.SearchParametersIVF(nprobe=nprobe))
        d_new, i_new = serving.search_ids(xq, K, nprobe=nprobe)
        check_ref_knn_with_draws(d_ref, i_ref, d_new, i_new)  # same results, ties in any order


def test_ids_unique_across_shards_and_map_back(built, data):
    xb, xq, pids = data
    _, report = built
    shard_ids = [np.load(s.directory / sharded_files.IDS_FILE) for s in report.shards]
    assert sum(a.size for a in shard_ids) == len(pids)
    everything = np.concatenate(shard_ids)
    assert np.unique(everything).size == everything.size
    assert np.array_equal(np.sort(everything), np.sort(assign_ids(pids)))
    serving = sharded_serving.open_merged(report.merged.directory)
    scores, found = serving.search(xb[:50], 1)
    assert (found[:, 0] == np.array(pids[:50], dtype=object)).mean() >= 0.9  # PQ: a product finds itself
    assert serving.product_ids(np.array([-1, 123]))[0] is None


def test_recall_against_exact_search(built, data):
    xb, xq, pids = data
    _, report = built
    serving = sharded_serving.open_merged(report.merged.directory)
    truth = exact_ids(xb, xq, pids)
    _, got = serving.search_ids(xq, K)
    assert knn_intersection_measure(got, truth) >= 0.80
    recalls = [knn_intersection_measure(serving.search_ids(xq, K, nprobe=p)[1], truth) for p in (1, 2, 4, 8, 16, 32, 64)]
    assert all(b >= a - 1e-9 for a, b in zip(recalls, recalls[1:])), recalls  # never drops as nprobe grows


def test_serving_maps_the_lists_instead_of_loading_them(built, data):
    _, xq, _ = data
    _, report = built
    serving = sharded_serving.open_merged(report.merged.directory)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(serving.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.read_only
    ivfdata = str(report.merged.directory / sharded_files.IVFDATA_FILE)
    maps = Path("/proc/self/maps")
    if maps.is_file():
        assert ivfdata in maps.read_text()
    assert isinstance(serving._ids, np.memmap)
    in_ram = sharded_serving.open_merged(report.merged.directory, mmap=False, verify="size")
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(in_ram.index).invlists), faiss.ArrayInvertedLists)
    a, b = serving.search(xq, K), in_ram.search(xq, K)
    np.testing.assert_array_equal(a[1], b[1])
    # The folder can be moved (or copied to a serving host): index.ivfdata is found beside index.faiss.
    moved = report.merged.directory.parent / "moved-copy"
    shutil.copytree(report.merged.directory, moved)
    try:
        np.testing.assert_array_equal(sharded_serving.open_merged(moved).search(xq, K)[1], a[1])
    finally:
        shutil.rmtree(moved)


def test_open_index_serves_the_merged_index_to_the_recommender(built, data):
    """One search interface: open_index finds the sharded kind from the manifest, its searcher
    honours an id filter, and a Recommender loads and serves it like a flat index."""
    from PIL import Image

    from scene_assets.encoders import FakeEncoder
    from scene_assets.indexes.searcher import open_index
    from scene_assets.matching import Recommender
    from scene_assets.ranking.catalog import StringColumn

    xb, xq, pids = data
    root, report = built
    opened = open_index(report.merged.directory, expected_fingerprint=FP)
    assert opened.kind == "sharded" and sorted(opened.product_ids) == sorted(pids)
    assert opened.searcher.ntotal == len(pids) and opened.searcher.d == xb.shape[1]
    scores, found = opened.searcher.search(xb[:20], 1)
    assert (found[:, 0] == assign_ids(pids[:20])).mean() >= 0.9
    allowed = assign_ids(pids[:500])
    _, found = opened.searcher.search(xq[:20], 5, allowed_ids=allowed)
    assert np.isin(found[found >= 0], allowed).all() and (found >= 0).any()
    with pytest.raises(errors.VectorIndexError, match="merged folder"):
        open_index(report.trained.directory)

    recommender = Recommender.from_index_dir(FakeEncoder(dim=xb.shape[1]), report.merged.directory, None,
                                             expected_fingerprint=FP)
    result = recommender.recommend(Image.new("RGB", (48, 48), (180, 40, 40)), k=5)
    assert len(result.items) == 5 and set(result.product_ids) <= set(pids)
    # the id lookup is read where it lies (no Python string per product) and its int ids are not rehashed
    assert isinstance(recommender.product_ids, StringColumn)
    np.testing.assert_array_equal(recommender.int_ids, assign_ids(list(recommender.product_ids)))

    # two-stage (#19): the PQ index gives the candidates, the exact vectors (float16, in lookup order)
    # their visual scores: the results' visual similarity is the exact max over regions
    row_of = {p: i for i, p in enumerate(pids)}
    exact = np.stack([xb[row_of[p]] for p in recommender.product_ids]).astype(np.float16)
    two_stage = Recommender.from_index_dir(FakeEncoder(dim=xb.shape[1]), report.merged.directory, None,
                                           expected_fingerprint=FP, product_vectors=exact, rescore=True)
    image = Image.new("RGB", (48, 48), (180, 40, 40))
    scene = two_stage.prepare_scene(image)
    got = two_stage.recommend_prepared(scene, k=5)
    for item in got.items:
        v = exact[list(recommender.product_ids).index(item.product_id)].astype(np.float32)
        assert item.visual_similarity == pytest.approx(float((scene.queries @ v).max()), abs=1e-5)


def test_incremental_readds_only_changed_shards(data, tmp_path):
    xb, xq, pids = data
    xb, pids = xb[:4000].copy(), pids[:4000]
    small = {**BUILD, "nlist": 32, "m": 16, "tune": False}
    first = sharded_build.build_sharded_index(make_sources(xb, pids), tmp_path, fingerprint=FP, **small)
    assert first.added_shards == shard_keys(N_SHARDS) and first.trained.trained

    again = sharded_build.build_sharded_index(make_sources(xb, pids), tmp_path, fingerprint=FP, **small)
    assert again.added_shards == [] and not again.trained.trained and not again.merged.merged
    assert again.merged.directory == first.merged.directory

    changed = pids.index(make_sources(xb, pids)[2].product_ids[0])  # a product of shard 2
    xb[changed] = -xb[changed]
    second = sharded_build.build_sharded_index(make_sources(xb, pids), tmp_path, fingerprint=FP, **small)
    assert second.added_shards == [shard_keys(N_SHARDS)[2]]
    assert second.merged.merged and second.merged.directory != first.merged.directory
    assert second.trained.sha256 == first.trained.sha256
    _, found = sharded_serving.open_merged(second.merged.directory).search(xb[changed], 1)
    assert found[0, 0] == pids[changed]

    retrained = sharded_build.build_sharded_index(make_sources(xb, pids), tmp_path, fingerprint=FP, seed=1, **small)
    assert retrained.trained.sha256 != first.trained.sha256
    assert retrained.added_shards == shard_keys(N_SHARDS)  # new trained index: every shard re-added
    old_versions = [p.name for p in (tmp_path / "merged").iterdir() if not p.name.startswith(".")]
    assert len(old_versions) == 2  # the current merged version and the one before


def test_corrupted_files_are_named(built, tmp_path):
    root, report = built
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shard_dir = copy / report.shards[1].directory.relative_to(root)
    shards = [sharded_build.load_shard(copy / s.directory.relative_to(root)) for s in report.shards]
    trained = sharded_build.load_trained(copy / report.trained.directory.relative_to(root))
    shutil.rmtree(copy / "merged")
    target = shard_dir / sharded_files.INDEX_FILE
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(errors.IndexCorruptError, match=str(target)):
        sharded_build.merge_shards(trained, shards, copy)

    merged_copy = tmp_path / "merged-copy"
    shutil.copytree(report.merged.directory, merged_copy)
    ivfdata = merged_copy / sharded_files.IVFDATA_FILE
    raw = bytearray(ivfdata.read_bytes())
    raw[100] ^= 0xFF
    ivfdata.write_bytes(bytes(raw))
    with pytest.raises(errors.IndexCorruptError, match=str(ivfdata)):
        sharded_serving.open_merged(merged_copy)

    trained_file = trained.path
    trained_file.write_bytes(trained_file.read_bytes()[:-10])
    with pytest.raises(errors.IndexCorruptError, match=str(trained_file)):
        trained.load()


def test_id_collision_across_shards_is_named(built, data, tmp_path):
    xb, _, pids = data
    _, report = built
    a = vector_sources.ArrayVectorSource("shard-00-of-02", pids[:100], xb[:100])
    b = vector_sources.ArrayVectorSource("shard-01-of-02", pids[99:200], xb[99:200])  # sku-00099 in both
    shards = [sharded_build.add_shard(report.trained, s, tmp_path) for s in (a, b)]
    with pytest.raises(errors.IdCollisionError, match=r"sku-00099.*shard-00-of-02.*shard-01-of-02"):
        sharded_build.merge_shards(report.trained, shards, tmp_path)


def test_bad_vectors_name_the_product(built, data, tmp_path):
    xb, _, pids = data
    _, report = built
    x = xb[:50].copy()
    x[7] = np.nan
    with pytest.raises(ValueError, match="sku-00007"):
        sharded_build.add_shard(report.trained, vector_sources.ArrayVectorSource("shard-00-of-01", pids[:50], x), tmp_path)


# --------------------------------------------------------------------------------------------
# Dagster


def test_assets_materialize_on_tiny_catalog(tmp_path):
    from pipelines.embeddings.assets import image_text_alignment, product_image_vectors
    from pipelines.index.sharded_assets import ivf_merged_index, ivf_shard_index, ivf_trained_index
    from tests.pipeline_fakes import defs_with_fakes, tiny_catalog_rows, write_tiny_catalog

    catalog = write_tiny_catalog(tmp_path / "catalog", tiny_catalog_rows())
    defs = defs_with_fakes(tmp_path / "data", catalog)
    resources = defs.resources
    keys = shard_keys(N_SHARDS)
    ranged = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("catalog_job").execute_in_process(instance=instance).success
        assert defs.resolve_job_def("embed_shards_job").execute_in_process(instance=instance, tags=ranged).success
        assert dg.materialize([image_text_alignment, product_image_vectors], instance=instance, resources=resources).success

        ivf = [ivf_trained_index, ivf_shard_index, ivf_merged_index]
        trained = dg.materialize(ivf, selection=[ivf_trained_index], instance=instance, resources=resources)
        assert trained.success
        meta = trained.asset_materializations_for_node("ivf_trained_index")[0].metadata
        assert meta["vectors"].value == 11 and meta["factory"].value.startswith("IVF1,PQ")
        assert {"rationale", "nprobe", "seconds", "bytes", "training_config"} <= set(meta)
        # the scene index's vectors: the image features, centred on a catalog mean saved with the trained index
        # (the fake encoder has no CNN trunk, so its features are its joint vectors)
        assert meta["vector_space"].value == "joint" and meta["centred"].value is True

        shards = dg.materialize(ivf, selection=[ivf_shard_index], instance=instance, resources=resources, tags=ranged)
        assert shards.success
        shard_meta = shards.asset_materializations_for_node("ivf_shard_index")[0].metadata
        assert shard_meta["count"].value == 11 and shard_meta["shards_added"].value == N_SHARDS

        merged = dg.materialize(ivf, selection=[ivf_merged_index], instance=instance, resources=resources)
        assert merged.success
        output = merged.output_for_node("ivf_merged_index")
        merged_meta = merged.asset_materializations_for_node("ivf_merged_index")[0].metadata
        assert merged_meta["count"].value == 11 and merged_meta["shards"].value == N_SHARDS
        assert {"nprobe", "factory", "bytes", "seconds", "rationale"} <= set(merged_meta)
        merged_manifest = json.loads((Path(output["path"]) / sharded_files.MANIFEST_FILE).read_text())
        assert merged_manifest["centred"] and len(merged_manifest["catalog_mean"]) == 16

        serving = sharded_serving.open_merged(output["path"], expected_fingerprint=output["fingerprint"])
        vectors = vector_sources.parquet_sources({k: tmp_path / "data" / "vectors" / "image_features" / f"{k}.parquet"
                                                  for k in keys})[0]
        pids, x = next(s for s in vectors if s.count()).chunks().__next__()
        _, found = serving.search(center_and_normalize(x, np.asarray(merged_manifest["catalog_mean"], np.float32)), 11)
        assert pids[0] in set(found[0])

        # the two-stage bundle over the merged index (#19): loads like any bundle and answers a scene
        from scene_assets.recommender_bundle import load_recommender
        from scene_assets.settings import sample_dataset_dir

        two_stage = defs.resolve_job_def("ivf_merge_job").execute_in_process(instance=instance)
        assert two_stage.success
        bundle_out = two_stage.output_for_node("two_stage_bundle")
        bundle_meta = two_stage.asset_materializations_for_node("two_stage_bundle")[0].metadata
        # 11 products with an image are indexed; all 12 of the tiny catalog have a text vector
        assert bundle_meta["count"].value == 11 and bundle_meta["text_vectors"].value == 12
        assert bundle_meta["serves"].value == output["path"] and bundle_meta["product_columns"].value == 9
        recommender, bundle = load_recommender(bundle_out["path"], encoder=resources["encoder"].encoder())
        assert bundle["kind"] == "two_stage" and recommender.rescore and len(recommender.product_ids) == 11
        assert bundle["centred"] and recommender.catalog_mean is not None
        photo = sorted((sample_dataset_dir() / "images" / "scenes").glob("*.jpg"))[0]
        assert len(recommender.recommend(photo, k=5).items) == 5
        # served through lineage like scene_index: serve --bundle-asset two_stage_bundle
        from faces.providers import MaterializedBundleProvider

        provider = MaterializedBundleProvider(instance, learned=None, bundle_asset="two_stage_bundle")
        assert provider.version() == bundle["version"] and "two_stage_bundle" in provider.describe()
        served = provider.load()
        assert served.recommender.rescore and len(served.recommender.recommend(photo, k=3).items) == 3

        # Nothing changed: the trained index is reused, every shard kept, the merge reused.
        assert dg.materialize(ivf, selection=[ivf_trained_index], instance=instance, resources=resources).success
        again = dg.materialize(ivf, selection=[ivf_shard_index], instance=instance, resources=resources, tags=ranged)
        assert again.asset_materializations_for_node("ivf_shard_index")[0].metadata["shards_kept"].value == N_SHARDS
        remerged = dg.materialize(ivf, selection=[ivf_merged_index], instance=instance, resources=resources)
        assert remerged.output_for_node("ivf_merged_index")["path"] == output["path"]
