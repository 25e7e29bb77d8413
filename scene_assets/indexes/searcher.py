"""One search interface over both index kinds, so the recommender can serve either.

* ``VectorSearcher``: what a recommender needs from an index: ``ntotal``, ``d``,
  ``search(queries, k, allowed_ids=None) -> (scores, ids)`` and ``reconstruct(ids)``. Ids are the
  stable product int ids (``ids.product_int_id``) in both kinds, -1 where fewer than k were found.
* ``FaissSearcher``: the implementation for a FAISS index of either kind (a flat/IVF index built in
  memory or loaded by ``flat_files.load_index``; a merged sharded index opened by
  ``sharded_serving.open_merged``).
* ``open_index(path)``: reads the folder's manifest and opens the right kind (a merged sharded
  folder's manifest says ``"stage": "merged"``; a flat folder's has no stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import faiss
import numpy as np

from scene_assets.indexes import flat_files, store
from scene_assets.indexes.errors import VectorIndexError
from scene_assets.indexes.sharded_serving import open_merged


class VectorSearcher(Protocol):
    """A product index as the recommender searches it. Queries are float32 rows in the index's
    space, already normalised as its vectors are (they are passed to FAISS as they are)."""

    @property
    def ntotal(self) -> int: ...

    @property
    def d(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k], int ids [nq, k]); ``allowed_ids`` restricts the results to those ids."""
        ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray | None:
        """The stored vectors of ``ids`` (float32), or None when the index cannot give them back."""
        ...


class FaissSearcher:
    """``VectorSearcher`` over a FAISS index whose ids are product int ids (either kind)."""

    def __init__(self, index: faiss.Index):
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        params = None
        if allowed_ids is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids))
            ivf = faiss.try_extract_index_ivf(self.index)
            params = (faiss.SearchParametersIVF(sel=sel, nprobe=int(ivf.nprobe)) if ivf is not None
                      else faiss.SearchParameters(sel=sel))
        return self.index.search(q, k, params=params) if params is not None else self.index.search(q, k)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray | None:
        try:
            return np.asarray(self.index.reconstruct_batch(np.ascontiguousarray(ids)), dtype=np.float32)
        except RuntimeError:
            return None


def as_searcher(index: faiss.Index | VectorSearcher) -> VectorSearcher:
    """A FAISS index wrapped as a ``VectorSearcher``; a searcher is returned as it is."""
    return FaissSearcher(index) if isinstance(index, faiss.Index) else index


@dataclass(frozen=True)
class OpenedIndex:
    searcher: VectorSearcher
    product_ids: Sequence[str]  # every indexed product (a memory-mapped StringColumn for the sharded kind)
    manifest: dict[str, Any]
    kind: Literal["flat", "sharded"]
    int_ids: np.ndarray | None = None  # the products' int ids in product_ids order, when stored


def open_index(directory: Path | str, *, expected_fingerprint: str | None = None) -> OpenedIndex:
    """Open a saved index of either kind for search, all its files checked against the manifest
    (``IndexCorruptError`` naming the file; ``FingerprintMismatchError`` for another encoder)."""
    directory = Path(directory)
    stage = store.read_manifest(directory / store.MANIFEST_FILE).get("stage")
    if stage == "merged":
        from scene_assets.ranking.catalog import StringColumn

        serving = open_merged(directory, expected_fingerprint=expected_fingerprint)
        # the id lookup stays memory-mapped: no Python string per product (10M of them: ~1 GB)
        return OpenedIndex(FaissSearcher(serving.index), StringColumn(serving.lookup_product_ids), serving.manifest,
                           "sharded", serving.lookup_int_ids)
    if stage is not None:
        raise VectorIndexError(f"{directory}: a {stage} folder of a sharded index cannot be searched; open its merged folder")
    index, manifest = flat_files.load_index(directory, expected_fingerprint=expected_fingerprint)
    pids = manifest.get("product_ids")
    if pids is None:
        raise ValueError(f"{directory}: manifest has no product_ids")
    return OpenedIndex(FaissSearcher(index), pids, manifest, "flat")
