"""The flat/IVF kind: one FAISS index over the catalog, in memory (or memory-mapped): build,
update in place, search, and move to a GPU. Saved and loaded by ``flat_files``.

Plain Python (no Dagster). All vectors are L2-normalised and compared by inner product, so scores
are cosine similarities in [-1, 1].

Index choice (see ``flat_spec.choose_index_spec``; numbers measured by ``bench/bench_index.py`` on 2 CPU
cores, 384-d clustered synthetic embeddings):

(The recommender's index no longer uses a fixed count: ``flat_choice.build_within_budget`` times exact
search on the catalog and builds IVF only when it misses the search budget; ``exact_threshold`` is the
fixed rule when asked for.)

* up to ``exact_threshold`` products: exact ``Flat`` (brute force), wrapped in ``IndexIDMap2``.
* beyond it: ``IVF{nlist},SQ8`` (flat coarse quantizer, 8-bit scalar-quantised codes, ~400 bytes per
  product incl. the 8-byte id). At 1M x 384 it measured recall@10 ~0.99 vs exact at < 1 ms per
  single query on one thread. Alternatives measured and rejected: ``IVF,PQ..fs,Refine(SQ8)``
  (recall collapses to ~0.79 on isotropic clusters, and IndexRefine cannot remove ids),
  ``IVF_HNSW32`` coarse quantizer (at 384-d and one query: lower recall for no speed gain; at 1280-d
  with a scene's 30 region queries the flat coarse pass over 4096 centroids is ~5 of ~14 ms, so
  ``flat_choice`` measures both coarse kinds and keeps the faster), ``HNSW`` (slow to build on two
  cores and cannot remove ids), ``SQfp16`` codes (~1.0 recall but 2x the bytes: pass
  ``code="SQfp16"`` if the ~1% of recall matters more than memory).

Product ids: every string ``product_id`` maps to a stable non-negative int63
(``ids.product_int_id``), which is what FAISS stores.

Id handling differs by index family, on purpose:

* Flat / HNSW / Refine indexes are wrapped in ``faiss.IndexIDMap2``.
* IVF indexes use their *native* ids (``add_with_ids`` + a hashtable direct map). Wrapping an IVF
  index in ``IndexIDMap2`` looks like it works, but ``IndexIDMap2.remove_ids`` assumes the inner
  index renumbers the survivors (IndexFlat does, IndexIVF does not), so after the first removal
  every later search returns the *wrong product ids* silently (verified with faiss 1.15).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np

from scene_assets.indexes.errors import IdCollisionError, RebuildRequiredError, VectorIndexError
from scene_assets.indexes.flat_spec import IndexSpec
from scene_assets.indexes.ids import assign_ids, to_int_ids
from scene_assets.indexes.vectors import ADD_CHUNK, as_matrix, prepare, validate_vectors
from scene_assets.progress import track

log = logging.getLogger(__name__)

# Batched searches (a scene's ~26 region queries at once) go through BLAS matrix products only when
# the batch reaches this threshold; faiss-cpu 1.15's default (128,000) sends them to the per-query
# loop instead: 26 x 20,000 x 1280-d took 143 ms on one thread, 25 ms through BLAS, same ids (#21).
faiss.cvar.distance_compute_blas_threshold = 20

Device = Literal["cpu", "auto", "cuda"]


def _unwrap(index: faiss.Index) -> tuple[faiss.Index, faiss.Index]:
    """(outer downcast index, inner storage index). For IndexIDMap(2) inner is the wrapped index."""
    outer = faiss.downcast_index(index)
    if isinstance(outer, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        return outer, faiss.downcast_index(outer.index)
    return outer, outer


def is_gpu(index: faiss.Index) -> bool:
    _, inner = _unwrap(index)
    return type(inner).__name__.startswith("Gpu") or type(faiss.downcast_index(index)).__name__.startswith("Gpu")


def is_mmapped(index: faiss.Index) -> bool:
    outer, inner = _unwrap(index)
    if isinstance(inner, faiss.IndexIVF):
        return isinstance(faiss.downcast_InvertedLists(inner.invlists), faiss.OnDiskInvertedLists)
    if isinstance(inner, faiss.IndexFlatCodes):
        return not inner.codes.is_owned
    return False


def index_kind(index: faiss.Index) -> str:
    outer, inner = _unwrap(index)
    if isinstance(inner, faiss.IndexFlat) or type(inner).__name__.startswith("GpuIndexFlat"):
        return "flat"
    if isinstance(outer, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "other"


def supports_remove(index: faiss.Index) -> bool:
    """True if ``update_index`` can remove/re-add ids in place."""
    outer, inner = _unwrap(index)
    if is_mmapped(index) or is_gpu(index):
        return False
    if isinstance(outer, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        # IndexIDMap.remove_ids is only correct when the inner index renumbers survivors.
        return isinstance(inner, faiss.IndexFlat)
    return isinstance(outer, faiss.IndexIVF)


def index_ids(index: faiss.Index) -> np.ndarray:
    """All int ids stored in the index (storage order, not sorted)."""
    outer, inner = _unwrap(index)
    if isinstance(outer, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        return faiss.vector_to_array(outer.id_map).astype(np.int64, copy=False)
    if isinstance(outer, faiss.IndexIVF):
        invlists = outer.invlists
        parts = []
        for lst in range(outer.nlist):
            size = invlists.list_size(lst)
            if size:
                ptr = invlists.get_ids(lst)
                parts.append(faiss.rev_swig_ptr(ptr, size).copy())
                invlists.release_ids(lst, ptr)
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return np.arange(outer.ntotal, dtype=np.int64)


def factory_string(index: faiss.Index, fallback: str | None = None) -> str:
    """Factory string of the index (``reverse_index_factory``), without the IDMap2 prefix."""
    _, inner = _unwrap(index)
    try:
        from faiss.contrib.factory_tools import reverse_index_factory

        return reverse_index_factory(inner)
    except Exception:  # noqa: BLE001 - not every index type is reversible
        return fallback or type(inner).__name__


def apply_search_defaults(index: faiss.Index, params: Mapping[str, int]) -> None:
    outer, inner = _unwrap(index)
    ivf = faiss.try_extract_index_ivf(outer)
    if ivf is not None and "nprobe" in params:
        ivf.nprobe = int(params["nprobe"])
    if "efSearch" in params:
        # an HNSW index, or the HNSW coarse quantizer of an ``IVF{n}_HNSW32`` index
        hnsw = inner if ivf is None else faiss.downcast_index(ivf.quantizer)
        if isinstance(hnsw, faiss.IndexHNSW):
            hnsw.hnsw.efSearch = int(params["efSearch"])


@contextlib.contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """Temporarily set FAISS' OpenMP thread count (None = leave unchanged)."""
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# --------------------------------------------------------------------------------------------
# build / update


def build_index(
    vectors: np.ndarray,
    product_ids: Sequence[str],
    spec: IndexSpec,
    *,
    coarse_centroids: np.ndarray | None = None,
) -> faiss.Index:
    """Build the index for ``vectors[i]`` <-> ``product_ids[i]``.

    Vectors are validated (no NaN/inf, no zero rows), L2-normalised in chunks (the input array is
    not modified). Trainable indexes are trained on ``spec.train_size`` rows sampled with
    ``spec.seed``. Flat/HNSW/other are wrapped in ``IndexIDMap2``; IVF uses native ids (see module
    docstring). ``coarse_centroids`` (IVF only, ``nlist`` rows): the coarse quantizer gets these
    instead of running k-means (another IVF of the same catalog was already trained: at 1M x 1280
    k-means is ~2 of the 3 build minutes); only the codes' quantizer is trained then.
    """
    x = as_matrix(vectors, spec.dim, "build_index vectors")
    product_ids = list(product_ids)
    if x.shape[0] != len(product_ids):
        raise ValueError(f"build_index: {x.shape[0]} vectors but {len(product_ids)} product ids")
    ids = assign_ids(product_ids)
    validate_vectors(x, product_ids, "build_index")
    n = x.shape[0]

    base = faiss.index_factory(spec.dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if coarse_centroids is not None:
        base_ivf = faiss.try_extract_index_ivf(base)
        if base_ivf is None or coarse_centroids.shape != (base_ivf.nlist, spec.dim):
            raise ValueError(f"build_index: {spec.factory} cannot take coarse centroids of shape {coarse_centroids.shape}")
        # a quantizer already holding nlist centroids is not trained again (faiss Level1Quantizer)
        base_ivf.quantizer.add(np.ascontiguousarray(coarse_centroids, dtype=np.float32))
    if not base.is_trained:
        if n == 0:
            raise ValueError(f"build_index: {spec.factory} needs training data but got 0 vectors")
        m = min(n, spec.train_size or n)
        rng = np.random.default_rng(spec.seed)
        sample = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        xt = prepare(x[sample], spec.normalize)
        ivf = faiss.try_extract_index_ivf(base)
        if ivf is not None:
            ivf.cp.seed = spec.seed
        base.train(xt)
        del xt

    # index_factory already returns the concrete (downcast) Python type, and that proxy owns the
    # C++ object: keep using it (a faiss.downcast_index() proxy would not own it).
    if isinstance(base, faiss.IndexIVF):
        base.set_direct_map_type(faiss.DirectMap.Hashtable)
        index: faiss.Index = base
    else:
        index = faiss.IndexIDMap2(base)
    for s in track(range(0, n, ADD_CHUNK), f"index add ({n} vectors)", unit="chunk"):
        index.add_with_ids(prepare(x[s : s + ADD_CHUNK], spec.normalize), ids[s : s + ADD_CHUNK])
    apply_search_defaults(index, spec.search_params)
    return index


@dataclass(frozen=True)
class UpdateResult:
    removed: int  # vectors removed (changed + deleted ids that were present)
    added: int  # vectors (re-)added
    missing_remove_ids: list[str]  # requested deletions that were not in the index
    ntotal: int


def update_index(
    index: faiss.Index,
    *,
    upsert_ids: Sequence[str] | np.ndarray = (),
    upsert_vectors: np.ndarray | None = None,
    remove_ids: Sequence[str] | np.ndarray = (),
    normalize: bool = True,
) -> UpdateResult:
    """Apply an incremental change in place: remove ``remove_ids`` and ``upsert_ids``, then add
    ``upsert_vectors`` under ``upsert_ids``. Ids are product id strings (or int ids).

    Everything is validated before the index is touched. Raises ``RebuildRequiredError`` if the
    index type cannot remove ids (HNSW, Refine, memory-mapped or GPU indexes).
    """
    if not supports_remove(index):
        outer, inner = _unwrap(index)
        why = (
            "it is memory-mapped (load it with mmap=False to update)" if is_mmapped(index)
            else "it lives on the GPU" if is_gpu(index)
            else f"{type(inner).__name__} cannot remove ids"
        )
        raise RebuildRequiredError(f"cannot update index in place: {why}; rebuild with build_index")

    up_labels = list(upsert_ids) if not isinstance(upsert_ids, np.ndarray) else None
    up_int = to_int_ids(upsert_ids) if len(upsert_ids) else np.zeros(0, np.int64)
    rm_int = to_int_ids(remove_ids) if len(remove_ids) else np.zeros(0, np.int64)
    if up_int.size:
        if upsert_vectors is None:
            raise ValueError("update_index: upsert_ids given without upsert_vectors")
        xu = as_matrix(upsert_vectors, index.d, "update_index upsert_vectors")
        if xu.shape[0] != up_int.size:
            raise ValueError(f"update_index: {xu.shape[0]} vectors but {up_int.size} upsert ids")
        if np.unique(up_int).size != up_int.size:
            raise IdCollisionError("update_index: upsert_ids contains duplicates")
        validate_vectors(xu, up_labels, "update_index")
    elif upsert_vectors is not None and len(upsert_vectors):
        raise ValueError("update_index: upsert_vectors given without upsert_ids")

    missing: list[str] = []
    if rm_int.size:
        present = np.isin(rm_int, index_ids(index))
        labels = list(remove_ids) if not isinstance(remove_ids, np.ndarray) else rm_int.tolist()
        missing = [str(labels[i]) for i in np.flatnonzero(~present)]

    to_remove = np.unique(np.concatenate([rm_int, up_int]))
    removed = int(index.remove_ids(to_remove)) if to_remove.size else 0
    if up_int.size:
        for s in range(0, up_int.size, ADD_CHUNK):
            index.add_with_ids(prepare(xu[s : s + ADD_CHUNK], normalize), up_int[s : s + ADD_CHUNK])
    return UpdateResult(removed=removed, added=int(up_int.size), missing_remove_ids=missing,
                        ntotal=int(index.ntotal))


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    efSearch: int | None = None,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` search. Returns ``(scores float32 [nq, k], int_ids int64 [nq, k])``; missing
    results (fewer than k vectors probed) have id -1 and score -inf. ``nprobe``/``efSearch``
    override the index defaults for this call only (thread-safe: passed as SearchParameters)."""
    q = as_matrix(queries, index.d, "search queries")
    validate_vectors(q, None, "search queries")
    q = prepare(q, normalize)
    if k <= 0:
        raise ValueError("k must be positive")
    params = None
    outer, inner = _unwrap(index)
    if not is_gpu(index):
        if nprobe is not None and faiss.try_extract_index_ivf(outer) is not None:
            params = faiss.SearchParametersIVF(nprobe=int(nprobe))
        elif efSearch is not None and isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=int(efSearch))
    elif nprobe is not None or efSearch is not None:
        log.debug("search: nprobe/efSearch ignored for GPU flat index")
    scores, ids = index.search(q, int(k), params=params) if params is not None else index.search(q, int(k))
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32, copy=False)
    return scores, ids


# --------------------------------------------------------------------------------------------
# GPU


_gpu_lock = threading.Lock()
_gpu_resources: Any = None


def num_gpus() -> int:
    """GPUs visible to FAISS (0 with faiss-cpu)."""
    try:
        return int(faiss.get_num_gpus())
    except Exception:  # noqa: BLE001 - faiss-cpu builds may not expose it
        return 0


def to_device(index: faiss.Index, device: Device = "auto", *, gpu_id: int = 0) -> faiss.Index:
    """Return the index to search with on ``device``.

    ``"cpu"``: unchanged. ``"auto"``: flat indexes go to GPU ``gpu_id`` when FAISS sees a GPU
    (faiss-gpu-cu12 installed), otherwise unchanged. ``"cuda"``: like auto but raises
    ``VectorIndexError`` when no GPU is usable. Only exact flat indexes are moved (IVF-SQ8 already
    meets the CPU latency budget). The GPU copy is for search; save/update the CPU index.
    """
    if device not in ("cpu", "auto", "cuda"):
        raise ValueError(f"device must be 'cpu', 'auto' or 'cuda', got {device!r}")
    if device == "cpu" or is_gpu(index):
        return index
    if num_gpus() == 0 or not hasattr(faiss, "StandardGpuResources"):
        if device == "cuda":
            raise VectorIndexError("device='cuda' requested but FAISS sees no GPU (install faiss-gpu-cu12)")
        return index
    if index_kind(index) != "flat":
        if device == "cuda":
            log.warning("to_device: only flat indexes are moved to GPU; keeping %s on CPU", factory_string(index))
        return index
    global _gpu_resources
    with _gpu_lock:
        if _gpu_resources is None:
            _gpu_resources = faiss.StandardGpuResources()
        res = _gpu_resources
    try:
        return faiss.index_cpu_to_gpu(res, gpu_id, index)
    except Exception as e:  # noqa: BLE001
        if device == "cuda":
            raise VectorIndexError(f"could not move index to GPU {gpu_id}: {e}") from e
        log.warning("to_device: GPU copy failed (%s); searching on CPU", e)
        return index


