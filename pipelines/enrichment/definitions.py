import dagster as dg

from pipelines.enrichment.assets import enriched_catalog
from pipelines.enrichment.checks import enrichment_complete


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[enriched_catalog], asset_checks=[enrichment_complete])
