"""Product ids as FAISS ids: every string ``product_id`` maps to a stable non-negative int63
(``product_int_id``), the same in every index kind, shard and process; ``IdLookup`` maps result
ids back to strings with a sorted array."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scene_assets.indexes.errors import IdCollisionError

_INT63_MASK = (1 << 63) - 1


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


def ids_sha256(int_ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(int_ids, dtype=np.int64)).astype("<i8").tobytes()).hexdigest()


def to_int_ids(ids: Sequence[str] | np.ndarray) -> np.ndarray:
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


