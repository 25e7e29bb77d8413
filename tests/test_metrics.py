"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.metrics import (
    bootstrap_interval,
    expected_calibration_error,
    hit_at_k,
    mean_metrics,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank,
    reliability_curve,
)

RANKING = ["a", "b", "c", "d", "e", "f"]


def test_recall_hit_mrr_by_hand():
    relevant = {"b", "e", "z"}  # z is never ranked
    assert recall_at_k(RANKING, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, relevant, 5) == pytest.approx(2 / 3)
    assert hit_at_k(RANKING, relevant, 1) == 0.0 and hit_at_k(RANKING, relevant, 2) == 1.0
    assert reciprocal_rank(RANKING, relevant) == pytest.approx(1 / 2)
    assert reciprocal_rank(RANKING, {"q"}) == 0.0


def test_ndcg_by_hand():
    # hits at ranks 2 and 5: DCG = 1/log2(3) + 1/log2(6); ideal (2 relevant): 1/log2(2) + 1/log2(3)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(RANKING, {"b", "e"}, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKING, {"a", "b"}, 10) == pytest.approx(1.0)
    # more relevant than k: the ideal has k hits
    assert ndcg_at_k(["a", "b"], {"a", "b", "c"}, 2) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ndcg_at_k(RANKING, set(), 10)


def test_ranking_metrics_keys_and_mean():
    rows = [ranking_metrics(RANKING, {"a"}), ranking_metrics(RANKING, {"f"})]
    assert set(rows[0]) == {"recall@10", "recall@50", "ndcg@10", "mrr", "hit@10"}
    means = mean_metrics(rows)
    assert means["mrr"] == pytest.approx((1 + 1 / 6) / 2)
    assert means["recall@10"] == 1.0


def test_reliability_and_ece_by_hand():
    conf = [0.05, 0.15, 0.15, 0.95, 1.0]
    outcome = [0, 0, 1, 1, 1]
    bins = reliability_curve(conf, outcome, n_bins=10)
    assert [b.count for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[1].accuracy == pytest.approx(0.5) and bins[1].confidence == pytest.approx(0.15)
    assert math.isnan(bins[2].accuracy)
    # ECE = 1/5*|0-0.05| + 2/5*|0.5-0.15| + 2/5*|1-0.975|
    assert expected_calibration_error(conf, outcome) == pytest.approx(0.2 * 0.05 + 0.4 * 0.35 + 0.4 * 0.025)
    perfect = expected_calibration_error([0.0, 1.0], [0, 1])
    assert perfect == pytest.approx(0.0)
    with pytest.raises(ValueError):
        reliability_curve([1.2], [1])


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(1)
    small = rng.normal(0.3, 0.1, 20)
    large = rng.normal(0.3, 0.1, 2000)
    lo_s, hi_s = bootstrap_interval(small, n_resamples=500)
    lo_l, hi_l = bootstrap_interval(large, n_resamples=500)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
