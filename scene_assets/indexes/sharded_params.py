"""The sharded IVF-PQ kind's parameters: ``choose_params`` picks ``IVF{nlist},PQ{m}x8`` (optionally
``OPQ`` and an ``HNSW32`` coarse quantizer) from a memory budget and a latency target, the way
autofaiss does it: nlist ~ 4*sqrt(n) (a power of two, capped by the training sample), the largest PQ
code that keeps ``n * (m + 8)`` bytes (+ the quantizers) inside the budget, nprobe from a per-code
scan cost. ``tune_nprobe`` replaces the cost model by timings and recall measured on the training
sample. Everything is recorded, with the rationale, in the trained index's manifest."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import faiss
import numpy as np

from scene_assets.indexes.flat import faiss_threads
from scene_assets.indexes.flat_spec import pow2_floor, pow2_round

ID_BYTES = 8  # int64 id stored next to every code in an inverted list
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
        want = pow2_round(4 * math.sqrt(n_vectors))
        cap = min(pow2_floor(n_vectors / min_points_per_list), pow2_floor(max_train_size / min_points_per_list), 65_536)
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
    with faiss_threads(1):
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


