"""Asset checks on the cleaned catalog. Unique ids are blocking: every later step keys on them."""


import dagster as dg
import polars as pl

MIN_IMAGE_SHARE = 0.5


@dg.asset_check(asset="cleaned_catalog", blocking=True, description="product_id is unique and never empty.")
def product_ids_unique(cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    duplicated = cleaned_catalog.filter(pl.col("product_id").is_duplicated())["product_id"].unique().to_list()
    empty = cleaned_catalog.filter(pl.col("product_id").is_null() | (pl.col("product_id") == "")).height
    return dg.AssetCheckResult(
        passed=not duplicated and empty == 0,
        metadata={"duplicated_ids": len(duplicated), "examples": ", ".join(map(str, duplicated[:10])), "empty_ids": empty},
    )


@dg.asset_check(
    asset="cleaned_catalog",
    description=f"At least {MIN_IMAGE_SHARE:.0%} of products have a readable image (else visual matching is weak).",
)
def image_share(cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    total = cleaned_catalog.height
    with_image = int((cleaned_catalog["image_status"] == "ok").sum())
    share = with_image / total if total else 0.0
    return dg.AssetCheckResult(
        passed=share >= MIN_IMAGE_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"image_share": round(share, 4), "with_image": with_image, "products": total},
    )
