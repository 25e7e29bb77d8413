import dagster as dg

from pipelines.catalog.assets import cleaned_catalog


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[cleaned_catalog])
