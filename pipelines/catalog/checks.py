"""Checks on the cleaned catalog, evaluated inside the asset's own step on the frame it just built
(no second read, no extra step). Unique ids are blocking: every later step keys on them."""


import dagster as dg
import polars as pl

MIN_IMAGE_SHARE = 0.5

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "product_ids_unique", asset="cleaned_catalog", blocking=True, description="product_id is unique and never empty."
    ),
    dg.AssetCheckSpec(
        "image_share",
        asset="cleaned_catalog",
        description=f"At least {MIN_IMAGE_SHARE:.0%} of products have a readable image (else visual matching is weak).",
    ),
]


def product_ids_unique(cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    duplicated = cleaned_catalog.filter(pl.col("product_id").is_duplicated())["product_id"].unique().to_list()
    empty = cleaned_catalog.filter(pl.col("product_id").is_null() | (pl.col("product_id") == "")).height
    return dg.AssetCheckResult(
        asset_key="cleaned_catalog",
        check_name="product_ids_unique",
        passed=not duplicated and empty == 0,
        metadata={"duplicated_ids": len(duplicated), "examples": ", ".join(map(str, duplicated[:10])), "empty_ids": empty},
    )


def image_share(cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    total = cleaned_catalog.height
    with_image = int((cleaned_catalog["image_status"] == "ok").sum())
    share = with_image / total if total else 0.0
    return dg.AssetCheckResult(
        asset_key="cleaned_catalog",
        check_name="image_share",
        passed=share >= MIN_IMAGE_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"image_share": round(share, 4), "with_image": with_image, "products": total},
    )
