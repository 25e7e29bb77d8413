import dagster as dg

from pipelines.index.assets import product_index, scene_index


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[product_index, scene_index])
