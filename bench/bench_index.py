"""Benchmark the product vector index: exact Flat vs the approximate spec chosen by
``scene_assets.indexes.flat_spec.choose_index_spec`` on synthetic clustered embeddings.

Data (seeded, generated in chunks): a mixture of Gaussians on the unit sphere, meant to look like
catalog embeddings. ``--clusters`` cluster centres (grouped under ``--super-clusters`` broad
categories) and each cluster a Gaussian with a low-rank covariance (``--cluster-rank`` directions
of spread ``--spread``) plus isotropic noise (``--noise``); cluster sizes are uneven (log-normal
weights). Every vector is L2-normalised. ``--cluster-rank 0`` gives plain isotropic Gaussian
clusters (a harder, less embedding-like case). Queries: ``--queries`` held-out draws from the same
mixture, slightly perturbed, never in the database.

Per size and index: build time (incl. training), bytes per product (size of the saved
``index.faiss`` / n), load time (sha256 verification included), recall@10 against exact search
(exact ground truth by brute force over the queries in chunks), single-query latency p50/p95 with
1 thread and with the default thread count (after a warm-up), plus an nprobe sweep for IVF.

    .venv/bin/python bench/bench_index.py --sizes 100000 1000000 --json bench/results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_assets.indexes import flat, flat_files, flat_spec  # noqa: E402
from scene_assets.indexes.ids import assign_ids  # noqa: E402
from scene_assets.indexes.sharded_params import exact_topk  # noqa: E402

TARGETS = {"latency_ms": 5.0, "recall": 0.95, "bytes_per_product": 1024}


# --------------------------------------------------------------------------------------------
# data


class ClusteredData:
    """Seeded mixture of Gaussians on the unit sphere, generated in chunks."""

    def __init__(self, dim: int, n_clusters: int, n_super: int, rank: int, spread: float,
                 noise: float, seed: int):
        rs = np.random.default_rng(seed)
        self.dim, self.rank, self.spread, self.noise = dim, rank, spread, noise
        centers = rs.standard_normal((n_clusters, dim), dtype=np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        if n_super > 0:
            sup = rs.standard_normal((n_super, dim), dtype=np.float32)
            sup /= np.linalg.norm(sup, axis=1, keepdims=True)
            centers = sup[np.arange(n_clusters) % n_super] + 0.7 * centers
            centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        self.centers = centers.astype(np.float32)
        self.bases = None
        if rank > 0:  # orthonormal basis of each cluster's spread directions
            b = rs.standard_normal((n_clusters, dim, rank), dtype=np.float32)
            self.bases = np.linalg.qr(b)[0].astype(np.float32)
        w = rs.lognormal(0.0, 0.5, n_clusters)
        self.weights = w / w.sum()
        self.n_clusters = n_clusters

    def sample(self, n: int, rs: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
        out = np.empty((n, self.dim), dtype=np.float32)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            lab = rs.choice(self.n_clusters, size=m, p=self.weights)
            x = self.centers[lab] + rs.standard_normal((m, self.dim), dtype=np.float32) * np.float32(
                self.noise / np.sqrt(self.dim))
            if self.bases is not None:
                z = rs.standard_normal((m, self.rank), dtype=np.float32) * np.float32(
                    self.spread / np.sqrt(self.rank))
                order = np.argsort(lab, kind="stable")
                cuts = np.flatnonzero(np.diff(lab[order])) + 1
                for grp in np.split(order, cuts):
                    x[grp] += z[grp] @ self.bases[lab[grp[0]]].T
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[s : s + m] = x
        return out


def exact_ground_truth(xb: np.ndarray, xq: np.ndarray, k: int, chunk: int = 131_072) -> np.ndarray:
    """Row indices of the exact top-k by inner product (numpy brute force, chunked)."""
    return exact_topk(xq, xb, k, chunk)


# --------------------------------------------------------------------------------------------
# measurements


def latency_ms(index, queries: np.ndarray, k: int, threads: int, warmup: int = 20, **params) -> tuple[float, float]:
    with flat.faiss_threads(threads):
        for q in queries[:warmup]:
            flat.search(index, q, k, **params)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            flat.search(index, q, k, **params)
            times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e3
    return float(np.percentile(t, 50)), float(np.percentile(t, 95))


def bench_one(label: str, spec: flat_spec.IndexSpec, xb: np.ndarray, pids: list[str], xq: np.ndarray,
              gt_ids: np.ndarray, args, workdir: Path) -> dict:
    n = xb.shape[0]
    t0 = time.perf_counter()
    index = flat.build_index(xb, pids, spec)
    build_s = time.perf_counter() - t0

    outdir = workdir / f"{label}-{n}"
    manifest = flat_files.save_index(index, outdir, {
        "encoder_fingerprint": "bench:synthetic", "spec": spec, "build_seconds": build_s,
        "product_ids": pids if args.store_product_ids else None,
    })
    index_bytes = manifest["index_bytes"]
    manifest_bytes = (outdir / flat_files.MANIFEST_FILE).stat().st_size
    del index
    gc.collect()
    t0 = time.perf_counter()
    index, _ = flat_files.load_index(outdir, expected_fingerprint="bench:synthetic", mmap=False)
    load_s = time.perf_counter() - t0

    _, got = flat.search(index, xq, args.k)
    recall = knn_intersection_measure(got, gt_ids)

    n_lat = args.latency_queries if spec.kind != "flat" or n <= 200_000 else args.flat_latency_queries
    lq = xq[:n_lat]
    p50_1, p95_1 = latency_ms(index, lq, args.k, threads=1)
    p50_n, p95_n = latency_ms(index, lq, args.k, threads=args.threads)

    sweep = []
    if spec.kind == "ivf":
        for nprobe in args.nprobes:
            if nprobe > index.nlist:
                continue
            _, g = flat.search(index, xq, args.k, nprobe=nprobe)
            s50, s95 = latency_ms(index, xq[: min(100, len(xq))], args.k, threads=1, nprobe=nprobe)
            sweep.append({"nprobe": nprobe, "recall_at_k": knn_intersection_measure(g, gt_ids),
                          "p50_ms_1t": s50, "p95_ms_1t": s95})

    row = {
        "n": n, "dim": xb.shape[1], "label": label, "factory": spec.factory,
        "search_params": spec.search_params, "build_s": build_s, "load_s": load_s,
        "index_bytes": index_bytes, "bytes_per_product": index_bytes / n,
        "manifest_bytes": manifest_bytes, f"recall_at_{args.k}": recall,
        "p50_ms_1t": p50_1, "p95_ms_1t": p95_1, "p50_ms_nt": p50_n, "p95_ms_nt": p95_n,
        "latency_queries": int(len(lq)), "nprobe_sweep": sweep,
    }
    del index
    gc.collect()
    shutil.rmtree(outdir, ignore_errors=True)
    return row


# --------------------------------------------------------------------------------------------
# output


def fmt_table(rows: list[dict], k: int, threads: int) -> str:
    hdr = ["n", "index", "params", "build s", "load s", "B/product", f"recall@{k}",
           "p50 1t ms", "p95 1t ms", f"p50 {threads}t ms", f"p95 {threads}t ms"]
    lines = []
    for r in rows:
        params = ",".join(f"{a}={b}" for a, b in r["search_params"].items()) or "-"
        lines.append([
            f"{r['n']:,}", r["factory"], params, f"{r['build_s']:.1f}", f"{r['load_s']:.1f}",
            f"{r['bytes_per_product']:.0f}", f"{r[f'recall_at_{k}']:.4f}",
            f"{r['p50_ms_1t']:.2f}", f"{r['p95_ms_1t']:.2f}", f"{r['p50_ms_nt']:.2f}", f"{r['p95_ms_nt']:.2f}",
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(hdr)]
    out = ["  ".join(h.rjust(w) for h, w in zip(hdr, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    sweeps = [r for r in rows if r["nprobe_sweep"]]
    for r in sweeps:
        out.append(f"\nnprobe sweep  n={r['n']:,}  {r['factory']}  (1 thread)")
        out.append(f"  {'nprobe':>6}  {'recall@' + str(k):>9}  {'p50 ms':>7}  {'p95 ms':>7}")
        for s in r["nprobe_sweep"]:
            out.append(f"  {s['nprobe']:>6}  {s['recall_at_k']:>9.4f}  {s['p50_ms_1t']:>7.2f}  {s['p95_ms_1t']:>7.2f}")
    return "\n".join(out)


def target_report(rows: list[dict], k: int) -> list[str]:
    lines = []
    for r in rows:
        if r["label"] != "chosen" or r["n"] < 1_000_000:
            continue
        checks = [
            ("p95 latency 1 thread", r["p95_ms_1t"] <= TARGETS["latency_ms"], f"{r['p95_ms_1t']:.2f} ms <= 5 ms"),
            ("p95 latency default threads", r["p95_ms_nt"] <= TARGETS["latency_ms"], f"{r['p95_ms_nt']:.2f} ms <= 5 ms"),
            (f"recall@{k}", r[f"recall_at_{k}"] >= TARGETS["recall"], f"{r[f'recall_at_{k}']:.4f} >= 0.95"),
            ("bytes/product", r["bytes_per_product"] <= TARGETS["bytes_per_product"],
             f"{r['bytes_per_product']:.0f} B <= 1024 B"),
        ]
        for name, ok, detail in checks:
            lines.append(f"[{'PASS' if ok else 'FAIL'}] n={r['n']:,} {r['factory']}: {name} {detail}")
    return lines


def add_synthetic_data_args(ap: argparse.ArgumentParser, queries: int) -> None:
    """The options of the seeded clustered embeddings (shared by the index benchmarks)."""
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--super-clusters", type=int, default=50)
    ap.add_argument("--cluster-rank", type=int, default=32)
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--queries", type=int, default=queries)
    ap.add_argument("--query-noise", type=float, default=0.05)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    add_synthetic_data_args(ap, queries=200)
    ap.add_argument("--exact-threshold", type=int, default=50_000,
                    help="passed to choose_index_spec (sizes above it get the approximate index)")
    ap.add_argument("--extra-factory", action="append", default=[],
                    help="also benchmark this FAISS factory string (repeatable), e.g. IVF4096,SQfp16")
    ap.add_argument("--no-flat", action="store_true", help="skip the exact Flat baseline")
    ap.add_argument("--nprobes", type=int, nargs="*", default=[8, 16, 32, 64, 128])
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--flat-latency-queries", type=int, default=50,
                    help="single-query latency samples for Flat above 200k vectors (each ~0.1 s)")
    ap.add_argument("--threads", type=int, default=faiss.omp_get_max_threads(),
                    help="'default threads' setting for the second latency column")
    ap.add_argument("--no-product-ids", dest="store_product_ids", action="store_false",
                    help="leave the product id list out of the saved manifest (production keeps it)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to save indexes (temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    data = ClusteredData(args.dim, args.clusters, args.super_clusters, args.cluster_rank,
                         args.spread, args.noise, args.seed)
    meta = {
        "faiss_version": faiss.__version__, "numpy_version": np.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
        "gpus": flat.num_gpus(), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, faiss threads {faiss.omp_get_max_threads()}, "
          f"GPUs {meta['gpus']}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-index-") as tmp:
        for n in args.sizes:
            rs = np.random.default_rng([args.seed, n])
            t0 = time.perf_counter()
            xb = data.sample(n, rs)
            xq = data.sample(args.queries, rs)  # held out: never added to the index
            xq += rs.standard_normal(xq.shape, dtype=np.float32) * np.float32(args.query_noise / np.sqrt(args.dim))
            xq /= np.linalg.norm(xq, axis=1, keepdims=True)
            pids = [f"p{i:08d}" for i in range(n)]
            gen_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            gt_rows = exact_ground_truth(xb, xq, args.k)
            gt_s = time.perf_counter() - t0
            gt_ids = assign_ids(pids)[gt_rows]
            top = (xq * xb[gt_rows[:, 0]]).sum(1)
            print(f"\nn={n:,}: data {gen_s:.1f}s, exact ground truth {gt_s:.1f}s; "
                  f"mean cosine of true top-1 {top.mean():.3f}", flush=True)

            specs = []
            if not args.no_flat:
                specs.append(("flat", flat_spec.choose_index_spec(n, args.dim, exact_threshold=n)))
            specs.append(("chosen", flat_spec.choose_index_spec(n, args.dim, exact_threshold=args.exact_threshold,
                                                         seed=args.seed)))
            chosen = specs[-1][1]
            for fac in args.extra_factory:
                sp = flat_spec.spec_from_factory(fac, args.dim, train_size=chosen.train_size or 200_000, seed=args.seed,
                                          search_params=chosen.search_params if fac.startswith("IVF") else {})
                specs.append((f"extra{len(specs)}", sp))
            for label, spec in specs:
                t0 = time.perf_counter()
                row = bench_one(label, spec, xb, pids, xq, gt_ids, args, Path(tmp))
                row.update(gen_s=gen_s, ground_truth_s=gt_s)
                rows.append(row)
                print(f"  {label:7s} {spec.factory:16s} build {row['build_s']:.1f}s  "
                      f"recall@{args.k} {row[f'recall_at_{args.k}']:.4f}  p50(1t) {row['p50_ms_1t']:.2f} ms  "
                      f"B/product {row['bytes_per_product']:.0f}  ({time.perf_counter() - t0:.0f}s)", flush=True)
            del xb, pids
            gc.collect()

    total = time.perf_counter() - t_start
    print()
    print(fmt_table(rows, args.k, args.threads))
    checks = target_report(rows, args.k)
    if checks:
        print("\nTargets at 1M (chosen spec):")
        print("\n".join(checks))
    print(f"\ntotal wall time {total:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": rows, "targets": TARGETS,
                                         "checks": checks, "total_s": total}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
