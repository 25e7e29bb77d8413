"""Two-stage serving of a 10M-product catalog (#19): one scene query, end to end, on a server process
that holds no per-product Python object and maps everything per-product from disk.

Stage 1 searches the merged sharded IVF-PQ index (``bench_sharded_index.py --keep`` builds it: 10M x
384-d synthetic vectors, inverted lists memory-mapped); stage 2 re-scores the merged candidates from
the exact vectors (float16, memory-mapped, in the index's lookup order), computes the factors from
the per-product columns (memory-mapped .npy, as a bundle stores them) and re-ranks. The product
attributes are Arrow strings and integer codes (memory-mapped), the ids the index's own lookup.

The catalog's attributes are synthetic (drawn per product: rooms, size, colours, materials, styles,
category, title); the scene photos are real (the IKEA dataset's, or the embedded sample's), encoded by
the default encoder into its 384-d joint space, so the CNN pass and the region queries are what a
server computes. The vectors are not related to the photos: this measures memory and latency, not
quality (quality through the two-stage path: ``scene-matcher evaluate --served-index``).

    nice -n 10 .venv/bin/python bench/bench_sharded_index.py --size 10000000 --shards 8 --keep \\
        --workdir /work/bench10m --build-threads 2
    .venv/bin/python bench/bench_two_stage.py --workdir /work/bench10m --scenes 30

Phases: ``prepare`` writes the serving files next to the bench's data (once; reused), ``serve`` runs
in a fresh process: RSS before (python + libraries + the encoder), after opening the catalog, after
the queries, split into anonymous memory (the process's own) and file-backed pages (page cache
shared with other processes); per-stage latency p50 / p95 over the scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sharded_index import AnonPeak, mib, proc_status, table  # noqa: E402

STAGES = ("decode", "regions", "analysis", "search", "rerank", "total")
COLUMNS_DIR = "two_stage_columns"
CHUNK = 500_000


def find_merged(workdir: Path) -> Path:
    found = [p.parent for p in workdir.rglob("manifest.json")
             if json.loads(p.read_text()).get("stage") == "merged"]
    if len(found) != 1:
        raise SystemExit(f"{workdir}: expected one merged index folder, found {found}; run bench_sharded_index.py --keep")
    return found[0]


# --------------------------------------------------------------------------------------------
# prepare: the serving files of a synthetic catalog, in the merged index's lookup order


def _exact_vectors(merged: Path, data_dir: Path, out: Path) -> None:
    """float16 copy of every shard's vectors, reordered to the merged lookup (segments = shards in key order)."""
    from scene_assets.indexes.sharded_files import PIDS_FILE, read_manifest

    manifest = read_manifest(merged)
    lookup = np.load(merged / PIDS_FILE, mmap_mode="r")
    dim = int(manifest["dim"])
    target = np.lib.format.open_memmap(out, mode="w+", dtype=np.float16, shape=(lookup.shape[0], dim))
    shard_files = sorted(data_dir.glob("*.pids.npy"))
    if len(shard_files) != len(manifest["segments"]):
        raise SystemExit(f"{data_dir}: {len(shard_files)} shard files for {len(manifest['segments'])} segments")
    for (a, b), pid_file in zip(manifest["segments"], shard_files):
        pids = np.load(pid_file)
        vectors = np.load(str(pid_file).replace(".pids.npy", ".vectors.npy"), mmap_mode="r")
        seg = np.asarray(lookup[a:b])
        if seg.shape[0] != pids.shape[0]:
            raise SystemExit(f"{pid_file}: {pids.shape[0]} products, lookup segment holds {seg.shape[0]}")
        order_seg, order_gen = np.argsort(seg), np.argsort(pids)
        if not np.array_equal(seg[order_seg], pids[order_gen]):
            raise SystemExit(f"{pid_file}: product ids differ from the merged lookup's segment")
        perm = np.empty_like(order_seg)
        perm[order_seg] = order_gen  # lookup row i holds the shard's row perm[i]
        for s in range(0, perm.shape[0], CHUNK):
            rows = perm[s:s + CHUNK]
            order = np.argsort(rows)  # read the shard file in ascending rows
            block = np.asarray(vectors[rows[order]], dtype=np.float32)
            target[a + s + order] = block.astype(np.float16)
        print(f"  vectors of {pid_file.name}: {b - a:,} rows", flush=True)
    target.flush()
    del target


def _synthetic_columns(n: int, folder: Path, seed: int) -> dict:
    """Per-product factor columns and attributes, drawn per product (the shapes a bundle stores)."""
    import pyarrow as pa

    from scene_assets import vocabulary as vocab
    from scene_assets.ranking import factors as F
    from scene_assets.recommender_bundle import _write_arrow
    from scene_assets.scene_analysis import ROOM_TYPES, STYLES, vocabulary_lab

    rng = np.random.default_rng(seed)
    K, S, R = len(vocabulary_lab()[0]), len(STYLES), len(ROOM_TYPES)
    aff = np.asarray([F.MATERIAL_STYLE_AFFINITY[s] for s in STYLES], dtype=np.float64)  # S x families
    shapes = {"room_member": ((n, R), np.float64), "size_index": ((n,), np.int64), "color_matrix": ((n, K), np.float64),
              "has_pixel_color": ((n,), bool), "non_pixel_value": ((n,), np.float64),
              "material_affinity": ((n, S), np.float64), "styles": ((n, S), np.float64),
              "info_category": ((n,), np.int16), "info_variant_group": ((n,), np.int32)}
    out = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dt, shape=shape)
           for name, (shape, dt) in shapes.items()}
    categories = sorted(vocab.CATEGORY_ROOMS)
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        sl = slice(s, s + m)
        member = rng.random((m, R)) < 0.3
        member[np.arange(m), rng.integers(0, R, m)] = True
        out["room_member"][sl] = member
        out["size_index"][sl] = rng.integers(-1, 4, m)
        colours = np.zeros((m, K))
        colours[np.arange(m), rng.integers(0, K, m)] = 1.0
        second = rng.random(m) < 0.4
        colours[np.flatnonzero(second), rng.integers(0, K, int(second.sum()))] += 1.0
        has = rng.random(m) < 0.8
        colours[~has] = 0.0
        out["color_matrix"][sl] = colours / np.maximum(colours.sum(axis=1, keepdims=True), 1.0)
        out["has_pixel_color"][sl] = has
        out["non_pixel_value"][sl] = 0.5
        materials = np.full((m, S), np.nan)
        with_mat = rng.random(m) < 0.7
        fams = rng.integers(0, aff.shape[1], m)
        materials[with_mat] = aff[:, fams[with_mat]].T
        out["material_affinity"][sl] = materials
        logits = rng.normal(size=(m, S))
        out["styles"][sl] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        out["info_category"][sl] = rng.integers(0, len(categories), m)
        out["info_variant_group"][sl] = np.arange(s, s + m) // 3  # groups of three variants
    for a in out.values():
        a.flush()
    del out
    words = np.array(["oak", "linen", "lamp", "chair", "rug", "shelf", "sofa", "table", "vase", "mirror"])
    titles = pa.array([f"{words[i % 10]} {words[(i // 10) % 10]} {i}" for i in range(n)], type=pa.large_string())
    strings = pa.table({"title": titles, "product_type": pa.array([None] * n, type=pa.large_string()),
                        "image_path": pa.array([None] * n, type=pa.large_string())})
    with open(folder / "product_strings.arrow", "wb") as handle:
        _write_arrow(handle, strings)
    groups = pa.table({"variant_group": pa.array([f"group-{g}" for g in range(n // 3 + 1)], type=pa.large_string())})
    with open(folder / "variant_groups.arrow", "wb") as handle:
        _write_arrow(handle, groups)
    return {"category_names": categories}


def prepare(args, merged: Path) -> Path:
    folder = args.workdir / COLUMNS_DIR
    done = folder / "prepared.json"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    from scene_assets.indexes.sharded_files import read_manifest

    n = int(read_manifest(merged)["count"])
    t0 = time.perf_counter()
    print(f"prepare: exact float16 vectors of {n:,} products in lookup order ...", flush=True)
    _exact_vectors(merged, args.workdir / "data", folder / "vectors_f16.npy")
    t1 = time.perf_counter()
    print("prepare: synthetic per-product columns and attributes ...", flush=True)
    meta = _synthetic_columns(n, folder, args.seed)
    meta.update(count=n, merged=str(merged), vectors_s=round(t1 - t0, 1), columns_s=round(time.perf_counter() - t1, 1))
    done.write_text(json.dumps(meta))
    return folder


# --------------------------------------------------------------------------------------------
# serve: a fresh process


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def serve(args) -> dict:
    import faiss

    from scene_assets.encoders import EncoderSpec, build_encoder
    from scene_assets.indexes.searcher import open_index
    from scene_assets.matching import Recommender
    from scene_assets.ranking.catalog import ProductInfo, StringColumn
    from scene_assets.ranking.factors import ProductFactors
    from scene_assets.recommender_bundle import map_arrow, map_npy

    merged, folder = Path(args.merged), Path(args.columns)
    meta = json.loads((folder / "prepared.json").read_text())
    scene_paths = [Path(p) for p in args.scene_paths]
    mem = {"start": proc_status()}
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    # the encoder as a server holds it before any catalog: trunk session, joint head, text tower
    from PIL import Image

    from scene_assets.regions import RegionConfig, compute_regions
    from scene_assets.scene_analysis import prompt_vectors

    prompt_vectors(encoder)
    compute_regions(Image.open(scene_paths[0]).convert("RGB"), encoder, RegionConfig(), project=True)
    mem["encoder"] = proc_status()
    timings_open = {}
    with AnonPeak() as peak:
        t0 = time.perf_counter()
        opened = open_index(merged)
        ivf = faiss.extract_index_ivf(opened.searcher.index)
        if args.nprobe:
            ivf.nprobe = args.nprobe
        timings_open["index (sha256 of every file)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        names = ("room_member", "size_index", "color_matrix", "has_pixel_color", "non_pixel_value",
                 "material_affinity", "styles")
        factors = ProductFactors.from_columns({name: map_npy(folder / f"{name}.npy") for name in names})
        info = ProductInfo.from_columns(
            map_arrow(folder / "product_strings.arrow"),
            {"category": map_npy(folder / "info_category.npy"), "variant_group": map_npy(folder / "info_variant_group.npy")},
            {"category": meta["category_names"],
             "variant_group": StringColumn(map_arrow(folder / "variant_groups.arrow").column(0))})
        timings_open["product columns (pages read in)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        vectors = map_npy(folder / "vectors_f16.npy") if args.touch_vectors else np.load(folder / "vectors_f16.npy", mmap_mode="r")
        timings_open["exact vectors" + (" (pages read in)" if args.touch_vectors else " (mapped)")] = time.perf_counter() - t0
        t0 = time.perf_counter()
        recommender = Recommender(encoder, opened.searcher, opened.product_ids, None, space="joint",
                                  product_vectors=vectors, rescore=True, product_factors=factors, product_info=info,
                                  int_ids=opened.int_ids, per_region_k=args.per_region_k)
        timings_open["recommender (id table sorted)"] = time.perf_counter() - t0
        mem["opened"] = proc_status()
        recommender.recommend(scene_paths[0], k=10)  # warm-up
        stage = {s: [] for s in STAGES}
        candidates = []
        for path in scene_paths[1:]:
            result = recommender.recommend(path, k=10)
            for s in STAGES:
                stage[s].append(result.timings_ms.get(s, 0.0))
            candidates.append(result.n_candidates)
        mem["queried"] = proc_status()
    return {"products": len(recommender.product_ids), "dim": int(opened.searcher.d), "factory": opened.manifest.get("factory"),
            "nprobe": int(ivf.nprobe), "per_region_k": args.per_region_k, "scenes": len(scene_paths) - 1,
            "candidates_p50": float(np.median(candidates)), "stages_ms": {s: _pct(v) for s, v in stage.items()},
            "open_s": timings_open, "memory": mem, "anon_peak": peak.peak,
            "items_example": [it.product_id for it in result.items[:3]]}


def scene_photos(dataset: Path, count: int) -> list[Path]:
    from scene_assets.ikea_dataset import load_dataset
    from scene_assets.settings import sample_dataset_dir

    for root in (dataset, sample_dataset_dir()):
        try:
            _products, scenes, _pairs = load_dataset(root)
        except Exception:  # noqa: BLE001 - no such dataset here: the next one
            continue
        return [root / p for p in scenes["image"].to_list()[:count]]
    raise SystemExit("no scene photos: set --dataset")


def report(result: dict) -> str:
    m = result["memory"]
    base = m["encoder"]
    out = [f"two-stage serving: {result['products']:,} products x {result['dim']}-d, {result['factory']} nprobe "
           f"{result['nprobe']}, {result['per_region_k']} candidates per region (merged p50 "
           f"{result['candidates_p50']:.0f}), {result['scenes']} scenes; {platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", ""]
    rows = [[name, f"{mib(m[name]['RssAnon'])}", f"{mib(m[name]['RssFile'])}", f"{mib(m[name].get('RssShmem', 0))}",
             f"{mib(m[name]['VmRSS'])}"] for name in ("start", "encoder", "opened", "queried")]
    rows.append(["peak own memory (sampled)", mib(result["anon_peak"]), "", "", ""])
    rows.append(["catalog's own memory (queried - encoder)", mib(m["queried"]["RssAnon"] - base["RssAnon"]),
                 mib(m["queried"]["RssFile"] - base["RssFile"]), "", ""])
    out.append(table(["process memory", "own (anon)", "file-backed (page cache)", "shmem", "RSS"], rows))
    out.append("")
    out.append(table(["open", "seconds"], [[k, f"{v:.1f}"] for k, v in result["open_s"].items()]))
    out.append("")
    out.append(table(["stage", "p50 ms", "p95 ms"],
                     [[s, f"{p50:.1f}", f"{p95:.1f}"] for s, (p50, p95) in result["stages_ms"].items()]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="bench_sharded_index.py's --workdir (kept)")
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--per-region-k", type=int, default=100)
    ap.add_argument("--nprobe", type=int, default=None, help="default: the index manifest's")
    ap.add_argument("--touch-vectors", action="store_true",
                    help="read every page of the exact vectors at open (as the product columns are)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--phase", default="all", choices=["all", "serve"], help=argparse.SUPPRESS)
    ap.add_argument("--merged", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--columns", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scene-paths", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase == "serve":
        print(json.dumps(serve(args)))
        return 0
    merged = find_merged(args.workdir)
    folder = prepare(args, merged)
    scenes = scene_photos(args.dataset, args.scenes + 1)
    cmd = [sys.executable, __file__, "--phase", "serve", "--workdir", str(args.workdir), "--merged", str(merged),
           "--columns", str(folder), "--per-region-k", str(args.per_region_k), "--scene-paths", *map(str, scenes)]
    if args.nprobe:
        cmd += ["--nprobe", str(args.nprobe)]
    if args.touch_vectors:
        cmd.append("--touch-vectors")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
