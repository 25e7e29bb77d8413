"""What an evaluation run does (:class:`EvaluationConfig`) and the evaluation's defaults (no Dagster
imports). ``weights`` are the ranking's :class:`~scene_assets.ranking.ScoringWeights`; ``ranker`` is
the recipe of the learned fusion (None: the weighted fusion); ``ranking`` and ``served_k`` are the
re-rank options and the list length of the served-path row (what ``/match`` and the export return)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scene_assets.composites import CompositeConfig
from scene_assets.learned import ProjectionConfig
from scene_assets.ranking import (
    FACTORS,
    LEARNED_DEFAULT_WEIGHTS,
    RankerConfig,
    RankingConfig,
    ScoringWeights,
    read_mapping_file,
)

__all__ = ["BASELINES", "DEFAULT_EVALUATION_WEIGHTS", "DEFAULT_RANKER", "EvaluationConfig", "METRIC_KEYS",
           "RANKER_BY_DEFAULT"]

METRIC_KEYS = ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10")
BASELINES = ("random", "popularity", "room popularity", "whole image", "regions (zero-shot)",
             "learned projection only")
# Default scoring weights of the evaluation = the recommender's defaults with a learned scorer
# attached (how they were chosen: scene_assets.ranking.factors.LEARNED_DEFAULT_WEIGHTS).
DEFAULT_EVALUATION_WEIGHTS: dict[str, float] = dict(LEARNED_DEFAULT_WEIGHTS)
# The learned-fusion recipe, and whether an evaluation (and so the learned_scorer asset) uses it by
# default: decided on the cross-validated nDCG@10 / MRR of `scene-matcher evaluate --ablation`. On the
# IKEA development split (143 scenes, 5 folds) the ranker tied the learned default weights - nDCG@10
# .157 vs .160 (paired difference +.002, 95% -.013..+.018), MRR .388 vs .419 (+.031, -.012..+.074) -
# with a better-calibrated confidence (ECE .009 vs .019): no win, so it stays opt-in (--fusion ranker,
# the scene_evaluation asset's `ranker` setting). Those weights were themselves picked by a sweep on
# the same scenes' out-of-fold scores, so the tie slightly flatters them.
DEFAULT_RANKER = RankerConfig()
RANKER_BY_DEFAULT = False


@dataclass(frozen=True)
class EvaluationConfig:
    """What an evaluation run does; ``to_dict`` goes into reports and MLflow params."""

    weights: ScoringWeights = field(default_factory=lambda: ScoringWeights(**DEFAULT_EVALUATION_WEIGHTS))
    folds: int = 5
    seed: int = 0
    use_captions: bool = False  # score with the scene captions as text context
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    calibration_top_k: int = 10  # confidence is calibrated / measured on each scene's top k
    bootstrap_resamples: int = 1000
    # learned fusion of the factors (None: the weights above); see the module docstring
    ranker: RankerConfig | None = field(default_factory=lambda: DEFAULT_RANKER if RANKER_BY_DEFAULT else None)
    room_classifier: bool = True  # False: zero-shot room posterior (no classifier fitted on labels)
    regions: bool = True  # False: the whole image is the only query (projection fitted on it alone)
    # synthetic composites of the training scenes the projection also learns from (None or per_scene 0:
    # labels only);
    # see scene_assets.composites
    composites: CompositeConfig | None = field(default_factory=CompositeConfig)
    # the served-path row: each held-out scene ranked by Recommender.recommend_prepared, top served_k,
    # with these re-rank options (their weights and fusion are the ones above: weights / ranker)
    served_k: int = 50
    ranking: RankingConfig = field(default_factory=RankingConfig)
    # the served row through two-stage serving (#19): candidates from an approximate index of the
    # catalog's vectors (a FAISS factory such as "IVF32,PQ64", searched with served_nprobe lists),
    # re-scored exactly (Recommender.two_stage); None: the recommender's own index
    served_index: str | None = None
    served_nprobe: int | None = None

    def __post_init__(self) -> None:
        if self.served_k < 1:
            raise ValueError("served_k must be >= 1")
        if self.ranking.weights is not None or self.ranking.fusion != "auto":
            raise ValueError("ranking sets the re-rank options only: the weights are `weights`, the fusion `ranker`")

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.to_dict(), "folds": self.folds, "seed": self.seed,
                "use_captions": self.use_captions, "projection": self.projection.to_dict(),
                "calibration_top_k": self.calibration_top_k, "bootstrap_resamples": self.bootstrap_resamples,
                "ranker": None if self.ranker is None else self.ranker.to_dict(),
                "room_classifier": self.room_classifier, "regions": self.regions, "served_k": self.served_k,
                "composites": None if self.composites is None else self.composites.to_dict(),
                "ranking": self.ranking.model_dump(exclude={"weights", "fusion"}),
                "served_index": self.served_index, "served_nprobe": self.served_nprobe}

    @property
    def fusion(self) -> str:
        """How the factors are combined: ``"weights"`` or ``"ranker:<model>"``."""
        return "weights" if self.ranker is None else f"ranker:{self.ranker.model}"

    def served_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Recommender.recommend_prepared`` for the served row: the re-rank
        options of ``ranking``, this evaluation's weights, and its fusion (the ranker when one is
        configured - what ``/match`` picks under fusion=auto for a scorer holding one)."""
        fusion = "weights" if self.ranker is None else "ranker"
        return self.ranking.model_copy(update={"weights": self.weights, "fusion": fusion}).recommend_options()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvaluationConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown evaluation setting(s) {sorted(unknown)}")
        if "weights" in d:
            d["weights"] = ScoringWeights(**(DEFAULT_EVALUATION_WEIGHTS | dict(d["weights"])))
        if "projection" in d:
            d["projection"] = ProjectionConfig(**dict(d["projection"]))
        if "ranking" in d:
            d["ranking"] = RankingConfig(**dict(d["ranking"]))
        if d.get("composites") is not None and not isinstance(d["composites"], CompositeConfig):
            d["composites"] = CompositeConfig.from_dict(d["composites"])
        if "ranker" in d:
            r = d["ranker"]
            d["ranker"] = (None if r is None or r is False else DEFAULT_RANKER if r is True
                           else RankerConfig.from_dict(DEFAULT_RANKER.to_dict() | dict(r)))
        cfg = cls(**d)
        if cfg.folds < 2:
            raise ValueError("folds must be >= 2")
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EvaluationConfig":
        """JSON or YAML: ``{"weights": {...}, "folds": 5, "projection": {...}, "ranker": {...} or null,
        ...}``; a flat mapping of factor names is read as weights, and scores with them (no ranker)."""
        data = read_mapping_file(path)
        if data and set(data) <= set(FACTORS):
            data = {"weights": data, "ranker": None}
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
