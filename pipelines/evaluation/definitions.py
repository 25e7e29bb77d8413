import dagster as dg

from pipelines.evaluation.assets import learned_scorer, rerank_sweep, scene_evaluation, scoring_weights, weight_sweep


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[scene_evaluation, weight_sweep, rerank_sweep, scoring_weights, learned_scorer])
