"""Catalog domain: the cleaned product table and the table of rows that were dropped or degraded."""


import time

import dagster as dg
import polars as pl

from pipelines.catalog import checks
from pipelines.metadata import counts_table, markdown_table
from pipelines.resources import CatalogSource

CATALOG_GROUP = "catalog"


@dg.multi_asset(
    outs={
        "cleaned_catalog": dg.AssetOut(
            group_name=CATALOG_GROUP,
            description="One normalized row per product: stable product_id, sku, title/type, cleaned "
            "description, checked image reference, variant group and a content hash over everything "
            "that changes an embedding.",
            kinds={"polars", "parquet"},
        ),
        "catalog_issues": dg.AssetOut(
            group_name=CATALOG_GROUP,
            description="Every source row that was dropped or degraded, with its row/line number, the "
            "field and the reason (duplicate id, empty description, unreadable image, bad encoding…).",
            kinds={"polars", "parquet"},
        ),
    },
    check_specs=checks.CHECK_SPECS,
)
def cleaned_catalog(context: dg.AssetExecutionContext, catalog_source: CatalogSource):
    started = time.perf_counter()
    path = catalog_source.catalog_path()
    result = catalog_source.load()
    elapsed = time.perf_counter() - started
    products, issues = result.products, result.issues
    yield dg.Output(
        products,
        output_name="cleaned_catalog",
        metadata={
            "source": dg.MetadataValue.path(str(path)),
            "dagster/row_count": products.height,
            "products_with_image": result.stats["with_image"],
            "image_share": round(result.stats["with_image"] / max(products.height, 1), 4),
            "variant_groups": result.stats["variant_groups"],
            "rows_read": result.stats["rows_read"],
            "seconds": round(elapsed, 2),
            "image_status": counts_table(products, "image_status"),
            "preview": markdown_table(products.select("product_id", "sku", "title", "product_type", "image_status", "variant_group")),
        },
    )
    yield dg.Output(
        issues,
        output_name="catalog_issues",
        metadata={
            "dagster/row_count": issues.height,
            "dropped": result.stats["dropped"],
            "degraded": result.stats["degraded"],
            "by_reason": counts_table(
                issues.with_columns(pl.col("reason").str.split(":").list.first().alias("kind")), "kind"
            ),
            "preview": markdown_table(issues.select("row_number", "line", "product_id", "severity", "reason")),
        },
    )
    yield checks.product_ids_unique(products)
    yield checks.image_share(products)
