"""The index kind chosen from a measured search budget (scene_assets/indexes/flat_choice.py, #21)."""

from __future__ import annotations

import faiss
import numpy as np
import polars as pl

from scene_assets.embeddings import vectors_frame
import scene_assets.indexes.flat  # noqa: F401  (importing it applies the BLAS setting)
from scene_assets.indexes.flat_build import build_or_update_index
from scene_assets.indexes.flat_choice import LatencyBudget, build_within_budget, synthetic_queries
from scene_assets.indexes.searcher import open_index
from tests.test_vector_index import clustered, pids

FP = "encoder:test-v1"


def test_batched_search_goes_through_blas():
    # faiss-cpu 1.15's default threshold (128,000) kept 26-query batches off BLAS: 5x slower
    assert faiss.cvar.distance_compute_blas_threshold == 20


def test_generous_budget_keeps_exact_search():
    x = clustered(3000)
    index, spec, report = build_within_budget(x, pids(3000), LatencyBudget(search_ms=1e6))
    assert spec.kind == "flat" and report["chosen"] == "Flat" and report["within_budget"] is True
    assert [c["factory"] for c in report["candidates"]] == ["Flat"]
    assert report["candidates"][0]["search_ms"] > 0 and report["queries"] == "synthetic"
    assert index.ntotal == 3000 and "exact search measured" in spec.rationale


def test_tight_budget_builds_ivf_with_the_smallest_nprobe_reaching_recall():
    x = clustered(8000)
    # nothing can meet it: IVF, honest report (per-region recall here; "merged" is tested below)
    budget = LatencyBudget(search_ms=1e-6, recall=0.9, k=20, recall_of="region", hnsw_coarse_min_nlist=1 << 20)
    index, spec, report = build_within_budget(x, pids(8000), budget)
    assert spec.kind == "ivf" and report["chosen"].startswith("IVF")
    ivf_rows = [c for c in report["candidates"] if "nprobe" in c]
    assert ivf_rows and [c["nprobe"] for c in ivf_rows] == [1 * 2**i for i in range(len(ivf_rows))]
    # stops at the first nprobe reaching the recall target (or reports the last one tried)
    assert all(c["recall"] < 0.9 for c in ivf_rows[:-1])
    assert report["within_budget"] is False and report["recall"] == ivf_rows[-1]["recall"]
    assert faiss.extract_index_ivf(index).nprobe == spec.search_params["nprobe"] == ivf_rows[-1]["nprobe"]
    # the recorded recall is real: recompute it against exact search
    q = synthetic_queries(x, budget.n_queries, budget.seed)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :20]
    _, found = index.search(q, 20)
    from scene_assets.indexes.ids import to_int_ids

    row = {int(i): r for r, i in enumerate(to_int_ids(pids(8000)))}
    got = np.mean([len({row[int(i)] for i in f if i >= 0} & set(t)) / 20 for f, t in zip(found, truth)])
    assert abs(got - report["recall"]) < 1e-4  # recorded rounded to 4 places
    assert report["recall"] == ivf_rows[-1]["region_recall"] and "merged_recall" not in ivf_rows[-1]


def test_merged_recall_counts_what_the_reranker_is_given():
    from scene_assets.indexes.flat_choice import merged_candidates, merged_recall

    # two regions; product 7 is region 0's 2nd in the exact search, missed there by the approximate
    # one but found by region 1 at a better score: the merged candidates are the same
    truth = np.array([[5, 7], [7, 9]])
    truth_scores = np.array([[0.9, 0.5], [0.8, 0.1]], np.float32)
    found = np.array([[5, 3], [7, -1]])
    found_scores = np.array([[0.9, 0.2], [0.8, -1.0]], np.float32)
    assert merged_candidates(truth_scores, truth, 2).tolist() == [5, 7]
    assert merged_candidates(found_scores, found, 3).tolist() == [5, 7, 3]  # -1 (not found) dropped
    assert merged_recall(found_scores, found, truth_scores, truth, per_scene=2, m=2) == 1.0
    # per region, 7 was missed once and 9 never found: 2 of 4
    from faiss.contrib.evaluation import knn_intersection_measure

    assert knn_intersection_measure(found, truth) == 0.5
    # two scenes of one region each: the second scene's only candidate is missed
    assert merged_recall(found_scores, np.array([[5, 3], [1, -1]]), truth_scores, truth, per_scene=1, m=1) == 0.5


def test_hnsw_coarse_quantizer_is_measured_and_the_faster_kept(tmp_path):
    x = clustered(8000)
    ids = pids(8000)
    budget = LatencyBudget(search_ms=1e-6, recall=0.9, k=20, hnsw_coarse_min_nlist=8, repeats=2)
    index, spec, report = build_within_budget(x, ids, budget)
    factories = {c["factory"] for c in report["candidates"]}
    nlist = faiss.extract_index_ivf(index).nlist
    assert factories == {"Flat", f"IVF{nlist},SQ8", f"IVF{nlist}_HNSW32,SQ8"}
    assert "ivf_hnsw_build_seconds" in report and report["chosen"].startswith(spec.factory)
    hnsw_rows = [c for c in report["candidates"] if "HNSW" in c["factory"]]
    assert all(c["efSearch"] >= max(64, 2 * c["nprobe"]) for c in hnsw_rows)
    assert all(c["recall"] == c["merged_recall"] >= c["region_recall"] - 1e-9 for c in hnsw_rows)
    # the chosen index is the one the spec names, with its search settings applied
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    assert isinstance(quantizer, faiss.IndexHNSW) == ("HNSW" in spec.factory)
    assert faiss.extract_index_ivf(index).nprobe == spec.search_params["nprobe"]
    # an HNSW-coarse IVF built from the spec alone (no budget) saves, loads with its efSearch and
    # takes incremental updates like the flat-coarse one
    from scene_assets.indexes.flat_spec import IndexSpec

    hnsw_spec = IndexSpec.from_dict({**spec.to_dict(), "factory": f"IVF{nlist}_HNSW32,SQ8",
                                     "search_params": {"nprobe": 4, "efSearch": 80}})
    frame = vectors_frame(ids, [f"h{i}" for i in range(8000)], FP, x)
    from scene_assets.indexes import flat, flat_files

    built = flat.build_index(x, ids, hnsw_spec)
    flat_files.save_index(built, tmp_path, {"encoder_fingerprint": FP, "product_ids": ids, "spec": hnsw_spec,
                                            "selection": {"chosen": hnsw_spec.factory}})
    from scene_assets.indexes.flat_build import MEMBERS_FILE

    frame.select("product_id", "content_hash").write_parquet(tmp_path / MEMBERS_FILE)
    loaded, manifest = flat_files.load_index(tmp_path, expected_fingerprint=FP)
    assert faiss.downcast_index(faiss.extract_index_ivf(loaded).quantizer).hnsw.efSearch == 80
    q = synthetic_queries(x, 30)
    assert np.array_equal(loaded.search(q, 10)[1], built.search(q, 10)[1])
    moved = x.copy()
    moved[:50] = x[:50, ::-1]  # 50 products change, the last one leaves the catalog
    changed = vectors_frame(ids[:-1], [f"new{i}" if i < 50 else f"h{i}" for i in range(7999)], FP, moved[:-1])
    update = build_or_update_index(changed, tmp_path, fingerprint=FP, latency_budget=LatencyBudget(search_ms=1e6))
    assert update.mode == "incremental" and update.added == 50 and update.removed == 1
    reopened = open_index(tmp_path, expected_fingerprint=FP)
    assert reopened.searcher.ntotal == 7999 and "HNSW32" in reopened.manifest["index_factory"]


def test_given_region_queries_are_used_a_scene_at_a_time(monkeypatch):
    from scene_assets.indexes import flat_choice

    x = clustered(2000)
    q = clustered(95, seed=5)  # three scenes of 30 regions and 5 rows of a fourth
    batches: list[int] = []
    search = faiss.IndexFlatIP.search
    monkeypatch.setattr(faiss.IndexFlatIP, "search", lambda self, queries, k, *a, **kw: (
        batches.append(len(queries)), search(self, queries, k, *a, **kw))[1])
    _, _, report = flat_choice.build_within_budget(x, pids(2000), LatencyBudget(search_ms=1e6, repeats=2),
                                                   sample_queries=q)
    assert report["queries"] == "95 given"
    assert sorted(set(batches)) == [5, 30]  # timed per scene batch (30 queries), never all 95 at once
    _, _, synthetic = build_within_budget(x, pids(2000), LatencyBudget(search_ms=1e6), sample_queries=None)
    assert synthetic["queries"] == "synthetic"


def test_sample_region_queries_from_scene_photos(tmp_path):
    from scene_assets.encoders import build_encoder
    from scene_assets.recommender_bundle import sample_region_queries
    from scene_assets.regions import RegionConfig
    from scene_assets.settings import sample_dataset_dir

    scenes = sorted((sample_dataset_dir() / "images" / "scenes").glob("*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    encoder = build_encoder(kind="fake", dim=16)
    queries = sample_region_queries(encoder, "joint", [broken, *scenes], RegionConfig(), limit=2)
    from scene_assets.images import open_rgb
    from scene_assets.regions import compute_regions

    regions = len(compute_regions(open_rgb(scenes[0]), encoder, RegionConfig()).labels)
    assert regions == 30 and queries.shape == (2 * regions, 16) and np.isfinite(queries).all()
    assert sample_region_queries(encoder, "joint", [broken]) is None


def test_choice_recorded_in_manifest_and_kept_across_small_updates(tmp_path):
    x = clustered(6000)
    ids = pids(6000)
    frame = vectors_frame(ids, [f"h{i}" for i in range(6000)], FP, x)
    budget = LatencyBudget(search_ms=1e-6, recall=0.8, k=10)
    first = build_or_update_index(frame, tmp_path, fingerprint=FP, latency_budget=budget)
    sel = first.manifest["selection"]
    assert first.mode == "full" and sel["chosen"].startswith("IVF") and first.manifest["spec"]["kind"] == "ivf"
    # 1 % of products change: same kind, updated in place, the measurement kept (no flip on timing noise)
    changed = frame.with_columns(
        content_hash=pl.when(pl.int_range(pl.len()) < 60).then(pl.lit("new")).otherwise(pl.col("content_hash")))
    second = build_or_update_index(changed, tmp_path, fingerprint=FP, latency_budget=LatencyBudget(search_ms=1e6))
    assert second.mode == "incremental" and second.added == 60
    assert second.manifest["selection"] == sel and second.manifest["spec"]["factory"] == first.manifest["spec"]["factory"]
    opened = open_index(tmp_path, expected_fingerprint=FP)
    assert opened.searcher.ntotal == 6000
    # a catalog that grew past the hysteresis is measured again (the generous budget now: exact)
    grown = vectors_frame(pids(8000), [f"h{i}" for i in range(8000)], FP, clustered(8000))
    third = build_or_update_index(grown, tmp_path, fingerprint=FP, latency_budget=LatencyBudget(search_ms=1e6))
    assert third.mode == "full" and third.manifest["selection"]["chosen"] == "Flat"


def test_scene_index_computes_its_sample_queries_only_when_the_kind_is_measured(tmp_path):
    from scene_assets.recommender_bundle import build_scene_index

    x = clustered(3000)
    ids = pids(3000)
    calls: list[int] = []

    def queries():  # stands in for encoding 8 scene photos (seconds of CNN work)
        calls.append(1)
        return clustered(60, seed=3)

    frame = vectors_frame(ids, [f"h{i}" for i in range(3000)], FP, x)
    report, _, _ = build_scene_index(frame, tmp_path, fingerprint=FP, space="trunk",
                                     latency_budget=LatencyBudget(search_ms=1e6), sample_queries=queries)
    assert calls == [1] and report.manifest["selection"]["queries"] == "60 given"
    changed = frame.with_columns(
        content_hash=pl.when(pl.int_range(pl.len()) < 30).then(pl.lit("new")).otherwise(pl.col("content_hash")))
    again, recentred, _ = build_scene_index(changed, tmp_path, fingerprint=FP, space="trunk",
                                            latency_budget=LatencyBudget(search_ms=1e6), sample_queries=queries)
    assert again.mode == "incremental" and not recentred and calls == [1]  # the kind was kept: not computed


def test_search_threads_measured_recorded_and_served(tmp_path, monkeypatch):
    """The chosen index is timed on 1 and on the machine's cores (at most ``max_threads``); more threads
    are kept only when they save enough, the count is saved in the manifest's spec, and a recommender
    loaded from the folder searches with it (capped to the cores of the machine that serves it)."""
    from scene_assets.encoders import FakeEncoder
    from scene_assets.indexes import flat_choice
    from scene_assets.matching import Recommender

    x = clustered(6000)
    ids = pids(6000)
    timed: list[int] = []
    real_median = flat_choice._median_ms

    def fake_median(index, queries, k, repeats, batch=None, threads=1):
        real_median(index, queries, k, 1, batch, threads)
        timed.append(threads)
        return 10.0 / threads  # two threads halve the search: kept

    monkeypatch.setattr(flat_choice, "available_cores", lambda: 2)
    monkeypatch.setattr(flat_choice, "_median_ms", fake_median)
    _, spec, report = build_within_budget(x, ids, LatencyBudget(search_ms=1e6, k=10))
    assert spec.search_threads == 2 and report["threads"] == {"search_ms_by_threads": {"1": 10.0, "2": 5.0},
                                                             "chosen": 2, "cores": 2}
    assert timed[-2:] == [1, 2]
    # a saving under thread_gain (or under thread_min_saving_ms) keeps one thread
    monkeypatch.setattr(flat_choice, "_median_ms", lambda *a, threads=1, **kw: 1.0 if threads == 1 else 0.7)
    assert build_within_budget(x, ids, LatencyBudget(search_ms=1e6, k=10))[1].search_threads == 1
    monkeypatch.setattr(flat_choice, "_median_ms", lambda *a, threads=1, **kw: 10.0 if threads == 1 else 9.0)
    assert build_within_budget(x, ids, LatencyBudget(search_ms=1e6, k=10))[1].search_threads == 1
    # a one-core machine times one thread only
    monkeypatch.setattr(flat_choice, "available_cores", lambda: 1)
    _, one, one_report = build_within_budget(x, ids, LatencyBudget(search_ms=1e6, k=10))
    assert one.search_threads == 1 and list(one_report["threads"]["search_ms_by_threads"]) == ["1"]

    monkeypatch.setattr(flat_choice, "available_cores", lambda: 2)
    monkeypatch.setattr(flat_choice, "_median_ms", fake_median)
    built = build_or_update_index(vectors_frame(ids, [f"h{i}" for i in range(6000)], FP, x), tmp_path, fingerprint=FP,
                                  latency_budget=LatencyBudget(search_ms=1e6, k=10))
    assert built.manifest["spec"]["search_threads"] == 2
    import scene_assets.matching as matching

    served = Recommender.from_index_dir(FakeEncoder(dim=x.shape[1]), tmp_path, None, expected_fingerprint=FP)
    assert served.search_threads == 2
    monkeypatch.setattr(matching, "available_cores", lambda: 1)  # served on a smaller machine
    assert Recommender.from_index_dir(FakeEncoder(dim=x.shape[1]), tmp_path, None, expected_fingerprint=FP).search_threads == 1
