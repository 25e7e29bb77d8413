"""Columnar product attributes (``scene_assets.ranking.catalog``): no Python object per product (#19)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from scene_assets.ranking.catalog import CodedColumn, ProductInfo, StringColumn, aligned_catalog, member_mask
from scene_assets.ranking.rerank import allowed_mask
from scene_assets.recommender_bundle import _write_arrow, map_arrow


def test_string_column_indexes_like_an_object_array():
    values = ["a", None, "ccc", "dé"]
    column = StringColumn(values)
    reference = np.asarray(values, dtype=object)
    assert len(column) == 4 and list(column) == values
    assert column[2] == "ccc" and column[np.int64(1)] is None
    rows = np.array([3, 0, 3])
    assert list(column[rows]) == list(reference[rows])
    assert list(column[np.array([True, False, True, False])]) == ["a", "ccc"]
    assert column[np.zeros(0, dtype=np.int64)].shape == (0,)


def test_coded_column_and_member_mask_match_the_object_array():
    values = ["sofa", "lighting", "sofa", "rug", "lighting"]
    column = CodedColumn.encode(values)
    assert column.codes.dtype == np.int16 and len(column.names) == 3
    reference = np.asarray(values, dtype=object)
    assert list(column) == values and column[3] == "rug"
    np.testing.assert_array_equal(column[np.array([4, 0])], reference[[4, 0]])
    for names in (["sofa"], ["rug", "lighting"], ["bed"]):
        np.testing.assert_array_equal(member_mask(column, names), np.isin(reference, names))


def test_product_info_round_trips_through_stored_columns(tmp_path):
    catalog = pl.DataFrame({"product_id": ["p3", "p2", "p1", "p9"], "title": ["Lamp 2", "", "Lamp", "gone"],
                            "category": ["lighting", "not-a-category", "lighting", "rugs"],
                            "variant_group": ["g", None, "g", None]})
    info = ProductInfo.build(aligned_catalog(["p1", "p2", "p3", "p4"], catalog))
    assert list(info.category) == ["lighting", "other", "lighting", "other"]
    assert list(info.variant_group) == ["g", "p2", "g", "p4"]
    assert list(info.title) == ["Lamp", None, "Lamp 2", None] and list(info.product_type) == [None] * 4
    strings, codes, names = info.columns()
    path = tmp_path / "strings.arrow"
    with open(path, "wb") as handle:
        _write_arrow(handle, strings)
    for name, array in codes.items():
        np.save(tmp_path / f"{name}.npy", array)
    reopened = ProductInfo.from_columns(map_arrow(path), {n: np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in codes},
                                        names)
    for name in ("title", "product_type", "image_path", "category", "group", "variant_group"):
        assert list(getattr(reopened, name)) == list(getattr(info, name)), name
    # the filters read the codes: "lighting" excluded leaves the "other" product
    member = np.ones((4, 10))
    np.testing.assert_array_equal(allowed_mask(reopened.category, reopened.group, member, None, "lighting", None),
                                  [False, True, False, True])
    with pytest.raises(ValueError, match="disagree"):
        ProductInfo.from_columns(strings, {**codes, "category": codes["category"][:2]}, names)
    with pytest.raises(ValueError, match="missing"):
        ProductInfo.from_columns(pa.table({"title": strings.column("title")}), codes, names)


def test_columns_over_fixed_width_bytes_and_many_names():
    ids = np.array([b"p1", "pé".encode(), b"p333"])  # a sharded index's product_ids.npy
    column = StringColumn(ids)
    assert column[1] == "pé" and list(column[np.array([2, 0])]) == ["p333", "p1"] and list(column) == ["p1", "pé", "p333"]
    groups = CodedColumn(np.array([2, 0, 2], dtype=np.int32), StringColumn(["g0", "g1", "g2"]))
    assert isinstance(groups.names, StringColumn) and list(groups) == ["g2", "g0", "g2"] and groups[1] == "g0"
