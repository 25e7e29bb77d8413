import dagster as dg

from pipelines.catalog.assets import cleaned_catalog
from pipelines.catalog.checks import image_share, product_ids_unique


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[cleaned_catalog], asset_checks=[product_ids_unique, image_share])
