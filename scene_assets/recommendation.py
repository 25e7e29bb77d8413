"""What the recommender returns: ranked :class:`Recommendation` items of a :class:`RecommendationResult`,
and :class:`CatalogScores` of a whole catalog (evaluation). No Dagster imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scene_assets.prepared_scene import PreparedScene
from scene_assets.regions import SceneRegions
from scene_assets.scene_analysis import SceneAnalysis

if TYPE_CHECKING:
    from scene_assets.ranking.config import ScoringWeights

__all__ = ["CatalogScores", "Recommendation", "RecommendationResult"]


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


@dataclass
class Recommendation:
    rank: int
    product_id: str
    title: str | None
    category: str
    product_type: str | None
    score: float
    confidence: float
    visual_similarity: float  # raw cosine of the best region
    factors: dict[str, float]
    region: dict[str, Any]  # {"index", "label", "box": [x0, y0, x1, y1]} in image pixels
    variants: list[str] = field(default_factory=list)  # collapsed variant SKUs
    image_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "product_id": self.product_id,
            "title": self.title,
            "category": self.category,
            "product_type": self.product_type,
            "score": _r(self.score),
            "confidence": _r(self.confidence),
            "visual_similarity": _r(self.visual_similarity),
            "factors": {k: _r(v) for k, v in self.factors.items()},
            "region": self.region,
            "variants": list(self.variants),
            "image_path": self.image_path,
        }


@dataclass
class RecommendationResult:
    items: list[Recommendation]
    scene: SceneAnalysis
    regions: SceneRegions
    timings_ms: dict[str, float]
    calibrated: bool
    weights: ScoringWeights
    params: dict[str, Any]
    candidates: int  # products scored after filters (before collapse/diversity/top-k)
    # per returned item, how deep in the stage-1 candidates it sat, ranked by visual similarity
    # (1/candidates = the most similar, 1.0 = the last): results often near 1.0 say stage 1 cuts too early
    candidate_depths: list[float] = field(default_factory=list)

    @property
    def product_ids(self) -> list[str]:
        return [it.product_id for it in self.items]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [it.to_dict() for it in self.items],
            "scene": self.scene.to_dict(),
            "regions": {k: v for k, v in self.regions.to_dict().items() if k != "regions"}
            | {"count": len(self.regions)},
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "calibrated": self.calibrated,
            "confidence_method": self.params.get("confidence_method"),
            "weights": self.weights.to_dict(),
            "params": {k: v for k, v in self.params.items() if k != "confidence_method"},
            "candidates": self.candidates,
        }


@dataclass
class CatalogScores:
    """Scores of every indexed product for one scene (``Recommender.score_catalog``)."""

    product_ids: np.ndarray  # object array, index order
    scores: np.ndarray
    visual_cosine: np.ndarray
    factors: np.ndarray  # n x len(FACTORS) (scene_assets.ranking.factors)
    best_region: np.ndarray  # n, index into regions
    scene: PreparedScene

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.scores, kind="stable")
        return self.product_ids[order], self.scores[order]
