"""Build or incrementally update the on-disk product index from a vector set.

The index folder holds `index.faiss`, `manifest.json` (see `flat_files.save_index`) and
`members.parquet` (product_id, content_hash of every indexed vector), which lets the next build
touch only products whose vector changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from scene_assets.indexes import flat, flat_files
from scene_assets.indexes.errors import VectorIndexError
from scene_assets.indexes.flat_choice import LatencyBudget, build_within_budget
from scene_assets.indexes.flat_spec import IndexSpec, choose_index_spec
from scene_assets.indexes.vectors import sorted_by_product_id, vector_matrix
from scene_assets.indexes.store import write_atomic_parquet
from scene_assets.locking import exclusive

MEMBERS_FILE = "members.parquet"


@dataclass
class IndexBuildReport:
    directory: Path
    manifest: dict
    mode: str  # "full" or "incremental"
    added: int
    removed: int
    seconds: float


def build_or_update_index(
    vectors: pl.DataFrame,
    directory: Path,
    *,
    fingerprint: str,
    exact_threshold: int | None = None,
    latency_budget: LatencyBudget | None = None,
    sample_queries: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    incremental: bool = True,
    extra_manifest: dict | None = None,
) -> IndexBuildReport:
    """Make `directory` hold an index of exactly `vectors` (product_id, content_hash, vector).
    The index kind: exact up to ``exact_threshold`` products when one is given, else the cheapest kind
    whose measured batched search meets ``latency_budget`` (``flat_choice``; ``sample_queries``: real
    region queries to measure with, or a function returning them: called only when the kind is measured). An update within ±25 % of the previous count keeps the previous
    kind (timings jitter; flipping kinds would force a full rebuild) and updates it in place.
    `extra_manifest` keys (e.g. the vector space and centring mean) are stored in the manifest.
    The folder is locked while it is read and rewritten (two runs never interleave their files)."""
    with exclusive(directory):
        return _build_or_update_locked(vectors, Path(directory), fingerprint, exact_threshold,
                                       latency_budget or LatencyBudget(), sample_queries, incremental, extra_manifest)


def _build_or_update_locked(
    vectors: pl.DataFrame, directory: Path, fingerprint: str, exact_threshold: int | None, budget: LatencyBudget,
    sample_queries, incremental: bool, extra_manifest: dict | None
) -> IndexBuildReport:
    started = time.perf_counter()
    vectors = sorted_by_product_id(vectors)
    matrix = vector_matrix(vectors, writable=False)  # only read below: no 5 GB copy at 1M x 1280
    members_path = directory / MEMBERS_FILE
    previous = None
    if incremental and members_path.is_file() and (directory / flat_files.MANIFEST_FILE).is_file():
        try:
            index, manifest = flat_files.load_index(directory, expected_fingerprint=fingerprint)
            if flat.supports_remove(index):
                previous = (index, manifest, pl.read_parquet(members_path))
        except VectorIndexError:
            previous = None  # corrupt, half-written or another encoder's: rebuild from scratch
    dim = matrix.shape[1] if vectors.height else 1
    selection = None
    if exact_threshold is not None or vectors.height == 0:
        spec = choose_index_spec(vectors.height, dim, exact_threshold=exact_threshold or 0)
    elif previous is not None and "selection" in previous[1] and _similar_count(previous[1]["count"], vectors.height):
        spec, selection = IndexSpec.from_dict(previous[1]["spec"]), previous[1]["selection"]
    else:
        spec = None  # measured below, on the full build
    if spec is not None and previous is not None and previous[1].get("spec", {}).get("factory") == spec.factory:
        index, manifest, members = previous
        changed = vectors.join(members, on=["product_id", "content_hash"], how="anti")
        removed = members.join(vectors.select("product_id"), on="product_id", how="anti")["product_id"].to_list()
        upsert_ids = changed["product_id"].to_list()
        flat.update_index(
            index,
            upsert_ids=upsert_ids,
            upsert_vectors=vector_matrix(changed) if changed.height else None,
            remove_ids=removed,
        )
        mode, added, n_removed = "incremental", len(upsert_ids), len(removed)
    elif spec is not None:
        index = flat.build_index(matrix, vectors["product_id"].to_list(), spec)
        mode, added, n_removed = "full", vectors.height, 0
    else:
        index, spec, selection = build_within_budget(
            matrix, vectors["product_id"].to_list(), budget,
            sample_queries=sample_queries() if callable(sample_queries) else sample_queries)
        mode, added, n_removed = "full", vectors.height, 0
    elapsed = time.perf_counter() - started
    manifest = flat_files.save_index(
        index,
        directory,
        {
            "encoder_fingerprint": fingerprint,
            "product_ids": vectors["product_id"].to_list(),
            "spec": spec.to_dict(),
            "build_seconds": round(elapsed, 3),
            "build_mode": mode,
            **({"selection": selection} if selection is not None else {}),
            **(extra_manifest or {}),
        },
    )
    write_atomic_parquet(vectors.select("product_id", "content_hash"), members_path)
    return IndexBuildReport(directory, manifest, mode, added, n_removed, time.perf_counter() - started)


def _similar_count(previous: int, now: int) -> bool:
    return previous > 0 and abs(now - previous) <= 0.25 * previous
