
import dagster as dg
import polars as pl


@dg.asset_check(
    asset="enriched_catalog",
    blocking=True,
    additional_ins={"cleaned_catalog": dg.AssetIn("cleaned_catalog")},
    description="Enrichment keeps every product and gives each an embedding text.",
)
def enrichment_complete(enriched_catalog: pl.DataFrame, cleaned_catalog: pl.DataFrame) -> dg.AssetCheckResult:
    missing_ids = set(cleaned_catalog["product_id"]) - set(enriched_catalog["product_id"])
    empty_text = enriched_catalog.filter(pl.col("embedding_text").fill_null("") == "").height
    return dg.AssetCheckResult(
        passed=not missing_ids and empty_text == 0,
        metadata={"missing_products": len(missing_ids), "empty_embedding_text": empty_text},
    )
