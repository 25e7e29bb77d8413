"""A scene as the recommender scores it: one region pass, its query vectors and the scene analysis.

Apart from the result types (``recommendation.py``) because the ranking factors read it and the
results name the ranking's weights: kept here, the imports run one way. No Dagster imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scene_assets.regions import SceneRegions
from scene_assets.scene_analysis import SceneAnalysis

__all__ = ["PreparedScene"]


@dataclass
class PreparedScene:
    """Everything about one scene that does not depend on the candidate products."""

    image: Any
    regions: SceneRegions
    queries: np.ndarray  # N x d query vectors in the index space (centred/normalised)
    analysis: SceneAnalysis
    room_probs: np.ndarray  # R (possibly overridden by the caller's room)
    style_probs: np.ndarray  # S
    caption_vector: np.ndarray | None
    timings_ms: dict[str, float]
