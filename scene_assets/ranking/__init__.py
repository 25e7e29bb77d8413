"""Ranking: the factors, their fusion into one score, and the re-ranking of the top k.

* :mod:`~scene_assets.ranking.factors`: factor names, every default weight, one function per factor;
* :mod:`~scene_assets.ranking.config`: :class:`ScoringWeights` and :class:`RankingConfig` (typed, with limits);
* :mod:`~scene_assets.ranking.fusion`: the one choice between the weighted mean and the learned ranker;
* :mod:`~scene_assets.ranking.ranker`: the learned :class:`FusionRanker`;
* :mod:`~scene_assets.ranking.rerank`: filters, variant collapse, MMR / category cap.

No Dagster imports.
"""

from scene_assets.ranking.config import Diversity, FusionChoice, RankingConfig, ScoringWeights, read_mapping_file
from scene_assets.ranking.factors import (
    DEFAULT_WEIGHTS,
    FACTORS,
    LEARNED_DEFAULT_WEIGHTS,
    MATERIAL_STYLE_AFFINITY,
    NEUTRAL_COLORS,
    ROOM_SIZE_FIT,
    ProductFactors,
    column,
    factor_matrix,
)
from scene_assets.ranking.fusion import Fusion, choose_fusion, default_weights, normalized_weights, weighted_scores
from scene_assets.ranking.ranker import FusionRanker, RankerConfig, fit_ranker

__all__ = [
    "DEFAULT_WEIGHTS",
    "Diversity",
    "FACTORS",
    "Fusion",
    "FusionChoice",
    "FusionRanker",
    "LEARNED_DEFAULT_WEIGHTS",
    "MATERIAL_STYLE_AFFINITY",
    "NEUTRAL_COLORS",
    "ProductFactors",
    "ROOM_SIZE_FIT",
    "RankerConfig",
    "RankingConfig",
    "ScoringWeights",
    "choose_fusion",
    "column",
    "default_weights",
    "factor_matrix",
    "fit_ranker",
    "normalized_weights",
    "read_mapping_file",
    "weighted_scores",
]
