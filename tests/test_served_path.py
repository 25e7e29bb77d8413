"""The served-path row of the evaluation (issue #22): every scored scene also ranked by
``Recommender.recommend_prepared`` - the code ``recommend`` (so ``/match`` and the export) runs - and
the same metrics computed from the list it returns. Offline, CPU, the fake encoder on the embedded
sample dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation.config import METRIC_KEYS, EvaluationConfig
from evaluation.dataset import EVALUATION_GROUPS, evaluation_group, load_labeled_dataset
from evaluation.folds import build_recommender
from evaluation.protocol import evaluate
from evaluation.report import format_table
from scene_assets.encoders import FakeEncoder
from scene_assets.learned import ProjectionConfig
from scene_assets.ranking import RankingConfig, ScoringWeights

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FAST = dict(projection=ProjectionConfig(epochs=3), bootstrap_resamples=50)


@pytest.fixture(scope="module")
def sample():
    return load_labeled_dataset(SAMPLE)


@pytest.fixture(scope="module")
def encoder():
    return FakeEncoder(dim=32)


def _hand_metrics(listed: list[str], relevant: set[str]) -> dict[str, float]:
    """The headline metrics of one served list, written out from their definitions."""
    positions = [i for i, p in enumerate(listed) if p in relevant]
    dcg = sum(1.0 / math.log2(i + 2) for i in positions if i < 10)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return {"recall@10": sum(i < 10 for i in positions) / len(relevant),
            "recall@50": sum(i < 50 for i in positions) / len(relevant),
            "ndcg@10": dcg / ideal,
            "mrr": 1.0 / (positions[0] + 1) if positions else 0.0,
            "hit@10": float(bool(positions) and positions[0] < 10)}


def test_recommend_is_prepare_scene_then_recommend_prepared(sample, encoder, tmp_path):
    rec = build_recommender(encoder, sample, tmp_path / "cache", ScoringWeights())
    image = sample.scenes["image_path"][0]
    for options in ({}, {"diversity": "category_cap", "category_cap": 2, "collapse_variants": False},
                    {"include_categories": sample.products["category"][0], "mmr_lambda": 0.4}):
        whole = rec.recommend(image, k=12, **options)
        prepared = rec.recommend_prepared(rec.prepare_scene(image), k=12, **options)
        assert whole.items and [it.to_dict() for it in whole.items] == [it.to_dict() for it in prepared.items]
        assert whole.candidates == prepared.candidates
        assert {k: v for k, v in whole.params.items() if k not in ("caption", "region_config")} == {
            k: v for k, v in prepared.params.items() if k not in ("caption", "region_config")}
        assert whole.params["region_config"] == rec.region_config.to_dict()


def test_served_metrics_are_those_of_recommends_list(sample, encoder, tmp_path):
    """Diversity and collapse off, served_k = the catalog: the served row is recommend()'s full list
    scored by hand, for the recommender with the served scorer attached (train mode)."""
    n = sample.products.height
    config = EvaluationConfig(folds=3, served_k=n, ranking=RankingConfig(diversity=None, collapse_variants=False),
                              **FAST)
    rec = build_recommender(encoder, sample, tmp_path / "cache", config.weights)
    report = evaluate(sample, train=sample, config=config, recommender=rec, cache_dir=tmp_path / "cache",
                      allow_same_dataset=True)
    served = rec.with_learned(report.learned)
    groups = {p: evaluation_group(t, c) for p, t, c in sample.products.select("product_id", "product_type",
                                                                            "category").iter_rows()}
    per_scene: dict[str, list[float]] = {k: [] for k in METRIC_KEYS}
    group_hits: dict[str, list[float]] = {g: [] for g in EVALUATION_GROUPS}
    for sid, image in sample.scenes.select("scene_id", "image_path").iter_rows():
        listed = served.recommend(image, k=n, diversity=None, collapse_variants=False).product_ids
        assert sorted(listed) == sorted(sample.products["product_id"])  # the whole catalog, once each
        relevant = set(sample.relevant[sid])
        for k, v in _hand_metrics(listed, relevant).items():
            per_scene[k].append(v)
        for g in EVALUATION_GROUPS:
            if any(groups[p] == g for p in relevant):
                in_group = [p for p in listed if groups[p] == g]
                group_hits[g].append(float(any(p in relevant for p in in_group[:10])))
    m = report.metrics
    for k in METRIC_KEYS:
        assert m[f"served.{k}"] == pytest.approx(sum(per_scene[k]) / len(per_scene[k]), abs=1e-4), k
    for g in EVALUATION_GROUPS:
        expected = sum(group_hits[g]) / len(group_hits[g]) if group_hits[g] else None
        assert m[f"served.hit@10.{g}"] == pytest.approx(expected, abs=1e-4), g


def test_cross_validation_reports_the_served_row(sample, encoder, tmp_path):
    config = EvaluationConfig(folds=3, **FAST)
    report = evaluate(sample, config=config, encoder=encoder, cache_dir=tmp_path / "cache")
    m = report.metrics
    for k in METRIC_KEYS:
        assert 0.0 <= m[f"served.{k}"] <= 1.0
        lo, hi = report.intervals[f"served.{k}"]
        assert lo - 1e-9 <= m[f"served.{k}"] <= hi + 1e-9
    assert m["served.recall@10"] <= m["served.recall@50"]
    lines = format_table(report).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("scene-matcher  "))
    assert lines[row + 2].startswith("served path (k=50, mmr 0.9, collapse)")
    assert lines[row + 3].lstrip().startswith("95% interval")
    assert json.loads(json.dumps(report.to_dict()))["served.mrr"] == m["served.mrr"]


def test_config_ranking_round_trips_and_keeps_weights_apart():
    cfg = EvaluationConfig(served_k=20, ranking=RankingConfig(diversity="category_cap", category_cap=2,
                                                              collapse_variants=False))
    assert EvaluationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    options = cfg.served_options()
    assert options["weights"] == cfg.weights and options["fusion"] == "weights"
    assert (options["diversity"], options["category_cap"], options["collapse_variants"]) == ("category_cap", 2, False)
    with pytest.raises(ValueError, match="weights"):
        EvaluationConfig(ranking=RankingConfig(weights=ScoringWeights(visual=1.0)))
    with pytest.raises(ValueError, match="served_k"):
        EvaluationConfig(served_k=0)


def test_served_row_through_two_stage_serving(sample, encoder, tmp_path):
    """--served-index (#19): the served row goes through stage 1 of an approximate index (candidates)
    and stage 2 (exact re-scoring, projection for the candidates); with every list probed the
    candidates are those of exact search, so the lists and the served metrics are the exact ones
    (approximate candidates re-scored: tests/test_ranker.py)."""
    exact = evaluate(sample, config=EvaluationConfig(folds=3, **FAST), encoder=encoder, cache_dir=tmp_path / "cache")
    config = EvaluationConfig(folds=3, served_index="IVF2,Flat", served_nprobe=2, **FAST)
    report = evaluate(sample, config=config, encoder=encoder, cache_dir=tmp_path / "cache")
    assert report.two_stage_overlap_at_10 == pytest.approx(1.0)
    for k in METRIC_KEYS:
        assert report.metrics[f"served.{k}"] == pytest.approx(exact.metrics[f"served.{k}"], abs=1e-9), k
    assert report.serving.rec.rescore and report.serving.rec.learned_for_candidates
    assert not exact.serving.rec.rescore
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["served_two_stage"] == {"index": "IVF2,Flat", "nprobe": 2, "overlap_at_10_vs_exact_served": 1.0}
    assert "served_two_stage" not in exact.to_dict()
    assert EvaluationConfig.from_dict(saved["evaluation_config"]) == config
