"""Where the sharded index reads its vectors from: one ``VectorSource`` per catalog shard (a Parquet
vector file or an array), read in chunks, never all at once; and the seeded training sample."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from scene_assets.indexes.errors import VectorIndexError
from scene_assets.indexes.vectors import center_and_normalize_in_place, validate_vectors

CHUNK_ROWS = 65_536


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


def sources_mean(sources: Sequence[VectorSource], chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Mean of the L2-normalised vectors of every shard (the centring vector, as
    ``matching.catalog_mean`` computes it for a matrix), streamed a chunk at a time in float64: the
    catalog is never in memory. Vectors are validated (finite, non-zero) on the way."""
    total: np.ndarray | None = None
    n = 0
    for source in sorted(sources, key=lambda s: s.key):
        for pids, x in source.chunks(chunk_rows):
            if not len(pids):
                continue
            validate_vectors(x, pids, source.describe())
            if total is None:
                total = np.zeros(x.shape[1], dtype=np.float64)
            elif x.shape[1] != total.shape[0]:
                raise VectorIndexError(f"{source.describe()}: vectors of dimension {x.shape[1]}, other shards have {total.shape[0]}")
            total += (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).sum(axis=0, dtype=np.float64)
            n += len(pids)
    if total is None:
        raise VectorIndexError("no vectors: every shard is empty")
    return (total / n).astype(np.float32)


def sample_vectors(sources: Sequence[VectorSource], n_sample: int, seed: int,
                   mean: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """A seeded uniform sample of ``n_sample`` rows over all shards (sorted by shard key), validated
    and L2-normalised (then centred on ``mean`` and normalised again, when given: see
    :func:`~scene_assets.indexes.vectors.center_and_normalize`). Returns ``(sample, sha256 of the sample)``."""
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
        validate_vectors(x, None, f"training sample from {source.describe()}")
        out[pos : pos + x.shape[0]] = x
        faiss.normalize_L2(out[pos : pos + x.shape[0]])
        if mean is not None:
            center_and_normalize_in_place(out[pos : pos + x.shape[0]], mean)
        pos += x.shape[0]
        del x
    assert out is not None and pos == m
    return out, hashlib.sha256(out.data).hexdigest()


