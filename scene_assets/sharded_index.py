"""Sharded IVF-PQ product index for catalogs past memory: train once, add per catalog shard,
merge on disk, serve memory-mapped.

Plain Python (no Dagster). Like ``vector_index``: vectors are L2-normalised and compared by inner
product, and product ids are stored as the same stable int63 ids (``vector_index.product_int_id``),
so a product has one int id whichever shard or index holds it.

Files (``root`` is one folder per encoder fingerprint)::

    root/trained/<params_key>/      trained.faiss, manifest.json                     train_index()
    root/shards/<shard_key>/<ver>/  index.faiss, ids.npy, product_ids.npy, manifest.json  add_shard()
    root/merged/<ver>/              index.faiss, index.ivfdata, ids.npy, product_ids.npy,
                                    manifest.json                                    merge_shards()

* ``choose_params``: ``IVF{nlist},PQ{m}x8`` (optionally ``OPQ`` and an ``HNSW32`` coarse quantizer)
  from a memory budget and a latency target, the way autofaiss does it: nlist ~ 4*sqrt(n) (a power
  of two, capped by the training sample), the largest PQ code that keeps ``n * (m + 8)`` bytes (+ the
  quantizers) inside the budget, nprobe from a per-code scan cost. ``tune_nprobe`` replaces the cost
  model by timings and recall measured on the training sample. Everything is recorded, with the
  rationale, in the trained index's manifest.
* ``train_index``: trained once on a seeded sample read from the shard files (only the sampled rows'
  row groups, never the whole catalog in memory) -> the "trained empty index".
* ``add_shard``: a copy of the trained index plus one shard's vectors, streamed in chunks. The
  folder is named by (trained index sha256, shard content digest): an unchanged shard is found and
  skipped, a changed shard gets a new folder, and a retrained index invalidates every shard.
* ``merge_shards``: the shards' inverted lists concatenated into one ``OnDiskInvertedLists`` file
  (``index.ivfdata``) in a temp folder renamed into place; the folder is named by the shards it holds.
* ``open_merged``: the lists memory-mapped read-only (they live in the page cache, not in the
  process heap); ``search`` returns product ids.

Every file is listed in its folder's manifest with its sha256 and size; a mismatch raises
``IndexCorruptError`` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import faiss
import numpy as np

from scene_assets import vector_index as vi
from scene_assets.embeddings import write_atomic_bytes
from scene_assets.files import sha256_of_file
from scene_assets.locking import exclusive
from scene_assets.vector_index import IdCollisionError, IndexCorruptError, VectorIndexError

log = logging.getLogger(__name__)

FORMAT = 1
TRAINED_FILE = "trained.faiss"
INDEX_FILE = "index.faiss"
IVFDATA_FILE = "index.ivfdata"
IDS_FILE = "ids.npy"
PIDS_FILE = "product_ids.npy"
MANIFEST_FILE = "manifest.json"
ID_BYTES = 8  # int64 id stored next to every code in an inverted list
CHUNK_ROWS = 65_536
# PQ sub-quantizer counts tried, largest first (must divide the dimension).
PQ_M_CANDIDATES = (256, 192, 128, 96, 64, 48, 32, 24, 16, 12, 8, 4, 2, 1)
# Cost model used when nothing is measured (tune_nprobe measures instead), from bench runs on the
# 2-core CI machine, faiss 1.15, one thread, 384-d: scanning an IVF-PQ list ~0.9 ns per code byte
# (177 ns per PQ192 code at 1M vectors); a flat coarse quantizer ~0.02 ns per centroid x dimension
# (30 us for 4096 x 384); an HNSW32 coarse quantizer ~0.05 ms (44 us with 65,536 centroids).
NS_PER_CODE_BYTE = 0.9
NS_PER_CENTROID_DIM = 0.02
HNSW_COARSE_MS = 0.05
PQ_TRAIN_POINTS_PER_CENTROID = 64

Coarse = Literal["flat", "hnsw"]


# --------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class ShardedIndexParams:
    """What to train, and the search default, with the numbers that justified them."""

    factory: str
    dim: int
    nlist: int
    m: int
    nbits: int
    opq: bool
    coarse: str  # "flat" | "hnsw"
    nprobe: int
    train_size: int
    seed: int
    n_planned: int  # catalog size the parameters were chosen for
    memory_budget_bytes: int
    latency_target_ms: float
    bytes_per_vector: int  # code + id in the inverted lists
    fixed_bytes: int  # coarse centroids, PQ codebooks, OPQ matrix, HNSW graph
    estimated_index_bytes: int
    estimated_latency_ms: float
    nprobe_source: str = "cost model"  # or "measured on the training sample"
    normalize: bool = True
    metric: str = "inner_product"
    rationale: str = ""
    nprobe_sweep: list[dict[str, float]] = field(default_factory=list)

    def key(self) -> str:
        """Identity of the trained index (what training depends on; nprobe is a search setting)."""
        ident = {k: getattr(self, k) for k in ("factory", "dim", "nbits", "train_size", "seed", "normalize", "metric")}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShardedIndexParams:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _pow2_round(x: float) -> int:
    return 1 << max(0, int(round(math.log2(max(x, 1.0)))))


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1.0)))))


def factory_string(nlist: int, m: int, nbits: int = 8, *, opq: bool = False, coarse: str = "flat", dim: int | None = None) -> str:
    quantizer = f"IVF{nlist}_HNSW32" if coarse == "hnsw" else f"IVF{nlist}"
    pre = f"OPQ{m}_{dim}," if opq else ""
    # "np": no polysemous training (a slow code re-ordering for Hamming pre-filtering, which these
    # searches never use: it took 30 s of a 31 s training on 3,200 x 64-d vectors).
    return f"{pre}{quantizer},PQ{m}x{nbits}np"


def fixed_bytes(dim: int, nlist: int, m: int, nbits: int = 8, *, opq: bool = False, coarse: str = "flat") -> int:
    """Bytes that do not grow with the catalog: coarse centroids (+ HNSW links), PQ codebooks,
    OPQ rotation, list headers."""
    total = nlist * dim * 4 + (1 << nbits) * dim * 4 + nlist * 24
    if coarse == "hnsw":
        total += nlist * 32 * 2 * 4
    if opq:
        total += dim * dim * 4
    return total


def estimate_latency_ms(n_vectors: int, dim: int, nlist: int, m: int, nprobe: int, *, coarse: str = "flat",
                        ns_per_code_byte: float = NS_PER_CODE_BYTE) -> float:
    """Single-query, single-thread latency from the cost model: coarse search + nprobe lists of
    n/nlist codes of m bytes each."""
    coarse_ms = HNSW_COARSE_MS if coarse == "hnsw" else nlist * dim * NS_PER_CENTROID_DIM * 1e-6
    scan_ms = nprobe * (n_vectors / max(nlist, 1)) * m * ns_per_code_byte * 1e-6
    return coarse_ms + scan_ms


def choose_params(
    n_vectors: int,
    dim: int,
    *,
    memory_budget_bytes: int,
    latency_target_ms: float = 5.0,
    nlist: int | None = None,
    m: int | None = None,
    max_code_bytes: int | None = None,
    opq: bool = False,
    coarse: str = "auto",
    nprobe: int | None = None,
    train_points_per_list: int = 50,
    min_points_per_list: int = 39,
    max_train_size: int = 1_000_000,
    train_size: int | None = None,
    seed: int = 0,
) -> ShardedIndexParams:
    """Pick ``IVF{nlist}[_HNSW32],PQ{m}x{nbits}`` for ``n_vectors`` x ``dim`` within
    ``memory_budget_bytes`` (the size of the lists + quantizers, which is what has to stay in the
    page cache for searches never to wait on the disk) and ``latency_target_ms`` (one query, one
    thread). Raises ``ValueError`` when even the smallest code does not fit the budget.

    * nlist: 4*sqrt(n) rounded to a power of two, at most n/``min_points_per_list`` and
      ``max_train_size``/``min_points_per_list`` (k-means needs ~39+ points per centroid), <= 65536.
    * train_size: ``train_points_per_list`` * nlist, at most ``max_train_size`` and n (or
      ``train_size`` when given, which then also replaces ``max_train_size`` in the nlist cap).
    * coarse: ``auto`` -> an HNSW32 quantizer above 16384 lists (a flat one costs nlist*dim per query).
    * m: the largest divisor of dim from ``PQ_M_CANDIDATES`` (at most ``max_code_bytes``, default
      dim/2 = 2 dimensions per sub-quantizer) whose ``n*(m+8) + fixed`` fits the budget. More code
      bytes, more recall: at 100k x 384-d clustered vectors (bench_index data, IVF1024, nprobe 8)
      recall@10 vs exact was 0.67 / 0.75 / 0.80 / 0.88 / 0.92 / 0.97 for m = 32 / 48 / 64 / 96 /
      128 / 192 (SQ8, 384 B: 0.99), so the budget, not a fixed m, sets the quality.
    * nbits: 8, fewer only when the training sample has fewer than 256 vectors (tiny catalogs).
    * nprobe: the largest power of two whose estimated latency meets the target, at most nlist/4
      (``tune_nprobe`` refines it with measurements).
    """
    if n_vectors <= 0 or dim <= 0:
        raise ValueError(f"choose_params: bad shape n_vectors={n_vectors} dim={dim}")
    if memory_budget_bytes <= 0 or latency_target_ms <= 0:
        raise ValueError("choose_params: memory_budget_bytes and latency_target_ms must be positive")
    why: list[str] = []
    if train_size is not None:
        max_train_size = max(1, int(train_size))
    if nlist is None:
        want = _pow2_round(4 * math.sqrt(n_vectors))
        cap = min(_pow2_floor(n_vectors / min_points_per_list), _pow2_floor(max_train_size / min_points_per_list), 65_536)
        nlist = max(1, min(want, cap))
        why.append(f"nlist={nlist} (4*sqrt(n)={4 * math.sqrt(n_vectors):.0f} -> power of two"
                   + (f", capped at {cap} for >= {min_points_per_list} training points per list" if want > cap else "") + ")")
    else:
        why.append(f"nlist={nlist} (given)")
    if train_size is not None:
        train_size = int(min(n_vectors, train_size))
    else:
        train_size = int(min(n_vectors, max_train_size, max(train_points_per_list * nlist, 1)))
    why.append(f"train on {train_size:,} sampled vectors ({train_size / nlist:.0f} per list)")
    nbits = 8 if train_size >= 256 else max(1, int(math.floor(math.log2(max(train_size, 2)))))
    if nbits < 8:
        why.append(f"nbits={nbits}: only {train_size} training vectors (< 256 for 8-bit codes)")
    if coarse == "auto":
        coarse = "hnsw" if nlist > 16_384 else "flat"
    if coarse not in ("flat", "hnsw"):
        raise ValueError(f"coarse must be 'auto', 'flat' or 'hnsw', got {coarse!r}")

    divisors = [c for c in PQ_M_CANDIDATES if dim % c == 0]
    limit = max_code_bytes if max_code_bytes is not None else max(1, dim // 2)
    if m is None:
        fitting = [c for c in divisors if c <= limit
                   and n_vectors * (math.ceil(c * nbits / 8) + ID_BYTES) + fixed_bytes(dim, nlist, c, nbits, opq=opq, coarse=coarse)
                   <= memory_budget_bytes]
        if not fitting:
            smallest = divisors[-1]
            need = n_vectors * (math.ceil(smallest * nbits / 8) + ID_BYTES) + fixed_bytes(dim, nlist, smallest, nbits, opq=opq, coarse=coarse)
            raise ValueError(
                f"choose_params: {n_vectors:,} vectors do not fit a {memory_budget_bytes / 2**20:.0f} MiB budget even with "
                f"PQ{smallest} codes (needs {need / 2**20:.0f} MiB); raise the memory budget"
            )
        m = fitting[0]
        why.append(f"PQ m={m} (largest of {[c for c in divisors if c <= limit]} whose n*(m+{ID_BYTES}) B + quantizers fits "
                   f"the {memory_budget_bytes / 2**30:.2f} GiB budget; code capped at {limit} B)")
    else:
        if dim % m:
            raise ValueError(f"choose_params: PQ m={m} must divide dim={dim}")
        why.append(f"PQ m={m} (given)")
    code = math.ceil(m * nbits / 8)
    per_vector = code + ID_BYTES
    fixed = fixed_bytes(dim, nlist, m, nbits, opq=opq, coarse=coarse)
    total = n_vectors * per_vector + fixed
    why.append(f"size {n_vectors:,} x {per_vector} B + {fixed / 2**20:.1f} MiB fixed = {total / 2**20:.1f} MiB")

    if nprobe is None:
        cands = [1 << i for i in range(0, int(math.log2(nlist)) + 1)]
        cap = max(1, nlist // 4)
        ok = [p for p in cands if p <= cap and estimate_latency_ms(n_vectors, dim, nlist, m, p, coarse=coarse) <= latency_target_ms]
        nprobe = ok[-1] if ok else 1
        why.append(f"nprobe={nprobe} (cost model: largest power of two <= nlist/4 with est. latency <= "
                   f"{latency_target_ms} ms" + ("" if ok else "; none meets the target, using 1") + ")")
    else:
        why.append(f"nprobe={nprobe} (given)")
    nprobe = int(min(nprobe, nlist))
    est = estimate_latency_ms(n_vectors, dim, nlist, m, nprobe, coarse=coarse)
    return ShardedIndexParams(
        factory=factory_string(nlist, m, nbits, opq=opq, coarse=coarse, dim=dim),
        dim=dim, nlist=int(nlist), m=int(m), nbits=int(nbits), opq=bool(opq), coarse=coarse, nprobe=nprobe,
        train_size=train_size, seed=int(seed), n_planned=int(n_vectors), memory_budget_bytes=int(memory_budget_bytes),
        latency_target_ms=float(latency_target_ms), bytes_per_vector=int(per_vector), fixed_bytes=int(fixed),
        estimated_index_bytes=int(total), estimated_latency_ms=round(est, 4), rationale="; ".join(why),
    )


def tune_nprobe(
    params: ShardedIndexParams,
    trained: faiss.Index,
    sample: np.ndarray,
    *,
    n_queries: int = 200,
    k: int = 10,
    recall_slack: float = 0.01,
    min_sample: int = 2_000,
) -> ShardedIndexParams:
    """nprobe from measurements instead of the cost model (autofaiss-style): the trained index is
    filled with the training sample minus ``n_queries`` held-out rows, and every power-of-two nprobe
    is timed (one query at a time, one thread; at half and at the full sample, to separate the two
    costs) and scored (recall@k vs exact on the sample). The time per query is fitted as
    ``a + b * codes_scanned + c * nprobe`` and extrapolated to
    ``params.n_planned`` vectors (codes scanned grow with n/nlist). nprobe = the smallest value whose
    sample recall is within ``recall_slack`` of the best recall affordable under the latency target
    (the sample recall is pessimistic: the full catalog puts true neighbours closer together).
    Returns ``params`` unchanged when the sample is too small to measure."""
    n_db = sample.shape[0] - n_queries
    if params.nlist < 2 or n_db < min_sample:
        return params
    from faiss.contrib.evaluation import knn_intersection_measure

    q = np.ascontiguousarray(sample[:n_queries])
    db = np.ascontiguousarray(sample[n_queries:])
    gt = exact_topk(q, db, k)
    index = faiss.clone_index(trained)
    stats = faiss.cvar.indexIVF_stats
    probes_tried = [1 << i for i in range(0, int(math.log2(params.nlist)) + 1)]
    timed, rows = [], []
    # Timed at two fills (half, then all of the sample): the same nprobe scans twice the codes, which
    # separates the per-code cost from the per-list cost in the fit.
    half = n_db // 2
    with vi.faiss_threads(1):
        for lo, hi in ((0, half), (half, n_db)):
            index.add_with_ids(db[lo:hi], np.arange(lo, hi, dtype=np.int64))
            for p in probes_tried:
                sp = faiss.SearchParametersIVF(nprobe=p)
                for x in q[:10]:  # warm-up
                    index.search(x[None], k, params=sp)
                stats.reset()
                times = []
                for x in q[:100]:
                    t0 = time.perf_counter()
                    index.search(x[None], k, params=sp)
                    times.append(time.perf_counter() - t0)
                codes = stats.ndis / len(times)
                timed.append((float(np.median(times) * 1e3), float(codes), float(p)))
                if hi == n_db:
                    _, got = index.search(q, k, params=sp)
                    rows.append({"nprobe": p, "ms": timed[-1][0], "codes": codes,
                                 "recall": float(knn_intersection_measure(got, gt))})
                if timed[-1][0] > params.latency_target_ms and p >= 4:
                    break  # already over the target on the (smaller) sample: larger nprobes cannot qualify
    del index
    t, codes, probes = (np.array(col) for col in zip(*timed))
    a, b, c = _fit_cost(t, codes, probes)
    scale = params.n_planned / n_db
    for r in rows:
        r["est_ms_at_n"] = round(a + b * r["codes"] * scale + c * r["nprobe"], 4)
        r["ms"] = round(r["ms"], 4)
        r["recall"] = round(r["recall"], 4)
    affordable = [r for r in rows if r["est_ms_at_n"] <= params.latency_target_ms and r["nprobe"] <= max(1, params.nlist // 2)]
    if affordable:
        best = max(r["recall"] for r in affordable)
        pick = min((r for r in affordable if r["recall"] >= best - recall_slack), key=lambda r: r["nprobe"])
        why = (f"nprobe={pick['nprobe']} measured on {n_db:,} sample vectors + {n_queries} held-out queries: "
               f"smallest nprobe within {recall_slack} of the best sample recall@{k} ({best:.3f}) among those "
               f"whose latency extrapolated to n={params.n_planned:,} ({pick['est_ms_at_n']:.2f} ms, fitted "
               f"{b * 1e6:.2f} ns/code + {c * 1e3:.1f} us/list + {a * 1e3:.0f} us) meets {params.latency_target_ms} ms")
    else:
        pick = rows[0]
        why = (f"nprobe=1: no nprobe meets {params.latency_target_ms} ms at n={params.n_planned:,} "
               f"(nprobe=1 estimated {pick['est_ms_at_n']:.2f} ms); relax the latency target or add lists")
    rationale = "; ".join(s for s in params.rationale.split("; ") if not s.startswith("nprobe=")) + "; " + why
    return replace(params, nprobe=int(pick["nprobe"]), estimated_latency_ms=float(pick["est_ms_at_n"]),
                   nprobe_source="measured on the training sample", rationale=rationale, nprobe_sweep=rows)


def exact_topk(q: np.ndarray, db: np.ndarray, k: int, chunk: int = 32_768) -> np.ndarray:
    """Row numbers of the exact top-k by inner product, brute force in chunks of ``db`` (also the ground
    truth of bench/bench_index.py)."""
    best_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    best_i = np.full((q.shape[0], k), -1, dtype=np.int64)
    for s in range(0, db.shape[0], chunk):
        sc = q @ db[s : s + chunk].T
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, axis=1), np.take_along_axis(cand_i, top, axis=1)
    return best_i


def _fit_cost(t: np.ndarray, codes: np.ndarray, probes: np.ndarray) -> tuple[float, float, float]:
    """Non-negative least squares for t = a + b*codes + c*probes (ms), by trying the subsets."""
    best = None
    for cols in ((0, 1, 2), (0, 1), (0, 2), (1,)):
        design = np.stack([np.ones_like(t), codes, probes], axis=1)[:, cols]
        coef, *_ = np.linalg.lstsq(design, t, rcond=None)
        if np.all(coef >= 0):
            full = [0.0, 0.0, 0.0]
            for j, v in zip(cols, coef):
                full[j] = float(v)
            err = float(np.sum((design @ coef - t) ** 2))
            if best is None or err < best[0] * 0.95:
                best = (err, full)
    if best is None:  # pathological timings: everything through the codes term
        return 0.0, float(t.max() / max(codes.max(), 1.0)), 0.0
    return tuple(best[1])  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# vector sources


class VectorSource(Protocol):
    """One catalog shard's vectors, read in chunks (never all at once)."""

    key: str

    def count(self) -> int: ...

    def digest(self) -> str:
        """Changes whenever the shard's products or vectors change."""
        ...

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[list[str], np.ndarray]]: ...

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of the given sorted row numbers."""
        ...

    def describe(self) -> str: ...


class ParquetVectorSource:
    """A shard's vector file as written by ``scene_assets.embeddings`` (product_id, content_hash,
    fingerprint, vector), read with pyarrow in record batches. The digest hashes
    (product_id, content_hash, fingerprint): the vector is a function of those, so rewriting the
    same vectors does not re-add the shard. ``fingerprint``, when given, must match every row."""

    def __init__(self, path: Path | str, key: str, *, fingerprint: str | None = None):
        self.path = Path(path)
        self.key = key
        self.fingerprint = fingerprint

    def _file(self):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise VectorIndexError(f"{self.path}: vector file missing for shard {self.key}") from None
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            raise VectorIndexError(f"{self.path}: cannot read the vector file ({e})") from None

    def describe(self) -> str:
        return str(self.path)

    def count(self) -> int:
        return int(self._file().metadata.num_rows)

    def digest(self) -> str:
        h = hashlib.sha256(b"parquet-members-v1\n")
        for batch in self._file().iter_batches(batch_size=CHUNK_ROWS, columns=["product_id", "content_hash", "fingerprint"]):
            for name in ("product_id", "content_hash", "fingerprint"):
                h.update("\x1f".join(batch.column(name).to_pylist()).encode("utf-8"))
                h.update(b"\x1e")
        return h.hexdigest()

    @staticmethod
    def _matrix(column, n: int, where: str) -> np.ndarray:
        if column.null_count:
            raise VectorIndexError(f"{where}: {column.null_count} null vector(s)")
        flat = column.flatten().to_numpy(zero_copy_only=False)
        if n and flat.size % n:
            raise VectorIndexError(f"{where}: vectors of unequal length")
        return np.asarray(flat, dtype=np.float32).reshape(n, -1 if n else 0)

    def _check_fingerprint(self, fingerprints: list[str], pids: list[str]) -> None:
        if self.fingerprint is None:
            return
        bad = [i for i, f in enumerate(fingerprints) if f != self.fingerprint]
        if bad:
            raise VectorIndexError(
                f"{self.path}: {len(bad)} vector(s) made by another encoder (fingerprint {fingerprints[bad[0]]!r}, expected "
                f"{self.fingerprint!r}), e.g. product {pids[bad[0]]!r}; re-materialize the vectors of shard {self.key}"
            )

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[list[str], np.ndarray]]:
        for batch in self._file().iter_batches(batch_size=rows, columns=["product_id", "fingerprint", "vector"]):
            pids = batch.column("product_id").to_pylist()
            self._check_fingerprint(batch.column("fingerprint").to_pylist(), pids)
            yield pids, self._matrix(batch.column("vector"), len(pids), str(self.path))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Reads only the row groups that hold a sampled row."""
        f = self._file()
        meta = f.metadata
        starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        parts = []
        for g in range(meta.num_row_groups):
            lo, hi = int(starts[g]), int(starts[g + 1])
            sel = rows[(rows >= lo) & (rows < hi)] - lo
            if sel.size:
                col = f.read_row_group(g, columns=["vector"]).column("vector").combine_chunks()
                parts.append(self._matrix(col, hi - lo, str(self.path))[sel])
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class ArrayVectorSource:
    """Product ids + a float32 matrix (a numpy array or an ``np.load(..., mmap_mode="r")`` memmap)."""

    def __init__(self, key: str, product_ids: Sequence[str], vectors: np.ndarray, *, name: str | None = None):
        if len(product_ids) != vectors.shape[0]:
            raise ValueError(f"shard {key}: {len(product_ids)} product ids but {vectors.shape[0]} vectors")
        self.key = key
        self.product_ids = product_ids
        self.vectors = vectors
        self.name = name or f"array shard {key}"
        self._digest: str | None = None

    def describe(self) -> str:
        return self.name

    def count(self) -> int:
        return int(self.vectors.shape[0])

    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256(b"array-v1\n")
            for s in range(0, self.count(), CHUNK_ROWS):
                h.update("\x1f".join(self.product_ids[s : s + CHUNK_ROWS]).encode("utf-8") + b"\x1e")
                h.update(np.ascontiguousarray(self.vectors[s : s + CHUNK_ROWS], dtype="<f4").tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[list[str], np.ndarray]]:
        for s in range(0, self.count(), rows):
            yield list(self.product_ids[s : s + rows]), np.asarray(self.vectors[s : s + rows], dtype=np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[rows], dtype=np.float32)


def parquet_sources(files: Mapping[str, Path | str]) -> tuple[list[ParquetVectorSource], str]:
    """One source per shard vector file (``{shard_key: path}``) and the one encoder fingerprint they
    share (read from the ``fingerprint`` column only). Raises ``VectorIndexError`` naming the file
    when one is missing, or when the files carry several fingerprints."""
    import pyarrow.parquet as pq

    seen: dict[str, str] = {}
    for key, path in sorted(files.items()):
        path = Path(path)
        if not path.is_file():
            raise VectorIndexError(f"{path}: vector file of shard {key} missing; materialize the vectors first")
        for fp in pq.read_table(path, columns=["fingerprint"]).column("fingerprint").unique().to_pylist():
            seen.setdefault(fp, str(path))
    if len(seen) != 1:
        detail = ", ".join(f"{fp!r} (e.g. {path})" for fp, path in seen.items()) or "none: every shard is empty"
        raise VectorIndexError(f"shard vector files carry {len(seen)} encoder fingerprints: {detail}; re-materialize them")
    fingerprint = next(iter(seen))
    return [ParquetVectorSource(path, key, fingerprint=fingerprint) for key, path in sorted(files.items())], fingerprint


def vector_dim(sources: Sequence[VectorSource]) -> int:
    """Dimension of the first vector found."""
    for s in sources:
        for _, x in s.chunks(1024):
            if x.shape[0]:
                return int(x.shape[1])
    raise VectorIndexError("no vectors: every shard is empty")


def sample_vectors(sources: Sequence[VectorSource], n_sample: int, seed: int) -> tuple[np.ndarray, str]:
    """A seeded uniform sample of ``n_sample`` rows over all shards (sorted by shard key), validated
    and L2-normalised. Returns ``(sample, sha256 of the sample)``."""
    sources = sorted(sources, key=lambda s: s.key)
    counts = [s.count() for s in sources]
    total = int(sum(counts))
    if total == 0:
        raise VectorIndexError("no vectors to train on: every shard is empty")
    m = int(min(n_sample, total))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, size=m, replace=False)) if m < total else np.arange(total)
    # One m x d array filled shard by shard and normalised in place: peak memory is the sample plus
    # one shard's share of it (not several copies of the sample).
    out: np.ndarray | None = None
    pos = offset = 0
    for source, c in zip(sources, counts):
        mine = rows[(rows >= offset) & (rows < offset + c)] - offset
        offset += c
        if not mine.size:
            continue
        x = source.take(mine)
        if x.shape[0] != mine.size:
            raise VectorIndexError(f"{source.describe()}: read {x.shape[0]} of {mine.size} sampled rows")
        if out is None:
            out = np.empty((m, x.shape[1]), dtype=np.float32)
        elif x.shape[1] != out.shape[1]:
            raise VectorIndexError(f"{source.describe()}: vectors of dimension {x.shape[1]}, other shards have {out.shape[1]}")
        vi._validate_vectors(x, None, f"training sample from {source.describe()}")
        out[pos : pos + x.shape[0]] = x
        faiss.normalize_L2(out[pos : pos + x.shape[0]])
        pos += x.shape[0]
        del x
    assert out is not None and pos == m
    return out, hashlib.sha256(out.data).hexdigest()


# --------------------------------------------------------------------------------------------
# files and manifests


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of_file(path), "bytes": path.stat().st_size}


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync_file(path)


def _write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    data = json.dumps(manifest, indent=1, sort_keys=True, default=vi._json_default) + "\n"
    write_atomic_bytes(path, data.encode("utf-8"))


def read_manifest(directory: Path | str) -> dict[str, Any]:
    """The folder's manifest, checked for the fields every manifest here has."""
    manifest = vi._read_manifest(Path(directory) / MANIFEST_FILE)
    if "files" not in manifest or not isinstance(manifest["files"], dict):
        raise IndexCorruptError(f"{Path(directory) / MANIFEST_FILE}: manifest lacks the 'files' table")
    return manifest


def verify_files(directory: Path | str, manifest: Mapping[str, Any], *, mode: str = "sha256") -> None:
    """Every file listed in the manifest exists with its size (and sha256 when ``mode="sha256"``);
    raises ``IndexCorruptError`` naming the file. ``mode="none"`` checks nothing."""
    if mode == "none":
        return
    if mode not in ("sha256", "size"):
        raise ValueError(f"verify mode must be 'sha256', 'size' or 'none', got {mode!r}")
    directory = Path(directory)
    for name, entry in manifest["files"].items():
        path = directory / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexCorruptError(f"{path}: missing (listed in {directory / MANIFEST_FILE})") from None
        if size != entry["bytes"]:
            raise IndexCorruptError(f"{path}: size {size} B != {entry['bytes']} B in the manifest (truncated or replaced file)")
        if mode == "sha256":
            digest = sha256_of_file(path)
            if digest != entry["sha256"]:
                raise IndexCorruptError(
                    f"{path}: sha256 {digest[:16]}... does not match the manifest's {entry['sha256'][:16]}... "
                    "(corrupted or half-written file); rebuild it"
                )


def _read_index_verified(path: Path, sha256: str) -> faiss.Index:
    """Read a (small) index file into memory, check its sha256 on the bytes read, deserialize: a
    concurrent replacement can never pair one file's checksum with another file's content."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: missing") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise IndexCorruptError(f"{path}: sha256 {digest[:16]}... does not match the manifest's {sha256[:16]}... "
                                "(corrupted or half-written file)")
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as e:
        raise IndexCorruptError(f"{path}: FAISS cannot read it: {str(e).splitlines()[0]}") from None


def _stale_tmp_dirs(parent: Path) -> None:
    """Remove temp folders a crashed run left (callers hold the parent's lock)."""
    if parent.is_dir():
        for p in parent.iterdir():
            if p.is_dir() and p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def _prune_versions(parent: Path, keep_name: str, keep: int) -> list[str]:
    """Keep ``keep_name`` and the newest ``keep - 1`` other version folders; returns removed names.
    A server that has an old version open keeps reading it: unlinked files live while mapped."""
    versions = [p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != keep_name]
    versions.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for p in versions[max(0, keep - 1):]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return removed


def _publish(tmp: Path, final: Path) -> bool:
    """fsync the temp folder's files and rename it to ``final``. False if ``final`` already exists
    (the same content, since folder names are content-derived): the temp folder is dropped."""
    for p in tmp.iterdir():
        _fsync_file(p)
    _fsync_dir(tmp)
    try:
        os.rename(tmp, final)
    except OSError:
        if final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise
    _fsync_dir(final.parent)
    return True


def _write_lookup(directory: Path, ids: np.ndarray, pids: Sequence[str]) -> tuple[np.ndarray, int]:
    """ids.npy (sorted int64) and product_ids.npy (fixed-width UTF-8 bytes in the same order)."""
    order = np.argsort(ids, kind="stable")
    ids_sorted = np.ascontiguousarray(ids[order])
    encoded = np.array([p.encode("utf-8") for p in pids], dtype=object)[order]
    width = max((len(b) for b in encoded), default=1) or 1
    np.save(directory / IDS_FILE, ids_sorted)
    np.save(directory / PIDS_FILE, encoded.astype(f"S{width}"))
    return ids_sorted, width


def _check_unique_sorted(ids_sorted: np.ndarray, pids_sorted: np.ndarray, where: str) -> None:
    dup = np.flatnonzero(ids_sorted[1:] == ids_sorted[:-1])
    if dup.size:
        shown = []
        for j in dup[:5]:
            a, b = pids_sorted[j].decode(), pids_sorted[j + 1].decode()
            shown.append(f"product_id {a!r} appears more than once" if a == b
                         else f"product ids {a!r} and {b!r} collide on int id {int(ids_sorted[j])}")
        raise IdCollisionError(f"{where}: " + "; ".join(shown) + (f" (and {dup.size - 5} more)" if dup.size > 5 else ""))


# --------------------------------------------------------------------------------------------
# train


@dataclass
class TrainedIndex:
    directory: Path
    manifest: dict[str, Any]
    trained: bool  # False: an existing trained index was reused
    seconds: float = 0.0

    @property
    def path(self) -> Path:
        return self.directory / TRAINED_FILE

    @property
    def sha256(self) -> str:
        return str(self.manifest["index_sha256"])

    @property
    def params(self) -> ShardedIndexParams:
        return ShardedIndexParams.from_dict(self.manifest["params"])

    def load(self) -> faiss.Index:
        """A fresh, empty copy of the trained index (sha256 checked on the bytes read)."""
        return _read_index_verified(self.path, self.sha256)


def load_trained(directory: Path | str) -> TrainedIndex:
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "trained":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a trained index manifest")
    return TrainedIndex(directory, manifest, trained=False)


def reuse_reason(trained: TrainedIndex, n_vectors: int, dim: int, fingerprint: str, *, memory_budget_bytes: int,
                 latency_target_ms: float, growth: float = 4.0) -> str | None:
    """None if ``trained`` still fits a catalog of ``n_vectors`` (same encoder, dim, budget and
    target; n within ``growth`` x of what it was chosen for; the lists still inside the budget),
    otherwise why it must be retrained. Reusing keeps every shard index valid."""
    p = trained.params
    if trained.manifest.get("encoder_fingerprint") != fingerprint:
        return "the encoder fingerprint changed"
    if p.dim != dim:
        return f"dimension changed ({p.dim} -> {dim})"
    if p.memory_budget_bytes != memory_budget_bytes or p.latency_target_ms != latency_target_ms:
        return "memory budget or latency target changed"
    if not (p.n_planned / growth <= n_vectors <= p.n_planned * growth):
        return f"catalog size {n_vectors:,} is over {growth:g}x away from the {p.n_planned:,} it was chosen for"
    if n_vectors * p.bytes_per_vector + p.fixed_bytes > memory_budget_bytes:
        return f"{n_vectors:,} x {p.bytes_per_vector} B no longer fits the budget"
    return None


def train_index(
    sources: Sequence[VectorSource],
    root: Path | str,
    params: ShardedIndexParams,
    *,
    fingerprint: str,
    tune: bool = True,
    force: bool = False,
) -> TrainedIndex:
    """Train ``params.factory`` once on a seeded sample of ``params.train_size`` vectors from the
    shards and save the empty trained index under ``root/trained/<params.key()>``. With ``tune``,
    nprobe is measured on the sample (``tune_nprobe``). An existing valid trained index with the same
    key and fingerprint is reused unless ``force``; a forced retrain replaces it (and so
    invalidates every shard index built on it)."""
    directory = Path(root) / "trained" / params.key()
    with exclusive(directory):
        if not force and (directory / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                existing = load_trained(directory)
                if existing.manifest.get("encoder_fingerprint") == fingerprint:
                    existing.load()  # checks the sha256
                    return existing
        started = time.perf_counter()
        sample, sample_sha = sample_vectors(sources, params.train_size, params.seed)
        if sample.shape[1] != params.dim:
            raise VectorIndexError(f"vectors have dimension {sample.shape[1]}, parameters were chosen for {params.dim}")
        index = faiss.index_factory(params.dim, params.factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = params.seed
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            pq.cp.seed = params.seed
            # Each of the m sub-quantizer k-means runs on at most 64 * 256 = 16,384 residuals (faiss
            # wants >= 39 per centroid): PQ training time ~ m x that, whatever the sample size.
            pq.cp.max_points_per_centroid = PQ_TRAIN_POINTS_PER_CENTROID
        timings = {}
        if not params.opq:
            # Coarse k-means first, timed on its own (with OPQ the quantizer must see rotated vectors,
            # so it trains inside index.train); index.train then skips the trained quantizer.
            t0, c0 = time.perf_counter(), time.process_time()
            ivf.train_q1(sample.shape[0], faiss.swig_ptr(sample), False, ivf.metric_type)
            timings.update(coarse_train_seconds=round(time.perf_counter() - t0, 3),
                           coarse_train_cpu_seconds=round(time.process_time() - c0, 3))
        t0, c0 = time.perf_counter(), time.process_time()
        index.train(sample)
        timings.update(encoder_train_seconds=round(time.perf_counter() - t0, 3),
                       encoder_train_cpu_seconds=round(time.process_time() - c0, 3))
        train_s = time.perf_counter() - started
        if tune:
            t0 = time.perf_counter()
            params = tune_nprobe(params, index, sample)
            tune_s = time.perf_counter() - t0
        else:
            tune_s = 0.0
        ivf.nprobe = params.nprobe
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{TRAINED_FILE}.", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(index, tmp)
            _fsync_file(Path(tmp))
            entry = _file_entry(Path(tmp))
            manifest = {
                "format": FORMAT,
                "stage": "trained",
                "encoder_fingerprint": fingerprint,
                "dim": params.dim,
                "count": 0,
                "factory": params.factory,
                "params": params.to_dict(),
                "params_key": params.key(),
                "index_sha256": entry["sha256"],
                "files": {TRAINED_FILE: entry},
                "sample_size": int(sample.shape[0]),
                "sample_sha256": sample_sha,
                "train_seconds": round(train_s, 3),
                **timings,
                "tune_seconds": round(tune_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            os.replace(tmp, directory / TRAINED_FILE)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _write_manifest(directory / MANIFEST_FILE, manifest)
        _fsync_dir(directory)
        return TrainedIndex(directory, manifest, trained=True, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# shards


@dataclass
class ShardIndex:
    key: str
    directory: Path
    manifest: dict[str, Any]
    added: bool  # False: an up-to-date shard index was found and kept
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return int(self.manifest["count"])


def load_shard(directory: Path | str) -> ShardIndex:
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "shard":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a shard index manifest")
    return ShardIndex(str(manifest["shard_key"]), directory, manifest, added=False)


def shard_version(trained_sha256: str, source_digest: str) -> str:
    return hashlib.sha256(f"{trained_sha256}\n{source_digest}".encode()).hexdigest()[:16]


def add_shard(
    trained: TrainedIndex,
    source: VectorSource,
    root: Path | str,
    *,
    chunk_rows: int = CHUNK_ROWS,
    keep_versions: int = 2,
) -> ShardIndex:
    """Add one shard's vectors (stable int64 ids from the product ids) to a copy of the trained
    index and save it under ``root/shards/<source.key>/<version>``, version = hash(trained sha256,
    source digest). If that folder already holds a valid shard index the shard is unchanged and is
    kept (``added=False``). Memory: the codes of this shard + one chunk of vectors."""
    parent = Path(root) / "shards" / source.key
    with exclusive(parent):
        parent.mkdir(parents=True, exist_ok=True)
        digest = source.digest()
        version = shard_version(trained.sha256, digest)
        final = parent / version
        if (final / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                shard = load_shard(final)
                verify_files(final, shard.manifest, mode="size")
                if shard.manifest.get("trained_sha256") == trained.sha256 and shard.manifest.get("source_digest") == digest:
                    return shard
            shutil.rmtree(final, ignore_errors=True)  # damaged: rebuild it
        _stale_tmp_dirs(parent)
        started = time.perf_counter()
        index = trained.load()
        if index.ntotal:
            raise IndexCorruptError(f"{trained.path}: trained index is not empty ({index.ntotal} vectors)")
        all_ids, all_pids = [], []
        for pids, x in source.chunks(chunk_rows):
            if not len(pids):
                continue
            if x.shape[1] != index.d:
                raise VectorIndexError(f"{source.describe()}: vectors have dimension {x.shape[1]}, index expects {index.d}")
            ids = vi.assign_ids(pids)
            vi._validate_vectors(x, pids, source.describe())
            index.add_with_ids(vi._prep(x, True), ids)
            all_ids.append(ids)
            all_pids.extend(pids)
        ids = np.concatenate(all_ids) if all_ids else np.zeros(0, np.int64)
        add_s = time.perf_counter() - started
        tmp = parent / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            faiss.write_index(index, str(tmp / INDEX_FILE))
            del index
            ids_sorted, width = _write_lookup(tmp, ids, all_pids)
            _check_unique_sorted(ids_sorted, np.load(tmp / PIDS_FILE, mmap_mode="r"), f"shard {source.key} ({source.describe()})")
            files = {name: _file_entry(tmp / name) for name in (INDEX_FILE, IDS_FILE, PIDS_FILE)}
            manifest = {
                "format": FORMAT,
                "stage": "shard",
                "shard_key": source.key,
                "version": version,
                "encoder_fingerprint": trained.manifest["encoder_fingerprint"],
                "dim": int(trained.params.dim),
                "count": int(ids.size),
                "factory": trained.params.factory,
                "ids_sha256": vi._ids_sha256(ids),
                "index_sha256": files[INDEX_FILE]["sha256"],
                "files": files,
                "trained_sha256": trained.sha256,
                "trained_dir": str(trained.directory),
                "source": source.describe(),
                "source_digest": digest,
                "add_seconds": round(add_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _write_manifest(tmp / MANIFEST_FILE, manifest)
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune_versions(parent, version, keep_versions)
        return ShardIndex(source.key, final, manifest, added=True, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# merge


@dataclass
class MergedIndex:
    directory: Path
    manifest: dict[str, Any]
    merged: bool  # False: this exact set of shards was merged before and is reused
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def bytes(self) -> int:
        return int(sum(e["bytes"] for e in self.manifest["files"].values()))


def merged_version(trained_sha256: str, shards: Sequence[ShardIndex]) -> str:
    parts = [trained_sha256] + [f"{s.key}:{s.manifest['index_sha256']}" for s in sorted(shards, key=lambda s: s.key)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _check_unique_across(shards: Sequence[ShardIndex], bucket_ids: int = 4_000_000) -> None:
    """No int id in two shards. Each shard's ids.npy is sorted, so the id range is cut into buckets
    and each bucket's slices are compared: memory ~ ``bucket_ids`` ids, not the whole catalog."""
    ids = [np.load(s.directory / IDS_FILE, mmap_mode="r") for s in shards]
    total = sum(int(a.size) for a in ids)
    n_buckets = max(1, -(-total // bucket_ids))
    edges = [(i * (1 << 63)) // n_buckets for i in range(n_buckets + 1)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == 1 << 63
        slices = []
        for a in ids:
            i0 = int(np.searchsorted(a, lo, "left"))
            i1 = a.size if last else int(np.searchsorted(a, hi, "left"))
            slices.append((i0, i1))
        cat = np.concatenate([a[i0:i1] for a, (i0, i1) in zip(ids, slices)])
        if cat.size < 2:
            continue
        srt = np.sort(cat)
        if not np.any(srt[1:] == srt[:-1]):
            continue
        owner = np.concatenate([np.full(i1 - i0, j, np.int32) for j, (i0, i1) in enumerate(slices)])
        row = np.concatenate([np.arange(i0, i1) for i0, i1 in slices])
        order = np.argsort(cat, kind="stable")
        dup = np.flatnonzero(cat[order][1:] == cat[order][:-1])
        shown = []
        for d in dup[:5]:
            a, b = order[d], order[d + 1]
            sa, sb = shards[owner[a]], shards[owner[b]]
            pa = np.load(sa.directory / PIDS_FILE, mmap_mode="r")[row[a]].decode()
            pb = np.load(sb.directory / PIDS_FILE, mmap_mode="r")[row[b]].decode()
            shown.append(f"product {pa!r} (shard {sa.key}) and product {pb!r} (shard {sb.key}) share int id {int(cat[a])}")
        raise IdCollisionError("ids collide across shards: " + "; ".join(shown)
                               + (f" (and {dup.size - 5} more)" if dup.size > 5 else ""))


def _merge_lists_on_disk(trained_index: faiss.Index, shard_paths: Sequence[Path], ivfdata: Path) -> faiss.Index:
    """What ``faiss.contrib.ondisk.merge_ondisk`` does (shards read with IO_FLAG_MMAP, their lists
    concatenated by ``OnDiskInvertedLists.merge_from_multiple`` into ``ivfdata``), except that the
    shard indexes are released afterwards: the contrib helper sets ``own_invlists = False`` on them
    and so leaves every shard file mapped for the life of the process (verified with faiss 1.15),
    which in a long-lived Dagster process keeps replaced shard files' disk space held."""
    shard_indexes = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in shard_paths]
    try:
        ivf = faiss.extract_index_ivf(trained_index)
        if trained_index.ntotal:
            raise VectorIndexError("merge needs an empty trained index")
        lists = faiss.InvertedListsPtrVector()
        for p, sh in zip(shard_paths, shard_indexes):
            s_ivf = faiss.extract_index_ivf(sh)
            if s_ivf.nlist != ivf.nlist or s_ivf.code_size != ivf.code_size:
                raise IndexCorruptError(f"{p}: {s_ivf.nlist} lists of {s_ivf.code_size} B codes, the trained index has "
                                        f"{ivf.nlist} lists of {ivf.code_size} B")
            lists.push_back(s_ivf.invlists)
        ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(ivfdata))
        ntotal = ondisk.merge_from_multiple(lists.data(), lists.size(), False)
        trained_index.ntotal = ivf.ntotal = ntotal
        ivf.replace_invlists(ondisk, True)
        ondisk.this.disown()
        del lists
        return trained_index
    finally:
        del shard_indexes


def merge_shards(
    trained: TrainedIndex,
    shards: Sequence[ShardIndex],
    root: Path | str,
    *,
    keep_versions: int = 2,
) -> MergedIndex:
    """Merge the shard indexes (all built on ``trained``) into ``root/merged/<version>``:
    ``index.faiss`` (quantizers + list offsets), ``index.ivfdata`` (all codes and ids, an
    OnDiskInvertedLists file), ``ids.npy`` + ``product_ids.npy`` (each shard's sorted ids, one
    segment per shard) and the manifest. Every shard file's sha256 is checked first, and ids must
    not repeat across shards. Written in a temp folder that is renamed into place; the version is a
    hash of the trained index and the shard indexes, so merging the same shards again is a no-op."""
    if not shards:
        raise VectorIndexError("merge_shards: no shard indexes")
    keys = [s.key for s in shards]
    if len(set(keys)) != len(keys):
        raise VectorIndexError(f"merge_shards: shard keys repeat: {sorted(keys)}")
    shards = sorted(shards, key=lambda s: s.key)
    for s in shards:
        if s.manifest.get("trained_sha256") != trained.sha256:
            raise VectorIndexError(
                f"{s.directory}: shard {s.key} was built on trained index {str(s.manifest.get('trained_sha256'))[:16]}..., "
                f"not {trained.sha256[:16]}... ({trained.path}); re-add the shard"
            )
    parent = Path(root) / "merged"
    version = merged_version(trained.sha256, shards)
    final = parent / version
    with exclusive(parent):
        parent.mkdir(parents=True, exist_ok=True)
        if (final / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                manifest = read_manifest(final)
                verify_files(final, manifest, mode="size")
                return MergedIndex(final, manifest, merged=False)
            shutil.rmtree(final, ignore_errors=True)
        _stale_tmp_dirs(parent)
        started = time.perf_counter()
        for s in shards:
            verify_files(s.directory, s.manifest, mode="sha256")
        _check_unique_across(shards)
        verify_s = time.perf_counter() - started
        tmp = parent / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            t0 = time.perf_counter()
            index = _merge_lists_on_disk(trained.load(), [s.directory / INDEX_FILE for s in shards], tmp / IVFDATA_FILE)
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = trained.params.nprobe
            # Readers open with IO_FLAG_ONDISK_SAME_DIR, so the folder can be renamed or copied; the
            # stored name is the final one anyway, for readers that do not pass the flag.
            faiss.downcast_InvertedLists(ivf.invlists).filename = str(final / IVFDATA_FILE)
            faiss.write_index(index, str(tmp / INDEX_FILE))
            count = int(index.ntotal)
            del index, ivf  # unmaps index.ivfdata
            merge_s = time.perf_counter() - t0
            expected = sum(s.count for s in shards)
            if count != expected:
                raise VectorIndexError(f"merge_shards: merged {count} vectors, the shard manifests add up to {expected}")
            segments, width = _concat_lookups(shards, tmp)
            files = {name: _file_entry(tmp / name) for name in (INDEX_FILE, IVFDATA_FILE, IDS_FILE, PIDS_FILE)}
            params = trained.params
            manifest = {
                "format": FORMAT,
                "stage": "merged",
                "version": version,
                "encoder_fingerprint": trained.manifest["encoder_fingerprint"],
                "dim": int(params.dim),
                "count": count,
                "factory": params.factory,
                "nprobe": int(params.nprobe),
                "params": params.to_dict(),
                "index_sha256": files[INDEX_FILE]["sha256"],
                "files": files,
                "bytes_total": int(sum(e["bytes"] for e in files.values())),
                "bytes_per_product": round(sum(e["bytes"] for e in files.values()) / max(count, 1), 2),
                "ivfdata_path": str(final / IVFDATA_FILE),
                "trained_sha256": trained.sha256,
                "shards": [{"key": s.key, "count": s.count, "index_sha256": s.manifest["index_sha256"],
                            "ids_sha256": s.manifest["ids_sha256"], "version": s.manifest["version"]} for s in shards],
                "segments": segments,
                "verify_seconds": round(verify_s, 3),
                "merge_seconds": round(merge_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _write_manifest(tmp / MANIFEST_FILE, manifest)
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune_versions(parent, version, keep_versions)
        return MergedIndex(final, manifest, merged=True, seconds=time.perf_counter() - started)


def _concat_lookups(shards: Sequence[ShardIndex], out: Path) -> tuple[list[list[int]], int]:
    """Concatenate the shards' sorted id / product id files into one pair, streamed (one shard at a
    time); returns the [start, end) segment of each shard and the product id width."""
    total = sum(s.count for s in shards)
    width = max(np.load(s.directory / PIDS_FILE, mmap_mode="r").dtype.itemsize for s in shards)
    ids_out = np.lib.format.open_memmap(out / IDS_FILE, mode="w+", dtype=np.int64, shape=(total,))
    pids_out = np.lib.format.open_memmap(out / PIDS_FILE, mode="w+", dtype=f"S{width}", shape=(total,))
    segments, pos = [], 0
    for s in shards:
        ids = np.load(s.directory / IDS_FILE, mmap_mode="r")
        pids = np.load(s.directory / PIDS_FILE, mmap_mode="r")
        for a in range(0, ids.size, 1 << 20):
            b = min(ids.size, a + (1 << 20))
            ids_out[pos + a : pos + b] = ids[a:b]
            pids_out[pos + a : pos + b] = pids[a:b]
        segments.append([pos, pos + int(ids.size)])
        pos += int(ids.size)
    ids_out.flush()
    pids_out.flush()
    del ids_out, pids_out
    return segments, width


# --------------------------------------------------------------------------------------------
# serve


class ServingIndex:
    """The merged index opened for search. With ``mmap=True`` the inverted lists and the id lookup
    stay in their files (mapped read-only, paged in on demand and shared with other processes),
    so the process's own memory holds only the quantizers."""

    def __init__(self, directory: Path, index: faiss.Index, manifest: dict[str, Any], ids: np.ndarray,
                 pids: np.ndarray, mmap: bool):
        self.directory = directory
        self.index = index
        self.manifest = manifest
        self.mmap = mmap
        self._ids = ids
        self._pids = pids
        self._segments = [tuple(s) for s in manifest["segments"]]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nprobe)

    def product_ids(self, int_ids: np.ndarray) -> np.ndarray:
        """Object array shaped like ``int_ids``: the product id, or None for -1 / unknown ids."""
        int_ids = np.asarray(int_ids, dtype=np.int64)
        flat = int_ids.ravel()
        out = np.full(flat.shape, None, dtype=object)
        for a, b in self._segments:
            if b <= a:
                continue
            seg = self._ids[a:b]
            pos = np.minimum(np.searchsorted(seg, flat), b - a - 1)
            found = np.flatnonzero(seg[pos] == flat)
            if found.size:
                out[found] = [b.decode("utf-8") for b in self._pids[a + pos[found]]]
        return out.reshape(int_ids.shape)

    def search_ids(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k], int ids [nq, k]); queries are validated and L2-normalised."""
        return vi.search(self.index, queries, k, nprobe=nprobe)

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k], product ids [nq, k] as an object array, None where fewer than k found)."""
        scores, ids = self.search_ids(queries, k, nprobe=nprobe)
        return scores, self.product_ids(ids)


def _lists_to_ram(index: faiss.Index) -> None:
    """Replace memory-mapped on-disk lists by in-memory ArrayInvertedLists (copy)."""
    ivf = faiss.extract_index_ivf(index)
    src = ivf.invlists
    ram = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    for lst in range(ivf.nlist):
        n = src.list_size(lst)
        if n:
            ram.add_entries(lst, n, src.get_ids(lst), src.get_codes(lst))
    ivf.replace_invlists(ram, True)
    ram.this.disown()


def open_merged(
    directory: Path | str,
    *,
    mmap: bool = True,
    verify: str = "sha256",
    expected_fingerprint: str | None = None,
    nprobe: int | None = None,
    prefetch_threads: int = 0,
) -> ServingIndex:
    """Open a merged index for search. ``mmap=True`` maps ``index.ivfdata`` read-only
    (``IO_FLAG_ONDISK_SAME_DIR | IO_FLAG_READ_ONLY``) and the id lookup with ``np.load(mmap_mode="r")``;
    ``mmap=False`` copies the lists and lookup into RAM. ``verify``: ``"sha256"`` (every file, reads
    them once: they are then in the page cache), ``"size"`` or ``"none"``. ``prefetch_threads``:
    FAISS's on-disk lists can start threads on every search that page the probed lists in ahead of
    the scan (its default: 32). That pays off when the lists sit on a cold disk, and costs ~0.25 ms
    a query when they are in the page cache (measured at 1M vectors: 0.55 vs 0.31 ms CPU), so the
    default here is 0; set it when the index is much larger than RAM. Raises
    ``IndexCorruptError`` naming the bad file, ``FingerprintMismatchError`` for another encoder."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "merged":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a merged index manifest")
    if expected_fingerprint is not None and manifest["encoder_fingerprint"] != expected_fingerprint:
        raise vi.FingerprintMismatchError(
            f"{directory / MANIFEST_FILE}: built with encoder fingerprint {manifest['encoder_fingerprint']!r}, "
            f"expected {expected_fingerprint!r}; rebuild the index"
        )
    verify_files(directory, manifest, mode=verify)
    path = directory / INDEX_FILE
    flags = faiss.IO_FLAG_READ_ONLY
    if Path(str(manifest.get("ivfdata_path", ""))).resolve() != (directory / IVFDATA_FILE).resolve():
        flags |= faiss.IO_FLAG_ONDISK_SAME_DIR  # the folder was moved or copied: find index.ivfdata beside it
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as e:
        raise IndexCorruptError(f"{path}: FAISS cannot read it: {str(e).splitlines()[0]}") from None
    if int(index.ntotal) != int(manifest["count"]) or int(index.d) != int(manifest["dim"]):
        raise IndexCorruptError(f"{path}: {index.ntotal} x {index.d}, manifest says {manifest['count']} x {manifest['dim']}")
    ivf = faiss.extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise IndexCorruptError(f"{path}: expected on-disk inverted lists")
    lists.prefetch_nthread = int(prefetch_threads)
    ivf.nprobe = int(nprobe if nprobe is not None else manifest["nprobe"])
    if mmap:
        ids = np.load(directory / IDS_FILE, mmap_mode="r")
        pids = np.load(directory / PIDS_FILE, mmap_mode="r")
    else:
        _lists_to_ram(index)
        ids = np.load(directory / IDS_FILE)
        pids = np.load(directory / PIDS_FILE)
    if ids.shape != (manifest["count"],) or pids.shape != (manifest["count"],):
        raise IndexCorruptError(f"{directory}: id lookup holds {ids.shape[0]} ids, manifest says {manifest['count']}")
    return ServingIndex(directory, index, manifest, ids, pids, mmap)


# --------------------------------------------------------------------------------------------
# all steps


@dataclass
class BuildReport:
    trained: TrainedIndex
    shards: list[ShardIndex]
    merged: MergedIndex
    seconds: dict[str, float]

    @property
    def added_shards(self) -> list[str]:
        return [s.key for s in self.shards if s.added]


def build_sharded_index(
    sources: Sequence[VectorSource],
    root: Path | str,
    *,
    fingerprint: str,
    memory_budget_bytes: int,
    latency_target_ms: float = 5.0,
    previous_trained: TrainedIndex | None = None,
    force_retrain: bool = False,
    tune: bool = True,
    **choose: Any,
) -> BuildReport:
    """Train (or reuse), add every changed shard, merge. ``choose`` goes to ``choose_params``
    (nlist, m, opq, coarse, max_train_size, seed...). ``previous_trained`` is reused while
    ``reuse_reason`` finds nothing against it (so a growing catalog does not retrain every time)."""
    started = time.perf_counter()
    sources = sorted(sources, key=lambda s: s.key)
    n = sum(s.count() for s in sources)
    dim = vector_dim(sources)
    trained = None
    if previous_trained is not None and not force_retrain:
        if reuse_reason(previous_trained, n, dim, fingerprint, memory_budget_bytes=memory_budget_bytes,
                        latency_target_ms=latency_target_ms) is None:
            trained = previous_trained
    if trained is None:
        params = choose_params(n, dim, memory_budget_bytes=memory_budget_bytes, latency_target_ms=latency_target_ms, **choose)
        trained = train_index(sources, root, params, fingerprint=fingerprint, tune=tune, force=force_retrain)
    t_train = time.perf_counter() - started
    shards = [add_shard(trained, s, root) for s in sources]
    t_add = time.perf_counter() - started - t_train
    merged = merge_shards(trained, shards, root)
    return BuildReport(trained, shards, merged, {
        "train": round(t_train, 3), "add": round(t_add, 3),
        "merge": round(time.perf_counter() - started - t_train - t_add, 3), "total": round(time.perf_counter() - started, 3),
    })

