import dagster as dg

from pipelines.catalog.assets import cleaned_catalog
from pipelines.catalog.sensors import catalog_file_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[cleaned_catalog], sensors=[catalog_file_sensor])
