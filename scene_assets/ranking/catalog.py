"""What the ranking knows about each indexed product, read from the enriched catalog (rows in index
order): descriptive attributes (:class:`ProductInfo`) and aligned text vectors. No Dagster imports.

Attributes are held as columns, not one Python object per product: strings in Arrow arrays
(:class:`StringColumn`, memory-mapped from the bundle for large catalogs) and categories / variant
groups as integer codes over their distinct values (:class:`CodedColumn`). At 10M products one
Python string per product and attribute would take gigabytes; the columns take the bytes of the text
(in the shared page cache when mapped) and 2-4 bytes per code."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from scene_assets import vocabulary as vocab

log = logging.getLogger(__name__)

__all__ = ["CodedColumn", "ProductInfo", "StringColumn", "align_text_vectors", "aligned_catalog", "member_mask"]

_COLUMNS = ("product_id", "title", "product_type", "category", "colors", "materials", "size_class",
            "variant_group", "room_hints", "style_words", "image_path", "parsed_product_type")


def aligned_catalog(product_ids: Sequence[str], catalog: pl.DataFrame | None) -> pl.DataFrame:
    """The catalog's attribute columns (those the ranking reads) with one row per indexed product, in
    index order: nulls where the catalog has no such product or column (a duplicated product id: its
    last row). Products missing from the catalog are logged."""
    ids = pl.DataFrame({"product_id": pl.Series([str(p) for p in product_ids], dtype=pl.String)})
    if catalog is not None and catalog.height:
        if "product_id" not in catalog.columns:
            raise ValueError("catalog needs a product_id column")
        present = [c for c in _COLUMNS if c in catalog.columns]
        rows = (catalog.select(present).with_columns(pl.col("product_id").cast(pl.String), _in_catalog=pl.lit(True))
                .unique("product_id", keep="last", maintain_order=True))
        aligned = ids.join(rows, on="product_id", how="left", maintain_order="left")
    else:
        aligned = ids.with_columns(_in_catalog=pl.lit(None, dtype=pl.Boolean))
    missing = aligned.filter(pl.col("_in_catalog").is_null())["product_id"]
    if missing.len():
        log.warning("%d indexed products are not in the catalog (scored as category 'other'), e.g. %s",
                    missing.len(), missing.head(3).to_list())
    return aligned.drop("_in_catalog").with_columns(
        [pl.lit(None).alias(c) for c in _COLUMNS if c not in aligned.columns])


def _text(column: pl.Expr) -> pl.Expr:
    """A catalog value as a non-empty string, else null."""
    column = column.cast(pl.String)
    return pl.when(column == "").then(None).otherwise(column)


class StringColumn:
    """Strings (or None) in one Arrow array: ``column[i]`` is a ``str`` / None, ``column[rows]`` an
    object array of those; iterating yields every value (small catalogs: evaluation, exports)."""

    __slots__ = ("array",)

    def __init__(self, values: pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str | None]):
        if isinstance(values, pa.ChunkedArray) and values.num_chunks == 1:
            values = values.chunk(0)  # (several chunks are kept as they are: take() reads across them)
        if isinstance(values, np.ndarray) and values.dtype.kind == "S":
            # fixed-width utf-8 bytes (a sharded index's product id lookup, memory-mapped): kept as they are
            self.array = values
            return
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array([None if v is None else str(v) for v in values], type=pa.large_string())
        self.array = values

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key):
        as_bytes = isinstance(self.array, np.ndarray)
        if isinstance(key, (int, np.integer)):
            return self.array[int(key)].decode("utf-8") if as_bytes else self.array[int(key)].as_py()
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        out = np.empty(rows.shape, dtype=object)
        if as_bytes:
            out.ravel()[:] = [b.decode("utf-8") for b in self.array[rows.ravel()]]
        else:
            out.ravel()[:] = self.array.take(pa.array(rows.ravel().astype(np.int64))).to_pylist()
        return out

    def __iter__(self):
        if isinstance(self.array, np.ndarray):
            return (b.decode("utf-8") for b in self.array)
        return iter(self.array.to_pylist())


class CodedColumn:
    """A column of repeated values: ``codes`` (one integer per product, possibly a memory-mapped
    array) into ``names`` (an object array, or a :class:`StringColumn` when there are as many values
    as products, e.g. variant groups). Indexing gives the values, like an object array would."""

    __slots__ = ("codes", "names")

    def __init__(self, codes: np.ndarray, names: Sequence[str] | StringColumn):
        self.codes = codes
        self.names = names if isinstance(names, StringColumn) else np.asarray(list(names), dtype=object)

    @classmethod
    def encode(cls, values: Sequence[str] | pl.Series) -> "CodedColumn":
        """Codes into the sorted distinct values (no nulls)."""
        values = values if isinstance(values, pl.Series) else pl.Series(list(values), dtype=pl.String)
        names = values.unique().sort()
        dtype = pl.Int16 if names.len() < 2**15 else pl.Int32 if names.len() < 2**31 else pl.Int64
        codes = values.replace_strict(names, pl.int_range(names.len(), eager=True), return_dtype=dtype)
        return cls(codes.to_numpy(), names.to_list() if names.len() < 100_000 else StringColumn(names.to_arrow()))

    @property
    def shape(self) -> tuple[int]:
        return (len(self.codes),)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key):
        return self.names[self.codes[key]]

    def __iter__(self):
        return iter(self.names[np.asarray(self.codes)])


def member_mask(column: CodedColumn | np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Rows whose value is one of ``names`` (on the codes of a :class:`CodedColumn`: no string per row)."""
    if isinstance(column, CodedColumn):
        wanted = np.flatnonzero(np.isin(np.asarray(list(column.names), dtype=object), list(names)))
        return np.isin(column.codes, wanted)
    return np.isin(column, list(names))


@dataclass(frozen=True)
class ProductInfo:
    """Descriptive attributes in index order; ``category`` is a vocabulary category ("other" when
    unknown), ``variant_group`` the product id when the catalog names none. :meth:`columns` /
    :meth:`from_columns` store and reopen them (a bundle's product columns)."""

    title: StringColumn
    product_type: StringColumn
    image_path: StringColumn
    category: CodedColumn
    group: CodedColumn  # the category's group
    variant_group: CodedColumn

    @classmethod
    def build(cls, products: pl.DataFrame) -> "ProductInfo":
        """From the catalog's attributes in index order (:func:`aligned_catalog`), column-wise."""
        frame = products.select(
            title=_text(pl.col("title")),
            product_type=pl.coalesce(_text(pl.col("product_type")), _text(pl.col("parsed_product_type"))),
            image_path=_text(pl.col("image_path")),
            category=pl.when(_text(pl.col("category")).is_in(list(vocab.CATEGORY_ROOMS)))
            .then(_text(pl.col("category"))).otherwise(pl.lit(vocab.OTHER_CATEGORY)),
            variant_group=pl.coalesce(_text(pl.col("variant_group")), pl.col("product_id")),
        )
        category = CodedColumn.encode(frame["category"])
        return cls(
            **{name: StringColumn(frame[name].to_arrow().cast(pa.large_string())) for name in cls.STRINGS},
            category=category,
            group=CodedColumn(category.codes, [vocab.CATEGORY_GROUP.get(c, "other") for c in category.names]),
            variant_group=CodedColumn.encode(frame["variant_group"]),
        )

    STRINGS = ("title", "product_type", "image_path")
    CODED = ("category", "variant_group")

    def columns(self) -> tuple[pa.Table, dict[str, np.ndarray], dict[str, Any]]:
        """``(strings, codes, names)``: the string attributes as one Arrow table, the codes of the coded
        ones by name, and their distinct values: the categories as a list, the variant groups (as many
        as products) as an Arrow array."""
        strings = pa.table({name: getattr(self, name).array for name in self.STRINGS})
        codes = {name: np.asarray(getattr(self, name).codes) for name in self.CODED}
        groups = self.variant_group.names
        names = {"category": [str(v) for v in self.category.names],
                 "variant_group": groups.array if isinstance(groups, StringColumn) else
                 pa.array([str(v) for v in groups], type=pa.large_string())}
        return strings, codes, names

    @classmethod
    def from_columns(cls, strings: pa.Table, codes: Mapping[str, np.ndarray],
                     names: Mapping[str, Sequence[str]]) -> "ProductInfo":
        """The inverse of :meth:`columns` (the table and codes may be memory-mapped)."""
        missing = [c for c in cls.STRINGS if c not in strings.column_names] + [c for c in cls.CODED if c not in codes]
        if missing:
            raise ValueError(f"product info columns missing: {missing}")
        counts = {strings.num_rows} | {len(codes[c]) for c in cls.CODED}
        if len(counts) != 1:
            raise ValueError(f"product info columns disagree on the product count: {sorted(counts)}")
        category = CodedColumn(codes["category"], names["category"])
        groups = names["variant_group"]
        return cls(
            **{name: StringColumn(strings.column(name)) for name in cls.STRINGS},
            category=category,
            group=CodedColumn(category.codes, [vocab.CATEGORY_GROUP.get(c, "other") for c in category.names]),
            variant_group=CodedColumn(codes["variant_group"], StringColumn(groups) if isinstance(
                groups, (pa.Array, pa.ChunkedArray, np.ndarray)) else groups),
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
