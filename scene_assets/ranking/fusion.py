"""The one fusion of the factors into a score: weighted mean, or the learned fusion ranker.

:func:`choose_fusion` is the single place that decides which one scores; :func:`weighted_scores`
is the single weighted mean - the recommender, the evaluation protocol, the weight sweep, the
ablation and the export all score through them. No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scene_assets.ranking.config import FusionChoice, ScoringWeights
from scene_assets.ranking.factors import LEARNED_DEFAULT_WEIGHTS

__all__ = ["Fusion", "choose_fusion", "default_weights", "normalized_weights", "weighted_scores"]


def normalized_weights(weights: ScoringWeights) -> np.ndarray:
    """The weights in FACTORS order, summing to 1."""
    w = weights.vector()
    return w / w.sum()


def weighted_scores(factors: np.ndarray, weights: ScoringWeights | np.ndarray) -> np.ndarray:
    """The weighted mean of each row of ``factors`` (``n x len(FACTORS)``); ``weights`` may be
    :func:`normalized_weights` already (sweeps score many matrices with one vector)."""
    w = normalized_weights(weights) if isinstance(weights, ScoringWeights) else weights
    return factors @ w


def default_weights(learned: Any) -> ScoringWeights:
    """The weights when none were given: the learned defaults once a learned scorer is attached."""
    return ScoringWeights(**LEARNED_DEFAULT_WEIGHTS) if learned is not None else ScoringWeights()


@dataclass(frozen=True)
class Fusion:
    """How candidates are scored: ``ranker`` (a :class:`~scene_assets.ranking.ranker.FusionRanker`)
    when set, else the weighted mean with ``weights``."""

    weights: ScoringWeights
    ranker: Any = None

    def score(self, factors: np.ndarray, room_probs: np.ndarray) -> np.ndarray:
        """The ranker's score of each row (a function of the row and the scene only, so candidates
        score as they do in the whole-catalog evaluation), else the weighted mean."""
        if self.ranker is not None:
            return self.ranker.score(factors, room_probs)
        return weighted_scores(factors, self.weights)

    @property
    def label(self) -> str:
        return "weights" if self.ranker is None else f"ranker ({self.ranker.kind})"


def choose_fusion(weights: ScoringWeights | None, learned: Any, choice: FusionChoice = "auto") -> Fusion:
    """The one choice between the weighted fusion and the learned ranker. ``weights``: the weights
    given explicitly (None: :func:`default_weights`); ``learned``: the attached learned scorer.
    ``auto``: the ranker when the learned scorer holds one and no weights were given (explicit
    weights ask for the hand-weighted mix); ``ranker`` without one is an error."""
    ranker = getattr(learned, "ranker", None)
    chosen = weights or default_weights(learned)
    if choice == "weights":
        return Fusion(chosen)
    if choice == "ranker":
        if ranker is None:
            raise ValueError("fusion='ranker' needs a learned scorer with a fusion ranker")
        return Fusion(chosen, ranker)
    return Fusion(chosen, None if weights is not None else ranker)
