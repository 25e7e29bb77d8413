import dagster as dg

from pipelines.enrichment.assets import enriched_catalog


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[enriched_catalog])
