"""Checks and normalisation of the vectors that go into (or query) an index, for both kinds."""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import polars as pl

ADD_CHUNK = 65_536


def vector_matrix(frame: pl.DataFrame, writable: bool = True) -> np.ndarray:
    """The ``vector`` column of a vector set (``embeddings.py``'s Parquet files) as an (n, dim) float32 matrix.

    ``writable=True``: a copy (Arrow-backed arrays are read-only and torch refuses to wrap those).
    ``writable=False``: a read-only view of the frame's buffer where polars allows one, for readers
    of large catalogs (1M x 1280 is 5 GB a copy)."""
    if frame.height == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if not writable:
        view = frame["vector"].to_numpy()
        return np.ascontiguousarray(view, dtype=np.float32).reshape(frame.height, -1)
    return np.array(frame["vector"].to_numpy(), dtype=np.float32).reshape(frame.height, -1)


def sorted_by_product_id(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` ordered by product id; already ordered frames are returned as they are (no copy)."""
    return frame if frame["product_id"].is_sorted() else frame.sort("product_id")


def has_unit_rows(x: np.ndarray, tol: float = 1e-4, chunk: int = ADD_CHUNK) -> bool:
    """Whether every row of ``x`` has L2 norm 1 within ``tol`` (checked in chunks, no copy of ``x``)."""
    for s in range(0, x.shape[0], chunk):
        norms = np.linalg.norm(np.asarray(x[s : s + chunk], dtype=np.float32), axis=1)
        if not np.all(np.abs(norms - 1.0) <= tol):
            return False
    return True


def as_matrix(vectors: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: expected dimension {dim}, got {x.shape[1]}")
    return x


def bad_rows(x: np.ndarray, chunk: int = ADD_CHUNK) -> tuple[np.ndarray, np.ndarray]:
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


def describe_rows(rows: np.ndarray, labels: Sequence[str] | None, limit: int = 5) -> str:
    shown = [repr(labels[i]) if labels is not None else f"row {i}" for i in rows[:limit].tolist()]
    return ", ".join(shown) + (f" (+{rows.size - limit} more)" if rows.size > limit else "")


def validate_vectors(x: np.ndarray, labels: Sequence[str] | None, what: str) -> None:
    nonfinite, zero = bad_rows(x)
    if nonfinite.size:
        raise ValueError(f"{what}: {nonfinite.size} vector(s) contain NaN/inf: {describe_rows(nonfinite, labels)}")
    if zero.size:
        raise ValueError(f"{what}: {zero.size} zero vector(s): {describe_rows(zero, labels)}")


def prepare(x: np.ndarray, normalize: bool) -> np.ndarray:
    """float32, C-contiguous, L2-normalised copy (or view when nothing changes)."""
    if not normalize:
        return np.ascontiguousarray(x, dtype=np.float32)
    c = np.array(x, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(c)
    return c


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def center_and_normalize(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows L2-normalised, then (when ``mean`` is given) minus ``mean`` and normalised again.

    ``mean`` is the mean of the *normalised* catalog vectors (see ``matching.catalog_mean``), so
    queries and products are centred the same way whatever their raw norms."""
    y = _l2(np.asarray(x, dtype=np.float32))
    if mean is not None:
        y = _l2(y - np.asarray(mean, dtype=np.float32))
    return y


def center_and_normalize_in_place(x: np.ndarray, mean: np.ndarray | None = None, chunk_rows: int = 65_536) -> np.ndarray:
    """:func:`center_and_normalize` writing into ``x`` (float32, writable), a chunk of rows at a time:
    a 1M x 1280 catalog is 5 GB, and the out-of-place form holds three such copies at once.
    Row-wise arithmetic, so the numbers equal the out-of-place form's exactly."""
    if x.dtype != np.float32 or not x.flags.writeable:
        raise ValueError("center_and_normalize_in_place needs a writable float32 matrix")
    centre = None if mean is None else np.asarray(mean, dtype=np.float32)
    for start in range(0, x.shape[0], chunk_rows):
        rows = x[start:start + chunk_rows]
        rows /= np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
        if centre is not None:
            rows -= centre
            rows /= np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
    return x
