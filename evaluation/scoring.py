"""Scoring scene results: the per-scene ranking metrics, calibration pairs and the per-fold
calibrators, from each held-out scene's factor matrix (or its ranker scores) - every weighted score
through ``scene_assets.ranking.fusion``. No Dagster imports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.config import METRIC_KEYS, EvaluationConfig
from evaluation.dataset import EVALUATION_GROUPS
from scene_assets.learned import IsotonicCalibrator
from scene_assets.ranking import ScoringWeights, normalized_weights, weighted_scores
from scene_assets.scene_analysis import ROOM_TYPES

__all__ = ["SceneResult", "calibration_pairs", "fold_calibrators", "group_hits", "metrics_from_ranks", "ranks_of",
           "recall_curve", "score_results", "served_metrics"]


@dataclass
class SceneResult:
    """One scored scene (held out from whatever scored it)."""

    scene_id: str
    room_type: str
    fold: int
    factors: np.ndarray  # n_products x len(FACTORS), float32
    relevant_rows: np.ndarray  # rows (into the catalog order) of the labeled products
    room_probs: np.ndarray  # over ROOM_TYPES
    baselines: dict[str, np.ndarray]  # baseline name -> scores over the catalog
    scores: np.ndarray | None = None  # the fusion ranker's scores over the catalog (None: weights)

    @property
    def predicted_room(self) -> str:
        return ROOM_TYPES[int(np.argmax(self.room_probs))]

    def system_scores(self, w: np.ndarray) -> np.ndarray:
        """What the system ranks by: the ranker's scores, else the factors weighted by ``w``
        (:func:`~scene_assets.ranking.normalized_weights`)."""
        return self.scores if self.scores is not None else weighted_scores(self.factors, w)


def ranks_of(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """0-based ranks of ``rows`` in ``scores`` sorted descending (stable: earlier rows win ties)."""
    order = np.argsort(-scores, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return np.sort(position[rows])


def metrics_from_ranks(ranks: np.ndarray, n_relevant: int) -> dict[str, float]:
    """Recall@10/50, nDCG@10, MRR and hit@10 from the sorted 0-based ranks of the relevant items."""
    ranks = np.asarray(ranks)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    dcg = float(discounts[ranks[ranks < 10]].sum())
    ideal = float(discounts[: min(10, n_relevant)].sum())
    return {
        "recall@10": float((ranks < 10).sum()) / n_relevant,
        "recall@50": float((ranks < 50).sum()) / n_relevant,
        "ndcg@10": dcg / ideal,
        "mrr": 1.0 / (int(ranks[0]) + 1) if ranks.size else 0.0,
        "hit@10": float(ranks.size > 0 and ranks[0] < 10),
    }


def score_results(results: Sequence[SceneResult], weights: ScoringWeights, *, system: bool = False) -> np.ndarray:
    """Per-scene ranking metrics (rows: scenes, columns: METRIC_KEYS) for ``weights`` - or, with
    ``system``, for what the system ranks by (the ranker's scores where a result has them)."""
    w = normalized_weights(weights)
    out = np.zeros((len(results), len(METRIC_KEYS)))
    for i, r in enumerate(results):
        s = r.system_scores(w) if system else weighted_scores(r.factors, w)
        m = metrics_from_ranks(ranks_of(s, r.relevant_rows), len(r.relevant_rows))
        out[i] = [m[k] for k in METRIC_KEYS]
    return out


def served_metrics(results: Sequence[SceneResult], served: Mapping[str, Sequence[str]], product_ids: Sequence[str],
                   groups: np.ndarray) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Per-scene ranking metrics (rows: ``results``, columns: METRIC_KEYS) and group hits@10 of the
    served lists (scene id -> the product ids ``/match`` returned, best first). A labeled product is
    retrieved only where it is listed: absent from the top k (or collapsed as another product's
    variant) it counts as missed. A group's hit@10: a labeled product of the group among the first
    10 listed products of that group (scenes with a labeled product of it only, as
    :func:`group_hits`)."""
    row = {str(p): i for i, p in enumerate(product_ids)}
    per_scene = np.zeros((len(results), len(METRIC_KEYS)))
    hits: dict[str, list[float]] = {g: [] for g in EVALUATION_GROUPS}
    for i, r in enumerate(results):
        listed = np.asarray([row[p] for p in served[r.scene_id]], dtype=np.int64)
        m = metrics_from_ranks(np.flatnonzero(np.isin(listed, r.relevant_rows)), len(r.relevant_rows))
        per_scene[i] = [m[k] for k in METRIC_KEYS]
        for g in EVALUATION_GROUPS:
            members = groups == g
            if members[r.relevant_rows].any():
                hits[g].append(float(np.isin(listed[members[listed]][:10], r.relevant_rows).any()))
    return per_scene, hits


def calibration_pairs(results: Sequence[SceneResult], weights: ScoringWeights, top_k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(score, relevant?) of each scene's top ``top_k`` under what the system ranks by (the ranker's
    scores where a result has them, else the factors weighted by ``weights``)."""
    w = normalized_weights(weights)
    scores, labels = [], []
    for r in results:
        s = r.system_scores(w)
        top = np.argsort(-s, kind="stable")[:top_k]
        scores.append(s[top])
        labels.append(np.isin(top, r.relevant_rows).astype(np.float64))
    return np.concatenate(scores), np.concatenate(labels)


def group_hits(results: Sequence[SceneResult], scores: Sequence[np.ndarray], groups: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {g: [] for g in EVALUATION_GROUPS}
    for r, s in zip(results, scores):
        for g in EVALUATION_GROUPS:
            members = np.flatnonzero(groups == g)
            rel = np.intersect1d(r.relevant_rows, members)
            if rel.size == 0:
                continue
            # rank only the products of this group
            sub = s[members]
            pos = np.searchsorted(members, rel)
            out[g].append(float(ranks_of(sub, pos)[0] < 10))
    return out


def recall_curve(results: Sequence[SceneResult], scores: Sequence[np.ndarray], ks: Sequence[int]) -> list[float]:
    vals = np.zeros(len(ks))
    for r, s in zip(results, scores):
        ranks = ranks_of(s, r.relevant_rows)
        vals += np.array([(ranks < k).sum() / len(r.relevant_rows) for k in ks])
    return (vals / max(len(results), 1)).round(4).tolist()


def fold_calibrators(results: Sequence[SceneResult], config: EvaluationConfig) -> dict[int, IsotonicCalibrator]:
    """For each fold: isotonic calibrator fitted on the other folds' out-of-fold top-k scores."""
    folds = sorted({r.fold for r in results})
    out = {}
    for f in folds:
        others = [r for r in results if r.fold != f]
        if others:
            out[f] = IsotonicCalibrator.fit(*calibration_pairs(others, config.weights, config.calibration_top_k))
    return out
