import dagster as dg

from pipelines.index.assets import product_index
from pipelines.index.checks import index_matches_vectors


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[product_index], asset_checks=[index_matches_vectors])
