"""FAISS vector index for catalog product embeddings: build, update, save/load, search, check.

Plain Python (no Dagster). All vectors are L2-normalised and compared by inner product, so scores
are cosine similarities in [-1, 1].

Index choice (see ``choose_index_spec``; numbers measured by ``bench/bench_index.py`` on 2 CPU
cores, 384-d clustered synthetic embeddings):

* up to ``exact_threshold`` products: exact ``Flat`` (brute force), wrapped in ``IndexIDMap2``.
* beyond it: ``IVF{nlist},SQ8`` (flat coarse quantizer, 8-bit scalar-quantised codes, ~400 bytes per
  product incl. the 8-byte id). At 1M x 384 it measured recall@10 ~0.99 vs exact at < 1 ms per
  single query on one thread. Alternatives measured and rejected: ``IVF,PQ..fs,Refine(SQ8)``
  (recall collapses to ~0.79 on isotropic clusters, and IndexRefine cannot remove ids),
  ``IVF_HNSW32`` coarse quantizer (lower recall for no speed gain), ``HNSW`` (slow to build on two
  cores and cannot remove ids), ``SQfp16`` codes (~1.0 recall but 2x the bytes: pass
  ``code="SQfp16"`` if the ~1% of recall matters more than memory).

Product ids: every string ``product_id`` maps to a stable non-negative int63 (``product_int_id``),
which is what FAISS stores. ``IdLookup`` maps result ids back to strings with a sorted array.

Id handling differs by index family, on purpose:

* Flat / HNSW / Refine indexes are wrapped in ``faiss.IndexIDMap2``.
* IVF indexes use their *native* ids (``add_with_ids`` + a hashtable direct map). Wrapping an IVF
  index in ``IndexIDMap2`` looks like it works, but ``IndexIDMap2.remove_ids`` assumes the inner
  index renumbers the survivors (IndexFlat does, IndexIVF does not), so after the first removal
  every later search returns the *wrong product ids* silently (verified with faiss 1.15).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from scene_assets.files import sha256_of_file
from scene_assets.progress import track

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
# Indexes at least this large are memory-mapped by ``load_index(mmap=None)``.
DEFAULT_MMAP_THRESHOLD_BYTES = 1 << 30
_ADD_CHUNK = 65_536
_INT63_MASK = (1 << 63) - 1

Device = Literal["cpu", "auto", "cuda"]


# --------------------------------------------------------------------------------------------
# errors


class VectorIndexError(Exception):
    """Base class for errors raised by this module."""


class IdCollisionError(VectorIndexError, ValueError):
    """Two different product ids hash to the same int64 id (or one product id is repeated)."""


class IndexCorruptError(VectorIndexError):
    """The saved index is missing, half-written, corrupted or does not match its manifest."""


class FingerprintMismatchError(IndexCorruptError):
    """The index was built with a different encoder than the caller expects."""


class RebuildRequiredError(VectorIndexError):
    """The index type cannot apply an incremental update; rebuild it with ``build_index``."""


# --------------------------------------------------------------------------------------------
# ids


def product_int_id(product_id: str) -> int:
    """Stable non-negative int63 id for a string product id (first 8 bytes of blake2b).

    Stable across processes, platforms and Python versions (unlike ``hash()``); never -1, which
    FAISS uses for "no result".
    """
    if not isinstance(product_id, str):
        raise TypeError(f"product_id must be str, got {type(product_id).__name__}: {product_id!r}")
    digest = hashlib.blake2b(product_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _INT63_MASK


def assign_ids(product_ids: Sequence[str]) -> np.ndarray:
    """int64 ids for ``product_ids`` (same order). Raises ``IdCollisionError`` naming both product
    ids if two different strings get the same int id, or naming the product id if it is repeated."""
    n = len(product_ids)
    ids = np.fromiter((product_int_id(p) for p in product_ids), dtype=np.int64, count=n)
    if n < 2:
        return ids
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:
        problems = []
        for j in dup[:5]:
            a, b = int(order[j]), int(order[j + 1])
            pa, pb = product_ids[a], product_ids[b]
            if pa == pb:
                problems.append(f"product_id {pa!r} appears more than once (rows {a} and {b})")
            else:
                problems.append(
                    f"product ids {pa!r} (row {a}) and {pb!r} (row {b}) collide on int id "
                    f"{int(ids[a])}; rename one of them"
                )
        more = f" (and {dup.size - 5} more)" if dup.size > 5 else ""
        raise IdCollisionError("; ".join(problems) + more)
    return ids


def _ids_sha256(int_ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(int_ids, dtype=np.int64)).astype("<i8").tobytes()).hexdigest()


def _to_int_ids(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Product id strings -> int ids; integer arrays pass through."""
    if isinstance(ids, np.ndarray) and np.issubdtype(ids.dtype, np.integer):
        return ids.astype(np.int64, copy=False).ravel()
    return assign_ids(list(ids))


class IdLookup:
    """Maps FAISS int ids back to product id strings with a sorted int array + ``np.searchsorted``."""

    def __init__(self, int_ids: np.ndarray, product_ids: Sequence[str]):
        int_ids = np.asarray(int_ids, dtype=np.int64)
        if int_ids.shape != (len(product_ids),):
            raise ValueError("int_ids and product_ids must have the same length")
        order = np.argsort(int_ids, kind="stable")
        self._ids = np.ascontiguousarray(int_ids[order])
        self._pids = np.asarray(product_ids, dtype=object)[order]
        if self._ids.size > 1 and np.any(self._ids[1:] == self._ids[:-1]):
            raise IdCollisionError("IdLookup got duplicate int ids")

    @classmethod
    def from_product_ids(cls, product_ids: Sequence[str]) -> IdLookup:
        return cls(assign_ids(product_ids), product_ids)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> IdLookup:
        pids = manifest.get("product_ids")
        if pids is None:
            raise ValueError("manifest has no product_ids list; pass product_ids to save_index")
        return cls.from_product_ids(pids)

    def __len__(self) -> int:
        return int(self._ids.size)

    def to_product_ids(self, int_ids: np.ndarray) -> np.ndarray:
        """Object array shaped like ``int_ids``: the product id string, or None for -1 / unknown ids."""
        int_ids = np.asarray(int_ids, dtype=np.int64)
        flat = int_ids.ravel()
        out = np.full(flat.shape, None, dtype=object)
        if self._ids.size:
            pos = np.searchsorted(self._ids, flat)
            pos_c = np.minimum(pos, self._ids.size - 1)
            found = self._ids[pos_c] == flat
            out[found] = self._pids[pos_c[found]]
        return out.reshape(int_ids.shape)


# --------------------------------------------------------------------------------------------
# spec


@dataclass(frozen=True)
class IndexSpec:
    """What to build: a FAISS factory string plus the parameters that go with it."""

    factory: str
    kind: Literal["flat", "ivf", "hnsw", "other"]
    dim: int
    metric: str = "inner_product"
    normalize: bool = True
    nlist: int | None = None
    train_size: int = 0  # vectors sampled (seeded) for training; 0 = no training needed
    seed: int = 0
    search_params: dict[str, int] = field(default_factory=dict)  # defaults, e.g. {"nprobe": 32}
    supports_remove: bool = True
    rationale: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IndexSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1)))))


def _pow2_round(x: float) -> int:
    return 1 << max(0, int(round(math.log2(max(x, 1)))))


def choose_index_spec(
    n_vectors: int,
    dim: int,
    *,
    exact_threshold: int = 50_000,
    code: str = "SQ8",
    nlist: int | None = None,
    nprobe: int | None = None,
    min_points_per_list: int = 39,
    train_points_per_list: int = 50,
    seed: int = 0,
) -> IndexSpec:
    """Pick the index for ``n_vectors`` x ``dim`` embeddings.

    ``n_vectors <= exact_threshold`` -> exact ``Flat``. Above: ``IVF{nlist},{code}`` with
    ``nlist`` ~ 4*sqrt(n) (power of two, at least ``min_points_per_list`` training points per
    list), trained on ``min(n, train_points_per_list*nlist)`` seeded samples, default
    ``nprobe = max(16, nlist // 64)``. ``code`` is any FAISS IVF encoding: ``SQ8`` (default,
    d+8 bytes/product), ``SQfp16`` (2d+8), ``PQ{m}x8`` ... Only IVF supports incremental removal.
    """
    if n_vectors < 0 or dim <= 0:
        raise ValueError(f"bad shape n_vectors={n_vectors} dim={dim}")
    if n_vectors <= exact_threshold:
        return IndexSpec(
            factory="Flat",
            kind="flat",
            dim=dim,
            supports_remove=True,
            seed=seed,
            rationale=f"n={n_vectors} <= exact_threshold={exact_threshold}: exact brute-force search",
        )
    if nlist is None:
        nlist = _pow2_round(4 * math.sqrt(n_vectors))
        nlist = min(nlist, _pow2_floor(n_vectors / min_points_per_list), 65_536)
        nlist = max(nlist, 1)
    if nprobe is None:
        nprobe = max(16, nlist // 64)
    nprobe = min(nprobe, nlist)
    train_size = int(min(n_vectors, max(train_points_per_list, min_points_per_list) * nlist))
    return IndexSpec(
        factory=f"IVF{nlist},{code}",
        kind="ivf",
        dim=dim,
        nlist=nlist,
        train_size=train_size,
        seed=seed,
        search_params={"nprobe": int(nprobe)},
        supports_remove=True,
        rationale=(
            f"n={n_vectors} > exact_threshold={exact_threshold}: IVF with {code} codes "
            f"(~{_code_bytes(dim, code)} B/vector + 8 B id), nlist~4*sqrt(n), nprobe={nprobe}"
        ),
    )


def _code_bytes(dim: int, code: str) -> int | str:
    try:
        from faiss.contrib.factory_tools import get_code_size

        return int(get_code_size(dim, code))
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def _kind_of_factory(factory: str) -> str:
    f = factory.replace(" ", "")
    if f == "Flat":
        return "flat"
    if f.startswith("IVF") and "Refine" not in f and not f.endswith(",RFlat"):
        return "ivf"
    if f.startswith("HNSW"):
        return "hnsw"
    return "other"


def spec_from_factory(factory: str, dim: int, *, train_size: int = 100_000, seed: int = 0,
                      search_params: Mapping[str, int] | None = None) -> IndexSpec:
    """An ``IndexSpec`` for an arbitrary factory string (for experiments and benchmarks)."""
    kind = _kind_of_factory(factory)
    probe = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(probe)
    return IndexSpec(
        factory=factory,
        kind=kind,  # type: ignore[arg-type]
        dim=dim,
        nlist=int(ivf.nlist) if ivf is not None else None,
        train_size=0 if probe.is_trained else train_size,
        seed=seed,
        search_params=dict(search_params or {}),
        supports_remove=kind in ("flat", "ivf"),
        rationale="explicit factory string",
    )


# --------------------------------------------------------------------------------------------
# validation helpers


def _as_matrix(vectors: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: expected dimension {dim}, got {x.shape[1]}")
    return x


def _bad_rows(x: np.ndarray, chunk: int = _ADD_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(rows with NaN/inf, rows with zero norm), computed in chunks."""
    nonfinite, zero = [], []
    for s in range(0, x.shape[0], chunk):
        c = np.asarray(x[s : s + chunk], dtype=np.float32)
        fin = np.isfinite(c).all(axis=1)
        nonfinite.append(np.flatnonzero(~fin) + s)
        norms = np.einsum("ij,ij->i", np.where(fin[:, None], c, 0), np.where(fin[:, None], c, 0))
        zero.append(np.flatnonzero(fin & (norms <= 1e-24)) + s)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(nonfinite), cat(zero)


def _describe_rows(rows: np.ndarray, labels: Sequence[str] | None, limit: int = 5) -> str:
    shown = [repr(labels[i]) if labels is not None else f"row {i}" for i in rows[:limit].tolist()]
    return ", ".join(shown) + (f" (+{rows.size - limit} more)" if rows.size > limit else "")


def _validate_vectors(x: np.ndarray, labels: Sequence[str] | None, what: str) -> None:
    nonfinite, zero = _bad_rows(x)
    if nonfinite.size:
        raise ValueError(f"{what}: {nonfinite.size} vector(s) contain NaN/inf: {_describe_rows(nonfinite, labels)}")
    if zero.size:
        raise ValueError(f"{what}: {zero.size} zero vector(s): {_describe_rows(zero, labels)}")


def _prep(x: np.ndarray, normalize: bool) -> np.ndarray:
    """float32, C-contiguous, L2-normalised copy (or view when nothing changes)."""
    if not normalize:
        return np.ascontiguousarray(x, dtype=np.float32)
    c = np.array(x, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(c)
    return c


# --------------------------------------------------------------------------------------------
# introspection


def _unwrap(index: faiss.Index) -> tuple[faiss.Index, faiss.Index]:
    """(outer downcast index, inner storage index). For IndexIDMap(2) inner is the wrapped index."""
    outer = faiss.downcast_index(index)
    if isinstance(outer, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        return outer, faiss.downcast_index(outer.index)
    return outer, outer


def _is_gpu(index: faiss.Index) -> bool:
    _, inner = _unwrap(index)
    return type(inner).__name__.startswith("Gpu") or type(faiss.downcast_index(index)).__name__.startswith("Gpu")


def _is_mmapped(index: faiss.Index) -> bool:
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
    if _is_mmapped(index) or _is_gpu(index):
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


def _apply_search_defaults(index: faiss.Index, params: Mapping[str, int]) -> None:
    outer, inner = _unwrap(index)
    ivf = faiss.try_extract_index_ivf(outer)
    if ivf is not None and "nprobe" in params:
        ivf.nprobe = int(params["nprobe"])
    if isinstance(inner, faiss.IndexHNSW) and "efSearch" in params:
        inner.hnsw.efSearch = int(params["efSearch"])


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
) -> faiss.Index:
    """Build the index for ``vectors[i]`` <-> ``product_ids[i]``.

    Vectors are validated (no NaN/inf, no zero rows), L2-normalised in chunks (the input array is
    not modified). Trainable indexes are trained on ``spec.train_size`` rows sampled with
    ``spec.seed``. Flat/HNSW/other are wrapped in ``IndexIDMap2``; IVF uses native ids (see module
    docstring).
    """
    x = _as_matrix(vectors, spec.dim, "build_index vectors")
    product_ids = list(product_ids)
    if x.shape[0] != len(product_ids):
        raise ValueError(f"build_index: {x.shape[0]} vectors but {len(product_ids)} product ids")
    ids = assign_ids(product_ids)
    _validate_vectors(x, product_ids, "build_index")
    n = x.shape[0]

    base = faiss.index_factory(spec.dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if not base.is_trained:
        if n == 0:
            raise ValueError(f"build_index: {spec.factory} needs training data but got 0 vectors")
        m = min(n, spec.train_size or n)
        rng = np.random.default_rng(spec.seed)
        sample = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        xt = _prep(x[sample], spec.normalize)
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
    for s in track(range(0, n, _ADD_CHUNK), f"index add ({n} vectors)", unit="chunk"):
        index.add_with_ids(_prep(x[s : s + _ADD_CHUNK], spec.normalize), ids[s : s + _ADD_CHUNK])
    _apply_search_defaults(index, spec.search_params)
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
            "it is memory-mapped (load it with mmap=False to update)" if _is_mmapped(index)
            else "it lives on the GPU" if _is_gpu(index)
            else f"{type(inner).__name__} cannot remove ids"
        )
        raise RebuildRequiredError(f"cannot update index in place: {why}; rebuild with build_index")

    up_labels = list(upsert_ids) if not isinstance(upsert_ids, np.ndarray) else None
    up_int = _to_int_ids(upsert_ids) if len(upsert_ids) else np.zeros(0, np.int64)
    rm_int = _to_int_ids(remove_ids) if len(remove_ids) else np.zeros(0, np.int64)
    if up_int.size:
        if upsert_vectors is None:
            raise ValueError("update_index: upsert_ids given without upsert_vectors")
        xu = _as_matrix(upsert_vectors, index.d, "update_index upsert_vectors")
        if xu.shape[0] != up_int.size:
            raise ValueError(f"update_index: {xu.shape[0]} vectors but {up_int.size} upsert ids")
        if np.unique(up_int).size != up_int.size:
            raise IdCollisionError("update_index: upsert_ids contains duplicates")
        _validate_vectors(xu, up_labels, "update_index")
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
        for s in range(0, up_int.size, _ADD_CHUNK):
            index.add_with_ids(_prep(xu[s : s + _ADD_CHUNK], normalize), up_int[s : s + _ADD_CHUNK])
    return UpdateResult(removed=removed, added=int(up_int.size), missing_remove_ids=missing,
                        ntotal=int(index.ntotal))


# --------------------------------------------------------------------------------------------
# save / load



def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_index(index: faiss.Index, directory: Path | str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``index.faiss`` + ``manifest.json`` into ``directory`` atomically.

    ``manifest`` comes from the caller and must contain ``encoder_fingerprint``; it should contain
    ``product_ids`` (needed to map results back after loading; checked against the index ids),
    ``spec`` (IndexSpec or dict) and ``build_seconds``; other keys are kept as-is. Computed fields
    are added: dim, count, index_factory, index_kind, faiss_version, index_sha256, index_bytes,
    ids_sha256, saved_at. Both files are written to temp files in ``directory`` and moved into
    place with ``os.replace``, the manifest last, so a reader sees either the old pair, the new
    pair, or (between the two renames) a new index whose sha256 does not match the old manifest,
    which ``load_index`` rejects.

    Returns the manifest as written.
    """
    if "encoder_fingerprint" not in manifest or not manifest["encoder_fingerprint"]:
        raise ValueError("save_index: manifest must contain a non-empty 'encoder_fingerprint'")
    if _is_mmapped(index):
        raise VectorIndexError("save_index: refusing to save a memory-mapped index (load with mmap=False)")
    cpu_index = faiss.index_gpu_to_cpu(index) if _is_gpu(index) else index

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = index_ids(cpu_index)
    out: dict[str, Any] = dict(manifest)
    spec = out.get("spec")
    if isinstance(spec, IndexSpec):
        out["spec"] = spec.to_dict()
    pids = out.get("product_ids")
    if pids is not None:
        pids = list(pids)
        pid_ints = assign_ids(pids)
        if pid_ints.size != ids.size or not np.array_equal(np.sort(pid_ints), np.sort(ids)):
            raise ValueError(
                f"save_index: manifest product_ids ({len(pids)}) do not match the {ids.size} ids in the index"
            )
        out["product_ids"] = [pids[i] for i in np.argsort(pid_ints, kind="stable")]
    spec_factory = (out.get("spec") or {}).get("factory") if isinstance(out.get("spec"), Mapping) else None
    out.update(
        format=MANIFEST_FORMAT,
        dim=int(cpu_index.d),
        count=int(cpu_index.ntotal),
        index_factory=factory_string(cpu_index, spec_factory),
        index_kind=index_kind(cpu_index),
        faiss_version=faiss.__version__,
        ids_sha256=_ids_sha256(ids),
        saved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )

    tmp_paths: list[Path] = []
    try:
        fd, tmp_index = tempfile.mkstemp(dir=directory, prefix=f".{INDEX_FILE}.", suffix=".tmp")
        os.close(fd)
        tmp_paths.append(Path(tmp_index))
        faiss.write_index(cpu_index, tmp_index)
        with open(tmp_index, "rb+") as f:
            os.fsync(f.fileno())
        out["index_sha256"] = sha256_of_file(Path(tmp_index))
        out["index_bytes"] = os.path.getsize(tmp_index)

        fd, tmp_manifest = tempfile.mkstemp(dir=directory, prefix=f".{MANIFEST_FILE}.", suffix=".tmp")
        tmp_paths.append(Path(tmp_manifest))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

        os.replace(tmp_index, directory / INDEX_FILE)
        os.replace(tmp_manifest, directory / MANIFEST_FILE)
        _fsync_dir(directory)
    finally:
        for p in tmp_paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return out


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays and paths in caller-supplied manifest fields."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"manifest value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: manifest missing (index was never saved completely)") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"{path}: manifest is not valid JSON ({e}); half-written or corrupted") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path}: manifest is not a JSON object")
    for key in ("index_sha256", "count", "dim", "encoder_fingerprint"):
        if key not in manifest:
            raise IndexCorruptError(f"{path}: manifest lacks {key!r}")
    return manifest


def load_index(
    directory: Path | str,
    *,
    expected_fingerprint: str | None = None,
    mmap: bool | None = False,
    mmap_threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES,
    verify_ids: bool = True,
) -> tuple[faiss.Index, dict[str, Any]]:
    """Load and verify an index saved by ``save_index``. Returns ``(index, manifest)``.

    Raises ``IndexCorruptError`` (naming the file) when a file is missing, the sha256 / size / count
    / dim / id hash of ``index.faiss`` does not match the manifest, or FAISS cannot parse it; and
    ``FingerprintMismatchError`` (an ``IndexCorruptError``) if ``expected_fingerprint`` differs from
    the manifest's ``encoder_fingerprint``.

    ``mmap=True`` memory-maps the vector data (IVF lists or flat codes) instead of reading it into
    RAM; ``mmap=None`` does so when the file is at least ``mmap_threshold_bytes``. Memory-mapped
    indexes are read-only: ``update_index`` refuses them.
    """
    directory = Path(directory)
    index_path, manifest_path = directory / INDEX_FILE, directory / MANIFEST_FILE
    last_err: Exception | None = None
    for _attempt in range(3):  # retry if a writer replaced the files while we were reading
        manifest = _read_manifest(manifest_path)
        if expected_fingerprint is not None and manifest["encoder_fingerprint"] != expected_fingerprint:
            raise FingerprintMismatchError(
                f"{manifest_path}: index was built with encoder fingerprint "
                f"{manifest['encoder_fingerprint']!r}, expected {expected_fingerprint!r}; rebuild the index"
            )
        try:
            st = os.stat(index_path)
        except FileNotFoundError:
            raise IndexCorruptError(f"{index_path}: index file missing") from None
        if "index_bytes" in manifest and st.st_size != manifest["index_bytes"]:
            last_err = IndexCorruptError(
                f"{index_path}: size {st.st_size} B != {manifest['index_bytes']} B in manifest "
                "(half-written, truncated or replaced file)"
            )
            if _file_changed(index_path, st) or _manifest_changed(manifest_path, manifest):
                continue
            raise last_err
        digest = sha256_of_file(index_path)
        if digest != manifest["index_sha256"]:
            last_err = IndexCorruptError(
                f"{index_path}: sha256 {digest[:16]}... does not match manifest "
                f"{str(manifest['index_sha256'])[:16]}... (half-written or corrupted file)"
            )
            if _file_changed(index_path, st) or _manifest_changed(manifest_path, manifest):
                continue
            raise last_err

        use_mmap = mmap if mmap is not None else st.st_size >= mmap_threshold_bytes
        flags = 0
        if use_mmap:
            flags = faiss.IO_FLAG_MMAP_IFC if manifest.get("index_kind") == "flat" else faiss.IO_FLAG_MMAP
        try:
            index = faiss.read_index(str(index_path), flags)
        except RuntimeError as e:
            raise IndexCorruptError(f"{index_path}: FAISS cannot read the index: {str(e).splitlines()[0]}") from None
        if _file_changed(index_path, st):
            last_err = IndexCorruptError(f"{index_path}: replaced while loading")
            continue
        break
    else:
        raise last_err or IndexCorruptError(f"{index_path}: could not load a consistent index")

    if int(index.ntotal) != int(manifest["count"]):
        raise IndexCorruptError(f"{index_path}: holds {index.ntotal} vectors, manifest says {manifest['count']}")
    if int(index.d) != int(manifest["dim"]):
        raise IndexCorruptError(f"{index_path}: dimension {index.d}, manifest says {manifest['dim']}")
    if verify_ids and "ids_sha256" in manifest and _ids_sha256(index_ids(index)) != manifest["ids_sha256"]:
        raise IndexCorruptError(f"{index_path}: ids in the index do not match ids_sha256 in the manifest")
    spec = manifest.get("spec") or {}
    if isinstance(spec, Mapping):
        _apply_search_defaults(index, spec.get("search_params") or {})
    return index, manifest


def _file_changed(path: Path, st: os.stat_result) -> bool:
    """True if ``path`` was replaced or rewritten since ``st`` was taken (a concurrent save)."""
    try:
        now = os.stat(path)
    except OSError:
        return True
    return (now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns)


def _manifest_changed(path: Path, manifest: Mapping[str, Any]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("index_sha256") != manifest.get("index_sha256")
    except (OSError, ValueError):
        return True


# --------------------------------------------------------------------------------------------
# search


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
    q = _as_matrix(queries, index.d, "search queries")
    _validate_vectors(q, None, "search queries")
    q = _prep(q, normalize)
    if k <= 0:
        raise ValueError("k must be positive")
    params = None
    outer, inner = _unwrap(index)
    if not _is_gpu(index):
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
    if device == "cpu" or _is_gpu(index):
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


# --------------------------------------------------------------------------------------------
# checks


def check_index(
    index: faiss.Index,
    manifest: Mapping[str, Any],
    vectors: np.ndarray | None,
    product_ids: Sequence[str],
    *,
    expected_fingerprint: str | None = None,
    sample_size: int = 64,
    min_cosine: float = 0.98,
) -> list[str]:
    """Problems (human-readable strings; empty list = healthy) between an index, its manifest and
    the embedding table it should contain (``vectors[i]`` <-> ``product_ids[i]``).

    Checks: counts (index / manifest / table), dim, NaN/inf or zero vectors in the table, id
    collisions, id sets equal (names missing/extra products), manifest id hash, encoder fingerprint,
    and for a seeded sample of products that the stored vector still matches the table
    (cosine >= ``min_cosine``; catches an index that was not updated after re-encoding).
    """
    problems: list[str] = []
    product_ids = list(product_ids)
    n_index = int(index.ntotal)

    fp = manifest.get("encoder_fingerprint")
    if not fp:
        problems.append("manifest has no encoder_fingerprint")
    elif expected_fingerprint is not None and fp != expected_fingerprint:
        problems.append(f"encoder fingerprint mismatch: index {fp!r}, expected {expected_fingerprint!r}")
    if "count" in manifest and int(manifest["count"]) != n_index:
        problems.append(f"manifest count {manifest['count']} != index ntotal {n_index}")
    if "dim" in manifest and int(manifest["dim"]) != int(index.d):
        problems.append(f"manifest dim {manifest['dim']} != index dim {index.d}")
    if len(product_ids) != n_index:
        problems.append(f"index holds {n_index} vectors but the table has {len(product_ids)} products")

    x = None
    if vectors is not None:
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != index.d:
            problems.append(f"vectors have shape {x.shape}, index dim is {index.d}")
            x = None
        elif x.shape[0] != len(product_ids):
            problems.append(f"{x.shape[0]} vectors but {len(product_ids)} product ids")
            x = None
        else:
            nonfinite, zero = _bad_rows(x)
            if nonfinite.size:
                problems.append(f"{nonfinite.size} vector(s) with NaN/inf: {_describe_rows(nonfinite, product_ids)}")
            if zero.size:
                problems.append(f"{zero.size} zero vector(s): {_describe_rows(zero, product_ids)}")

    try:
        want = assign_ids(product_ids)
    except IdCollisionError as e:
        problems.append(f"product id problem: {e}")
        return problems
    have = index_ids(index)
    if have.size != np.unique(have).size:
        problems.append(f"index holds {have.size - np.unique(have).size} duplicate id(s)")
    missing = np.flatnonzero(~np.isin(want, have))
    extra = np.setdiff1d(have, want)
    if missing.size:
        problems.append(f"{missing.size} product(s) missing from the index: {_describe_rows(missing, product_ids)}")
    if extra.size:
        try:
            names = IdLookup.from_manifest(manifest).to_product_ids(extra[:5])
            shown = ", ".join(repr(p) if p is not None else str(int(i)) for p, i in zip(names, extra[:5]))
        except (ValueError, IdCollisionError):
            shown = ", ".join(str(int(i)) for i in extra[:5])
        problems.append(f"{extra.size} id(s) in the index are not in the table (stale products): {shown}"
                        + (" ..." if extra.size > 5 else ""))
    if "ids_sha256" in manifest and manifest["ids_sha256"] != _ids_sha256(have):
        problems.append("manifest ids_sha256 does not match the ids in the index")

    if x is not None and sample_size > 0 and not missing.size and not _has_bad_vector_problem(problems):
        rng = np.random.default_rng(0)
        rows = rng.choice(len(product_ids), size=min(sample_size, len(product_ids)), replace=False)
        stale = []
        for r in np.sort(rows):
            try:
                stored = np.asarray(index.reconstruct(int(want[r])), dtype=np.float32)
            except RuntimeError:
                break  # index type cannot reconstruct by id: skip this check
            v = np.asarray(x[r], dtype=np.float32)
            cos = float(stored @ v) / (float(np.linalg.norm(stored) * np.linalg.norm(v)) or 1.0)
            if cos < min_cosine:
                stale.append(int(r))
        if stale:
            problems.append(
                f"{len(stale)} of {rows.size} sampled products have a stored vector that differs from the "
                f"table (cosine < {min_cosine}): {_describe_rows(np.array(stale), product_ids)}"
            )
    return problems


def _has_bad_vector_problem(problems: Sequence[str]) -> bool:
    return any("NaN/inf" in p or "zero vector" in p for p in problems)
