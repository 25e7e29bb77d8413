"""Resources shared by every domain: where data lives and where the catalog comes from.

Their values for the project's Definitions (environment variables when set, so Dagster workers on
other machines agree, otherwise the embedded synthetic sample under `data/sample`) are chosen by
`default_resources()` in pipelines/definitions.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
from pydantic import Field

from scene_assets import settings
from scene_assets.catalog import CatalogOptions, CatalogResult, ColumnMapping, MAPPING_PRESETS, load_catalog
from scene_assets.images import FetchPolicy


class ProjectStorage(dg.ConfigurableResource):
    """Root folder for everything the pipeline writes (vectors, indexes, exports, caches)."""

    data_dir: str = Field(description="Folder the pipeline writes into; git-ignored.")

    def path(self, *parts: str) -> Path:
        target = Path(self.data_dir).joinpath(*parts)
        target.mkdir(parents=True, exist_ok=True)
        return target


class CatalogSource(dg.ConfigurableResource):
    """The product catalog to read and how its columns map onto the normalized fields."""

    path: str = Field(
        default="",
        description="CSV or Parquet catalog file. Empty: the embedded synthetic sample (data/sample/products.csv).",
    )
    mapping: str = Field(
        default="labeled",
        description=f"Column-mapping preset: one of {sorted(MAPPING_PRESETS)}.",
    )
    column_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Per-field column names that replace the preset's, e.g. {'title': 'product_name'}; "
        "an empty string unmaps a field.",
    )
    fetch_remote_images: bool = Field(
        default=True,
        description="Fetch http(s) image URLs (private, loopback and link-local addresses are always refused).",
    )
    fetch_timeout_s: float = Field(default=10.0, description="Timeout per image download, seconds.")
    fetch_max_bytes: int = Field(default=20_000_000, description="Largest image download accepted, bytes.")
    image_cache_dir: str = Field(default="", description="Where fetched images are cached. Empty: <data_dir>/cache/images.")
    image_root: str = Field(
        default="",
        description="Folder that local image paths (and the targets of symlinks) must stay inside; others are "
        "refused and the product kept text-only. Empty: the catalog file's folder.",
    )

    def catalog_path(self) -> Path:
        if self.path:
            return Path(self.path).expanduser().resolve()
        from scene_assets.sample_data import ensure_sample_dataset

        return ensure_sample_dataset(settings.sample_dataset_dir()) / "products.csv"

    def column_mapping(self) -> ColumnMapping:
        preset = MAPPING_PRESETS[self.mapping]
        if not self.column_overrides:
            return preset
        overrides = {name: (column or None) for name, column in self.column_overrides.items()}
        return ColumnMapping(**{**preset.__dict__, **overrides})

    def load(self) -> CatalogResult:
        cache_dir = Path(self.image_cache_dir) if self.image_cache_dir else settings.data_dir() / "cache" / "images"
        policy = FetchPolicy(
            enabled=self.fetch_remote_images,
            timeout_s=self.fetch_timeout_s,
            max_bytes=self.fetch_max_bytes,
            cache_dir=cache_dir,
        )
        path = self.catalog_path()
        # One check cache per catalog file, so two catalogs never share (or fight over) one.
        cache_key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        check_cache = settings.data_dir() / "cache" / "image_checks" / f"{cache_key}.parquet"
        image_root = Path(self.image_root).expanduser().resolve() if self.image_root else path.parent
        options = CatalogOptions(fetch_policy=policy, data_root=image_root, image_check_cache=check_cache)
        return load_catalog(path, self.column_mapping(), options)
