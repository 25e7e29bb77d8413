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
    budget = LatencyBudget(search_ms=1e-6, recall=0.9, k=20)  # nothing can meet it: IVF, honest report
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
