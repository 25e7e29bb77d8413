"""The learned fusion ranker (scene_assets.ranking.ranker): numpy trees equal sklearn's, the training rows,
storage in the learned scorer, and the recommender ranking candidates exactly as the evaluation
ranks the whole catalog. Synthetic data and the fake encoder only: fast."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest

from evaluation.config import BASELINES, EvaluationConfig
from evaluation.folds import rank_fold
from evaluation.scoring import SceneResult, score_results
from scene_assets.encoders import FakeEncoder
from scene_assets.learned import LabelPriors, LearnedScorer, RegionProjection
from scene_assets.matching import Recommender
from scene_assets.ranking import (
    FACTORS,
    LEARNED_DEFAULT_WEIGHTS,
    RankingConfig,
    ScoringWeights,
    choose_fusion,
    column,
    weighted_scores,
)
from scene_assets.ranking.ranker import (
    FusionRanker,
    RankerConfig,
    TreeEnsemble,
    fit_ranker,
    ranker_feature_names,
    ranker_features,
    training_rows,
)
from scene_assets.regions import RegionConfig
from scene_assets.scene_analysis import ROOM_TYPES
from tests.drawing import SHAPES, product_image

LEARNED = FACTORS.index("learned")
VISUAL = FACTORS.index("visual")


def _results(n_scenes=24, n_products=80, seed=0, folds=3) -> list[SceneResult]:
    """``learned`` informative (relevant rows higher, overlapping), ``visual`` weakly so, the rest noise;
    the first room type's scenes label products 0-19 more often."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_scenes):
        room = ROOM_TYPES[i % 2]
        f = rng.random((n_products, len(FACTORS)))
        pool = np.arange(20) if room == ROOM_TYPES[0] and i % 4 == 0 else np.arange(n_products)
        rel = np.sort(rng.choice(pool, size=4, replace=False))
        f[:, LEARNED] = rng.uniform(0.0, 0.75, n_products)
        f[rel, LEARNED] = rng.uniform(0.45, 1.0, rel.size)
        f[rel, VISUAL] = np.clip(f[rel, VISUAL] + 0.2, 0, 1)
        probs = rng.dirichlet(np.ones(len(ROOM_TYPES)))
        out.append(SceneResult(f"scene{i:02d}", room, i % folds, f.astype(np.float32), rel, probs,
                               {b: rng.random(n_products).astype(np.float32) for b in BASELINES}))
    return out


# --------------------------------------------------------------------------------------------
# config and features
# --------------------------------------------------------------------------------------------


def test_ranker_config_round_trip_and_validation():
    cfg = RankerConfig(model="logistic", negatives="room", exclude=("prior", "color", "prior"), max_iter=7)
    assert cfg.exclude == ("color", "prior")
    assert RankerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="model"):
        RankerConfig(model="lambdamart")
    with pytest.raises(ValueError, match="negatives"):
        RankerConfig(negatives="hardest")
    with pytest.raises(ValueError, match="unknown"):
        RankerConfig.from_dict({"trees": 3})


def test_evaluation_config_carries_the_ranker(tmp_path):
    cfg = EvaluationConfig(ranker=RankerConfig(negatives="room"), room_classifier=False, regions=False)
    assert EvaluationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert EvaluationConfig.from_dict({"ranker": None}).ranker is None
    assert EvaluationConfig.from_dict({"ranker": True}).ranker == RankerConfig()
    assert EvaluationConfig.from_dict({"ranker": {"model": "logistic"}}).ranker.model == "logistic"
    assert EvaluationConfig.from_dict({"ranker": None}).fusion == "weights"
    # a flat weights file asks for those weights: no ranker
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"visual": 1.0}))
    assert EvaluationConfig.from_file(path).ranker is None


def test_features_are_per_row_and_named():
    names = ranker_feature_names(room_features=True)
    assert names[: len(FACTORS)] == list(FACTORS)
    assert {"visual*learned", "logit(prior)", f"room={ROOM_TYPES[0]}"} <= set(names)
    assert ranker_feature_names(exclude=("learned", "prior")) == [f for f in FACTORS if f not in ("learned", "prior")]
    rng = np.random.default_rng(0)
    F = rng.random((30, len(FACTORS)))
    probs = rng.dirichlet(np.ones(len(ROOM_TYPES)))
    X = ranker_features(F, probs, names)
    assert X.shape == (30, len(names))
    # a row's features do not depend on the other rows (candidates score as the whole catalog does)
    np.testing.assert_array_equal(ranker_features(F[[3, 7]], probs, names), X[[3, 7]])
    np.testing.assert_allclose(X[:, names.index("visual*learned")], F[:, VISUAL] * F[:, LEARNED], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown ranker feature"):
        ranker_features(F, probs, ["bogus"])


# --------------------------------------------------------------------------------------------
# training rows and fitting
# --------------------------------------------------------------------------------------------


def test_training_rows_positives_negatives_and_order_independence():
    results = _results()
    cfg = RankerConfig(negatives_per_scene=25)
    names = ranker_feature_names()
    X, y, g = training_rows(results, cfg, names)
    assert X.shape == (len(results) * (4 + 25), len(names)) and y.sum() == 4 * len(results)
    for i, r in enumerate(results):
        rows = X[(g == i) & (y == 1)]
        np.testing.assert_array_equal(np.sort(rows[:, names.index("visual")]),
                                      np.sort(column(r.factors, "visual")[r.relevant_rows]))
    # the same rows whatever the order of the scenes (seeded by scene id)
    X2, y2, _ = training_rows(results[::-1], cfg, names)
    key = lambda X, y: sorted(map(tuple, np.column_stack([X, y]).round(6)))  # noqa: E731
    assert key(X, y) == key(X2, y2)


def test_room_hard_negatives_come_from_other_scenes_of_the_room():
    results = _results()
    cfg = RankerConfig(negatives="room", negatives_per_scene=20)
    names = list(FACTORS)
    X, y, g = training_rows(results, cfg, names)
    for i, r in enumerate(results):
        labeled_in_room = set().union(*(set(o.relevant_rows.tolist()) for o in results if o.room_type == r.room_type))
        labeled_in_room -= set(r.relevant_rows.tolist())
        negs = X[(g == i) & (y == 0)]
        # identify negatives by their factor rows (random floats: unique)
        rows = [int(np.flatnonzero((r.factors == row).all(axis=1))[0]) for row in negs]
        assert not set(rows) & set(r.relevant_rows.tolist())
        assert len(set(rows) & labeled_in_room) >= min(10, len(labeled_in_room))


@pytest.mark.parametrize("model", ["hgb", "logistic"])
def test_fitted_ranker_beats_the_uninformative_weights(model):
    train, test = _results(seed=0), _results(seed=1)
    cfg = RankerConfig(model=model, negatives_per_scene=60, max_iter=60)
    ranker, scored = rank_fold(test, train, cfg)
    assert ranker.kind == model and ranker.info["training_scenes"] == len(train)
    visual_only = ScoringWeights(**dict.fromkeys(FACTORS, 0.0) | {"visual": 1.0})
    j = 2  # ndcg@10
    ranked = score_results(scored, visual_only, system=True)[:, j].mean()
    assert ranked > score_results(test, visual_only)[:, j].mean() + 0.1
    for r in scored:
        assert r.scores.shape == (r.factors.shape[0],) and np.all((r.scores >= 0) & (r.scores <= 1))
    with pytest.raises(ValueError, match="excluded"):
        fit_ranker(train, RankerConfig(exclude=tuple(FACTORS)))


@pytest.mark.parametrize("leaves", [9, 15, 80])  # 80 > 64 leaves: walked level by level, not QuickScorer
def test_tree_ensemble_equals_sklearn_including_missing_values(leaves):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.random((4000, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(0, 0.2, len(X)) > 0.9).astype(int)
    X[rng.random(X.shape) < 0.03] = np.nan
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=leaves, early_stopping=False).fit(X, y)
    trees = TreeEnsemble.from_sklearn(model)
    assert (trees._plan() is None) == (leaves > 64)
    probe = rng.random((500, 5))
    probe[rng.random(probe.shape) < 0.05] = np.nan
    # float32 rows equal to training values sit right at the learned thresholds: float32 decides as float64
    on_edges = X[rng.choice(len(X), 500)]
    for p in (probe, probe.astype(np.float32), on_edges):
        expected = model._raw_predict(p.astype(np.float64)).ravel()
        np.testing.assert_allclose(trees.raw(p), expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(trees.raw_walk(p), expected, rtol=1e-10, atol=1e-10)
    back = TreeEnsemble.from_arrays(trees.to_arrays("t_"), "t_", trees.baseline, trees.max_depth)
    np.testing.assert_array_equal(back.raw(probe), trees.raw(probe))


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["hgb", "logistic"])
def test_ranker_saved_and_loaded_with_the_learned_scorer(tmp_path, model):
    results = _results()
    ranker = fit_ranker(results, RankerConfig(model=model, max_iter=20, negatives_per_scene=30))
    scorer = LearnedScorer(info={"training_scenes": len(results)})
    plain = scorer.fingerprint()
    scorer.ranker = ranker
    assert scorer.fingerprint() != plain
    back = LearnedScorer.load(scorer.save(tmp_path / "learned"))
    assert back.fingerprint() == scorer.fingerprint()
    assert isinstance(back.ranker, FusionRanker) and back.ranker.feature_names == ranker.feature_names
    for r in results[:3]:
        np.testing.assert_array_equal(back.ranker.score(r.factors, r.room_probs), ranker.score(r.factors, r.room_probs))
    meta = json.loads((tmp_path / "learned" / "learned.json").read_text())
    assert meta["ranker"]["kind"] == model and meta["format_version"] == 2


def test_learned_scorer_of_format_1_still_loads(tmp_path):
    folder = LearnedScorer(info={"x": 1}).save(tmp_path / "old")
    meta = json.loads((folder / "learned.json").read_text())
    meta["format_version"] = 1
    meta.pop("ranker")
    (folder / "learned.json").write_text(json.dumps(meta))
    assert LearnedScorer.load(folder).ranker is None


# --------------------------------------------------------------------------------------------
# serving ranks like the evaluation
# --------------------------------------------------------------------------------------------

_COLOURS = [(190, 35, 45), (40, 80, 170), (70, 135, 70), (240, 205, 50), (25, 25, 25), (110, 72, 42)]


@pytest.fixture(scope="module")
def small_world():
    enc = FakeEncoder(dim=16)
    n = 24
    pids = [f"p{i:02d}" for i in range(n)]
    images = [product_image(_COLOURS[i % 6], SHAPES[(i // 6) % len(SHAPES)], i) for i in range(n)]
    cats = ["seating", "tables", "lighting", "rugs"]
    catalog = pl.DataFrame({"product_id": pids, "title": pids, "category": [cats[i % 4] for i in range(n)],
                            "product_type": [cats[i % 4] for i in range(n)], "colors": [["red"]] * n})
    vecs = enc.encode_images(images)
    rng = np.random.default_rng(0)
    proj = RegionProjection(rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(16, 8)).astype(np.float32))
    priors = LabelPriors.fit({"a": ROOM_TYPES[0], "b": ROOM_TYPES[1]}, {"a": pids[:5], "b": pids[3:9]},
                             dict(zip(pids, catalog["category"].to_list())), ROOM_TYPES)
    # ranker fitted on synthetic factor rows of the same catalog size
    ranker = fit_ranker(_results(n_products=n), RankerConfig(max_iter=30, negatives_per_scene=15, room_features=True))
    learned = LearnedScorer(proj, None, priors, None, enc.fingerprint(), {}, ranker)
    from PIL import Image

    scene = Image.new("RGB", (320, 160), (236, 232, 224))
    scene.paste(images[2], (0, 0))
    scene.paste(images[9], (160, 0))
    return {"enc": enc, "pids": pids, "catalog": catalog, "vecs": vecs, "learned": learned, "scene": scene}


def _rec(w, **kwargs) -> Recommender:
    return Recommender.from_vectors(w["enc"], w["catalog"], w["pids"], w["vecs"], space="joint", center=True,
                                    region_config=RegionConfig(short_side=64, max_long_side=128, grids=(2,)),
                                    learned=w["learned"], **kwargs)


def test_recommender_ranks_candidates_with_the_ranker_like_the_evaluation(small_world):
    rec = _rec(small_world, per_region_k=4)
    ranker = small_world["learned"].ranker
    assert rec.ranker is ranker
    scene = rec.prepare_scene(small_world["scene"])
    cs = rec.score_catalog(None, scene=scene)
    # the whole catalog (evaluation): the ranker's function of the factor rows and the room posterior
    np.testing.assert_allclose(cs.scores, ranker.score(cs.factors, scene.room_probs), rtol=1e-12)
    res = rec.recommend(small_world["scene"], k=5, diversity=None, collapse_variants=False)
    assert res.params["fusion"] == "ranker (hgb)" and res.candidates < len(small_world["pids"])
    by_id = dict(zip(cs.product_ids.tolist(), cs.scores.tolist()))
    for it in res.items:
        # a candidate scores as it does when the whole catalog is ranked
        assert it.score == pytest.approx(by_id[it.product_id], abs=1e-9)
        F = np.array([[it.factors[f] for f in FACTORS]])
        assert it.score == pytest.approx(float(ranker.score(F, scene.room_probs)[0]), abs=1e-9)
    assert [it.score for it in res.items] == sorted((it.score for it in res.items), reverse=True)


def test_explicit_weights_replace_the_ranker(small_world):
    weights = ScoringWeights(**LEARNED_DEFAULT_WEIGHTS)
    rec = _rec(small_world, weights=weights)
    assert rec.ranker is None
    cs = rec.score_catalog(small_world["scene"])
    w = weights.vector()
    np.testing.assert_allclose(cs.scores, cs.factors @ w / w.sum())
    assert rec.recommend(small_world["scene"], k=3).params["fusion"] == "weights"
    unranked = dataclasses.replace(small_world["learned"], ranker=None)
    assert Recommender.from_vectors(small_world["enc"], small_world["catalog"], small_world["pids"],
                                    small_world["vecs"], learned=unranked).ranker is None


def test_with_learned_is_a_view_and_leaves_the_recommender_as_it_is(small_world):
    plain = Recommender.from_vectors(small_world["enc"], small_world["catalog"], small_world["pids"],
                                     small_world["vecs"], space="joint", center=True,
                                     region_config=RegionConfig(short_side=64, max_long_side=128, grids=(2,)))
    learned = small_world["learned"]
    view = plain.with_learned(learned)
    assert view is not plain and view.learned is learned and view.ranker is learned.ranker
    assert view.calibrator is learned.calibrator and view.products.prior_per_room is not None
    # the recommender it came from is untouched; the per-product arrays and the index are shared
    assert plain.learned is None and plain.ranker is None and plain.calibrator is None
    assert plain.products.prior_per_room is None and plain.products.learned_products is None
    assert plain.weights == ScoringWeights() and view.weights == ScoringWeights(**LEARNED_DEFAULT_WEIGHTS)
    assert view.index is plain.index and view.products.room_member is plain.products.room_member
    back = view.with_learned(None)
    assert back.learned is None and back.calibrator is None and view.learned is learned
    scene = plain.prepare_scene(small_world["scene"])
    np.testing.assert_array_equal(back.score_catalog(None, scene=scene).scores,
                                  plain.score_catalog(None, scene=scene).scores)


def test_fusion_is_chosen_per_request(small_world):
    rec = _rec(small_world, per_region_k=4)
    assert rec.recommend(small_world["scene"], k=3).params["fusion"] == "ranker (hgb)"
    by_weights = rec.recommend(small_world["scene"], k=3, fusion="weights")
    assert by_weights.params["fusion"] == "weights" and by_weights.weights == ScoringWeights(**LEARNED_DEFAULT_WEIGHTS)
    mine = ScoringWeights(visual=1.0, text=0.0, room_fit=0.0, style=0.0, color=0.0, material=0.0, size=0.0)
    res = rec.recommend(small_world["scene"], k=3, weights=mine)
    assert res.params["fusion"] == "weights" and res.weights == mine
    assert [it.score for it in res.items] == pytest.approx([it.factors["visual"] for it in res.items])
    assert rec.ranker is not None  # a request does not change the recommender
    with pytest.raises(ValueError, match="fusion ranker"):
        choose_fusion(None, None, "ranker")
    with pytest.raises(ValueError, match="mmr_lambda"):
        rec.recommend(small_world["scene"], k=3, mmr_lambda=1.5)


def test_ranking_config_limits_and_help():
    cfg = RankingConfig(weights={"visual": 2.0}, diversity="none")
    assert cfg.weights == ScoringWeights(visual=2.0) and cfg.diversity is None
    assert cfg.recommend_options() == {"fusion": "auto", "diversity": None, "mmr_lambda": 0.9, "category_cap": 3,
                                       "collapse_variants": True, "weights": ScoringWeights(visual=2.0)}
    for bad in ({"mmr_lambda": -0.1}, {"category_cap": 0}, {"fusion": "best"}, {"diversity": "random"},
                {"weights": {"visual": -1.0}}, {"k": 3}):
        with pytest.raises(ValueError):
            RankingConfig(**bad)
    assert RankingConfig.field_help("mmr_lambda") | {"description": ""} == {"default": 0.9, "description": "",
                                                                             "ge": 0.0, "le": 1.0}
    with pytest.raises(Exception):
        RankingConfig().mmr_lambda = 0.5  # frozen


def test_factor_columns_by_name():
    F = np.arange(2 * len(FACTORS), dtype=np.float64).reshape(2, len(FACTORS))
    assert column(F, "visual").tolist() == [0.0, len(FACTORS)]
    assert column(F, "prior").tolist() == [len(FACTORS) - 1.0, 2 * len(FACTORS) - 1.0]
    assert weighted_scores(F, ScoringWeights(visual=1.0, text=0, room_fit=0, style=0, color=0, material=0,
                                             size=0)).tolist() == [0.0, len(FACTORS)]


def test_learned_projection_for_candidates_only_ranks_as_when_held_for_every_product(small_world):
    """Two-stage serving (#19): the learned factor computed from the candidates' vectors per query
    gives the same factors and list as the projection held for the whole catalog."""
    held = _rec(small_world, weights=ScoringWeights(**LEARNED_DEFAULT_WEIGHTS))
    per_query = _rec(small_world, weights=ScoringWeights(**LEARNED_DEFAULT_WEIGHTS), learned_for_candidates=True)
    assert held.products.learned_products is not None and not held.learned_for_candidates
    assert per_query.products.learned_products is None and per_query.products.projection is not None
    scene = held.prepare_scene(small_world["scene"])
    a = held.recommend_prepared(scene, k=8).to_dict()["items"]
    b = per_query.recommend_prepared(scene, k=8).to_dict()["items"]
    assert a == b and {it["factors"]["learned"] for it in a} != {0.5}
    # the view keeps the mode: computed per query after with_learned too
    view = per_query.with_learned(small_world["learned"])
    assert view.products.learned_products is None and view.recommend_prepared(scene, k=8).to_dict()["items"] == b


def test_rescored_candidates_from_an_approximate_index_get_exact_visual_scores(small_world):
    """Stage 1 from a coarse PQ index, stage 2 re-scored from the exact vectors: the visual factor and the
    best region of every returned product equal the exact index's, where the approximate ones differ."""
    import faiss

    from scene_assets.indexes.searcher import FaissSearcher

    exact = _rec(small_world, learned_for_candidates=True)
    vectors = exact.stored_vectors()
    pq = faiss.IndexIDMap(faiss.IndexPQ(vectors.shape[1], 2, 4, faiss.METRIC_INNER_PRODUCT))
    pq.train(vectors)
    pq.add_with_ids(vectors, exact.int_ids)
    approx_args = dict(space="joint", catalog_mean=exact.catalog_mean, product_vectors=vectors.astype(np.float16),
                       region_config=exact.region_config, learned=small_world["learned"], per_region_k=24)
    approx = Recommender(small_world["enc"], FaissSearcher(pq), small_world["pids"], small_world["catalog"],
                         **approx_args)
    rescored = Recommender(small_world["enc"], FaissSearcher(pq), small_world["pids"], small_world["catalog"],
                           rescore=True, **approx_args)
    scene = exact.prepare_scene(small_world["scene"])
    truth = exact.score_catalog(None, scene=scene, rerank=False)
    row = {p: i for i, p in enumerate(small_world["pids"])}
    got = rescored.recommend_prepared(scene, k=10)
    for item in got.items:
        assert item.visual_similarity == pytest.approx(float(truth.visual_cosine[row[item.product_id]]), abs=2e-3)
        assert item.region["index"] == int(truth.best_region[row[item.product_id]])
    off = [abs(it.visual_similarity - float(truth.visual_cosine[row[it.product_id]]))
           for it in approx.recommend_prepared(scene, k=10).items]
    assert max(off) > 0.01  # the PQ scores alone are visibly approximate
    with pytest.raises(ValueError, match="rescore needs product_vectors"):
        Recommender(small_world["enc"], FaissSearcher(pq), small_world["pids"], small_world["catalog"], rescore=True)


def test_catalog_priors_for_candidates_equal_the_priors_of_every_product(small_world):
    """LabelPriors.for_catalog (large catalogs, #19): the per-room prior of any rows and the catalog
    average, without a table over every product, equal product_prior's."""
    from scene_assets.ranking.catalog import CodedColumn

    priors = small_world["learned"].priors
    pids = small_world["pids"] + ["not-labeled", "p03-missing"]
    categories = CodedColumn.encode(list(small_world["catalog"]["category"]) + ["other", "rugs"])
    row = {p: i for i, p in enumerate(pids)}
    catalog = priors.for_catalog(np.asarray([row.get(p, -1) for p in priors.product_ids]), categories.codes,
                                 categories.names, ROOM_TYPES)
    eye = np.eye(len(ROOM_TYPES))
    full = np.stack([priors.product_prior(pids, list(categories), eye[r], ROOM_TYPES) for r in range(len(ROOM_TYPES))],
                    axis=1)
    rows = np.array([25, 0, 3, 8, 24, 7])
    np.testing.assert_allclose(catalog.per_room(rows), full[rows], rtol=1e-12)
    np.testing.assert_allclose(catalog.mean_per_room, full.mean(axis=0), rtol=1e-12)
    assert full[:9].sum() > full[9:].sum()  # the labeled products carry counts
