"""Choose the flat/IVF index from a measured search-latency budget, not from a product count (#21).

A scene query searches its regions (30 with the default ``RegionConfig``) in one batched call, ``k``
candidates each. Whether exact brute force meets the budget depends on the catalog size, the vector
width and the machine, so it is *measured* at build time, as autofaiss does:

1. Time the batched search on an exact ``Flat`` index of up to ``sample`` vectors (one thread, as the
   recommender searches) and scale by ``n / sample`` (brute force is linear in n).
2. Within budget: ``Flat``. Otherwise build ``IVF{nlist},SQ8`` (``flat_spec.choose_index_spec``) and raise
   ``nprobe`` through 1, 2, 4, 8 ... until the recall against exact search on the same queries reaches
   ``recall``; keep the smallest such nprobe (the budget is reported as met or not, never faked).
   The recall is that of a scene's merged candidates (``merged_recall``: what the re-ranker is
   given), or per region (``recall_of="region"``).
3. From ``hnsw_coarse_min_nlist`` lists up, the same lists behind an HNSW coarse quantizer
   (``IVF{nlist}_HNSW32,SQ8``, the k-means centroids reused) are swept the same way; the faster of
   the two that meets the recall is kept (the more accurate when neither does).
4. The chosen index is timed again on up to ``max_threads`` FAISS threads (the machine's cores): more
   than one is kept (``IndexSpec.search_threads``, which the recommender searches with) only when it
   saves ``thread_gain`` of the time and at least ``thread_min_saving_ms``. On 2 cores the 1M index
   searched a scene in 7.2 ms on 2 threads against 11.8 on 1, inside the whole query (CNN pass before,
   re-rank after; ``bench/bench_serving.py``).

Everything measured goes into the index manifest (``selection``), so the Dagster asset and the
benchmarks show why an index kind was chosen. Queries: real region queries when the caller has them
(``sample_queries``), else synthetic ones near the catalog (a mix of two catalog vectors plus noise),
so a product is never trivially its own nearest neighbour. Plain Python (no Dagster).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure

from scene_assets.indexes import flat
from scene_assets.indexes.flat_spec import IndexSpec, choose_index_spec
from scene_assets.indexes.ids import assign_ids
from scene_assets.indexes.vectors import has_unit_rows, prepare

__all__ = ["LatencyBudget", "build_within_budget", "merged_candidates", "merged_recall", "synthetic_queries"]


@dataclass(frozen=True)
class LatencyBudget:
    """What one scene's stage-1 search may cost, and how it is measured."""

    search_ms: float = 10.0  # median time of one batched search of n_queries x k, one FAISS thread
    n_queries: int = 30  # regions per scene query (default RegionConfig: whole + 2x2 + 3x3 + 4x4)
    k: int = 100  # candidates per region (Recommender.per_region_k)
    # recall against exact search an IVF index must reach. 0.98 of the merged candidates: at 1M synthetic
    # products (bench_serving's overlap@10 of the final recommendations with an exact index) merged
    # recall .965 (nprobe 2) kept .85 of the top 10, nprobe 4 .94, nprobe 8 .98; at 20k-50k .98-.99 kept .96
    recall: float = 0.98
    # what the recall is measured on: "merged" = a scene's best ``merged_k`` candidates after its region
    # searches are merged (max score per product), which is what the re-ranker is given; "region" =
    # recall@k of every region's own top k (stricter: a product a region misses at rank 95 is often
    # found by another region at a better score). At 1M real-query region recall .904 was merged .985
    recall_of: Literal["merged", "region"] = "merged"
    merged_k: int = 100
    # IVF lists behind an HNSW coarse quantizer are also measured from this many lists up (below, the
    # flat coarse pass is cheap); efSearch of that quantizer: max(hnsw_ef_search, 2 * nprobe)
    hnsw_coarse_min_nlist: int = 1024
    hnsw_ef_search: int = 64
    sample: int = 20_000  # exact search is timed on at most this many vectors, then scaled to n
    repeats: int = 5
    seed: int = 0
    # nprobe tried first, then doubled: from 1, so the smallest nprobe reaching the recall (the fastest)
    # is found whatever the catalog (8 was the start before; some catalogs reach the recall below it)
    first_nprobe: int = 1
    max_scenes: int = 8  # real queries: at most this many scenes' batches are timed
    max_nprobe: int = 512
    # search threads (step 4): at most this many (and the machine's cores); more than one only when it
    # saves this share of the one-thread time and this many ms (a small search gains nothing worth a pool)
    max_threads: int = 2
    thread_gain: float = 0.15
    thread_min_saving_ms: float = 0.5

    def __post_init__(self) -> None:
        if (self.search_ms <= 0 or not 0 < self.recall <= 1 or self.n_queries < 1 or self.k < 1
                or not 1 <= self.first_nprobe <= self.max_nprobe or self.recall_of not in ("merged", "region")
                or self.merged_k < 1):
            raise ValueError(f"bad latency budget {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_queries(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` unit queries near the catalog: ``0.7 a + 0.3 b + noise`` of two random catalog vectors."""
    rng = np.random.default_rng(seed)
    a = vectors[rng.integers(len(vectors), size=n)]
    b = vectors[rng.integers(len(vectors), size=n)]
    noise = rng.standard_normal(a.shape).astype(np.float32) * (0.3 / np.sqrt(a.shape[1]))
    q = (0.7 * a + 0.3 * b + noise).astype(np.float32)
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _median_ms(index: faiss.Index, queries: np.ndarray, k: int, repeats: int, batch: int | None = None,
               threads: int = 1) -> float:
    """Median time of one batched search of ``batch`` queries (one scene's regions), over every batch of
    ``queries`` (several scenes, when real queries are given) and ``repeats`` rounds, on ``threads``."""
    batch = batch or len(queries)
    batches = [queries[s : s + batch] for s in range(0, len(queries), batch)]
    with flat.faiss_threads(threads):
        index.search(batches[0], k)  # warm-up
        times = []
        for _ in range(repeats):
            for b in batches:
                t0 = time.perf_counter()
                index.search(b, k)
                times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def build_within_budget(
    vectors: np.ndarray,
    product_ids: Sequence[str],
    budget: LatencyBudget | None = None,
    *,
    sample_queries: np.ndarray | None = None,
) -> tuple[faiss.Index, IndexSpec, dict[str, Any]]:
    """Build the cheapest index whose measured batched search meets ``budget``; returns
    ``(index, spec, selection report)``. ``vectors`` are measured L2-normalised, as the index stores them."""
    budget = budget or LatencyBudget()
    # the scene index passes centred, unit rows: measured on them as they are (no copy of the catalog)
    x = np.ascontiguousarray(vectors, dtype=np.float32) if has_unit_rows(vectors) else prepare(vectors, True)
    n, dim = x.shape
    # real region queries (several scenes, timed a scene at a time) land in fuller IVF lists than
    # synthetic ones: at 1M they took 10 ms where synthetic ones measured 8 ms
    real = sample_queries is not None and len(sample_queries) > 0
    queries = (np.ascontiguousarray(sample_queries, dtype=np.float32)[: budget.n_queries * budget.max_scenes]
               if real else synthetic_queries(x, budget.n_queries, budget.seed))
    k = int(min(budget.k, max(n, 1)))
    report: dict[str, Any] = {"budget": budget.to_dict(), "n": n, "dim": dim,
                              "queries": f"{len(queries)} given" if real else "synthetic", "candidates": []}
    flat_spec = choose_index_spec(n, dim, exact_threshold=max(n, 1))
    m = min(n, budget.sample)
    probe = faiss.IndexFlatIP(dim)
    probe.add(x[np.sort(np.random.default_rng(budget.seed).choice(n, size=m, replace=False))] if m < n else x)
    flat_ms = _median_ms(probe, queries, min(k, m), budget.repeats, budget.n_queries) * n / max(m, 1)
    del probe
    report["candidates"].append({"factory": "Flat", "search_ms": round(flat_ms, 3), "recall": 1.0,
                                 "measured_on": m})
    ivf_spec = choose_index_spec(n, dim, exact_threshold=0)
    # an IVF needs enough points per list to train; below that, exact search is the only choice
    if flat_ms <= budget.search_ms or ivf_spec.nlist is None or ivf_spec.nlist < 8:
        spec = _with_rationale(flat_spec, f"exact search measured {flat_ms:.1f} ms <= budget {budget.search_ms} ms"
                               if flat_ms <= budget.search_ms else "too few vectors for an IVF index")
        report.update(chosen="Flat", within_budget=flat_ms <= budget.search_ms, search_ms=round(flat_ms, 3))
        index = flat.build_index(x, product_ids, spec)
        return index, _with_threads(index, spec, queries, min(k, n), budget, report), report

    truth_scores, truth_rows = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    truth = assign_ids(product_ids)[truth_rows]  # the index answers with product int ids
    if budget.recall_of != "merged":
        truth_scores = None
    t0 = time.perf_counter()
    index = flat.build_index(x, product_ids, ivf_spec)
    report["ivf_build_seconds"] = round(time.perf_counter() - t0, 2)
    best = _sweep_nprobe(index, ivf_spec, queries, truth, truth_scores, k, budget, report)
    if ivf_spec.nlist >= budget.hnsw_coarse_min_nlist:
        # the same lists behind an HNSW coarse quantizer (same centroids: no second k-means); at
        # 1M x 1280 the flat coarse pass is ~5 of ~14 ms per scene
        hnsw_spec = IndexSpec(**{**ivf_spec.to_dict(), "factory": ivf_spec.factory.replace(
            f"IVF{ivf_spec.nlist},", f"IVF{ivf_spec.nlist}_HNSW32,", 1)})
        t0 = time.perf_counter()
        centroids = faiss.extract_index_ivf(index).quantizer.reconstruct_n(0, ivf_spec.nlist)
        hnsw_index = flat.build_index(x, product_ids, hnsw_spec, coarse_centroids=centroids)
        report["ivf_hnsw_build_seconds"] = round(time.perf_counter() - t0, 2)
        other = _sweep_nprobe(hnsw_index, hnsw_spec, queries, truth, truth_scores, k, budget, report)
        if _better(other, best, budget):
            best, index = other, hnsw_index
        del hnsw_index
    spec, params, ms, recall = best
    flat.apply_search_defaults(index, params)
    setting = " ".join(f"{key}={v}" for key, v in params.items())
    spec = IndexSpec(**{**spec.to_dict(), "search_params": params,
                        "rationale": f"exact search ~{flat_ms:.1f} ms > budget {budget.search_ms} ms; "
                                     f"{spec.factory} {setting}: {ms:.1f} ms, {budget.recall_of} recall@{k} {recall:.3f}"})
    report.update(chosen=f"{spec.factory} {setting}", within_budget=ms <= budget.search_ms,
                  search_ms=round(ms, 3), recall=round(recall, 4))
    return index, _with_threads(index, spec, queries, k, budget, report), report


def _with_threads(index: faiss.Index, spec: IndexSpec, queries: np.ndarray, k: int, budget: LatencyBudget,
                  report: dict[str, Any]) -> IndexSpec:
    """``spec`` with the FAISS thread count its batched search is fastest on (step 4 of the module
    docstring); every count timed goes into ``report["threads"]`` (ms by thread count)."""
    most = max(1, min(budget.max_threads, available_cores()))
    timed = {1: _median_ms(index, queries, k, budget.repeats, budget.n_queries, threads=1)}
    if most > 1:
        timed[most] = _median_ms(index, queries, k, budget.repeats, budget.n_queries, threads=most)
    threads = 1
    if most > 1 and (timed[1] - timed[most] >= max(budget.thread_gain * timed[1], budget.thread_min_saving_ms)):
        threads = most
    report["threads"] = {"search_ms_by_threads": {str(t): round(ms, 3) for t, ms in timed.items()},
                         "chosen": threads, "cores": available_cores()}
    return dataclasses.replace(spec, search_threads=threads)


def _sweep_nprobe(index: faiss.Index, spec: IndexSpec, queries: np.ndarray, truth: np.ndarray,
                  truth_scores: np.ndarray | None, k: int, budget: LatencyBudget, report: dict[str, Any]):
    """Raise nprobe from ``budget.first_nprobe`` (doubling) until the recall target is met; every
    setting tried goes into ``report["candidates"]``. Returns (spec, search params, ms, recall) of
    the first setting meeting the target, else of the most accurate one measured."""
    ivf = faiss.extract_index_ivf(index)
    hnsw = faiss.downcast_index(ivf.quantizer)
    hnsw = hnsw if isinstance(hnsw, faiss.IndexHNSW) else None
    tried = []
    nprobe = budget.first_nprobe
    while nprobe <= min(budget.max_nprobe, ivf.nlist):
        params = {"nprobe": int(nprobe)}
        if hnsw is not None:  # the coarse search must find nprobe lists: efSearch >= nprobe
            params["efSearch"] = int(max(budget.hnsw_ef_search, 2 * nprobe))
        flat.apply_search_defaults(index, params)
        ms = _median_ms(index, queries, k, budget.repeats, budget.n_queries)
        scores, found = index.search(queries, k)
        region_recall = float(knn_intersection_measure(found, truth))
        merged = (merged_recall(scores, found, truth_scores, truth, budget.n_queries, budget.merged_k)
                  if truth_scores is not None else None)
        recall = merged if merged is not None else region_recall
        report["candidates"].append({"factory": spec.factory, **params, "search_ms": round(ms, 3),
                                     "recall": round(recall, 4), "region_recall": round(region_recall, 4),
                                     **({"merged_recall": round(merged, 4)} if merged is not None else {})})
        tried.append((spec, params, ms, recall))
        if recall >= budget.recall:
            return tried[-1]
        nprobe *= 2
    return max(tried, key=lambda t: t[3])


def _better(a, b, budget: LatencyBudget) -> bool:
    """``a`` is preferred to ``b``: meets the recall target and is faster, or the target is out of
    reach for ``b`` and ``a`` is more accurate."""
    a_ok, b_ok = a[3] >= budget.recall, b[3] >= budget.recall
    if a_ok != b_ok:
        return a_ok
    return a[2] < b[2] if a_ok else a[3] > b[3]


def best_per_id(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A batched search's hits merged as the recommender merges a scene's region searches: each id once
    (-1 = nothing found: dropped), at its best score. Returns ``(ids ascending, flat position of each
    one's best hit in scores.ravel())``; of equal scores the earlier position wins."""
    s, i = scores.ravel(), ids.ravel()
    valid = np.flatnonzero(i >= 0)
    order = valid[np.argsort(-s[valid], kind="stable")]
    uniq, first = np.unique(i[order], return_index=True)
    return uniq, order[first]


def merged_candidates(scores: np.ndarray, ids: np.ndarray, m: int) -> np.ndarray:
    """A scene's candidates as the recommender merges its region searches (:func:`best_per_id`), the
    ``m`` best by their best score."""
    uniq, pos = best_per_id(scores, ids)
    return uniq[np.lexsort((pos, -scores.ravel()[pos]))][:m]


def merged_recall(scores: np.ndarray, ids: np.ndarray, truth_scores: np.ndarray, truth: np.ndarray,
                  per_scene: int, m: int) -> float:
    """Mean over scenes (``per_scene`` region rows each) of the share of the exact search's ``m`` best
    merged candidates that the approximate search also returns among its ``m`` best. This is what the
    re-ranker is given: a product missed at rank 95 of one region but found by another region at a
    better score costs nothing, which a per-region recall@k counts as a miss."""
    shares = []
    for s in range(0, len(ids), per_scene):
        exact = merged_candidates(truth_scores[s : s + per_scene], truth[s : s + per_scene], m)
        found = merged_candidates(scores[s : s + per_scene], ids[s : s + per_scene], m)
        shares.append(len(np.intersect1d(exact, found)) / max(len(exact), 1))
    return float(np.mean(shares))


def _with_rationale(spec: IndexSpec, why: str) -> IndexSpec:
    return IndexSpec(**{**spec.to_dict(), "rationale": why})

