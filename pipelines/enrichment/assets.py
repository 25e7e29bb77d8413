"""Enrichment domain: structured fields parsed from raw product text."""


import time

import dagster as dg
import polars as pl

from pipelines.enrichment import checks
from pipelines.metadata import counts_table, markdown_table
from scene_assets.enrichment import enrich_catalog


@dg.asset(
    group_name="enrichment",
    description="Cleaned catalog plus dimensions (cm), set counts, colours and materials in one shared "
    "vocabulary, category, size class and the text used for embedding (only words the source said).",
    kinds={"polars", "parquet"},
    check_specs=checks.CHECK_SPECS,
)
def enriched_catalog(cleaned_catalog: pl.DataFrame):
    started = time.perf_counter()
    enriched = enrich_catalog(cleaned_catalog)
    elapsed = time.perf_counter() - started
    total = max(enriched.height, 1)
    yield dg.Output(
        enriched,
        metadata={
            "dagster/row_count": enriched.height,
            "seconds": round(elapsed, 2),
            "with_category": int((enriched["category"] != "other").sum()),
            "with_dimensions": int((enriched["dimensions_cm"].list.len() > 0).sum()),
            "with_colors": int((enriched["colors"].list.len() > 0).sum()),
            "category_share": round(int((enriched["category"] != "other").sum()) / total, 4),
            "categories": counts_table(enriched, "category"),
            "preview": markdown_table(
                enriched.select("product_id", "title", "category", "colors", "materials", "dimensions_cm", "size_class")
            ),
        },
    )
    yield checks.enrichment_complete(enriched, cleaned_catalog)
