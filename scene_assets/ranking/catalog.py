"""What the ranking knows about each indexed product, read from the enriched catalog (rows in index
order): descriptive attributes (:class:`ProductInfo`) and aligned text vectors. No Dagster imports."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from scene_assets import vocabulary as vocab
from scene_assets.ranking.factors import as_str

log = logging.getLogger(__name__)

__all__ = ["ProductInfo", "align_text_vectors", "catalog_attributes"]

_COLUMNS = ("product_id", "title", "product_type", "category", "colors", "materials", "size_class",
            "variant_group", "room_hints", "style_words", "image_path", "parsed_product_type")


def catalog_attributes(product_ids: Sequence[str], catalog: pl.DataFrame | None) -> Callable[[str, str], Any]:
    """``attribute(product_id, column)``: the catalog's value (None when the product or the column is
    missing; products missing from the catalog are logged)."""
    rows: dict[str, dict[str, Any]] = {}
    if catalog is not None and catalog.height:
        if "product_id" not in catalog.columns:
            raise ValueError("catalog needs a product_id column")
        present = [c for c in _COLUMNS if c in catalog.columns]
        for rec in catalog.select(present).iter_rows(named=True):
            rows[str(rec["product_id"])] = rec
    missing = [pid for pid in product_ids if pid not in rows]
    if missing:
        log.warning("%d indexed products are not in the catalog (scored as category 'other'), e.g. %s",
                    len(missing), missing[:3])
    return lambda pid, c: rows.get(pid, {}).get(c)


@dataclass(frozen=True)
class ProductInfo:
    """Descriptive attributes in index order; ``category`` is a vocabulary category ("other" when
    unknown), ``variant_group`` the product id when the catalog names none."""

    title: list[str | None]
    product_type: list[str | None]
    image_path: list[str | None]
    category: np.ndarray  # object
    group: np.ndarray  # object: the category's group
    variant_group: np.ndarray  # object

    @classmethod
    def build(cls, product_ids: Sequence[str], attribute: Callable[[str, str], Any]) -> "ProductInfo":
        cats = []
        for p in product_ids:
            c = as_str(attribute(p, "category")) or vocab.OTHER_CATEGORY
            cats.append(c if c in vocab.CATEGORY_ROOMS else vocab.OTHER_CATEGORY)
        return cls(
            title=[as_str(attribute(p, "title")) for p in product_ids],
            product_type=[as_str(attribute(p, "product_type")) or as_str(attribute(p, "parsed_product_type"))
                          for p in product_ids],
            image_path=[as_str(attribute(p, "image_path")) for p in product_ids],
            category=np.asarray(cats, dtype=object),
            group=np.asarray([vocab.CATEGORY_GROUP.get(c, "other") for c in cats], dtype=object),
            variant_group=np.asarray([as_str(attribute(p, "variant_group")) or p for p in product_ids], dtype=object),
        )


def align_text_vectors(product_ids: Sequence[str],
                       text_vectors: Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray] | None
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(unit text vectors in index order, has-a-vector mask)`` (float32), or ``(None, None)``."""
    if text_vectors is None:
        return None, None
    if isinstance(text_vectors, tuple):
        ids, mat = text_vectors
        mat = np.asarray(mat, dtype=np.float32)
        if len(ids) == len(product_ids) and all(a == b for a, b in zip(ids, product_ids)):
            # Already in index order (a saved bundle): normalise in place, no per-product copy;
            # all-zero rows mark products without a text vector.
            norms = np.linalg.norm(mat, axis=1)
            mask = norms > 0
            mat /= np.where(mask, norms, 1.0)[:, None]
            return mat, mask
        mapping = {str(pid): mat[i] for i, pid in enumerate(ids)}
    else:
        mapping = text_vectors
    if not mapping:
        return None, None
    dim = len(next(iter(mapping.values())))
    T = np.zeros((len(product_ids), dim), dtype=np.float32)
    mask = np.zeros(len(product_ids), dtype=bool)
    for i, pid in enumerate(product_ids):
        v = mapping.get(pid)
        if v is not None:
            v = np.asarray(v, dtype=np.float32)
            nv = float(np.linalg.norm(v))
            if nv > 0:
                T[i] = v / nv
                mask[i] = True
    return T, mask
