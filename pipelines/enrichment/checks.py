"""Checks on the enriched catalog, evaluated inside the asset's step on the frames in memory."""

import dagster as dg
import polars as pl

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "enrichment_complete",
        asset="enriched_catalog",
        blocking=True,
        description="Enrichment keeps every product and gives each an embedding text.",
    )
]


def enrichment_complete(enriched_catalog: pl.DataFrame, cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    missing_ids = set(cleaned_catalog["product_id"]) - set(enriched_catalog["product_id"])
    empty_text = enriched_catalog.filter(pl.col("embedding_text").fill_null("") == "").height
    return dg.AssetCheckResult(
        check_name="enrichment_complete",
        passed=not missing_ids and empty_text == 0,
        metadata={"missing_products": len(missing_ids), "empty_embedding_text": empty_text},
    )
