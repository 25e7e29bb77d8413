"""Stage-1 search at 1M x 1280 on 2 cores: what was tried for #21's 10 ms search target (an ablation).

  .venv/bin/python bench/probes/stage1_1m.py                   # every variant below, ~25 min, ~12 GB
  .venv/bin/python bench/probes/stage1_1m.py --variants flat:SQ8 hnsw:SQ8 --nprobe 2,4,8

The catalog is bench_serving.py's synthetic 1M (the same seeded draws: real IKEA product features plus
noise), centred on its mean as the scene index stores it; queries are the region vectors of the 8 IKEA
scenes bench_serving's index choice samples (scenes 30-37), centred the same way. For each variant the
lists share one k-means (4096 centroids, computed once and cached); timed a scene (30 queries x 100) at a
time on one thread, as the recommender searches. Reported: ms p50, recall@100 of every region's own
results and of the scene's merged candidates (``flat_choice.merged_recall``), both against exact search.

Variants: ``{flat|hnsw}:{SQ8|SQ4|SQ6|fp16|bf16|8u|PQ<m>}`` (coarse quantizer : list codes; PQ<m> is 4-bit
fast-scan), ``pca<d>:SQ8`` (the vectors PCA-reduced to d dimensions before the IVF), each also with its
candidates re-scored from row-aligned SQ8 codes of the full vectors (``--rescore 200,400``: that many
candidates per region, their union scored exactly and the best 100 kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scene_query import load_dataset, product_trunk_features  # noqa: E402
from bench_serving import synthetic_features  # noqa: E402
from faiss.contrib.evaluation import knn_intersection_measure  # noqa: E402

from scene_assets.encoders import EncoderSpec, build_encoder  # noqa: E402
from scene_assets.indexes.flat_choice import merged_recall  # noqa: E402
from scene_assets.matching import catalog_mean  # noqa: E402
from scene_assets.recommender_bundle import sample_region_queries  # noqa: E402
from scene_assets.regions import center_and_normalize, center_and_normalize_in_place  # noqa: E402

K = 100
PER_SCENE = 30
QT = {"SQ8": "QT_8bit", "SQ4": "QT_4bit", "SQ6": "QT_6bit", "fp16": "QT_fp16", "bf16": "QT_bf16",
      "8u": "QT_8bit_uniform"}


def timed(fn, queries: np.ndarray, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        for s in range(0, len(queries), PER_SCENE):
            t0 = time.perf_counter()
            fn(queries[s : s + PER_SCENE])
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--variants", nargs="*", default=[
        "flat:SQ8", "hnsw:SQ8", "flat:8u", "flat:fp16", "hnsw:SQ4", "hnsw:PQ320", "pca256:SQ8", "pca128:SQ8"])
    ap.add_argument("--nprobe", default="1,2,4,8,16")
    ap.add_argument("--rescore", default="0,200,400")
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/bench"))
    args = ap.parse_args()
    dataset = Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea"))
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    products, scenes, _ = load_dataset(dataset)
    x = synthetic_features(product_trunk_features(encoder, products, args.cache_dir), args.products, products.height)
    mean = catalog_mean(x)
    center_and_normalize_in_place(x, mean)
    raw = sample_region_queries(encoder, "trunk", [dataset / p for p in scenes["image"].to_list()[30:38]])
    q = center_and_normalize(raw, mean)
    n, d = x.shape
    truth_scores, truth = faiss.knn(q, x, K, metric=faiss.METRIC_INNER_PRODUCT)
    centroid_file = args.cache_dir / f"stage1-centroids-{n}-{args.nlist}.npy"
    if centroid_file.is_file():
        centroids = np.load(centroid_file)
    else:
        kmeans = faiss.Kmeans(d, args.nlist, niter=10, seed=0)
        kmeans.train(x[np.sort(np.random.default_rng(0).choice(n, min(n, 50 * args.nlist), replace=False))])
        centroids = kmeans.centroids
        np.save(centroid_file, centroids)
    rows_sq = faiss.ScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit)  # row-aligned full codes to re-score from
    rows_sq.train(x[:200_000])
    row_codes = rows_sq.compute_codes(x)
    faiss.omp_set_num_threads(1)
    flat_coarse = faiss.IndexFlatIP(d)
    flat_coarse.add(centroids)
    print(f"{n:,} x {d}, nlist {args.nlist}, {len(q)} queries of 8 scenes; flat coarse pass of a scene: "
          f"{timed(lambda b: flat_coarse.search(b, 8), q):.2f} ms", flush=True)
    print(f"{'variant':<14} {'nprobe':>6} {'re-score':>8} {'ms p50':>8} {'region recall':>14} {'merged recall':>14}")
    for variant in args.variants:
        coarse, code = variant.split(":")
        faiss.omp_set_num_threads(2)
        if coarse.startswith("pca"):
            pca = faiss.PCAMatrix(d, int(coarse[3:]))
            pca.train(x[:200_000])
            data = pca.apply(x)
            cents = pca.apply(centroids)
            queries = pca.apply(q)
        else:
            pca, data, cents, queries = None, x, centroids, q
        dim = data.shape[1]
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT) if coarse == "hnsw" else faiss.IndexFlatIP(dim)
        quantizer.add(cents)
        if code.startswith("PQ"):
            index = faiss.IndexIVFPQFastScan(quantizer, dim, args.nlist, int(code[2:]), 4, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, args.nlist, getattr(faiss.ScalarQuantizer, QT[code]),
                                                  faiss.METRIC_INNER_PRODUCT)
        index.train(data[:100_000])
        for s in range(0, n, 100_000):
            index.add(data[s : s + 100_000])
        faiss.omp_set_num_threads(1)
        for nprobe in [int(v) for v in args.nprobe.split(",")]:
            index.nprobe = nprobe
            if coarse == "hnsw":
                quantizer.hnsw.efSearch = max(64, 2 * nprobe)
            for depth in [int(v) for v in args.rescore.split(",")]:
                def search(batch, full=None, depth=depth):
                    reduced = pca.apply(batch) if pca is not None else batch
                    if depth == 0:
                        return index.search(reduced, K)
                    _, candidates = index.search(reduced, depth)
                    union = np.unique(candidates[candidates >= 0])
                    scores = batch @ rows_sq.decode(row_codes[union]).T
                    top = np.argsort(-scores, axis=1)[:, :K]
                    return np.take_along_axis(scores, top, axis=1), union[top]

                ms = timed(search, q)
                found_scores, found = (np.concatenate(parts) for parts in zip(
                    *[search(q[s : s + PER_SCENE]) for s in range(0, len(q), PER_SCENE)]))
                region = knn_intersection_measure(found, truth)
                merged = merged_recall(found_scores, found, truth_scores, truth, PER_SCENE, K)
                print(f"{variant:<14} {nprobe:>6} {depth or '-':>8} {ms:>8.2f} {region:>14.3f} {merged:>14.3f}", flush=True)
        del index, data, queries
    return 0


if __name__ == "__main__":
    sys.exit(main())
