"""Labeled dataset loading: any folder in the format of ``../shared/ikea/README.md``.

``products.csv`` (product_id, name, type, color, size, description, image), ``scenes.csv``
(scene_id, image, room_type, caption) and ``scene_products.csv`` (scene_id, product_id), images
relative to the folder. Products go through the same catalog loader and enrichment as the pipeline
(so image problems are found and recorded the same way); scenes whose image is missing, or that have
no labeled product with an image, are listed in ``skipped`` with the reason instead of failing the
run. Bad files raise :class:`DatasetError` naming the file and, where it applies, the row.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from scene_assets.catalog import load_catalog
from scene_assets.enrichment import enrich_catalog

__all__ = ["DatasetError", "LabeledDataset", "evaluation_group", "load_labeled_dataset"]

SCENE_COLUMNS = ("scene_id", "image", "room_type")
PAIR_COLUMNS = ("scene_id", "product_id")
EVALUATION_GROUPS = ("chair", "sofa", "table")


class DatasetError(ValueError):
    """A labeled dataset file is missing or malformed."""


def evaluation_group(product_type: str | None, category: str | None) -> str | None:
    """The group of the published IKEA protocol (chair, sofa, table) a product belongs to, if any:
    seating whose type names a sofa / chaise longue -> sofa, other seating naming a chair -> chair,
    tables other than bare parts (tops, leg frames, trestles) -> table."""
    t = (product_type or "").lower()
    # a cover *for* a sofa is not a sofa ("Cover two-seat sofa"); "Chair with long cover" is a chair
    is_cover = t.startswith("cover")
    if category == "seating" and not is_cover:
        if re.search(r"\bsofa|chaise longue", t):
            return "sofa"
        if "chair" in t:
            return "chair"
    if category == "tables" and not re.search(r"\b(top|leg frame|trestle)\b", t):
        return "table"
    return None


@dataclass
class LabeledDataset:
    root: Path
    products: pl.DataFrame  # enriched catalog, products with a usable image only, sorted by id
    scenes: pl.DataFrame  # scene_id, image_path, room_type, caption (scenes that can be scored)
    relevant: dict[str, set[str]]  # scene_id -> labeled product ids that have an image
    fingerprint: str  # sha256 of the three CSV files (what was labeled, not the images)
    skipped_scenes: list[tuple[str, str]] = field(default_factory=list)  # (scene_id, reason)
    products_without_image: int = 0

    @property
    def scene_ids(self) -> list[str]:
        return self.scenes["scene_id"].to_list()

    def rooms(self) -> dict[str, str]:
        return dict(zip(self.scenes["scene_id"].to_list(), self.scenes["room_type"].to_list()))

    def describe(self) -> dict:
        return {"root": str(self.root), "products": self.products.height, "scenes": self.scenes.height,
                "labeled_pairs": sum(len(v) for v in self.relevant.values()),
                "skipped_scenes": len(self.skipped_scenes),
                "products_without_image": self.products_without_image, "fingerprint": self.fingerprint}


def _read_csv(path: Path, required: tuple[str, ...]) -> pl.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (a labeled dataset needs products.csv, scenes.csv and "
                           "scene_products.csv)")
    try:
        df = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise DatasetError(f"{path}: cannot be read as CSV: {exc}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; has {df.columns}")
    for col in required:
        empty = df.with_row_index("row").filter(pl.col(col).is_null() | (pl.col(col).str.strip_chars() == ""))
        if empty.height:
            # +2: one for the header line, one because the index starts at 0
            raise DatasetError(f"{path}: row {int(empty['row'][0]) + 2} has an empty {col!r}")
    return df


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_labeled_dataset(root: str | os.PathLike) -> LabeledDataset:
    """Load and validate a labeled dataset folder (see module docstring)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(
            f"{root}: labeled dataset folder not found. Pass --dataset DIR (a folder with products.csv, scenes.csv, "
            "scene_products.csv and images/, like ../shared/ikea), set SCENE_MATCHER_EVAL_DATASET for the Dagster "
            "assets, or make one with `scene-matcher data sample DIR`"
        )
    scenes = _read_csv(root / "scenes.csv", SCENE_COLUMNS)
    pairs = _read_csv(root / "scene_products.csv", PAIR_COLUMNS)
    if not (root / "products.csv").is_file():
        raise DatasetError(f"{root / 'products.csv'}: file not found")
    fingerprint = _hash_files([root / "products.csv", root / "scenes.csv", root / "scene_products.csv"])

    result = load_catalog(root / "products.csv", "labeled")
    catalog = enrich_catalog(result.products)
    with_image = catalog.filter(pl.col("image_status") == "ok").sort("product_id")
    have_image = set(with_image["product_id"].to_list())
    known = set(catalog["product_id"].to_list())

    unknown = pairs.filter(~pl.col("product_id").is_in(list(known)))
    if unknown.height:
        first = unknown.row(0, named=True)
        raise DatasetError(f"{root / 'scene_products.csv'}: {unknown.height} row(s) name products missing from "
                           f"products.csv, e.g. {first['product_id']!r} in scene {first['scene_id']!r}")
    relevant: dict[str, set[str]] = {}
    for sid, pid in pairs.select(PAIR_COLUMNS).iter_rows():
        if pid in have_image:
            relevant.setdefault(sid, set()).add(pid)

    if "caption" not in scenes.columns:
        scenes = scenes.with_columns(pl.lit(None, dtype=pl.String).alias("caption"))
    dupes = scenes.filter(pl.col("scene_id").is_duplicated())
    if dupes.height:
        raise DatasetError(f"{root / 'scenes.csv'}: scene_id {dupes['scene_id'][0]!r} appears more than once")
    keep, skipped = [], []
    for rec in scenes.iter_rows(named=True):
        sid = rec["scene_id"]
        # containment is checked on the written path (a symlinked images/ folder is fine, "../x" is not)
        path = Path(os.path.normpath(root / rec["image"]))
        if root not in path.parents:
            skipped.append((sid, f"image path {rec['image']!r} leaves the dataset folder"))
        elif not path.is_file():
            skipped.append((sid, f"image {rec['image']!r} not found"))
        elif not relevant.get(sid):
            skipped.append((sid, "no labeled product with an image"))
        else:
            keep.append({"scene_id": sid, "image_path": str(path), "room_type": rec["room_type"],
                         "caption": rec["caption"]})
    kept = pl.DataFrame(keep, schema={"scene_id": pl.String, "image_path": pl.String, "room_type": pl.String,
                                      "caption": pl.String})
    return LabeledDataset(root, with_image, kept, {s: relevant[s] for s in kept["scene_id"].to_list()},
                          fingerprint, skipped, catalog.height - with_image.height)
