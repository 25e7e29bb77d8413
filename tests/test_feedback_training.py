"""Learning from shopper feedback (#20): weighted training scenes of the projection, the feedback photos
prepared from the server's archive, A/B variants pinned to a learned scorer version, and which scorer
serves once a feedback-trained one was checked. The whole sensor -> retrain -> check chain on the sample
runs in tests/test_evaluation_pipeline.py (it needs the evaluation's materializations)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from evaluation.feedback_training import FeedbackScene, FeedbackScenes, FeedbackTrainingConfig, prepare_feedback_scenes
from scene_assets.learned import IsotonicCalibrator, LearnedScorer, ProjectionConfig, fit_region_projection
from tests.test_serving import SCENE_JPEG, FakeProvider, _post, _settings, recommenders, running  # noqa: F401

CFG = ProjectionConfig(dim=16, pca_dim=24, epochs=40, batch_scenes=16, learning_rate=1e-2, temperature=0.1)


def _world(seed: int = 0, n: int = 80, d: int = 24):
    """Products, and scene regions that are a fixed random rotation of their product's vector plus noise: zero-shot
    similarity cannot match them, a learned map can."""
    rng = np.random.default_rng(seed)
    products = rng.normal(size=(n, d)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))

    def scene(rows, noise=0.3):
        q = products[rows] @ rotation + noise * rng.normal(size=(len(rows), d))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    return products, scene


def _mean_rank(projection, products, queries, rows) -> float:
    scores = projection.transform_queries(queries) @ projection.transform_products(products).T
    return float(np.mean([(scores[i] > scores[i, r]).sum() for i, r in enumerate(rows)]))


def test_unit_weights_reproduce_the_unweighted_projection():
    products, scene = _world()
    queries = [scene([i, i + 1]) for i in range(0, 40, 2)]
    positives = [np.array([i, i + 1]) for i in range(0, 40, 2)]
    plain = fit_region_projection(queries, positives, products, CFG)
    ones = fit_region_projection(queries, positives, products, CFG, positive_weights=[np.ones(2)] * len(queries),
                                 scene_weights=[1.0] * len(queries))
    np.testing.assert_allclose(ones.query_map, plain.query_map, atol=1e-4)
    assert ones.config["weighted"] and "weighted" not in plain.config  # a labels-only fit is stored as before
    with pytest.raises(ValueError, match="scene_weights"):
        fit_region_projection(queries, positives, products, CFG, scene_weights=[1.0])
    with pytest.raises(ValueError, match="finite"):
        fit_region_projection(queries, positives, products, CFG, scene_weights=[np.nan] * len(queries))


def test_feedback_scenes_teach_the_products_labels_never_showed():
    products, scene = _world()
    labeled = list(range(0, 30))  # labels show the first 30 products only
    queries = [scene([r]) for r in labeled]
    positives = [np.array([r]) for r in labeled]
    shopped = list(range(30, 80))  # shoppers engaged with the others
    feedback_q = [scene([r]) for r in shopped]
    test_rows = list(range(30, 80))
    test_q = np.concatenate([scene([r]) for r in test_rows])  # new photos of the shopped products
    labels_only = fit_region_projection(queries, positives, products, CFG)
    with_feedback = fit_region_projection(queries + feedback_q, positives + [np.array([r]) for r in shopped], products, CFG,
                                          positive_weights=[np.ones(1)] * 80,
                                          scene_weights=[1.0] * 30 + [0.6] * len(shopped))
    before, after = _mean_rank(labels_only, products, test_q, test_rows), _mean_rank(with_feedback, products, test_q, test_rows)
    assert after < 0.5 * before, (before, after)
    # zero weight: a feedback scene does not count
    ignored = fit_region_projection(queries + feedback_q, positives + [np.array([r]) for r in shopped], products, CFG,
                                    scene_weights=[1.0] * 30 + [0.0] * len(shopped))
    assert _mean_rank(ignored, products, test_q, test_rows) > 0.8 * before


def test_products_passed_over_are_pushed_down():
    products, scene = _world(1)
    rows = list(range(40))
    queries = [scene([r], noise=0.0) for r in rows]
    positives = [np.array([r]) for r in rows]
    # every scene r: product (r + 40) was shown and passed over, strongly
    negatives = [(np.array([r + 40]), np.array([20.0], dtype=np.float32)) for r in rows]
    plain = fit_region_projection(queries, positives, products, CFG, scene_weights=[1.0] * 40)
    pushed = fit_region_projection(queries, positives, products, CFG, scene_weights=[1.0] * 40, negatives=negatives)

    def negative_scores(p):
        s = p.transform_queries(np.concatenate(queries)) @ p.transform_products(products).T
        return float(np.mean([s[r, r + 40] for r in rows]))

    assert negative_scores(pushed) < negative_scores(plain) - 0.01


def test_feedback_scenes_weigh_engagement_and_map_to_catalog_rows():
    scenes = FeedbackScenes((
        FeedbackScene("a" * 64, _prepared(), {"p1": 1.0, "p9": 3.0}, {"p2": 0.5}),
        FeedbackScene("b" * 64, _prepared(), {"p3": 0.3}, {}),
        FeedbackScene("c" * 64, _prepared(), {"gone": 1.0}, {}),  # its only product left the catalog
    ), FeedbackTrainingConfig(scene_weight=0.5, negative_strength=2.0))
    inputs = scenes.training_inputs({"p1": 0, "p2": 1, "p3": 2})
    assert len(inputs.queries) == 2  # scene c has no positive in the catalog
    assert [r.tolist() for r in inputs.positives] == [[0], [2]]  # p9 is not in the catalog
    assert inputs.scene_weights == pytest.approx([0.5 * (1 - np.exp(-1.0)), 0.5 * (1 - np.exp(-0.3))])
    assert inputs.negatives[0][0].tolist() == [1] and inputs.negatives[0][1].tolist() == [1.0]
    assert len(scenes.without(["a" * 64])) == 2 and scenes.fingerprint() != scenes.without(["a" * 64]).fingerprint()
    with pytest.raises(ValueError, match="scene_weight"):
        FeedbackTrainingConfig(scene_weight=-1)


def _prepared():
    from types import SimpleNamespace

    return SimpleNamespace(queries=np.ones((2, 4), dtype=np.float32))


def test_feedback_photos_come_from_the_archive_and_bad_ones_are_skipped(recommenders, tmp_path: Path):
    from scene_assets.feedback import ScenePhotoArchive

    archive = ScenePhotoArchive(tmp_path / "scenes")
    good = hashlib.sha256(SCENE_JPEG).hexdigest()
    archive.keep(good, SCENE_JPEG)
    broken = hashlib.sha256(b"not a photo").hexdigest()
    archive.keep(broken, b"not a photo")
    missing, passed_over = "d" * 64, "e" * 64
    rec = recommenders["v1"]
    pid = rec.product_ids
    pairs = pl.DataFrame({
        "scene_sha256": [good, good, broken, missing, passed_over],
        "product_id": [pid[0], pid[1], pid[0], pid[0], pid[2]],
        "label": [1, 0, 1, 1, 0], "weight": [1.5, 0.4, 1.0, 1.0, 0.7]})
    scenes = prepare_feedback_scenes(rec, pairs, archive.path_of)
    assert [s.sha256 for s in scenes.scenes] == [good]
    assert scenes.scenes[0].positives == {pid[0]: 1.5} and scenes.scenes[0].negatives == {pid[1]: 0.4}
    assert scenes.scenes[0].scene.queries.shape[0] >= 1
    reasons = dict(scenes.skipped)
    assert set(reasons) == {broken, missing, passed_over}
    assert str(archive.path_of(broken)) in reasons[broken]
    assert "not in the archive" in reasons[missing] and "no product engaged" in reasons[passed_over]
    with pytest.raises(ValueError, match="weight"):
        prepare_feedback_scenes(rec, pairs.drop("weight"), archive.path_of)


# --------------------------------------------------------------------------------------------
# A/B variants pinned to a learned scorer version


def _calibrated_scorer(directory: Path) -> str:
    scores = np.linspace(0, 1, 40)
    scorer = LearnedScorer(calibrator=IsotonicCalibrator.fit(scores, (scores > 0.7).astype(float)))
    scorer.save(directory)
    return scorer.fingerprint()


def test_variant_plan_pins_a_learned_scorer_folder(tmp_path: Path):
    from scene_assets.ranking.variants import VariantPlan, VariantPlanError

    _calibrated_scorer(tmp_path / "models" / "retrained")
    (tmp_path / "plans").mkdir()
    plan_path = tmp_path / "plans" / "plan.json"
    plan_path.write_text(json.dumps({"variants": [{"name": "control", "share": 0.5},
                                                  {"name": "retrained", "share": 0.5, "learned": "../models/retrained"}]}))
    plan = VariantPlan.load(plan_path)
    assert plan.pinned_scorers == {"retrained": str((tmp_path / "models" / "retrained").resolve())}
    assert VariantPlan.from_dict(plan.to_dict()).pinned_scorers == plan.pinned_scorers  # round trip (absolute)
    ranked = VariantPlan.from_dict({"variants": [{"name": "a", "share": 0.5, "fusion": "ranker"},
                                                 {"name": "b", "share": 0.5, "fusion": "weights"}]})
    assert [v.fusion for v in ranked.variants] == ["ranker", "weights"]
    with pytest.raises(VariantPlanError, match="fusion 'magic'"):
        VariantPlan.from_dict({"variants": [{"name": "a", "share": 1, "fusion": "magic"}]})
    plan_path.write_text(json.dumps({"variants": [{"name": "a", "share": 1, "learned": "../models/nothing"}]}))
    with pytest.raises(VariantPlanError, match="plan.json: variant a: learned '../models/nothing' is not a learned scorer"):
        VariantPlan.load(plan_path)


def test_match_serves_a_variant_with_its_pinned_scorer(recommenders, tmp_path: Path):
    from scene_assets.feedback import FeedbackStore
    from scene_assets.ranking.variants import Variant, VariantPlan

    fingerprint = _calibrated_scorer(tmp_path / "retrained")
    plan = VariantPlan((Variant("control", 0.5), Variant("retrained", 0.5, learned=str(tmp_path / "retrained"))), salt="t")
    sessions = {name: next(f"s{i}" for i in range(1000) if plan.assign(f"s{i}").name == name) for name in ("control", "retrained")}
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(FakeProvider(recommenders, "v1"), _settings(feedback_db_url=url, variants=plan)) as client:
        answers = {name: _post(client, k="3", session_id=s).json() for name, s in sessions.items()}
        assert answers["control"]["index_version"] == "v1"
        assert answers["retrained"]["index_version"] == f"v1+{fingerprint[:12]}"  # the version names its scorer
        assert answers["retrained"]["calibrated"] is True and answers["control"]["calibrated"] is False
        again = _post(client, k="3", session_id=sessions["retrained"]).json()
        assert again["cached"] is True and again["index_version"] == answers["retrained"]["index_version"]
        assert client.get("/ready").json()["info"]["variant_versions"] == {"retrained": f"v1+{fingerprint[:12]}"}
    store = FeedbackStore(url)
    served = store.served(answers["retrained"]["recommendation_id"])
    assert served.index_version == f"v1+{fingerprint[:12]}" and served.variant == "retrained"
    store.close()


def test_a_pinned_scorer_of_another_encoder_fails_the_load(recommenders, tmp_path: Path):
    from faces.http_runtime import ServingRuntime
    from scene_assets.ranking.variants import Variant, VariantPlan

    scorer = LearnedScorer(calibrator=IsotonicCalibrator.fit(np.linspace(0, 1, 10), np.r_[np.zeros(5), np.ones(5)]),
                           trunk_fingerprint="0" * 16)
    scorer.save(tmp_path / "other")
    plan = VariantPlan((Variant("control", 0.5), Variant("other", 0.5, learned=str(tmp_path / "other"))))
    runtime = ServingRuntime(FakeProvider(recommenders, "v1"), _settings(variants=plan))
    assert runtime.check_for_update() is False and runtime.served is None
    assert "fitted on encoder features" in runtime.last_reload_error
    runtime.close()


# --------------------------------------------------------------------------------------------
# which scorer serves


def test_a_feedback_scorer_serves_only_after_its_check_passed(tmp_path: Path):
    import dagster as dg

    from pipelines.serving import FEEDBACK_CHECK, latest_learned_dir

    def materialize_learned(fp):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "learned_scorer", metadata={"learned_dir": str(tmp_path / fp), "learned_fingerprint": fp}))

    def check(fp, passed):
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=FEEDBACK_CHECK.asset_key, check_name=FEEDBACK_CHECK.name, passed=passed,
            metadata={"learned_dir": str(tmp_path / fp), "learned_fingerprint": fp}))

    with dg.instance_for_test() as instance:
        assert latest_learned_dir(instance) is None
        materialize_learned("labels1")
        assert latest_learned_dir(instance) == (tmp_path / "labels1", "labels1")
        check("feedback1", passed=False)  # regressed on the labeled folds: never served by default
        assert latest_learned_dir(instance) == (tmp_path / "labels1", "labels1")
        check("feedback2", passed=True)
        assert latest_learned_dir(instance) == (tmp_path / "feedback2", "feedback2")
        check("feedback3", passed=False)  # a later failure keeps the last one that passed
        assert latest_learned_dir(instance) == (tmp_path / "feedback2", "feedback2")
        materialize_learned("labels2")  # a newer labels-only scorer (new labels, new index) wins again
        assert latest_learned_dir(instance) == (tmp_path / "labels2", "labels2")
