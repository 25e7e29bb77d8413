"""Incremental, sharded vector sets keyed by product_id.

A vector set is one Parquet file per catalog shard holding `product_id`, `content_hash`,
`fingerprint` (of the encoder stage that made the vector) and `vector`. An update re-encodes only
the products that are new or whose content hash or encoder fingerprint changed, keeps the rest
as they are, and drops products that left the catalog. Files are written to a temporary file and
renamed into place, so a run killed mid-way leaves the previous shard intact and a re-run finishes
the work with no duplicate and no missing product.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from scene_assets.encoders import FeatureMapEncoder
from scene_assets.indexes.store import write_atomic_parquet
from scene_assets.indexes.vectors import vector_matrix
from scene_assets.locking import exclusive

VECTOR_COLUMNS = ("product_id", "content_hash", "fingerprint", "vector")
SKIP_SCHEMA = {"product_id": pl.String(), "reason": pl.String()}


def shard_of(product_id: str, n_shards: int) -> int:
    """Stable shard number of a product: the same on every machine and Python process."""
    digest = hashlib.blake2b(product_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def shard_keys(n_shards: int) -> list[str]:
    return [f"shard-{i:02d}-of-{n_shards:02d}" for i in range(n_shards)]


def shard_number(shard_key: str) -> tuple[int, int]:
    """`shard-03-of-08` → (3, 8)."""
    _, number, _, total = shard_key.split("-")
    return int(number), int(total)


def select_shard(catalog: pl.DataFrame, shard_key: str) -> pl.DataFrame:
    number, total = shard_number(shard_key)
    mask = [shard_of(pid, total) == number for pid in catalog["product_id"]]
    return catalog.filter(pl.Series(mask, dtype=pl.Boolean))


def empty_vectors(dim: int) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "product_id": pl.String(),
            "content_hash": pl.String(),
            "fingerprint": pl.String(),
            "vector": pl.Array(pl.Float32(), dim),
        }
    )


def vectors_frame(product_ids, content_hashes, fingerprint: str, vectors: np.ndarray) -> pl.DataFrame:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pl.DataFrame(
        {
            "product_id": list(product_ids),
            "content_hash": list(content_hashes),
            "fingerprint": [fingerprint] * len(product_ids),
            "vector": pl.Series(vectors.reshape(len(product_ids), -1), dtype=pl.Array(pl.Float32(), vectors.shape[1]))
            if len(product_ids)
            else pl.Series([], dtype=pl.Array(pl.Float32(), max(vectors.shape[-1], 1))),
        }
    )


def read_vectors(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.is_file() else None


@dataclass
class UpdatePlan:
    to_encode: pl.DataFrame  # catalog rows needing a vector
    kept: pl.DataFrame  # existing vectors still valid
    dropped_ids: list[str]  # products no longer in the catalog (or no longer encodable)


def plan_update(wanted: pl.DataFrame, existing: pl.DataFrame | None, fingerprint: str) -> UpdatePlan:
    """Which of `wanted` (product_id, content_hash, …) need encoding given `existing` vectors."""
    if existing is None or existing.height == 0:
        return UpdatePlan(to_encode=wanted, kept=existing.head(0) if existing is not None else None, dropped_ids=[])
    current = existing.filter(pl.col("fingerprint") == fingerprint)
    kept = current.join(wanted.select("product_id", "content_hash"), on=["product_id", "content_hash"], how="semi")
    to_encode = wanted.join(kept.select("product_id"), on="product_id", how="anti")
    dropped = existing.join(wanted.select("product_id"), on="product_id", how="anti")["product_id"].to_list()
    return UpdatePlan(to_encode=to_encode, kept=kept, dropped_ids=dropped)


@dataclass
class UpdateStats:
    total: int = 0
    encoded: int = 0
    kept: int = 0
    dropped: int = 0
    skipped: int = 0
    seconds: float = 0.0
    skipped_reasons: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKIP_SCHEMA))

    @property
    def per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "vectors": self.total,
            "encoded": self.encoded,
            "kept": self.kept,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "encoded_per_second": round(self.per_second, 1),
        }


# An encode function takes the catalog rows to encode and returns (row positions encoded, vectors,
# skipped rows with reasons). It never raises for one bad product.
EncodeFn = Callable[[pl.DataFrame], tuple[list[int], np.ndarray, list[tuple[str, str]]]]


def update_vector_file(
    path: Path,
    wanted: pl.DataFrame,
    fingerprint: str,
    encode: EncodeFn,
    *,
    dim: int,
    chunk_size: int = 256,
) -> tuple[pl.DataFrame, UpdateStats]:
    """Bring the vector file at `path` up to date with `wanted` (one shard of the catalog).

    Encoded chunks are committed to the file as they finish, so a killed run keeps its progress.
    The file is locked for the whole read-encode-write cycle: a second run on the same shard waits,
    then encodes only what the first one left missing.
    """
    with exclusive(path):
        return _update_vector_file_locked(path, wanted, fingerprint, encode, dim=dim, chunk_size=chunk_size)


def _update_vector_file_locked(
    path: Path, wanted: pl.DataFrame, fingerprint: str, encode: EncodeFn, *, dim: int, chunk_size: int
) -> tuple[pl.DataFrame, UpdateStats]:
    started = time.perf_counter()
    existing = read_vectors(path)
    plan = plan_update(wanted, existing, fingerprint)
    parts = [plan.kept if plan.kept is not None else empty_vectors(dim)]
    skipped: list[tuple[str, str]] = []
    encoded = 0
    for start in range(0, plan.to_encode.height, chunk_size):
        chunk = plan.to_encode.slice(start, chunk_size)
        positions, vectors, chunk_skipped = encode(chunk)
        skipped.extend(chunk_skipped)
        if positions:
            rows = chunk[positions]
            parts.append(vectors_frame(rows["product_id"], rows["content_hash"], fingerprint, vectors))
            encoded += len(positions)
        # Commit progress: the file always holds a consistent, duplicate-free set.
        write_atomic_parquet(pl.concat(parts, how="vertical_relaxed").sort("product_id"), path)
    result = pl.concat(parts, how="vertical_relaxed").sort("product_id")
    nothing_encoded_yet_changed = plan.to_encode.height == 0 and (
        existing is None or existing.height != result.height
    )
    if nothing_encoded_yet_changed:
        write_atomic_parquet(result, path)
    stats = UpdateStats(
        total=result.height,
        encoded=encoded,
        kept=plan.kept.height if plan.kept is not None else 0,
        dropped=len(plan.dropped_ids),
        skipped=len(skipped),
        seconds=time.perf_counter() - started,
        skipped_reasons=pl.DataFrame(skipped, schema=SKIP_SCHEMA, orient="row"),
    )
    return result, stats


# --------------------------------------------------------------------------------------------
# Encoding helpers: decode images on threads while the model computes
# --------------------------------------------------------------------------------------------


def _prefetch(items: Sequence, fn, workers: int) -> Iterator:
    """Map `fn` over `items` on a thread pool, yielding results in order while later ones load."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        yield from pool.map(fn, items)


def encode_image_rows(
    rows: pl.DataFrame,
    preprocess: Callable,
    encode_batch: Callable,
    *,
    batch_size: int = 16,
    decode_workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[int], np.ndarray, list[tuple[str, str]]]:
    """Decode `rows["image_path"]` (threads) and encode them in batches.

    A product whose image fails to decode is skipped with its reason; the rest carry on.
    """
    import torch

    from scene_assets.images import open_rgb

    def load(item: tuple[int, str, str | None]):
        position, product_id, image_path = item
        if not image_path:
            return position, product_id, None, "no readable image"
        try:
            return position, product_id, preprocess(open_rgb(Path(image_path))), None
        except Exception as exc:  # any decoder failure skips this product only
            return position, product_id, None, f"image {image_path}: {type(exc).__name__}: {exc}"

    items = list(zip(range(rows.height), rows["product_id"], rows["image_path"]))
    positions: list[int] = []
    outputs: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    batch_tensors: list = []
    batch_positions: list[int] = []

    def flush():
        if batch_tensors:
            outputs.append(np.asarray(encode_batch(torch.stack(batch_tensors)), dtype=np.float32))
            positions.extend(batch_positions)
            if progress:
                progress(len(batch_positions))
            batch_tensors.clear()
            batch_positions.clear()

    for position, product_id, tensor, error in _prefetch(items, load, decode_workers):
        if error is not None:
            skipped.append((product_id, error))
            continue
        batch_tensors.append(tensor)
        batch_positions.append(position)
        if len(batch_tensors) >= batch_size:
            flush()
    flush()
    vectors = np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)
    return positions, vectors, skipped


@dataclass(frozen=True)
class ImageFeatureStage:
    """The cached, expensive part of image encoding.

    The default encoder splits into a frozen CNN trunk (cached per product) and a small trained
    projection, so retraining the projection never re-runs the CNN. Other encoders cache their final
    image vectors and project with the identity.
    """

    fingerprint: str
    dim: int
    encode_batch: Callable
    project: Callable[[np.ndarray], np.ndarray] | None

    @property
    def vector_space(self) -> str:
        """What an index of these features holds: "trunk" (pooled CNN features, projected to the joint
        space only for the encoder's head) or "joint" (the encoder's final image vectors)."""
        return "trunk" if self.project is not None else "joint"

    @classmethod
    def of(cls, encoder) -> "ImageFeatureStage":
        if isinstance(encoder, FeatureMapEncoder):
            return cls(
                fingerprint=encoder.trunk_fingerprint(),
                dim=encoder.trunk_dim,
                encode_batch=encoder.encode_trunk_tensors,
                project=encoder.project_trunk_features,
            )
        return cls(fingerprint=encoder.fingerprint(), dim=encoder.dim, encode_batch=encoder.encode_image_tensors, project=None)


def vector_set_problems(
    vectors: pl.DataFrame, wanted_ids: Sequence[str], skipped_ids: Sequence[str], fingerprint: str, *, limit: int = 5
) -> list[str]:
    """Problems between a shard's stored vectors and the products it should hold (empty = healthy).

    Every wanted product has exactly one vector unless it was skipped with a recorded reason; no
    vector belongs to a product that left the catalog; every vector carries the current encoder's
    fingerprint and is finite and non-zero."""

    def names(ids) -> str:
        ids = sorted(ids)
        return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")

    problems: list[str] = []
    ids = vectors["product_id"]
    duplicated = set(ids.filter(ids.is_duplicated()).to_list())
    if duplicated:
        problems.append(f"{len(duplicated)} products have more than one vector: {names(duplicated)}")
    present, wanted, skipped = set(ids.to_list()), set(wanted_ids), set(skipped_ids)
    if missing := wanted - present - skipped:
        problems.append(f"{len(missing)} catalog products have no vector and no recorded reason: {names(missing)}")
    if extra := present - wanted:
        problems.append(f"{len(extra)} vectors belong to products no longer in the catalog: {names(extra)}")
    stale = vectors.filter(pl.col("fingerprint") != fingerprint)
    if stale.height:
        problems.append(f"{stale.height} vectors were made by another encoder than {fingerprint[:16]}: "
                        f"{names(stale['product_id'].to_list())}")
    if vectors.height:
        matrix = vector_matrix(vectors)
        bad = ~np.isfinite(matrix).all(axis=1) | (np.abs(matrix).sum(axis=1) == 0)
        if bad.any():
            problems.append(f"{int(bad.sum())} vectors are NaN/inf or all zero: {names(vectors['product_id'].filter(pl.Series(bad)).to_list())}")
    return problems
