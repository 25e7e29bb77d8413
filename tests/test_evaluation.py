"""The evaluation protocol, labeled-dataset loader, weight sweep and learned scorer parts.

Hand-computed expectations on toy data for the pure parts; one slow end-to-end run of ``evaluate``
on the embedded synthetic sample dataset (real default encoder, offline).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from evaluation.dataset import DatasetError, evaluation_group, load_labeled_dataset
from evaluation.metrics import ranking_metrics
from evaluation.config import BASELINES, DEFAULT_EVALUATION_WEIGHTS, METRIC_KEYS, EvaluationConfig
from evaluation.protocol import SplitError, evaluate
from evaluation.report import format_table, load_results, save_results
from evaluation.scoring import SceneResult, metrics_from_ranks, ranks_of, score_results
from evaluation.sweep import _CHOICES, SWEPT_FACTORS, random_weight_grid, run_sweep
from scene_assets.learned import (
    IsotonicCalibrator,
    LabelPriors,
    LearnedScorer,
    ProjectionConfig,
    RegionProjection,
    fit_region_projection,
    fit_room_classifier,
)
from scene_assets.ranking import FACTORS, ScoringWeights
from scene_assets.scene_analysis import ROOM_TYPES

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# ranking metrics from ranks
# --------------------------------------------------------------------------------------------


def test_metrics_from_ranks_by_hand():
    m = metrics_from_ranks(np.array([0, 3, 12]), 4)
    assert set(m) == set(METRIC_KEYS)
    assert m["recall@10"] == pytest.approx(2 / 4)
    assert m["recall@50"] == pytest.approx(3 / 4)
    assert m["mrr"] == pytest.approx(1.0)
    assert m["hit@10"] == 1.0
    # hits at 1-based positions 1 and 4; ideal: 4 hits at positions 1..4
    dcg = 1 / math.log2(2) + 1 / math.log2(5)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, 5))
    assert m["ndcg@10"] == pytest.approx(dcg / ideal)


def test_metrics_from_ranks_first_hit_outside_top10_and_none_ranked():
    m = metrics_from_ranks(np.array([14, 60]), 3)
    assert m["recall@10"] == 0.0 and m["ndcg@10"] == 0.0 and m["hit@10"] == 0.0
    assert m["recall@50"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx(1 / 15)
    empty = metrics_from_ranks(np.array([], dtype=np.int64), 2)
    assert empty == {"recall@10": 0.0, "recall@50": 0.0, "ndcg@10": 0.0, "mrr": 0.0, "hit@10": 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_from_ranks_agrees_with_ranking_metrics(seed):
    rng = np.random.default_rng(seed)
    ids = [f"p{i:03d}" for i in range(80)]
    scores = rng.random(len(ids))
    relevant_rows = np.sort(rng.choice(len(ids), size=int(rng.integers(1, 14)), replace=False))
    ranking = [ids[i] for i in np.argsort(-scores, kind="stable")]
    relevant = {ids[i] for i in relevant_rows}
    expected = ranking_metrics(ranking, relevant)
    got = metrics_from_ranks(ranks_of(scores, relevant_rows), len(relevant))
    assert got == pytest.approx(expected)


def test_ranks_are_sorted_and_ties_go_to_the_earlier_row():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    # descending, stable: rows 1, 3, 0, 2, 4
    assert ranks_of(scores, np.array([3, 2])).tolist() == [1, 3]
    assert ranks_of(scores, np.array([4, 0, 1])).tolist() == [0, 2, 4]
    flat = np.zeros(6)
    assert ranks_of(flat, np.array([5, 1])).tolist() == [1, 5]


def _result(factors: np.ndarray, relevant: list[int], fold: int = 0, room: str = "Bedroom",
            scene_id: str = "s") -> SceneResult:
    n = factors.shape[0]
    probs = np.full(len(ROOM_TYPES), 1.0 / len(ROOM_TYPES))
    rng = np.random.default_rng(n + fold)
    baselines = {name: rng.random(n).astype(np.float32) for name in BASELINES}
    return SceneResult(scene_id, room, fold, factors.astype(np.float32), np.asarray(relevant, dtype=np.int64),
                       probs, baselines)


def test_score_results_by_hand_and_scale_invariant():
    v, le = FACTORS.index("visual"), FACTORS.index("learned")
    f = np.zeros((5, len(FACTORS)))
    f[:, v] = [0.9, 0.8, 0.7, 0.6, 0.5]
    f[:, le] = [0.0, 0.1, 0.2, 0.3, 1.0]
    r = _result(f, [3, 4])
    only_visual = ScoringWeights(visual=1, text=0, room_fit=0, style=0, color=0, material=0, size=0)
    only_learned = ScoringWeights(visual=0, text=0, room_fit=0, style=0, color=0, material=0, size=0, learned=1)
    # visual ranks rows 3, 4 at positions 3 and 4 (0-based); learned puts them first
    out = score_results([r], only_visual)
    assert out.shape == (1, len(METRIC_KEYS))
    assert dict(zip(METRIC_KEYS, out[0])) == pytest.approx(metrics_from_ranks(np.array([3, 4]), 2))
    assert dict(zip(METRIC_KEYS, out[0]))["mrr"] == pytest.approx(1 / 4)
    assert score_results([r], only_learned)[0].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    doubled = ScoringWeights(**{k: 2 * x for k, x in only_visual.to_dict().items()})
    np.testing.assert_allclose(score_results([r], doubled), out)


# --------------------------------------------------------------------------------------------
# evaluation groups
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_type", "category", "group"),
    [
        ("Three-seat sofa", "seating", "sofa"),
        ("Armchair", "seating", "chair"),
        ("Cover two-seat sofa", "seating", None),
        ("Coffee table", "tables", "table"),
        ("Table top", "tables", None),
        ("Table lamp", "lighting", None),
        ("Chaise longue", "seating", "sofa"),
        ("Bar stool", "seating", None),
        ("Leg frame", "tables", None),
        (None, None, None),
    ],
)
def test_evaluation_group(product_type, category, group):
    assert evaluation_group(product_type, category) == group


@pytest.mark.parametrize(
    ("product_type", "category", "group"),
    [("Chair with long cover", "seating", "chair"), ("Laptop table", "tables", "table")],
)
def test_evaluation_group_substring_false_negatives(product_type, category, group):
    # both types occur in the IKEA catalog: a chair sold with a cover, a table for a laptop
    assert evaluation_group(product_type, category) == group


# --------------------------------------------------------------------------------------------
# labeled dataset loader
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the embedded sample dataset (images copied too, so tests may delete them)."""
    root = tmp_path / "labeled"
    root.mkdir()
    for name in ("products.csv", "scenes.csv", "scene_products.csv"):
        shutil.copy(SAMPLE / name, root / name)
    shutil.copytree(SAMPLE / "images", root / "images")
    return root


def _rewrite(path: Path, df: pl.DataFrame) -> None:
    df.write_csv(path)


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def test_sample_dataset_loads(sample_copy):
    ds = load_labeled_dataset(sample_copy)
    assert ds.root == sample_copy.resolve()
    assert ds.skipped_scenes == []
    assert len(ds.scene_ids) == _read(sample_copy / "scenes.csv").height
    assert ds.products["product_id"].to_list() == sorted(ds.products["product_id"].to_list())
    assert (ds.products["image_status"] == "ok").all()
    assert set(ds.relevant) == set(ds.scene_ids)
    assert all(ds.relevant[s] for s in ds.scene_ids)
    assert set(ds.rooms()) == set(ds.scene_ids)
    d = ds.describe()
    assert d["products"] == ds.products.height and d["scenes"] == len(ds.scene_ids)
    assert d["labeled_pairs"] == sum(len(v) for v in ds.relevant.values())


def test_relevant_only_holds_products_with_an_image(sample_copy):
    products = _read(sample_copy / "products.csv")
    no_image = set(products.filter(pl.col("image").is_null())["product_id"].to_list())
    pairs = _read(sample_copy / "scene_products.csv")
    labeled_without_image = pairs.filter(pl.col("product_id").is_in(list(no_image)))
    assert labeled_without_image.height >= 1  # the sample has such a link on purpose
    ds = load_labeled_dataset(sample_copy)
    assert ds.products_without_image == len(no_image)
    with_image = set(ds.products["product_id"].to_list())
    assert not with_image & no_image
    for sid, pids in ds.relevant.items():
        assert pids <= with_image
    sid, pid = labeled_without_image.row(0)
    assert pid not in ds.relevant[sid]
    assert ds.describe()["labeled_pairs"] == pairs.height - labeled_without_image.height


def test_missing_folder_and_missing_scenes_csv(sample_copy, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_labeled_dataset(tmp_path / "nope")
    (sample_copy / "scenes.csv").unlink()
    with pytest.raises(DatasetError, match=r"scenes\.csv.*not found"):
        load_labeled_dataset(sample_copy)


def test_missing_products_csv(sample_copy):
    (sample_copy / "products.csv").unlink()
    with pytest.raises(DatasetError, match=r"products\.csv.*not found"):
        load_labeled_dataset(sample_copy)


def test_missing_column_names_file_and_column(sample_copy):
    _rewrite(sample_copy / "scenes.csv", _read(sample_copy / "scenes.csv").drop("room_type"))
    with pytest.raises(DatasetError) as err:
        load_labeled_dataset(sample_copy)
    assert "scenes.csv" in str(err.value) and "room_type" in str(err.value)


def test_missing_pair_column_names_file_and_column(sample_copy):
    _rewrite(sample_copy / "scene_products.csv",
             _read(sample_copy / "scene_products.csv").rename({"product_id": "pid"}))
    with pytest.raises(DatasetError) as err:
        load_labeled_dataset(sample_copy)
    assert "scene_products.csv" in str(err.value) and "product_id" in str(err.value)


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_scene_id_names_the_row(sample_copy, blank):
    scenes = _read(sample_copy / "scenes.csv")
    # third data row -> line 4 of the file (header is line 1)
    scenes = scenes.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit(blank)).otherwise(pl.col("scene_id")).alias("scene_id"))
    _rewrite(sample_copy / "scenes.csv", scenes)
    with pytest.raises(DatasetError) as err:
        load_labeled_dataset(sample_copy)
    msg = str(err.value)
    assert "scenes.csv" in msg and "row 4" in msg and "scene_id" in msg


def test_empty_cell_in_first_data_row_is_row_2(sample_copy):
    pairs = _read(sample_copy / "scene_products.csv")
    pairs = pairs.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(None)).otherwise(pl.col("product_id")).alias("product_id"))
    _rewrite(sample_copy / "scene_products.csv", pairs)
    with pytest.raises(DatasetError, match=r"scene_products\.csv: row 2 has an empty 'product_id'"):
        load_labeled_dataset(sample_copy)


def test_unknown_product_is_named(sample_copy):
    with (sample_copy / "scene_products.csv").open("a", encoding="utf-8") as fh:
        fh.write("scene_48ef922268,999.999.99\n")
    with pytest.raises(DatasetError) as err:
        load_labeled_dataset(sample_copy)
    assert "999.999.99" in str(err.value) and "scene_products.csv" in str(err.value)


def test_duplicate_scene_id_is_an_error(sample_copy):
    scenes = _read(sample_copy / "scenes.csv")
    _rewrite(sample_copy / "scenes.csv", pl.concat([scenes, scenes.head(1)]))
    with pytest.raises(DatasetError, match="more than once"):
        load_labeled_dataset(sample_copy)


def test_scene_with_missing_image_is_skipped_not_an_error(sample_copy):
    scenes = _read(sample_copy / "scenes.csv")
    sid, image = scenes["scene_id"][0], scenes["image"][0]
    (sample_copy / image).unlink()
    ds = load_labeled_dataset(sample_copy)
    assert sid not in ds.scene_ids and sid not in ds.relevant
    assert len(ds.scene_ids) == scenes.height - 1
    reasons = dict(ds.skipped_scenes)
    assert set(reasons) == {sid}
    assert "not found" in reasons[sid] and image in reasons[sid]
    assert ds.describe()["skipped_scenes"] == 1


def test_scenes_without_usable_labels_or_leaving_the_folder_are_skipped(sample_copy):
    scenes = _read(sample_copy / "scenes.csv")
    products = _read(sample_copy / "products.csv")
    no_image = products.filter(pl.col("image").is_null())["product_id"][0]
    existing = scenes["image"][0]
    (sample_copy.parent / "outside.jpg").write_bytes((sample_copy / existing).read_bytes())
    extra = pl.DataFrame({"scene_id": ["only_imageless", "escapes", "unlabeled"],
                          "image": [existing, "../outside.jpg", existing],
                          "room_type": ["Bedroom", "Bedroom", "Bedroom"], "caption": [None, None, None]},
                         schema=scenes.schema)
    _rewrite(sample_copy / "scenes.csv", pl.concat([scenes, extra]))
    labeled_with_image = _read(sample_copy / "scene_products.csv")["product_id"][0]
    with (sample_copy / "scene_products.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"only_imageless,{no_image}\n")
        fh.write(f"escapes,{labeled_with_image}\n")
    ds = load_labeled_dataset(sample_copy)
    reasons = dict(ds.skipped_scenes)
    assert set(reasons) == {"only_imageless", "escapes", "unlabeled"}
    assert reasons["only_imageless"] == "no labeled product with an image"
    assert reasons["unlabeled"] == "no labeled product with an image"
    assert "leaves the dataset folder" in reasons["escapes"]
    assert len(ds.scene_ids) == scenes.height


def test_caption_column_is_optional(sample_copy):
    _rewrite(sample_copy / "scenes.csv", _read(sample_copy / "scenes.csv").drop("caption"))
    ds = load_labeled_dataset(sample_copy)
    assert ds.scenes["caption"].null_count() == ds.scenes.height > 0


def test_fingerprint_tracks_the_label_files(sample_copy):
    first = load_labeled_dataset(sample_copy).fingerprint
    assert load_labeled_dataset(sample_copy).fingerprint == first
    # a copy elsewhere with the same CSVs has the same fingerprint (same labels)
    assert load_labeled_dataset(SAMPLE).fingerprint == first
    pairs = _read(sample_copy / "scene_products.csv")
    _rewrite(sample_copy / "scene_products.csv", pairs.head(pairs.height - 1))
    changed = load_labeled_dataset(sample_copy).fingerprint
    assert changed != first
    assert len(changed) == 16


# --------------------------------------------------------------------------------------------
# evaluation config
# --------------------------------------------------------------------------------------------


def test_config_from_file_flat_weights(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"visual": 0.3, "learned": 2.0}), encoding="utf-8")
    cfg = EvaluationConfig.from_file(path)
    assert cfg.weights.visual == 0.3 and cfg.weights.learned == 2.0
    # weights not named keep the evaluation defaults, other settings their defaults
    assert cfg.weights.room_fit == DEFAULT_EVALUATION_WEIGHTS["room_fit"]
    assert cfg.folds == EvaluationConfig().folds


def test_config_from_file_nested(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"weights": {"prior": 0.1}, "folds": 3, "seed": 4,
                                "projection": {"epochs": 7, "dim": 32}}), encoding="utf-8")
    cfg = EvaluationConfig.from_file(path)
    assert cfg.folds == 3 and cfg.seed == 4
    assert cfg.weights.prior == 0.1 and cfg.weights.learned == DEFAULT_EVALUATION_WEIGHTS["learned"]
    assert cfg.projection == ProjectionConfig(epochs=7, dim=32)


def test_config_round_trips_through_to_dict():
    cfg = EvaluationConfig(weights=ScoringWeights(visual=0.7, learned=1.5), folds=4, seed=9, use_captions=True,
                           projection=ProjectionConfig(epochs=3, dim=8), calibration_top_k=5, bootstrap_resamples=50)
    assert EvaluationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_from_file_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"folds": 3, "bogus": 1}), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        EvaluationConfig.from_file(path)
    assert str(path) in str(err.value) and "bogus" in str(err.value)


def test_config_from_file_unknown_weight_names_the_file(tmp_path):
    path = tmp_path / "bad_weight.json"
    path.write_text(json.dumps({"weights": {"vizual": 1.0}}), encoding="utf-8")
    with pytest.raises(ValueError, match="bad_weight.json"):
        EvaluationConfig.from_file(path)


def test_config_folds_below_two_rejected(tmp_path):
    with pytest.raises(ValueError, match="folds"):
        EvaluationConfig.from_dict({"folds": 1})
    path = tmp_path / "one_fold.json"
    path.write_text(json.dumps({"folds": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="folds") as err:
        EvaluationConfig.from_file(path)
    assert "one_fold.json" in str(err.value)


def test_config_from_file_non_mapping(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping"):
        EvaluationConfig.from_file(path)


# --------------------------------------------------------------------------------------------
# learned parts
# --------------------------------------------------------------------------------------------

# 3 products, 2 rooms: s1 (Bedroom) {p1, p2}, s2 (Bedroom) {p1}, s3 (Kitchen) {p3}
TOY_ROOMS = ["Bedroom", "Kitchen"]
TOY_CATEGORY = {"p1": "beds", "p2": "lighting", "p3": "lighting"}


def _toy_priors() -> LabelPriors:
    return LabelPriors.fit({"s1": "Bedroom", "s2": "Bedroom", "s3": "Kitchen", "s4": "Garage"},
                           {"s1": ["p1", "p2", "p2"], "s2": ["p1"], "s3": ["p3"], "s4": ["p3"]},
                           TOY_CATEGORY, TOY_ROOMS)


def _documented_prior(c, cat_share, n_cat, pop, n_r, a=1.0, b=0.5):
    """``(c(p, r) + a * share(cat(p), r) / n_cat + b * pop(p)) / (n_r + a + b)``"""
    return (c + a * cat_share / n_cat + b * pop) / (n_r + a + b)


def test_label_priors_counts_by_hand():
    pri = _toy_priors()
    assert pri.rooms == TOY_ROOMS and pri.product_ids == ["p1", "p2", "p3"]
    assert pri.categories == ["beds", "lighting", "other"]
    # a product listed twice in a scene counts once; the scene of an unknown room type is ignored
    np.testing.assert_array_equal(pri.product_room_counts, [[2, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(pri.category_room_counts, [[2, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(pri.room_scene_counts, [2, 1])


def test_label_priors_product_prior_single_scene_room_by_hand():
    pri = _toy_priors()
    pids, cats = ["p1", "p2", "p3"], ["beds", "lighting", "lighting"]
    # overall popularity: scenes containing p / all 3 training scenes = 2/3, 1/3, 1/3
    # Kitchen (1 scene): category share beds 0, lighting 1 (2 lighting products in the catalog)
    expected = [_documented_prior(0, 0.0, 1, 2 / 3, 1), _documented_prior(0, 1.0, 2, 1 / 3, 1),
                _documented_prior(1, 1.0, 2, 1 / 3, 1)]
    assert expected == pytest.approx([(1 / 3) / 2.5, (0.5 + 1 / 6) / 2.5, (1 + 0.5 + 1 / 6) / 2.5])
    got = pri.product_prior(pids, cats, np.array([0.0, 1.0]), TOY_ROOMS)
    assert got == pytest.approx(expected)
    # the room order of the posterior is the caller's
    assert pri.product_prior(pids, cats, np.array([1.0, 0.0]), ["Kitchen", "Bedroom"]) == pytest.approx(expected)
    # a room the priors never saw: only the popularity term, b * pop / (a + b)
    unseen = pri.product_prior(pids, cats, np.array([1.0]), ["Outdoor"])
    assert unseen == pytest.approx([0.5 * (2 / 3) / 1.5, 0.5 * (1 / 3) / 1.5, 0.5 * (1 / 3) / 1.5])


def test_label_priors_product_prior_matches_documented_formula():
    pri = _toy_priors()
    pids, cats = ["p1", "p2", "p3"], ["beds", "lighting", "lighting"]
    # Bedroom (2 scenes): category label share beds 2/3, lighting 1/3
    bedroom = [_documented_prior(2, 2 / 3, 1, 2 / 3, 2), _documented_prior(1, 1 / 3, 2, 1 / 3, 2),
               _documented_prior(0, 1 / 3, 2, 1 / 3, 2)]
    assert bedroom[0] == pytest.approx(3 / 3.5)
    kitchen = pri.product_prior(pids, cats, np.array([0.0, 1.0]), TOY_ROOMS)
    got = pri.product_prior(pids, cats, np.array([0.5, 0.5]), TOY_ROOMS)
    assert got == pytest.approx(0.5 * np.asarray(bedroom) + 0.5 * kitchen)
    # an expected share of scenes never exceeds 1
    assert (pri.product_prior(pids, cats, np.array([1.0, 0.0]), TOY_ROOMS) <= 1.0).all()


def test_label_priors_posterior_is_a_mixture():
    pri = _toy_priors()
    pids, cats = ["p1", "p2", "p3"], ["beds", "lighting", "lighting"]
    bed = pri.product_prior(pids, cats, np.array([1.0, 0.0]), TOY_ROOMS)
    kit = pri.product_prior(pids, cats, np.array([0.0, 1.0]), TOY_ROOMS)
    mix = pri.product_prior(pids, cats, np.array([0.25, 0.75]), TOY_ROOMS)
    assert mix == pytest.approx(0.25 * bed + 0.75 * kit)
    # the product seen in both Bedroom scenes outranks the one seen in one, in the Bedroom
    assert bed[0] > bed[1] > bed[2]
    assert kit[2] == kit.max()


def test_isotonic_calibrator_monotone_bounded_and_round_trips():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=400)
    labels = (rng.random(400) < 1 / (1 + np.exp(-2 * scores))).astype(float)
    cal = IsotonicCalibrator.fit(scores, labels)
    grid = np.linspace(-5, 5, 501)  # also beyond the fitted range (clipped)
    out = cal(grid)
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[0] < 0.3 and out[-1] > 0.7  # it did learn the trend
    back = IsotonicCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back(grid), out)
    with pytest.raises(ValueError):
        IsotonicCalibrator.fit(np.array([]), np.array([]))


def _separable_rooms(rng, n_per_class=20, dim=8):
    centers = {"Bedroom": np.eye(dim)[0] * 3, "Kitchen": np.eye(dim)[1] * 3, "Hallway": np.eye(dim)[2] * 3}
    X, y = [], []
    for room, c in centers.items():
        X.append(c + rng.normal(scale=0.3, size=(n_per_class, dim)) + 1.0)
        y += [room] * n_per_class
    return np.vstack(X).astype(np.float32), y


def test_room_classifier_separable():
    rng = np.random.default_rng(0)
    X, y = _separable_rooms(rng)
    clf = fit_room_classifier(X, y)
    assert sorted(clf.classes_) == ["Bedroom", "Hallway", "Kitchen"]
    Xt, yt = _separable_rooms(np.random.default_rng(1), n_per_class=10)
    assert clf.predict(Xt) == yt
    proba = clf.predict_proba(Xt)
    assert proba.shape == (len(yt), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    # a single vector is accepted too
    assert clf.predict(Xt[0]) == [yt[0]]
    with pytest.raises(ValueError, match="two room types"):
        fit_room_classifier(X[:5], ["Bedroom"] * 5)


def _projection_scenes(rng, products, n_scenes, transform=None):
    queries, positives = [], []
    n, dim = products.shape
    for _ in range(n_scenes):
        pos = np.sort(rng.choice(n, size=2, replace=False))
        regions = products[pos] + rng.normal(scale=0.5 / np.sqrt(dim), size=(2, dim))
        if transform is not None:
            regions = regions @ transform
        distractors = rng.normal(size=(2, dim))
        queries.append(_l2(np.vstack([regions, distractors])).astype(np.float32))
        positives.append(pos)
    return queries, positives


def _mrr(proj: RegionProjection, products, queries, positives) -> float:
    projected = proj.transform_products(products)
    rr = []
    for q, pos in zip(queries, positives):
        s = proj.scores(q, projected)
        assert s.shape == (products.shape[0],)
        rr.append(metrics_from_ranks(ranks_of(s, pos), len(pos))["mrr"])
    return float(np.mean(rr))


def _chance_mrr(rng, n_products, positives, draws=200) -> float:
    return float(np.mean([metrics_from_ranks(ranks_of(rng.random(n_products), pos), len(pos))["mrr"]
                          for pos in positives for _ in range(draws // len(positives) + 1)]))


def test_region_projection_ranks_positives_above_chance(one_torch_thread):
    rng = np.random.default_rng(0)
    products = _l2(rng.normal(size=(40, 32))).astype(np.float32)
    train_q, train_p = _projection_scenes(rng, products, 60)
    train_p.append(np.array([], dtype=np.int64))  # a scene without positives is skipped
    train_q.append(train_q[0])
    test_q, test_p = _projection_scenes(rng, products, 20)
    proj = fit_region_projection(train_q, train_p, products, ProjectionConfig(dim=16, pca_dim=32, epochs=30))
    assert proj.query_map.shape == (32, 16) and proj.product_map.shape == (32, 16)
    assert proj.config["training_scenes"] == 60 and proj.config["epochs"] == 30
    assert proj.transform_products(products).shape == (40, 16)
    np.testing.assert_allclose(np.linalg.norm(proj.transform_queries(test_q[0]), axis=1), 1.0, atol=1e-5)
    learned = _mrr(proj, products, test_q, test_p)
    chance = _chance_mrr(np.random.default_rng(1), 40, test_p)
    assert chance < 0.2
    assert learned > 0.8 and learned > chance + 0.5
    with pytest.raises(ValueError, match="no training scene"):
        fit_region_projection(train_q[:2], [np.array([], dtype=np.int64)] * 2, products)


def test_region_projection_learns_a_map_zero_shot_misses(one_torch_thread):
    # regions live in a rotated space: zero-shot similarity is near chance, training recovers the map
    rng = np.random.default_rng(1)
    products = _l2(rng.normal(size=(40, 32))).astype(np.float32)
    rotation = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    train_q, train_p = _projection_scenes(rng, products, 120, rotation)
    test_q, test_p = _projection_scenes(rng, products, 30, rotation)
    base = dict(dim=16, pca_dim=32, learning_rate=5e-2)
    untrained = fit_region_projection(train_q, train_p, products, ProjectionConfig(epochs=0, **base))
    trained = fit_region_projection(train_q, train_p, products, ProjectionConfig(epochs=30, **base))
    before, after = _mrr(untrained, products, test_q, test_p), _mrr(trained, products, test_q, test_p)
    assert after > before + 0.3, (before, after)


def _scorer() -> LearnedScorer:
    rng = np.random.default_rng(3)
    proj = RegionProjection(rng.normal(size=(12, 4)).astype(np.float32), rng.normal(size=(12, 4)).astype(np.float32),
                            ProjectionConfig(dim=4, epochs=2).to_dict() | {"training_scenes": 7})
    X, y = _separable_rooms(rng, n_per_class=5, dim=12)
    cal = IsotonicCalibrator.fit(rng.random(50), (rng.random(50) < 0.4).astype(float))
    return LearnedScorer(proj, fit_room_classifier(X, y), _toy_priors(), cal, "trunk-abc",
                         {"training_dataset": "d2ef", "training_scenes": 7})


def test_learned_scorer_save_load_round_trip(tmp_path):
    scorer = _scorer()
    folder = scorer.save(tmp_path / "learned")
    assert (folder / "learned.npz").is_file() and (folder / "learned.json").is_file()
    assert json.loads((folder / "learned.json").read_text())["fingerprint"] == scorer.fingerprint()
    back = LearnedScorer.load(folder)
    assert back.fingerprint() == scorer.fingerprint()
    np.testing.assert_array_equal(back.projection.query_map, scorer.projection.query_map)
    np.testing.assert_array_equal(back.projection.product_map, scorer.projection.product_map)
    assert back.projection.config == scorer.projection.config
    np.testing.assert_array_equal(back.room_classifier.coef, scorer.room_classifier.coef)
    np.testing.assert_array_equal(back.room_classifier.intercept, scorer.room_classifier.intercept)
    assert back.room_classifier.classes_ == scorer.room_classifier.classes_
    for a, b in zip(back.priors.to_arrays().values(), scorer.priors.to_arrays().values()):
        np.testing.assert_array_equal(a, b)
    assert back.priors.meta() == scorer.priors.meta()
    grid = np.linspace(-0.5, 1.5, 41)
    np.testing.assert_array_equal(back.calibrator(grid), scorer.calibrator(grid))
    assert back.trunk_fingerprint == "trunk-abc" and back.info == scorer.info
    probe = np.random.default_rng(0).normal(size=(3, 12))
    np.testing.assert_array_equal(back.room_classifier.predict_proba(probe),
                                  scorer.room_classifier.predict_proba(probe))


def test_learned_scorer_fingerprint_and_partial_bundle(tmp_path):
    scorer = _scorer()
    other = _scorer()
    other.calibrator = IsotonicCalibrator(np.array([0.0, 1.0]), np.array([0.1, 0.9]))
    assert other.fingerprint() != scorer.fingerprint()
    only_priors = LearnedScorer(priors=_toy_priors())
    back = LearnedScorer.load(only_priors.save(tmp_path / "priors_only"))
    assert back.projection is None and back.room_classifier is None and back.calibrator is None
    assert back.fingerprint() == only_priors.fingerprint()


def test_learned_scorer_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        LearnedScorer.load(tmp_path / "does-not-exist")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "learned.json").write_text("{}")
    with pytest.raises(FileNotFoundError):
        LearnedScorer.load(tmp_path / "half")


# --------------------------------------------------------------------------------------------
# weight sweep
# --------------------------------------------------------------------------------------------


def _synthetic_results(n_scenes=30, n_products=60, folds=3, seed=0) -> list[SceneResult]:
    """``learned`` is informative (relevant rows score higher, with overlap), every other factor is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_scenes):
        f = rng.random((n_products, len(FACTORS)))
        rel = np.sort(rng.choice(n_products, size=3, replace=False))
        learned = rng.uniform(0.0, 0.8, n_products)
        learned[rel] = rng.uniform(0.4, 1.0, rel.size)
        f[:, FACTORS.index("learned")] = learned
        probs = rng.dirichlet(np.ones(len(ROOM_TYPES)))
        out.append(SceneResult(f"scene{i:02d}", ROOM_TYPES[i % 3], i % folds, f.astype(np.float32), rel, probs,
                               {name: rng.random(n_products).astype(np.float32) for name in BASELINES}))
    return out


BASE = ScoringWeights(visual=1.0, text=0.2, room_fit=0.1, style=0.0, color=0.0, material=0.0, size=0.0,
                      learned=0.5, prior=0.0)


def test_random_weight_grid_distinct_bounded_and_starts_with_base():
    grid = random_weight_grid(BASE, 25, seed=0)
    assert len(grid) == 25
    assert grid[0] == BASE
    assert len({tuple(w.vector()) for w in grid}) == len(grid)
    for w in grid[1:]:
        for f in FACTORS:
            if f in SWEPT_FACTORS:
                assert getattr(w, f) in _CHOICES[f]
            else:
                assert getattr(w, f) == getattr(BASE, f)
    assert [w.vector().tolist() for w in random_weight_grid(BASE, 25, seed=0)] == [w.vector().tolist() for w in grid]
    assert [w.vector().tolist() for w in random_weight_grid(BASE, 25, seed=1)] != [w.vector().tolist() for w in grid]
    assert random_weight_grid(BASE, 1) == [BASE]
    with pytest.raises(ValueError):
        random_weight_grid(BASE, 0)


def test_random_weight_grid_never_exceeds_the_grid():
    full = int(np.prod([len(_CHOICES[f]) for f in SWEPT_FACTORS]))  # 576 points
    grid = random_weight_grid(BASE, 600, seed=0)
    assert len(grid) <= full + 1  # the base is not on the grid
    assert len({tuple(w.vector()) for w in grid}) == len(grid)


def test_run_sweep_prefers_the_informative_factor():
    results = _synthetic_results()
    zero = dict.fromkeys(FACTORS, 0.0)
    only_visual = ScoringWeights(**zero | {"visual": 1.0})
    only_learned = ScoringWeights(**zero | {"learned": 1.0})
    half = ScoringWeights(**zero | {"visual": 1.0, "learned": 1.0})
    sweep = run_sweep(results, [only_visual, half, only_learned])
    assert sweep.best == only_learned and sweep.best_index == 2
    j = METRIC_KEYS.index("ndcg@10")
    assert sweep.mean[2, j] > sweep.mean[1, j] > sweep.mean[0, j]
    assert sweep.mean[2, j] > sweep.mean[0, j] + 0.3
    assert sweep.nested_choices == [2, 2, 2]
    for i, w in enumerate(sweep.configs):
        np.testing.assert_allclose(sweep.mean[i], score_results(results, w).mean(axis=0))


def test_run_sweep_on_random_grid_nested_selection():
    results = _synthetic_results()
    configs = random_weight_grid(BASE, 40, seed=0)
    sweep = run_sweep(results, configs, objective="ndcg@10")
    j = METRIC_KEYS.index("ndcg@10")
    best = sweep.best
    assert sweep.mean[sweep.best_index, j] == sweep.mean[:, j].max()
    share = lambda w, f: getattr(w, f) / w.total()  # noqa: E731
    # the winner leans on the informative factor more than the base and more than the average config
    assert share(best, "learned") > share(BASE, "learned")
    assert share(best, "learned") > np.mean([share(w, "learned") for w in configs])
    assert share(best, "learned") > share(best, "visual")
    assert sweep.mean[sweep.best_index, j] > sweep.mean[0, j]
    assert sweep.folds == [0, 1, 2]
    assert len(sweep.nested_choices) == 3
    assert all(0 <= c < len(configs) for c in sweep.nested_choices)
    assert sweep.per_fold.shape == (len(configs), 3, len(METRIC_KEYS))
    assert set(sweep.nested) == set(METRIC_KEYS)
    assert all(0.0 <= v <= 1.0 for v in sweep.nested.values())
    # nested: each fold scored by the config chosen on the other folds
    fold_of = np.array([r.fold for r in results])
    per_scene = np.stack([score_results(results, w) for w in configs])
    for f, pick in enumerate(sweep.nested_choices):
        assert pick == int(np.argmax(per_scene[:, fold_of != f, j].mean(axis=1)))
    expected = np.concatenate([per_scene[pick, fold_of == f] for f, pick in enumerate(sweep.nested_choices)])
    assert sweep.nested["ndcg@10"] == pytest.approx(expected[:, j].mean())
    rows = sweep.rows()
    assert len(rows) == len(configs) and rows[0]["config"] == 0 and "ndcg@10" in rows[0]


def test_run_sweep_single_fold_and_bad_arguments():
    results = _synthetic_results(n_scenes=6, folds=1)
    sweep = run_sweep(results, [BASE])
    assert sweep.nested == {} and sweep.nested_choices == []
    assert sweep.best == BASE
    with pytest.raises(ValueError, match="objective"):
        run_sweep(results, [BASE], objective="precision@3")
    with pytest.raises(ValueError, match="no configurations"):
        run_sweep(results, [])


# --------------------------------------------------------------------------------------------
# saved results
# --------------------------------------------------------------------------------------------


def _assert_results_equal(back, results, baseline_atol):
    assert len(back) == len(results)
    for a, b in zip(back, results):
        assert (a.scene_id, a.room_type, a.fold) == (b.scene_id, b.room_type, b.fold)
        assert a.factors.dtype == np.float32
        np.testing.assert_array_equal(a.factors, b.factors)
        np.testing.assert_array_equal(a.relevant_rows, b.relevant_rows)
        np.testing.assert_allclose(a.room_probs, b.room_probs)
        assert set(a.baselines) == set(BASELINES)
        for name in BASELINES:  # stored as float16
            np.testing.assert_allclose(a.baselines[name], b.baselines[name], rtol=2e-3, atol=baseline_atol)


def test_save_load_results_round_trip(tmp_path):
    results = _synthetic_results(n_scenes=7, n_products=20)
    results[3].relevant_rows = np.array([5], dtype=np.int64)  # uneven label counts
    ids = [f"{i:03d}.000.00" for i in range(20)]
    path = save_results(tmp_path / "sub" / "results.npz", results, ids)
    back, back_ids = load_results(path)
    assert back_ids == ids
    _assert_results_equal(back, results, 1e-3)
    np.testing.assert_allclose(score_results(back, BASE), score_results(results, BASE))


# --------------------------------------------------------------------------------------------
# split discipline without an encoder
# --------------------------------------------------------------------------------------------


def test_evaluate_refuses_a_copy_of_the_scored_data_as_training_data(sample_copy, tmp_path):
    ds = load_labeled_dataset(SAMPLE)
    copy = load_labeled_dataset(sample_copy)  # another folder, same labels (same fingerprint)
    assert copy.root != ds.root
    for train in (ds, copy):
        with pytest.raises(SplitError, match="held out"):
            evaluate(ds, train=train, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------
# end to end on the sample dataset (real default encoder)
# --------------------------------------------------------------------------------------------

EVAL_CONFIG = EvaluationConfig(folds=3, projection=ProjectionConfig(epochs=5), bootstrap_resamples=100)


@pytest.fixture(scope="module")
def sample_eval(tmp_path_factory):
    cache = tmp_path_factory.mktemp("eval_cache")
    ds = load_labeled_dataset(SAMPLE)
    messages: list[str] = []
    report = evaluate(ds, config=EVAL_CONFIG, cache_dir=cache, progress=messages.append)
    return ds, report, cache, messages


@pytest.mark.slow
def test_evaluate_cross_validation_on_sample(sample_eval, tmp_path):
    ds, report, _, messages = sample_eval
    m = report.metrics
    expected_keys = {"n_scenes", "recall@10", "recall@50", "ndcg@10", "mrr", "hit@10", "hit@10.chair",
                     "hit@10.sofa", "hit@10.table", "room_type_accuracy", "ece", "encoder", "config"}
    assert expected_keys <= set(m)
    assert m["n_scenes"] == len(ds.scene_ids)
    for k in ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10", "room_type_accuracy", "ece"):
        assert 0.0 <= m[k] <= 1.0, k
    for g in ("chair", "sofa", "table"):
        assert m[f"hit@10.{g}"] is None or 0.0 <= m[f"hit@10.{g}"] <= 1.0
    assert isinstance(m["encoder"], str) and m["encoder"]
    assert m["config"] == EVAL_CONFIG.weights.to_dict()
    assert m["recall@10"] <= m["recall@50"]
    assert set(report.baselines) == set(BASELINES)
    for name, vals in report.baselines.items():
        for k in METRIC_KEYS:
            assert 0.0 <= vals[k] <= 1.0, (name, k)
    for k in METRIC_KEYS:
        lo, hi = report.intervals[k]
        assert lo <= m[k] + 1e-9 and m[k] <= hi + 1e-9
    assert report.protocol.startswith("3-fold cross-validation")
    assert report.train_dataset is None and report.learned is None
    assert report.dataset["fingerprint"] == ds.fingerprint

    # every scene scored exactly once, by one of folds 0..2
    assert sorted(r.scene_id for r in report.results) == sorted(ds.scene_ids)
    assert {r.fold for r in report.results} == {0, 1, 2}
    assert report.per_scene.height == len(ds.scene_ids)
    assert sorted(report.per_scene["fold"].unique().to_list()) == [0, 1, 2]
    assert sum(1 for msg in messages if msg.startswith("fold ")) == 3
    n = len(report.product_ids)
    assert n == ds.products.height
    for r in report.results:
        assert r.factors.shape == (n, len(FACTORS))
        assert r.room_probs.shape == (len(ROOM_TYPES),)
        expected_rows = sorted(report.product_ids.index(p) for p in ds.relevant[r.scene_id])
        assert r.relevant_rows.tolist() == expected_rows
    # the headline metrics are the configured weights applied to the stored factor matrices
    per_scene = score_results(report.results, EVAL_CONFIG.weights)
    assert m["ndcg@10"] == pytest.approx(per_scene[:, METRIC_KEYS.index("ndcg@10")].mean(), abs=1e-4)

    path = save_results(tmp_path / "results.npz", report.results, report.product_ids)
    back, ids = load_results(path)
    assert ids == report.product_ids
    _assert_results_equal(back, report.results, 5e-3)

    table = format_table(report)
    assert "scene-matcher" in table and "random" in table
    for name in BASELINES:
        assert name in table
    assert report.protocol in table
    json.dumps(report.to_dict())  # serialisable for the report file


@pytest.mark.slow
def test_evaluate_train_on_the_same_data(sample_eval):
    ds, cv_report, cache, _ = sample_eval
    with pytest.raises(SplitError):
        evaluate(ds, train=ds, config=EVAL_CONFIG, cache_dir=cache)
    report = evaluate(ds, train=ds, config=EVAL_CONFIG, cache_dir=cache, allow_same_dataset=True)
    assert "NOT held out" in report.protocol
    assert report.train_dataset["fingerprint"] == ds.fingerprint
    assert report.learned is not None and report.learned.calibrator is not None
    assert {r.fold for r in report.results} == {0}
    assert sorted(r.scene_id for r in report.results) == sorted(ds.scene_ids)
    assert report.metrics["encoder"] == cv_report.metrics["encoder"]
    for k in METRIC_KEYS:
        assert 0.0 <= report.metrics[k] <= 1.0


def test_missing_dataset_folder_says_what_to_pass(tmp_path):
    from evaluation.dataset import DatasetError, load_labeled_dataset

    with pytest.raises(DatasetError) as raised:
        load_labeled_dataset(tmp_path / "nowhere")
    message = str(raised.value)
    assert "nowhere" in message and "--dataset DIR" in message and "SCENE_MATCHER_EVAL_DATASET" in message


# --------------------------------------------------------------------------------------------
# ablation plumbing (synthetic fold results, no encoder)
# --------------------------------------------------------------------------------------------


def _ablation_products(n: int) -> pl.DataFrame:
    types = ["Armchair", "Three-seat sofa", "Coffee table", "Table lamp"]
    cats = ["seating", "seating", "tables", "lighting"]
    return pl.DataFrame({"product_type": [types[i % 4] for i in range(n)], "category": [cats[i % 4] for i in range(n)]})


def _ablation_folds(leaky: bool = False) -> list[tuple[list[SceneResult], list[SceneResult]]]:
    """3 folds of the synthetic results: each fold's held-out scenes, and the other folds' scenes as the
    ranker's training rows (with ``leaky``: their ``learned`` factor made perfect, as in-sample scores are)."""
    results = _synthetic_results(n_scenes=30, n_products=60, folds=3)
    out = []
    for f in range(3):
        train = [r for r in results if r.fold != f]
        if leaky:
            train = [SceneResult(r.scene_id, r.room_type, r.fold, r.factors.copy(), r.relevant_rows, r.room_probs,
                                 r.baselines) for r in train]
            for r in train:
                r.factors[:, FACTORS.index("learned")] = 0.0
                r.factors[r.relevant_rows, FACTORS.index("learned")] = 1.0
        out.append(([r for r in results if r.fold == f], train))
    return out


def test_ablation_rows_deltas_and_tables(tmp_path):
    from evaluation.ablation import Variant, format_ablation, score_variants, without_factors, write_ablation
    from scene_assets.ranking import RankerConfig

    ref = EvaluationConfig(folds=3, bootstrap_resamples=200,
                           ranker=RankerConfig(max_iter=30, negatives_per_scene=20))
    variants = [
        Variant("learned ranker", ref, "reference"),
        Variant("hand weights", EvaluationConfig(folds=3, bootstrap_resamples=200, ranker=None), "weights"),
        Variant("- projection", without_factors(ref, ["learned"]), "no learned factor"),
        Variant("ranker, in-sample rows", ref, "leaky rows", in_sample=True),
    ]
    calls: list[str] = []

    def folds(v):
        calls.append(v.name)
        return _ablation_folds(leaky=v.in_sample)

    result = score_variants(variants, folds, _ablation_products(60), "enc-fp")
    assert calls == [v.name for v in variants]
    rows = {r["variant"]: r for r in result.rows}
    assert [r["variant"] for r in result.rows] == [v.name for v in variants]
    assert rows["learned ranker"]["fusion"] == "ranker:hgb" and rows["hand weights"]["fusion"] == "weights"
    assert "delta.ndcg@10" not in rows["learned ranker"]
    for name in ("hand weights", "- projection", "ranker, in-sample rows"):
        r = rows[name]
        for k in ("ndcg@10", "mrr"):
            assert r[f"delta.{k}.ci_low"] <= r[f"delta.{k}"] <= r[f"delta.{k}.ci_high"]
            assert r[f"delta.{k}"] == pytest.approx(r[k] - rows["learned ranker"][k], abs=2e-3)
        assert r["n_scenes"] == 30
    # the informative factor is what the ranker lives on; rows made of in-sample scores over-trust it
    assert rows["- projection"]["delta.ndcg@10.ci_high"] < 0
    assert rows["- projection"]["ndcg@10"] < rows["learned ranker"]["ndcg@10"] - 0.1
    for r in result.rows:
        lo, hi = r["ndcg@10.ci_low"], r["ndcg@10.ci_high"]
        assert lo <= r["ndcg@10"] <= hi and 0.0 <= r["ece"] <= 1.0
    assert result.summaries["- projection"]["config"]["ranker"]["exclude"] == ["learned"]
    assert result.summaries["hand weights"]["config"]["ranker"] is None
    # the hand-weights row is the plain weighted evaluation of the same results
    held_out = sorted((r for outer, _ in _ablation_folds() for r in outer), key=lambda r: r.scene_id)
    expected = score_results(held_out, variants[1].config.weights)[:, METRIC_KEYS.index("ndcg@10")].mean()
    assert rows["hand weights"]["ndcg@10"] == pytest.approx(expected, abs=1e-4)

    table = format_ablation(result)
    assert all(v.name in table for v in variants) and "reference" in table
    md = result.to_markdown().splitlines()
    assert len(md) == 2 + len(variants) and md[0].startswith("| variant")
    paths = write_ablation(result, tmp_path / "out")
    import csv

    with paths[1].open() as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in csv_rows] == [v.name for v in variants]
    assert csv_rows[0]["delta.ndcg@10"] == "" and float(csv_rows[2]["delta.ndcg@10"]) < 0
    with pytest.raises(ValueError, match="no ablation variants"):
        score_variants([], folds, _ablation_products(60), "enc-fp")


def test_without_factors_zeroes_weights_and_excludes_features():
    from evaluation.ablation import default_variants, without_factors
    from scene_assets.ranking import RankerConfig

    cfg = EvaluationConfig(ranker=RankerConfig(exclude=("size",)))
    off = without_factors(cfg, ["learned", "color"])
    assert off.weights.learned == 0.0 and off.weights.color == 0.0 and off.weights.visual == cfg.weights.visual
    assert off.ranker.exclude == ("color", "learned", "size")
    with pytest.raises(ValueError, match="unknown factors"):
        without_factors(cfg, ["bogus"])
    names = [v.name for v in default_variants(EvaluationConfig(ranker=None))]
    assert names[0] == "learned ranker" and "hand weights" in names and "whole image, no regions" in names
    assert len(set(names)) == len(names)
    variants = {v.name: v for v in default_variants(cfg)}
    assert variants["- room classifier"].config.room_classifier is False
    assert variants["whole image, no regions"].config.regions is False
    assert variants["ranker, in-sample rows"].in_sample


def test_ablation_logged_as_parent_and_children(tmp_path):
    import mlflow

    from evaluation.ablation import Variant, score_variants
    from evaluation.tracking import MlflowLogger
    from scene_assets.ranking import RankerConfig

    ref = EvaluationConfig(folds=3, bootstrap_resamples=50, ranker=RankerConfig(max_iter=10, negatives_per_scene=10))
    variants = [Variant("learned ranker", ref, "reference"),
                Variant("hand weights", dataclasses.replace(ref, ranker=None), "weights")]
    result = score_variants(variants, lambda v: _ablation_folds(), _ablation_products(60), "enc-fp")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MlflowLogger.local(uri, "ablation-test", tmp_path / "artifacts")
    md = tmp_path / "ablation.md"
    md.write_text(result.to_markdown())
    parent, children = logger.log_ablation(result, run_name="abl", base_params={"dataset_hash": "abc"}, artifacts=[md])
    client = mlflow.MlflowClient(uri)
    assert len(children) == 2
    for child, row in zip(children, result.rows):
        run = client.get_run(child)
        assert run.data.tags["mlflow.parentRunId"] == parent and run.data.params["variant"] == row["variant"]
        assert run.data.metrics["ndcg_at_10"] == pytest.approx(row["ndcg@10"])
        assert "ndcg_at_10.ci_low" in run.data.metrics and "hit_at_10.chair" in run.data.metrics
        assert all("@" not in k for k in run.data.metrics)
    assert "delta.ndcg_at_10" in client.get_run(children[1]).data.metrics
    assert {a.path for a in client.list_artifacts(parent)} >= {"ablation.md", "ablation.json"}
    assert client.get_run(parent).data.params["reference"] == "learned ranker"
