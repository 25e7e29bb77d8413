"""Benchmark the sharded IVF-PQ index (``scene_assets.indexes.sharded_*``): train once, add per shard,
merge on disk, serve memory-mapped.

Data: ``bench_index.ClusteredData`` (seeded clustered embeddings on the unit sphere, 384-d by
default), generated in chunks straight into one ``.npy`` file per catalog shard (products routed by
``scene_assets.embeddings.shard_of``, as the pipeline does) plus held-out queries.

Each phase that measures memory runs in a fresh subprocess:

* build: choose parameters (memory budget, latency target), train on a seeded sample, add each
  shard (vectors streamed from disk in chunks), merge on disk. Times per phase; peak RSS (VmHWM) and
  peak anonymous memory (sampled) of the build process, against the total vector bytes.
* serve (mmap, then RAM): open the merged index (``open_merged(mmap=True)`` vs ``mmap=False``),
  answer the queries; RSS split into anonymous (process heap) and file-backed (mapped pages of
  ``index.ivfdata`` and the id lookup, i.e. page cache) after opening and after the queries; query
  latency p50/p95 (1 thread and default threads) at the chosen nprobe and an nprobe sweep with
  recall@k against exact search (ground truth by brute force over the shard files in chunks).

    nice -n 10 .venv/bin/python bench/bench_sharded_index.py --size 1000000 --shards 4
    .venv/bin/python bench/bench_sharded_index.py --size 100000          # quick mode
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_index import ClusteredData, add_synthetic_data_args  # noqa: E402

from scene_assets.indexes import flat, sharded_build, sharded_files, sharded_params, sharded_serving, vector_sources  # noqa: E402
from scene_assets.embeddings import shard_keys, shard_of  # noqa: E402
from scene_assets.indexes.ids import assign_ids  # noqa: E402

FP = "bench:synthetic"
GEN_CHUNK = 100_000


# --------------------------------------------------------------------------------------------
# memory


def proc_status() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in bytes (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


class AnonPeak:
    """Samples RssAnon every ``interval`` s in a thread: the peak of the process's own memory
    (VmHWM also counts mapped file pages, which are page cache)."""

    def __init__(self, interval: float = 0.05):
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval):
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status().get("RssAnon", 0))
            time.sleep(interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, proc_status().get("RssAnon", 0))


# --------------------------------------------------------------------------------------------
# data on disk


class NpyShardSource:
    """A shard as ``<key>.vectors.npy`` (float32 n x d) + ``<key>.pids.npy`` (bytes), read with plain
    file reads in chunks (no mapping: the build's RSS is its own memory only)."""

    def __init__(self, directory: Path, key: str):
        self.key = key
        self.vec_path = directory / f"{key}.vectors.npy"
        self.pid_path = directory / f"{key}.pids.npy"
        self._pids = np.load(self.pid_path, mmap_mode="r")
        mm = np.load(self.vec_path, mmap_mode="r")
        self.n, self.dim = mm.shape
        self.offset = mm.offset
        del mm

    def describe(self) -> str:
        return str(self.vec_path)

    def count(self) -> int:
        return int(self.n)

    def digest(self) -> str:
        h = hashlib.sha256()
        for path in (self.pid_path, self.vec_path):
            with open(path, "rb") as f:
                while block := f.read(1 << 24):
                    h.update(block)
        return h.hexdigest()

    def _read(self, start: int, stop: int) -> np.ndarray:
        with open(self.vec_path, "rb") as f:
            f.seek(self.offset + start * self.dim * 4)
            return np.fromfile(f, dtype=np.float32, count=(stop - start) * self.dim).reshape(-1, self.dim)

    def chunks(self, rows: int = vector_sources.CHUNK_ROWS):
        for s in range(0, self.n, rows):
            e = min(self.n, s + rows)
            yield [p.decode() for p in self._pids[s:e]], self._read(s, e)

    def take(self, rows: np.ndarray) -> np.ndarray:
        parts = []
        for s in range(0, self.n, vector_sources.CHUNK_ROWS):
            e = min(self.n, s + vector_sources.CHUNK_ROWS)
            sel = rows[(rows >= s) & (rows < e)] - s
            if sel.size:
                parts.append(self._read(s, e)[sel])
        return np.concatenate(parts)


def generate(args, data_dir: Path) -> dict:
    """Shard files + queries, generated in chunks (memory: one chunk)."""
    t0 = time.perf_counter()
    data = ClusteredData(args.dim, args.clusters, args.super_clusters, args.cluster_rank, args.spread, args.noise, args.seed)
    rs = np.random.default_rng([args.seed, args.size])
    keys = shard_keys(args.shards)
    pids = np.array([f"p{i:08d}".encode() for i in range(args.size)])
    shard = np.fromiter((shard_of(p.decode(), args.shards) for p in pids), dtype=np.int32, count=args.size)
    counts = np.bincount(shard, minlength=args.shards)
    vec_out = [np.lib.format.open_memmap(data_dir / f"{k}.vectors.npy", mode="w+", dtype=np.float32,
                                         shape=(int(c), args.dim)) for k, c in zip(keys, counts)]
    for k, number in zip(keys, range(args.shards)):
        np.save(data_dir / f"{k}.pids.npy", pids[shard == number])
    cursor = np.zeros(args.shards, dtype=np.int64)
    for s in range(0, args.size, GEN_CHUNK):
        x = data.sample(min(GEN_CHUNK, args.size - s), rs)
        sh = shard[s : s + x.shape[0]]
        for number in range(args.shards):
            rows = np.flatnonzero(sh == number)
            vec_out[number][cursor[number] : cursor[number] + rows.size] = x[rows]
            cursor[number] += rows.size
    for mm in vec_out:
        mm.flush()
    del vec_out
    xq = data.sample(args.queries, rs)
    xq += rs.standard_normal(xq.shape, dtype=np.float32) * np.float32(args.query_noise / np.sqrt(args.dim))
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    np.save(data_dir / "queries.npy", xq)
    return {"gen_s": time.perf_counter() - t0, "shard_counts": counts.tolist(),
            "vector_bytes": int(args.size) * args.dim * 4}


def ground_truth(data_dir: Path, keys: list[str], k: int) -> tuple[np.ndarray, float]:
    """Exact top-k int ids by brute force over the shard files in chunks."""
    t0 = time.perf_counter()
    xq = np.load(data_dir / "queries.npy")
    best_s = np.full((xq.shape[0], k), -np.inf, dtype=np.float32)
    best_i = np.full((xq.shape[0], k), -1, dtype=np.int64)
    for key in keys:
        src = NpyShardSource(data_dir, key)
        for pids, x in src.chunks(1 << 16):
            sc = xq @ x.T
            part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
            ids = assign_ids(pids)[part]
            cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_i, ids], axis=1)
            top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(cand_s, top, axis=1)
            best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# phases run in subprocesses


def phase_build(args) -> dict:
    data_dir = Path(args.workdir) / "data"
    keys = shard_keys(args.shards)
    sources = [NpyShardSource(data_dir, k) for k in keys]
    root = Path(args.workdir) / "index"
    faiss.omp_set_num_threads(args.build_threads)
    base = proc_status()
    out: dict = {"baseline_rss": base.get("VmRSS", 0)}
    cpu = time.process_time
    with AnonPeak() as peak:
        t0, c0 = time.perf_counter(), cpu()
        n = sum(s.count() for s in sources)
        params = sharded_params.choose_params(
            n, args.dim, memory_budget_bytes=int(args.memory_budget_gb * 2**30), latency_target_ms=args.latency_target_ms,
            nlist=args.nlist, max_code_bytes=args.max_code_bytes, opq=args.opq, coarse=args.coarse, seed=args.seed,
        )
        trained = sharded_build.train_index(sources, root, params, fingerprint=FP, force=True)
        out["train_s"] = time.perf_counter() - t0
        out["train_cpu_s"] = cpu() - c0
        out["train_only_s"] = trained.manifest["train_seconds"]
        out["tune_s"] = trained.manifest["tune_seconds"]
        out["coarse_s"] = trained.manifest.get("coarse_train_seconds", 0.0)
        out["coarse_cpu_s"] = trained.manifest.get("coarse_train_cpu_seconds", 0.0)
        out["pq_s"] = trained.manifest["encoder_train_seconds"]
        out["pq_cpu_s"] = trained.manifest["encoder_train_cpu_seconds"]
        out["sample_size"] = trained.manifest["sample_size"]
        out["params"] = trained.params.to_dict()
        out["anon_after_train"] = proc_status().get("RssAnon", 0)
        shards, adds = [], []
        for s in sources:
            t1, c1 = time.perf_counter(), cpu()
            shards.append(sharded_build.add_shard(trained, s, root))
            adds.append({"key": s.key, "n": s.count(), "s": time.perf_counter() - t1, "cpu_s": cpu() - c1})
        out["adds"] = adds
        t2, c2 = time.perf_counter(), cpu()
        merged = sharded_build.merge_shards(trained, shards, root)
        out["merge_s"] = time.perf_counter() - t2
        out["merge_cpu_s"] = cpu() - c2
        out["total_s"] = time.perf_counter() - t0
        out["total_cpu_s"] = cpu() - c0
    st = proc_status()
    out.update(peak_rss=st.get("VmHWM", 0), peak_anon=peak.peak, merged_dir=str(merged.directory),
               merged_files={k: v["bytes"] for k, v in merged.manifest["files"].items()},
               verify_s=merged.manifest["verify_seconds"], merge_only_s=merged.manifest["merge_seconds"],
               shard_bytes=sum(sum(e["bytes"] for e in s.manifest["files"].values()) for s in shards))
    return out


def latency(serving: sharded_serving.ServingIndex, xq: np.ndarray, k: int, threads: int, nprobe: int | None = None,
            warmup: int = 20) -> dict[str, float]:
    """Single-query latency, wall clock and (1 thread only) CPU time of the calling thread, which
    leaves out the time a busy machine keeps the process waiting. The queries run twice; the second
    (warm) pass is reported."""
    with flat.faiss_threads(threads):
        for q in xq[:warmup]:
            serving.search(q, k, nprobe=nprobe)
        for _ in range(2):
            wall, cpu = [], []
            for q in xq:
                t0, c0 = time.perf_counter(), time.thread_time()
                serving.search(q, k, nprobe=nprobe)  # includes mapping ids back to product ids
                cpu.append(time.thread_time() - c0)
                wall.append(time.perf_counter() - t0)
    w, c = np.array(wall) * 1e3, np.array(cpu) * 1e3
    return {"p50": float(np.percentile(w, 50)), "p95": float(np.percentile(w, 95)),
            "cpu_p50": float(np.percentile(c, 50)), "cpu_p95": float(np.percentile(c, 95))}


def phase_serve(args) -> dict:
    from faiss.contrib.evaluation import knn_intersection_measure

    workdir = Path(args.workdir)
    xq = np.load(workdir / "data" / "queries.npy")
    gt = np.load(workdir / "gt.npy")
    mmap = args.phase == "serve-mmap"
    before = proc_status()
    t0 = time.perf_counter()
    serving = sharded_serving.open_merged(args.merged_dir, mmap=mmap, verify="sha256")
    open_s = time.perf_counter() - t0
    opened = proc_status()
    _, ids = serving.search_ids(xq, args.k)
    recall = knn_intersection_measure(ids, gt)
    one = latency(serving, xq, args.k, 1)
    many = latency(serving, xq, args.k, args.threads)
    queried = proc_status()
    sweep = []
    if mmap:
        for p in args.nprobes:
            if p > faiss.extract_index_ivf(serving.index).nlist:
                continue
            _, got = serving.search_ids(xq, args.k, nprobe=p)
            lat = latency(serving, xq[: min(200, len(xq))], args.k, 1, nprobe=p)
            sweep.append({"nprobe": p, "recall": knn_intersection_measure(got, gt), "p50_1t": lat["p50"],
                          "p95_1t": lat["p95"], "cpu_p50_1t": lat["cpu_p50"], "cpu_p95_1t": lat["cpu_p95"]})
    after = proc_status()
    return {"mode": "mmap" if mmap else "ram", "open_s": open_s, "nprobe": serving.nprobe, f"recall_at_{args.k}": recall,
            "p50_1t": one["p50"], "p95_1t": one["p95"], "cpu_p50_1t": one["cpu_p50"], "cpu_p95_1t": one["cpu_p95"],
            "p50_nt": many["p50"], "p95_nt": many["p95"], "sweep": sweep,
            "rss_before": before, "rss_opened": opened, "rss_queried": queried, "rss_after": after}


def run_phase(args, phase: str, **extra) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--workdir", str(args.workdir)]
    for name in ("size", "shards", "dim", "seed", "k", "threads", "build_threads", "memory_budget_gb", "latency_target_ms",
                 "coarse"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for name in ("nlist", "max_code_bytes"):
        if getattr(args, name):
            cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.opq:
        cmd.append("--opq")
    cmd += ["--nprobes", *map(str, args.nprobes)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    marker = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    if res.returncode != 0 or not marker:
        sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
        raise SystemExit(f"phase {phase} failed (rc {res.returncode})")
    return json.loads(marker[-1][len("RESULT "):])


# --------------------------------------------------------------------------------------------
# output


def mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def report(args, gen: dict, build: dict, gt_s: float, serve_mmap: dict, serve_ram: dict) -> str:
    p = build["params"]
    n = args.size
    add_total = sum(a["s"] for a in build["adds"])
    files = build["merged_files"]
    disk = sum(files.values())
    out = [f"sharded IVF-PQ index: n={n:,} x {args.dim}-d, {args.shards} shards, budget {args.memory_budget_gb} GiB, "
           f"latency target {args.latency_target_ms} ms, build on {args.build_threads} FAISS thread(s); "
           f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
           f"chosen: {p['factory']}  nprobe={p['nprobe']} ({p['nprobe_source']})",
           f"rationale: {p['rationale']}", ""]
    add_cpu = sum(a["cpu_s"] for a in build["adds"])
    rows = [["generate data (to shard files)", f"{gen['gen_s']:.1f} s", "", ""],
            ["sample + train + tune nprobe", f"{build['train_s']:.1f} s", f"{build['train_cpu_s']:.1f} s",
             f"{build['sample_size']:,} sampled vectors; tune {build['tune_s']:.1f} s"],
            ["  coarse k-means", f"{build['coarse_s']:.1f} s", f"{build['coarse_cpu_s']:.1f} s",
             f"{build['params']['nlist']:,} centroids, 10 iterations"],
            ["  PQ codebooks", f"{build['pq_s']:.1f} s", f"{build['pq_cpu_s']:.1f} s",
             f"{build['params']['m']} x 256 centroids on <= 16,384 residuals"],
            *[[f"add {a['key']}", f"{a['s']:.1f} s", f"{a['cpu_s']:.1f} s", f"{a['n']:,} vectors, {a['n'] / a['cpu_s']:,.0f}/CPU-s"]
              for a in build["adds"]],
            ["add, all shards", f"{add_total:.1f} s", f"{add_cpu:.1f} s", f"{n / add_cpu:,.0f} vectors per CPU-second"],
            ["merge on disk (incl. sha256 of shards)", f"{build['merge_s']:.1f} s", f"{build['merge_cpu_s']:.1f} s",
             f"verify {build['verify_s']:.1f} s, lists {build['merge_only_s']:.1f} s"],
            ["total build", f"{build['total_s']:.1f} s", f"{build['total_cpu_s']:.1f} s", ""],
            ["exact ground truth (brute force)", f"{gt_s:.1f} s", "", f"{args.queries} queries"]]
    out.append(table(["build step", "wall", "CPU", "note"], rows))
    out.append("")
    rows = [["vectors (float32, on disk)", mib(gen["vector_bytes"]), f"{gen['vector_bytes'] / n:.0f} B/product"],
            ["build peak RSS (VmHWM)", mib(build["peak_rss"]), f"{build['peak_rss'] / gen['vector_bytes']:.0%} of the vectors"],
            ["build peak anonymous memory", mib(build["peak_anon"]), f"{build['peak_anon'] / gen['vector_bytes']:.0%} of the vectors"],
            ["merged index on disk", mib(disk), f"{disk / n:.1f} B/product"],
            ["  index.ivfdata (codes + ids)", mib(files[sharded_files.IVFDATA_FILE]), f"{files[sharded_files.IVFDATA_FILE] / n:.1f} B/product"],
            ["  index.faiss (quantizers)", mib(files[sharded_files.INDEX_FILE]), ""],
            ["  ids.npy + product_ids.npy", mib(files[sharded_files.IDS_FILE] + files[sharded_files.PIDS_FILE]),
             f"{(files[sharded_files.IDS_FILE] + files[sharded_files.PIDS_FILE]) / n:.1f} B/product"],
            ["shard indexes (intermediate)", mib(build["shard_bytes"]), ""]]
    out.append(table(["size / memory", "bytes", "note"], rows))
    out.append("")
    rows = []
    for s in (serve_mmap, serve_ram):
        b, o, q = s["rss_before"], s["rss_opened"], s["rss_queried"]
        rows.append([s["mode"], f"{s['open_s']:.2f} s", mib(o["VmRSS"] - b["VmRSS"]), mib(q["VmRSS"] - b["VmRSS"]),
                     mib(q["RssAnon"] - b["RssAnon"]), mib(q["RssFile"] - b["RssFile"]),
                     f"{s[f'recall_at_{args.k}']:.4f}", f"{s['cpu_p50_1t']:.2f} / {s['cpu_p95_1t']:.2f}",
                     f"{s['p50_1t']:.2f} / {s['p95_1t']:.2f}", f"{s['p50_nt']:.2f} / {s['p95_nt']:.2f}"])
    out.append(f"serving: a fresh process per row; RSS = growth over the {mib(serve_mmap['rss_before']['VmRSS'])} of "
               f"python + numpy + faiss, after opening and after {args.queries} queries at nprobe={serve_mmap['nprobe']} "
               "(anon = the process's own memory, file-backed = mapped page-cache pages); latency of one query incl. "
               "id -> product id, ms p50 / p95 (CPU = the thread's CPU time, which leaves out waiting on this busy machine)")
    out.append(table(["lists", "open", "RSS opened", "RSS queried", "anon", "file-backed", f"recall@{args.k}",
                      "CPU 1t", "wall 1t", f"wall {args.threads}t"], rows))
    a = serve_mmap["rss_after"]
    out.append(f"(mmap process after the nprobe sweep too, which touches most lists: anon "
               f"{mib(a['RssAnon'] - serve_mmap['rss_before']['RssAnon'])}, file-backed {mib(a['RssFile'] - serve_mmap['rss_before']['RssFile'])})")
    out.append("")
    out.append("nprobe sweep (memory-mapped, 1 thread, ms)")
    out.append(table(["nprobe", f"recall@{args.k}", "CPU p50", "CPU p95", "wall p50", "wall p95"],
                     [[str(s["nprobe"]), f"{s['recall']:.4f}", f"{s['cpu_p50_1t']:.2f}", f"{s['cpu_p95_1t']:.2f}",
                       f"{s['p50_1t']:.2f}", f"{s['p95_1t']:.2f}"] for s in serve_mmap["sweep"]]))
    if p.get("nprobe_sweep"):
        out.append("")
        out.append(f"nprobe chooser's measurements on the training sample ({build['sample_size']:,} vectors, 1 thread)")
        out.append(table(["nprobe", "sample recall", "sample ms", f"est. ms at n={n:,}"],
                         [[str(r["nprobe"]), f"{r['recall']:.3f}", f"{r['ms']:.3f}", f"{r['est_ms_at_n']:.2f}"] for r in p["nprobe_sweep"]]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000, help="catalog size (100000 for a quick run)")
    ap.add_argument("--shards", type=int, default=4)
    add_synthetic_data_args(ap, queries=500)
    ap.add_argument("--memory-budget-gb", type=float, default=4.0)
    ap.add_argument("--latency-target-ms", type=float, default=5.0)
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--max-code-bytes", type=int, default=None)
    ap.add_argument("--opq", action="store_true")
    ap.add_argument("--coarse", default="auto")
    ap.add_argument("--nprobes", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32, 64, 128])
    ap.add_argument("--threads", type=int, default=faiss.omp_get_max_threads(),
                    help="'default threads' setting for the second latency column")
    ap.add_argument("--build-threads", type=int, default=1,
                    help="FAISS threads for training and adding (default 1: per-core numbers, which scale to more "
                    "workers; on a shared machine OpenMP spin-waiting makes 2 threads slower than 1)")
    ap.add_argument("--workdir", type=Path, default=None, help="where data and indexes go (a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--phase", default="all", choices=["all", "build", "serve-mmap", "serve-ram"], help=argparse.SUPPRESS)
    ap.add_argument("--merged-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.phase == "build":
        print("RESULT " + json.dumps(phase_build(args), default=str), flush=True)
        return 0
    if args.phase.startswith("serve"):
        print("RESULT " + json.dumps(phase_serve(args), default=str), flush=True)
        return 0

    started = time.perf_counter()
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, faiss threads {args.threads}, python "
          f"{platform.python_version()}", flush=True)
    own_tmp = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-sharded-", dir=None)) if own_tmp else args.workdir
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        data_dir = args.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        gen = generate(args, data_dir)
        print(f"generated {args.size:,} x {args.dim} in {gen['gen_s']:.1f} s: shards {gen['shard_counts']}", flush=True)
        gt, gt_s = ground_truth(data_dir, shard_keys(args.shards), args.k)
        np.save(args.workdir / "gt.npy", gt)
        print(f"exact ground truth in {gt_s:.1f} s", flush=True)
        build = run_phase(args, "build")
        print(f"built in {build['total_s']:.1f} s: {build['params']['factory']} nprobe={build['params']['nprobe']}", flush=True)
        serve_mmap = run_phase(args, "serve-mmap", merged_dir=build["merged_dir"])
        serve_ram = run_phase(args, "serve-ram", merged_dir=build["merged_dir"])
        text = report(args, gen, build, gt_s, serve_mmap, serve_ram)
        print()
        print(text)
        print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "generate": gen,
                                             "build": build, "ground_truth_s": gt_s, "serve_mmap": serve_mmap,
                                             "serve_ram": serve_ram}, indent=1, default=str))
            print(f"wrote {args.json}")
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
