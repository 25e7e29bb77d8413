"""The feedback check on the real IKEA data (slow): photos with the products shoppers bought in them, as
training scenes next to half of the labeled scenes, must help on the labeled held-out folds when the
shoppers bought what is in the photo, and must fail the check when every photo's purchases are the same few
products whatever the photo shows (a feedback loop gone wrong: a bot, a promotion). Product features come from the evaluation cache that
tests/test_evaluate_ikea.py fills (data/cache/evaluation)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import polars as pl
import pytest

from scene_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_check_passes_helpful_feedback_and_fails_misleading_feedback(ikea_dir: Path):
    from evaluation.config import EvaluationConfig
    from evaluation.dataset import load_labeled_dataset
    from evaluation.feedback_training import FeedbackScene, FeedbackScenes, FeedbackTrainingConfig, feedback_check
    from evaluation.folds import build_recommender, prepare_scenes
    from scene_assets.encoders import build_encoder

    config = EvaluationConfig(composites=None, folds=3)
    dataset = load_labeled_dataset(ikea_dir)
    rec = build_recommender(build_encoder(), dataset, PROJECT_ROOT / "data" / "cache" / "evaluation", config.weights)
    scenes = prepare_scenes(rec, dataset, use_captions=False)
    ids = dataset.scene_ids
    labeled_ids, shopped = ids[::2], ids[1::2]
    labeled = dataclasses.replace(dataset, scenes=dataset.scenes.filter(pl.col("scene_id").is_in(labeled_ids)),
                                  relevant={s: dataset.relevant[s] for s in labeled_ids})
    products = list(rec.product_ids)
    rng = random.Random(0)

    def feedback(bought, weight: float) -> FeedbackScenes:
        return FeedbackScenes(tuple(FeedbackScene(f"photo-{s}", scenes[s], {p: 2.0 for p in bought(s)}, {})
                                    for s in shopped), FeedbackTrainingConfig(scene_weight=weight))

    helpful = feedback_check(rec, labeled, scenes, config, feedback(lambda s: sorted(dataset.relevant[s]), 1.0))
    # a bot (or a promoted product's fans): every photo's "purchases" are the same five products
    pushed = rng.sample(products, 5)
    misled = feedback_check(rec, labeled, scenes, config,
                            feedback(lambda s: [p for p in pushed if p not in dataset.relevant[s]], 5.0))
    print(f"helpful: {helpful.difference['ndcg@10']:+.4f} ± {helpful.half_width['ndcg@10']:.4f}; "
          f"misled: {misled.difference['ndcg@10']:+.4f} ± {misled.half_width['ndcg@10']:.4f}")
    assert helpful.scenes == misled.scenes == len(labeled_ids) and helpful.excluded_feedback == 0
    assert helpful.passed and helpful.difference["ndcg@10"] > 0
    assert not misled.passed and misled.difference["ndcg@10"] + misled.half_width["ndcg@10"] < 0
