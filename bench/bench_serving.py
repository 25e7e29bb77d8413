"""Scene query latency and serving memory: the real IKEA catalog and a synthetic 100k-product catalog.

  .venv/bin/python bench/bench_serving.py                      # IKEA + 20k, 50k, 100k synthetic, in-process + HTTP
  .venv/bin/python bench/bench_serving.py --sizes 20000,1000000 --scenes 30 --skip-http --json /tmp/serving.json

For each catalog a recommender bundle (the same on-disk format the `scene_index` asset writes) is
built, then

* **in-process**: ``Recommender.recommend`` end to end (decode -> regions -> analysis -> search ->
  re-rank) on the dataset's scene photos, p50 / p95 per stage;
* **HTTP**: ``scene-matcher serve --index DIR`` started as its own process; every scene is POSTed to
  ``/match`` once (cache misses), then once more (LRU cache hits); client-side p50 / p95, and the
  server process's resident memory (VmRSS now, VmHWM = peak) read from /proc.

The synthetic catalog is a mixture of Gaussians around the real products' image features (each
synthetic product = a real product's feature + noise, with its category, colours and text), so the
index sees realistic clusters rather than uniform noise. Bundles are cached under --cache-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scene_query import load_dataset, product_text_vectors, product_trunk_features  # noqa: E402
from serving_process import rss_kib, serve  # noqa: E402

from scene_assets.embeddings import vectors_frame  # noqa: E402
from scene_assets.encoders import EncoderSpec, build_encoder  # noqa: E402
from scene_assets.recommender_bundle import (  # noqa: E402
    build_scene_index,
    load_recommender,
    sample_region_queries,
    write_bundle_files,
    write_product_columns,
)

STAGES = ("decode", "regions", "analysis", "search", "rerank", "total")


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _noisy_copies(vectors: np.ndarray, base: np.ndarray, scale: float, rng: np.random.Generator,
                  chunk_rows: int = 65_536) -> np.ndarray:
    """unit(vectors)[base] + N(0, (scale / sqrt(d))^2) noise, float32, filled a chunk of rows at a time."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.empty((len(base), vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(base), chunk_rows):
        rows = slice(start, min(start + chunk_rows, len(base)))
        out[rows] = unit[base[rows]] + rng.standard_normal((rows.stop - start, vectors.shape[1])).astype(np.float32) * (
            scale / np.sqrt(vectors.shape[1]))
    return out


def build_bundle(directory: Path, encoder, products: pl.DataFrame, features: np.ndarray, texts: np.ndarray,
                 n_products: int | None, sample_scenes: list[Path], seed: int = 0) -> Path:
    """A bundle of the real products (n_products None) or n synthetic ones clustered around them."""
    if (directory / "bundle.json").is_file():
        if "info" not in json.loads((directory / "bundle.json").read_text()).get("product_columns", {}):
            # a bundle cached before the columns, or the attributes, were stored with it (#19)
            t0 = time.perf_counter()
            write_product_columns(directory, encoder)
            print(f"  product columns written in {time.perf_counter() - t0:.1f} s")
        return directory
    if n_products is None:
        ids, catalog, feats, text = products["product_id"].to_list(), products, features, texts
    else:
        base, feats, rng = _synthetic_draws(features, n_products, products.height, seed)
        text = _noisy_copies(texts, base, 0.3, rng)
        ids = [f"syn-{i:06d}" for i in range(n_products)]
        catalog = products[base.tolist()].with_columns(
            product_id=pl.Series(ids), variant_group=pl.Series(ids),
            title=pl.col("title") + pl.Series([f" #{i}" for i in range(n_products)]),
        )
    frame = vectors_frame(ids, [f"h{i}" for i in range(len(ids))], encoder.trunk_fingerprint(), feats)
    del feats  # the frame holds its own copy
    t0 = time.perf_counter()
    # timed on real region queries, as the scene_index asset does: scene photos of the dataset that are
    # not among the measured ones
    sample = sample_region_queries(encoder, "trunk", sample_scenes)
    build_scene_index(frame, directory, fingerprint=encoder.trunk_fingerprint(), space="trunk", sample_queries=sample)
    print(f"  index for {len(ids)} products built in {time.perf_counter() - t0:.1f} s -> {directory}")
    write_bundle_files(
        directory,
        catalog=catalog,
        text_vectors=vectors_frame(ids, ids, encoder.text_fingerprint(), text.astype(np.float32)).select("product_id", "vector"),
        encoder_spec=EncoderSpec(kind="default", device="cpu"),
        text_fingerprint=encoder.text_fingerprint(),
    )
    write_product_columns(directory, encoder)  # as the scene_index asset does: servers memory-map them
    return directory


def _synthetic_draws(features: np.ndarray, n_products: int, n_real: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """The seeded draws of a synthetic catalog: each product's real product (``base``), its image
    features (a noisy copy of that product's), and the generator after them (the text draws follow).
    Row chunks draw the same normal stream as one (n, d) call, without its float64 temporaries (1M x
    1280 would be 10 GB at once)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n_real, n_products)
    return base, _noisy_copies(features, base, 0.5, rng), rng


def synthetic_features(features: np.ndarray, n_products: int, n_real: int, seed: int = 0) -> np.ndarray:
    """The synthetic image features ``build_bundle`` indexed for ``n_products`` (same seeded draws, rows
    in the order of its ids ``syn-000000`` ...)."""
    return _synthetic_draws(features, n_products, n_real, seed)[1]


def exact_overlap(directory: Path, encoder, scene_paths: list[Path], features: np.ndarray, n_real: int,
                  k: int = 10) -> float:
    """Mean overlap@k of the served recommendations (the bundle's index, as chosen at build time) with
    the same recommender searching an exact ``Flat`` index of the same catalog: what the approximate
    stage 1 costs the shopper. Regions are computed once per scene and ranked both ways."""
    from scene_assets.indexes import flat
    from scene_assets.indexes.flat_spec import choose_index_spec
    from scene_assets.indexes.searcher import FaissSearcher
    from scene_assets.regions import center_and_normalize_in_place

    recommender, _ = load_recommender(directory, encoder=encoder)
    approximate = recommender.index
    n = len(recommender.product_ids)
    ids = [f"syn-{i:06d}" for i in range(n)]  # generation order (the manifest lists them by int id)
    vectors = synthetic_features(features, n, n_real)
    center_and_normalize_in_place(vectors, recommender.catalog_mean)
    exact = flat.build_index(vectors, ids, choose_index_spec(len(ids), vectors.shape[1], exact_threshold=len(ids)))
    del vectors
    overlaps = []
    for path in scene_paths:
        scene = recommender.prepare_scene(path)
        recommender.index = approximate
        served = {r.product_id for r in recommender.recommend_prepared(scene, k=k).items}
        recommender.index = FaissSearcher(exact)
        truth = {r.product_id for r in recommender.recommend_prepared(scene, k=k).items}
        overlaps.append(len(served & truth) / max(len(truth), 1))
    return float(np.mean(overlaps))


def in_process(directory: Path, encoder, scene_paths: list[Path]) -> dict:
    recommender, bundle = load_recommender(directory, encoder=encoder)
    recommender.recommend(scene_paths[0], k=10)  # warm-up (prompt vectors, allocator)
    timings = {s: [] for s in STAGES}
    for path in scene_paths:
        result = recommender.recommend(path, k=10)
        for stage in STAGES:
            timings[stage].append(result.timings_ms.get(stage, 0.0))
    manifest = json.loads((directory / "manifest.json").read_text())
    selection = manifest.get("selection") or {}
    nprobe = (manifest.get("spec") or {}).get("search_params", {}).get("nprobe")
    return {"products": bundle["count"], "index": manifest["index_factory"] + (f" np{nprobe}" if nprobe else ""),
            "index_choice_search_ms": selection.get("search_ms"), "index_choice_recall": selection.get("recall"),
            "index_choice_within_budget": selection.get("within_budget"), "index_choice_queries": selection.get("queries"),
            "stages_ms": {s: _pct(v) for s, v in timings.items()}}


def measured_fresh(directory: Path, scene_paths: list[Path], features: np.ndarray | None, n_real: int) -> dict:
    """``in_process`` (and ``exact_overlap`` when ``features`` is given) in a fresh process, as a server
    runs one catalog: in the bench's own process, after building and loading every catalog before it,
    the 1M row's regions stage measured 70-76 ms p50 where a fresh process measures 55-59."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_in_child, str(directory), [str(p) for p in scene_paths], features, n_real).result()


def _measure_in_child(directory: str, scene_paths: list[str], features: np.ndarray | None, n_real: int) -> dict:
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    paths = [Path(p) for p in scene_paths]
    row = in_process(Path(directory), encoder, paths)
    if features is not None:
        row["overlap_at_10_vs_exact"] = exact_overlap(Path(directory), encoder, paths, features, n_real)
    return row


def over_http(directory: Path, scene_paths: list[Path]) -> dict:
    import httpx

    with serve(directory, "--reload-interval", "2") as (server, base), httpx.Client(timeout=60, trust_env=False) as client:
        rss_loaded = rss_kib(server.pid)
        latencies = {"miss": [], "hit": []}
        for kind in ("miss", "hit"):
            for path in scene_paths:
                data = path.read_bytes()
                t0 = time.perf_counter()
                response = client.post(f"{base}/match", files={"image": (path.name, data, "image/jpeg")}, data={"k": "10"})
                latencies[kind].append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                assert response.json()["cached"] is (kind == "hit"), response.json().get("cached")
        rss = rss_kib(server.pid)
        time.sleep(3)  # one idle reload poll: the server trims freed heap pages then
        rss_idle = rss_kib(server.pid)
    return {
        "client_ms_miss": _pct(latencies["miss"]),
        "client_ms_hit": _pct(latencies["hit"]),
        "rss_after_load_mib": round(rss_loaded["VmRSS"] / 1024, 1),
        "rss_mib": round(rss["VmRSS"] / 1024, 1),
        "peak_rss_mib": round(rss["VmHWM"] / 1024, 1),
        "rss_idle_mib": round(rss_idle["VmRSS"] / 1024, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--sizes", default="20000,50000,100000",
                    help="synthetic catalog sizes, comma-separated (1000000: ~7 GB of RAM and a long IVF build)")
    ap.add_argument("--scenes", type=int, default=40, help="scene photos to query")
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/bench"))
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-overlap", action="store_true",
                    help="skip overlap@10 with exact search (synthetic sizes: an exact index of the catalog is built)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    products, scenes, _pairs = load_dataset(args.dataset)
    features = product_trunk_features(encoder, products, args.cache_dir)
    texts = product_text_vectors(encoder, products, args.cache_dir)
    scene_paths = [args.dataset / p for p in scenes["image"].to_list()[: args.scenes]]
    sample_scenes = [args.dataset / p for p in scenes["image"].to_list()[args.scenes : args.scenes + 8]]
    results = {}
    sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    for label, n in [(f"IKEA catalog ({products.height})", None)] + [(f"synthetic {n:,}", n) for n in sizes]:
        directory = args.cache_dir / f"bundle-{'real' if n is None else n}-{encoder.trunk_fingerprint()[:12]}"
        print(f"{label}:")
        build_bundle(directory, encoder, products, features, texts, n, sample_scenes)
        row = measured_fresh(directory, scene_paths, None if n is None or args.skip_overlap else features,
                             products.height)
        if not args.skip_http:
            row.update(over_http(directory, scene_paths))
        results[label] = row

    import platform

    print(f"\nScene query, {len(scene_paths)} scenes of {args.dataset.name}, k=10, {os.cpu_count()} CPU cores "
          f"({platform.processor() or platform.machine()}) (ms: p50 / p95; index chosen at build time, #21)")
    header = f"{'catalog':<24} {'index':<30} " + " ".join(f"{s:>13}" for s in STAGES) + "  overlap@10 vs exact"
    print(header + "\n" + "-" * len(header))
    for label, row in results.items():
        cells = " ".join(f"{row['stages_ms'][s][0]:6.1f}/{row['stages_ms'][s][1]:6.1f}" for s in STAGES)
        overlap = row.get("overlap_at_10_vs_exact")
        print(f"{label:<24} {row['index'][:30]:<30} {cells}  {'exact' if overlap is None else f'{overlap:.3f}':>8}")
    if not args.skip_http:
        print("\nHTTP /match via `scene-matcher serve` (client-side ms p50 / p95; RSS of the server process)")
        header = (f"{'catalog':<24} {'uncached':>15} {'cached':>13} {'RSS loaded':>11} {'RSS under load':>14} "
                  f"{'RSS idle':>9} {'peak RSS':>9}")
        print(header + "\n" + "-" * len(header))
        for label, row in results.items():
            print(f"{label:<24} {row['client_ms_miss'][0]:7.1f}/{row['client_ms_miss'][1]:6.1f} "
                  f"{row['client_ms_hit'][0]:6.1f}/{row['client_ms_hit'][1]:5.1f} "
                  f"{row['rss_after_load_mib']:8.0f} MiB {row['rss_mib']:10.0f} MiB {row['rss_idle_mib']:5.0f} MiB "
                  f"{row['peak_rss_mib']:5.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
