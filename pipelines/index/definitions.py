import dagster as dg

from pipelines.index.assets import scene_index
from pipelines.index.sharded_assets import ivf_merged_index, ivf_shard_index, ivf_trained_index, two_stage_bundle


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[scene_index, ivf_trained_index, ivf_shard_index, ivf_merged_index, two_stage_bundle])
