"""Two-stage serving of a 10M-product catalog (#19): one scene query, end to end, on a server process
that holds no per-product Python object and maps everything per-product from disk.

Stage 1 searches the merged sharded IVF-PQ index (``bench_sharded_index.py --keep`` builds it: 10M x
384-d synthetic vectors, inverted lists memory-mapped); stage 2 re-scores the merged candidates from
the exact vectors (float16, memory-mapped, in the index's lookup order), computes the factors from
the per-product columns and re-ranks. The bundle is written by
``scene_assets.two_stage_bundle.write_two_stage_bundle`` from a synthetic enriched catalog (drawn
categories, titles, colours, materials, room hints, style words, sizes, variant groups; no text
vectors) and loaded by ``load_recommender``, as ``scene-matcher serve --index DIR`` loads it.

The scene photos are real (the IKEA dataset's, or the embedded sample's), encoded by the default
encoder into its 384-d joint space, so the CNN pass and the region queries are what a server
computes. The vectors are not related to the photos: this measures memory and latency, not quality
(quality through the two-stage path: ``scene-matcher evaluate --served-index``).

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

import faiss
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sharded_index import AnonPeak, mib, proc_status, table  # noqa: E402

STAGES = ("decode", "regions", "analysis", "search", "rerank", "total")
BUNDLE_DIR = "two_stage_bundle"
CHUNK = 500_000


def find_merged(workdir: Path) -> Path:
    found = [p.parent for p in workdir.rglob("manifest.json")
             if json.loads(p.read_text()).get("stage") == "merged"]
    if len(found) != 1:
        raise SystemExit(f"{workdir}: expected one merged index folder, found {found}; run bench_sharded_index.py --keep")
    return found[0]


# --------------------------------------------------------------------------------------------
# prepare: a synthetic catalog for the index's products and its two-stage bundle


def synthetic_catalog(n: int, seed: int) -> pl.DataFrame:
    """An enriched catalog of products ``p00000000`` ... (the ids bench_sharded_index gives its
    vectors): drawn categories, titles, colours, materials, room hints, style words, sizes, variant
    groups of three, in the columns the re-ranker reads."""
    from scene_assets import vocabulary as vocab
    from scene_assets.ranking import factors as F
    from scene_assets.scene_analysis import ROOM_TYPES, vocabulary_lab

    rng = np.random.default_rng(seed)
    categories = sorted(vocab.CATEGORY_ROOMS)
    colours = list(vocabulary_lab()[0]) + ["multicolour"]
    materials = sorted(vocab.MATERIAL_FAMILY)
    words = sorted(F._STYLE_WORD_TO_STYLE)
    parts = []
    for s in range(0, n, 1_000_000):
        m = min(1_000_000, n - s)
        row = pl.int_range(s, s + m, eager=True)

        def pick(options, p_none=0.0):
            codes = rng.integers(0, len(options), m)
            values = pl.Series(codes).replace_strict(dict(enumerate(options)), return_dtype=pl.String)
            return values.scatter(np.flatnonzero(rng.random(m) < p_none), None) if p_none else values

        frame = pl.DataFrame({"row": row, "category": pick(categories), "c1": pick(colours), "c2": pick(colours, 0.6),
                              "material": pick(materials, 0.3), "room": pick(ROOM_TYPES, 0.7),
                              "word": pick(words, 0.8), "size_class": pick(F._SIZE_CLASSES, 0.4)})
        parts.append(frame.select(
            product_id=pl.format("p{}", pl.col("row").cast(pl.String).str.zfill(8)),
            title=pl.format("{} no. {}", pl.col("category"), pl.col("row")),
            product_type=pl.col("category"),
            category=pl.col("category"),
            colors=pl.concat_list("c1", "c2").list.drop_nulls(),
            materials=pl.concat_list("material").list.drop_nulls(),
            room_hints=pl.concat_list("room").list.drop_nulls(),
            style_words=pl.concat_list("word").list.drop_nulls(),
            size_class=pl.col("size_class"),
            variant_group=pl.format("g{}", pl.col("row") // 3),
        ))
    return pl.concat(parts)


def prepare(args, merged: Path) -> Path:
    from bench_sharded_index import NpyShardSource

    from scene_assets.encoders import EncoderSpec, build_encoder
    from scene_assets.indexes.sharded_files import read_manifest
    from scene_assets.two_stage_bundle import chained, write_two_stage_bundle

    bundle_dir = args.workdir / BUNDLE_DIR
    if (bundle_dir / "bundle.json").exists():
        return bundle_dir
    n = int(read_manifest(merged)["count"])
    spec = EncoderSpec(kind="default", device="cpu")
    encoder = build_encoder(spec)
    t0 = time.perf_counter()
    catalog = synthetic_catalog(n, args.seed)
    print(f"prepare: synthetic catalog of {n:,} products in {time.perf_counter() - t0:.1f} s", flush=True)
    data = args.workdir / "data"
    sources = [NpyShardSource(data, p.name.removesuffix(".vectors.npy")) for p in sorted(data.glob("*.vectors.npy"))]
    t0 = time.perf_counter()
    # the synthetic vectors stand in for the encoder's image vectors: the bundle is written for the
    # index as it is (its fingerprint is the bench's), queries are the encoder's 384-d joint vectors
    encoder.fingerprint = lambda: read_manifest(merged)["encoder_fingerprint"]
    bundle = write_two_stage_bundle(bundle_dir, merged, catalog=catalog, vector_chunks=chained(s.chunks(200_000) for s in sources),
                                    encoder=encoder, encoder_spec=spec)
    print(f"prepare: two-stage bundle written in {time.perf_counter() - t0:.1f} s -> {bundle_dir}", flush=True)
    (bundle_dir / "bench.json").write_text(json.dumps({"write_seconds": bundle["write_seconds"]}))
    return bundle_dir


# --------------------------------------------------------------------------------------------
# serve: a fresh process


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


class ExactChunkedSearcher:
    """Exact inner-product search over the bundle's float16 vectors, a chunk of rows at a time (the
    overlap check's reference: what stage 1 would return if it were exact)."""

    def __init__(self, vectors: np.ndarray, int_ids: np.ndarray, chunk: int = 500_000):
        self.vectors, self.int_ids, self.chunk = vectors, np.asarray(int_ids), chunk

    @property
    def ntotal(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def d(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, queries: np.ndarray, k: int, *, allowed_ids=None):
        if allowed_ids is not None:
            raise NotImplementedError("the overlap check runs without filters")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        best_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        best_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        for start in range(0, self.ntotal, self.chunk):
            block = np.asarray(self.vectors[start:start + self.chunk], dtype=np.float32)
            s = q @ block.T
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            cand_s = np.concatenate([best_s, np.take_along_axis(s, top, axis=1)], axis=1)
            cand_i = np.concatenate([best_i, self.int_ids[start + top]], axis=1)
            keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(cand_s, keep, axis=1), np.take_along_axis(cand_i, keep, axis=1)
        return best_s, best_i

    def reconstruct(self, ids):
        return None


def overlap_with_exact(recommender, scene_paths: list[Path], k: int = 10) -> dict:
    """Share of each scene's served top ``k`` that the same recommender returns when stage 1 is exact
    search of the same vectors (regions computed once, ranked both ways)."""
    import copy

    exact = copy.copy(recommender)
    exact.index = ExactChunkedSearcher(recommender._product_vectors, recommender.int_ids)
    shares, t0 = [], time.perf_counter()
    for path in scene_paths:
        scene = recommender.prepare_scene(path)
        served = set(recommender.recommend_prepared(scene, k=k).product_ids)
        truth = set(exact.recommend_prepared(scene, k=k).product_ids)
        shares.append(len(served & truth) / max(len(truth), 1))
    return {"overlap_at_10": float(np.mean(shares)), "scenes": len(shares), "seconds": time.perf_counter() - t0}


def serve(args) -> dict:
    from PIL import Image

    from scene_assets.encoders import EncoderSpec, build_encoder
    from scene_assets.indexes.sharded_files import read_manifest
    from scene_assets.recommender_bundle import load_recommender, read_bundle
    from scene_assets.regions import RegionConfig, compute_regions
    from scene_assets.scene_analysis import prompt_vectors

    bundle_dir = Path(args.bundle)
    scene_paths = [Path(p) for p in args.scene_paths]
    if args.cold:
        # a replica on a machine whose page cache does not hold the catalog: the bundle's and the merged
        # index's files dropped from the page cache before the process opens them
        for root in (bundle_dir, Path(read_bundle(bundle_dir)["index_dir"])):
            for path in root.rglob("*"):
                if path.is_file():
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
    mem = {"start": proc_status()}
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    # the encoder as a server holds it before any catalog: trunk session, joint head, text tower
    prompt_vectors(encoder)
    compute_regions(Image.open(scene_paths[0]).convert("RGB"), encoder, RegionConfig(), project=True)
    encoder.fingerprint = lambda: read_manifest(Path(read_bundle(bundle_dir)["index_dir"]))["encoder_fingerprint"]
    mem["encoder"] = proc_status()
    with AnonPeak() as peak:
        t0 = time.perf_counter()
        recommender, bundle = load_recommender(bundle_dir, encoder=encoder, per_region_k=args.per_region_k)
        open_s = time.perf_counter() - t0
        ivf = faiss.extract_index_ivf(recommender.index.index)
        if args.nprobe:
            ivf.nprobe = args.nprobe
        mem["opened"] = proc_status()
        recommender.recommend(scene_paths[0], k=10)  # warm-up
        stage = {s: [] for s in STAGES}
        candidates = []
        for path in scene_paths[1:]:
            result = recommender.recommend(path, k=10)
            for s in STAGES:
                stage[s].append(result.timings_ms.get(s, 0.0))
            candidates.append(result.candidates)
        mem["queried"] = proc_status()
    overlap = overlap_with_exact(recommender, scene_paths[1:args.overlap + 1]) if args.overlap else None
    return {"overlap": overlap, "products": len(recommender.product_ids), "dim": int(recommender.index.d),
            "factory": read_manifest(Path(bundle["index_dir"])).get("factory"), "nprobe": int(ivf.nprobe),
            "per_region_k": args.per_region_k, "scenes": len(scene_paths) - 1,
            "candidates_p50": float(np.median(candidates)), "stages_ms": {s: _pct(v) for s, v in stage.items()},
            "open_s": {"load_recommender (index sha256, columns paged in, id table sorted)": open_s},
            "memory": mem, "anon_peak": peak.peak, "items_example": [it.product_id for it in result.items[:3]],
            "cold": bool(args.cold)}


def scene_photos(dataset: Path, count: int) -> list[Path]:
    from scene_assets.settings import sample_dataset_dir

    for root in (dataset, sample_dataset_dir()):
        if (root / "scenes.csv").is_file():
            return [root / p for p in pl.read_csv(root / "scenes.csv", infer_schema=False)["image"].to_list()[:count]]
    raise SystemExit("no scene photos: set --dataset")


def report(result: dict) -> str:
    m = result["memory"]
    base = m["encoder"]
    out = [f"two-stage serving{' (page cache dropped first)' if result.get('cold') else ''}: "
           f"{result['products']:,} products x {result['dim']}-d, {result['factory']} nprobe "
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
    if result.get("overlap"):
        o = result["overlap"]
        out.append(f"\noverlap@10 with exact stage-1 search of the same vectors: {o['overlap_at_10']:.3f} "
                   f"({o['scenes']} scenes, {o['seconds']:.0f} s)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="bench_sharded_index.py's --workdir (kept)")
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--per-region-k", type=int, default=100)
    ap.add_argument("--nprobe", type=int, default=None, help="default: the index manifest's")
    ap.add_argument("--cold", action="store_true",
                    help="drop the bundle's and the index's files from the page cache before serving (a fresh replica)")
    ap.add_argument("--overlap", type=int, default=0, metavar="N",
                    help="also rank N scenes with exact search of the same vectors as stage 1 and report overlap@10 "
                    "(after the memory and latency figures; ~5 s a scene at 10M)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--phase", default="all", choices=["all", "serve"], help=argparse.SUPPRESS)
    ap.add_argument("--bundle", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scene-paths", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase == "serve":
        print(json.dumps(serve(args)))
        return 0
    merged = find_merged(args.workdir)
    bundle_dir = prepare(args, merged)
    scenes = scene_photos(args.dataset, args.scenes + 1)
    cmd = [sys.executable, __file__, "--phase", "serve", "--workdir", str(args.workdir), "--bundle", str(bundle_dir),
           "--per-region-k", str(args.per_region_k), "--scene-paths", *map(str, scenes)]
    if args.nprobe:
        cmd += ["--nprobe", str(args.nprobe)]
    if args.cold:
        cmd.append("--cold")
    if args.overlap:
        cmd += ["--overlap", str(args.overlap)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
