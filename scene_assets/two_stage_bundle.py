"""A two-stage bundle (#19): a catalog served from the merged, memory-mapped sharded IVF-PQ index
(``indexes.sharded_*``) instead of the in-memory scene index, for catalogs whose scene index (or whose
per-product Python objects) would not fit a replica.

Stage 1 searches the merged index (its inverted lists and id lookup stay in their files, in the
shared page cache); stage 2 re-scores the candidates from the products' exact vectors (as indexed:
normalised, and centred on the index's catalog mean when it is centred; float16, one .npy in the
index's lookup order, memory-mapped), computes the factors from the per-product columns
(memory-mapped .npy, as :func:`recommender_bundle.write_product_columns` stores them) and re-ranks
(``Recommender(rescore=True)``; the learned projection is computed for the candidates only). Product
attributes and ids are Arrow strings and integer codes, memory-mapped too: the server holds no
Python object per product.

The folder holds ``bundle.json`` (``"kind": "two_stage"``, the merged folder it serves and that
folder's manifest sha256, the encoder spec) and ``product_columns/<version>/``. Everything per
product is written in row chunks (``chunk_rows``), so writing needs memory for one chunk plus the
catalog frame, not for the catalog's vectors. :func:`recommender_bundle.load_recommender` loads it
like any bundle. No Dagster imports.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from scene_assets.indexes.ids import assign_ids
from scene_assets.indexes.searcher import open_index
from scene_assets.indexes.sharded_files import MANIFEST_FILE
from scene_assets.indexes.store import read_manifest
from scene_assets.indexes.vectors import center_and_normalize
from scene_assets.ranking.catalog import CodedColumn, ProductInfo, aligned_catalog
from scene_assets.ranking.factors import ProductFactors
from scene_assets.scene_analysis import product_style_logits

TWO_STAGE_KIND = "two_stage"
VECTORS_FILE = "vectors.npy"
CHUNK_ROWS = 500_000


def _row_lookup(int_ids: np.ndarray):
    order = np.argsort(int_ids)
    ordered = np.asarray(int_ids)[order]

    def rows_of(product_ids: list[str]) -> np.ndarray:
        wanted = assign_ids(product_ids)
        pos = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
        return np.where(ordered[pos] == wanted, order[pos], -1)

    return rows_of


def index_fingerprint(encoder, vector_space: str) -> str:
    """The fingerprint an index of ``vector_space`` records for vectors of ``encoder``: its cached image
    features' (``ImageFeatureStage``) for the trunk space, the encoder's own for its joint space."""
    from scene_assets.embeddings import ImageFeatureStage

    return ImageFeatureStage.of(encoder).fingerprint if vector_space == "trunk" else encoder.fingerprint()


def _write_vectors(path: Path, n: int, dim: int, chunks: Iterable[tuple[list[str], np.ndarray]], rows_of,
                   mean: np.ndarray | None) -> int:
    """The exact vectors as the index compares them (L2-normalised, centred on ``mean`` when given),
    float16, in lookup order. Returns how many rows were filled (products of the vector sources that the
    index does not hold are skipped)."""
    target = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    filled = np.zeros(n, dtype=bool)
    for ids, vectors in chunks:
        rows = rows_of(list(ids))
        known = rows >= 0
        target[rows[known]] = center_and_normalize(np.asarray(vectors, dtype=np.float32)[known], mean).astype(np.float16)
        filled[rows[known]] = True
    target.flush()
    del target
    return int(filled.sum())


def _text_chunk(ids: pl.Series, text_vectors: pl.DataFrame | None, dim: int | None):
    if text_vectors is None or dim is None:
        return None, None
    joined = pl.DataFrame({"product_id": ids}).join(text_vectors, on="product_id", how="left", maintain_order="left")
    mask = joined["vector"].is_not_null().to_numpy()
    matrix = np.zeros((joined.height, dim), dtype=np.float32)
    if mask.any():
        matrix[mask] = np.asarray(joined.filter(pl.col("vector").is_not_null())["vector"].to_list(), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1)
    mask &= norms > 0
    matrix[mask] /= norms[mask, None]
    return matrix, mask


def write_two_stage_bundle(
    directory: str | os.PathLike,
    merged_dir: str | os.PathLike,
    *,
    catalog: pl.DataFrame,
    vector_chunks: Iterable[tuple[list[str], np.ndarray]],
    encoder,
    encoder_spec: Any,
    text_vectors: pl.DataFrame | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict:
    """Write a two-stage bundle into ``directory`` serving the merged index ``merged_dir`` (built from
    ``encoder``'s image features or vectors, as its manifest's ``vector_space`` says: the fingerprint is
    checked). ``catalog``: the enriched catalog; ``vector_chunks``: ``(product ids, vectors)`` chunks of
    the indexed vectors as the vector sets store them (the sharded index's ``VectorSource.chunks``;
    centred here on the index's catalog mean when it is centred); ``text_vectors``: product_id, vector (optional). Returns the bundle dict."""
    from scene_assets.encoders import EncoderSpec
    from scene_assets.recommender_bundle import BUNDLE_FORMAT, PRODUCT_COLUMNS_DIR, publish_bundle, write_product_info

    started = time.perf_counter()
    directory, merged_dir = Path(directory), Path(merged_dir).resolve()
    space = str(read_manifest(merged_dir / MANIFEST_FILE).get("vector_space") or "joint")
    opened = open_index(merged_dir, expected_fingerprint=index_fingerprint(encoder, space))
    if opened.kind != "sharded":
        raise ValueError(f"{merged_dir}: a two-stage bundle serves a merged sharded index, this is a {opened.kind} index")
    mean = opened.manifest.get("catalog_mean")
    mean = None if mean is None else np.asarray(mean, dtype=np.float32)
    manifest_sha = hashlib.sha256((merged_dir / MANIFEST_FILE).read_bytes()).hexdigest()
    n, dim = int(opened.searcher.ntotal), int(opened.searcher.d)
    ids = pl.Series("product_id", opened.product_ids.array).cast(pl.String)
    catalog_sha = hashlib.sha256(catalog.hash_rows().to_numpy().tobytes()).hexdigest()
    text_sha = (hashlib.sha256(text_vectors.select("product_id").hash_rows().to_numpy().tobytes()
                               + text_vectors["vector"].hash().to_numpy().tobytes()).hexdigest()
                if text_vectors is not None else None)
    version = hashlib.sha256(f"{manifest_sha}:{catalog_sha}:{text_sha}".encode()).hexdigest()[:16]
    relative = f"{PRODUCT_COLUMNS_DIR}/{version}"
    folder = directory / relative
    folder.mkdir(parents=True, exist_ok=True)

    filled = _write_vectors(folder / VECTORS_FILE, n, dim, vector_chunks, _row_lookup(np.asarray(opened.int_ids)), mean)
    if filled != n:
        raise ValueError(f"the vector sources hold {filled} of the index's {n} products: not the index's vectors")

    attributes = aligned_catalog(ids, catalog)
    info = ProductInfo.build(attributes)
    text_dim = None
    if text_vectors is not None and text_vectors.height:
        text_vectors = text_vectors.select("product_id", "vector")
        text_dim = len(text_vectors["vector"][0])
    logits = product_style_logits(encoder)
    files: dict[str, str] = {}
    columns: dict[str, np.ndarray] = {}
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        text, mask = _text_chunk(ids[start:stop], text_vectors, text_dim)
        part = ProductFactors.build(attributes[start:stop], CodedColumn(info.category.codes[start:stop], info.category.names),
                                    text, mask, logits).columns()
        for name, array in part.items():
            if name not in columns:
                columns[name] = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=array.dtype,
                                                          shape=(n, *array.shape[1:]))
                files[name] = f"{relative}/{name}.npy"
            columns[name][start:stop] = array
    for array in columns.values():
        array.flush()
    del columns
    info_entry = write_product_info(folder, relative, info, ids.to_arrow().cast(pa.large_string()),
                                    np.asarray(opened.int_ids))
    spec = encoder_spec.to_dict() if isinstance(encoder_spec, EncoderSpec) else dict(encoder_spec)
    bundle = {
        "format": BUNDLE_FORMAT,
        "kind": TWO_STAGE_KIND,
        "version": version,
        "index_dir": str(merged_dir),
        "index_manifest_sha256": manifest_sha,
        "products_sha256": catalog_sha,
        "text_vectors_sha256": text_sha,
        "count": n,
        "vector_space": space,
        "centred": mean is not None,
        "encoder_fingerprint": index_fingerprint(encoder, space),
        "encoder_spec": spec,
        "text_fingerprint": encoder.text_fingerprint() if text_vectors is not None else None,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "write_seconds": round(time.perf_counter() - started, 1),
        "product_columns": {
            "files": files, "count": n, "products_sha256": catalog_sha, "text_vectors_sha256": text_sha,
            "text_fingerprint": encoder.text_fingerprint(), "info": info_entry,
            "vectors": f"{relative}/{VECTORS_FILE}"},
    }
    publish_bundle(directory, bundle)
    return bundle


def chained(chunks: Iterable[Iterable[tuple[list[str], np.ndarray]]]) -> Iterator[tuple[list[str], np.ndarray]]:
    """One stream of ``(ids, vectors)`` chunks from several sources' ``chunks()``."""
    for source in chunks:
        yield from source
