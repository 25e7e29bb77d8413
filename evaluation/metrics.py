"""Ranking and calibration metrics for labeled scene/product evaluation (pure numpy, no Dagster).

Conventions: a *ranking* is a sequence of product ids, best first, over the whole candidate set; the
*relevant* set is the scene's labeled products. A scene with no relevant product among the ranked
candidates is excluded by the caller (it carries no signal), never scored 0 here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _hits(ranking: Sequence[str], relevant: set[str], k: int | None = None) -> np.ndarray:
    head = ranking if k is None else ranking[:k]
    return np.fromiter((pid in relevant for pid in head), dtype=bool, count=len(head))


def recall_at_k(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant products found in the top k."""
    if not relevant:
        raise ValueError("recall is undefined without relevant products")
    return float(_hits(ranking, relevant, k).sum()) / len(relevant)


def hit_at_k(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """1.0 if any relevant product is in the top k, else 0.0."""
    return float(_hits(ranking, relevant, k).any())


def reciprocal_rank(ranking: Sequence[str], relevant: set[str]) -> float:
    """1 / rank of the first relevant product (0.0 if none is ranked)."""
    hits = _hits(ranking, relevant)
    return 1.0 / (int(np.argmax(hits)) + 1) if hits.any() else 0.0


def ndcg_at_k(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-relevance nDCG@k: DCG = sum over hits of 1/log2(rank + 1), over the ideal DCG of
    min(k, |relevant|) hits at the top."""
    if not relevant:
        raise ValueError("nDCG is undefined without relevant products")
    hits = _hits(ranking, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((hits * discounts[: hits.size]).sum())
    ideal = float(discounts[: min(k, len(relevant))].sum())
    return dcg / ideal


def ranking_metrics(ranking: Sequence[str], relevant: set[str]) -> dict[str, float]:
    """The per-scene metrics the evaluation table reports."""
    return {
        "recall@10": recall_at_k(ranking, relevant, 10),
        "recall@50": recall_at_k(ranking, relevant, 50),
        "ndcg@10": ndcg_at_k(ranking, relevant, 10),
        "mrr": reciprocal_rank(ranking, relevant),
        "hit@10": hit_at_k(ranking, relevant, 10),
    }


def expected_calibration_error(confidence: Sequence[float], outcome: Sequence[float], n_bins: int = 10) -> float:
    """ECE with equal-width bins over [0, 1]: sum over bins of (bin share) * |mean outcome - mean
    confidence|. ``outcome`` is 1 for a relevant (fitting) product, 0 otherwise."""
    curve = reliability_curve(confidence, outcome, n_bins)
    total = sum(b.count for b in curve)
    if total == 0:
        raise ValueError("ECE needs at least one prediction")
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in curve if b.count))


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean predicted probability in the bin (nan when empty)
    accuracy: float  # observed share of positives in the bin (nan when empty)


def reliability_curve(confidence: Sequence[float], outcome: Sequence[float], n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins; a confidence of exactly 1.0 falls in the last bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    out = np.asarray(outcome, dtype=np.float64)
    if conf.shape != out.shape:
        raise ValueError(f"{conf.shape[0]} confidences for {out.shape[0]} outcomes")
    if conf.size and (np.nanmin(conf) < 0 or np.nanmax(conf) > 1):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=False), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        bins.append(ReliabilityBin(
            float(edges[b]), float(edges[b + 1]), count,
            float(conf[mask].mean()) if count else float("nan"),
            float(out[mask].mean()) if count else float("nan"),
        ))
    return bins


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over per-scene ``values`` (resampling scenes)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, data.size, size=(n_resamples, data.size))
    stats = np.array([statistic(data[row]) for row in samples])
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def mean_metrics(per_scene: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over scenes (keys of the first row)."""
    if not per_scene:
        return {}
    return {key: float(np.mean([row[key] for row in per_scene])) for key in per_scene[0]}


def distinct_categories_at_k(ranked_rows: Sequence[int], categories: np.ndarray, k: int = 10) -> float:
    """Number of distinct categories among the top k of a ranking (``ranked_rows``: catalog rows,
    best first; ``categories``: the category of each catalog row)."""
    return float(np.unique(np.asarray(categories, dtype=object)[np.asarray(ranked_rows[:k], dtype=np.int64)]).size)


def intra_list_similarity(ranked_rows: Sequence[int], vectors: np.ndarray, k: int = 10) -> float:
    """Mean pairwise cosine similarity of the top k products' vectors (rows of ``vectors``): 1 = all
    alike, lower = a more varied list. NaN below two products (no pair to compare)."""
    top = np.asarray(vectors, dtype=np.float64)[np.asarray(ranked_rows[:k], dtype=np.int64)]
    n = top.shape[0]
    if n < 2:
        return float("nan")
    unit = top / np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
