"""Cross-validation folds: the catalog features, the prepared scenes, the models fitted per fold on
its training scenes and the held-out scenes scored by them (see :mod:`evaluation.protocol` for the
split discipline). Scenes are scored through views of one recommender
(:meth:`~scene_assets.matching.Recommender.with_learned`), never by changing it. No Dagster imports."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from evaluation.config import EvaluationConfig
from evaluation.dataset import LabeledDataset
from evaluation.scoring import SceneResult
from scene_assets.composites import CompositePairs, composites_key, make_composites
from scene_assets.encoders import FeatureMapEncoder
from scene_assets.learned import LabelPriors, LearnedScorer, fit_region_projection, fit_room_classifier
from scene_assets.matching import Recommender
from scene_assets.progress import track
from scene_assets.ranking import FusionRanker, RankerConfig, ScoringWeights, column, fit_ranker
from scene_assets.prepared_scene import PreparedScene
from scene_assets.scene_analysis import ROOM_TYPES, classifier_probs

if TYPE_CHECKING:
    from evaluation.feedback_training import FeedbackScenes

__all__ = ["FoldRun", "ServedFolds", "build_recommender", "cross_validate", "fit_fold", "fit_learned", "label_popularity",
           "training_composites",
           "prepare_scenes", "rank_fold", "restrict_to_index", "scenes_for", "score_fold", "score_scenes",
           "serve_folds", "serve_scenes", "split_folds"]


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    from scene_assets.indexes.store import write_atomic

    if path.is_file():
        return np.load(path)
    arr = np.asarray(compute(), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: np.save(tmp, arr))
    return arr


def product_features(encoder, products: pl.DataFrame, cache_dir: Path, batch_size: int = 16) -> np.ndarray:
    """Pooled trunk features (or joint vectors for encoders without a trunk) of every product image,
    cached under ``cache_dir`` by the encoder fingerprint and each product's image hash."""
    from concurrent.futures import ThreadPoolExecutor

    from scene_assets.images import open_rgb

    trunk = isinstance(encoder, FeatureMapEncoder)
    fp = encoder.trunk_fingerprint() if trunk else encoder.fingerprint()
    key = _key(fp, *products["product_id"].to_list(), *products["image_sha256"].fill_null("").to_list())
    paths = products["image_path"].to_list()

    def compute() -> np.ndarray:
        out = []
        with ThreadPoolExecutor(2) as pool:
            for s in range(0, len(paths), batch_size):
                imgs = list(pool.map(lambda p: open_rgb(Path(p)), paths[s : s + batch_size]))
                out.append(encoder.encode_image_trunk_features(imgs, batch_size=batch_size) if trunk
                           else encoder.encode_images(imgs, batch_size=batch_size))
        return np.concatenate(out) if out else np.zeros((0, 1), np.float32)

    return _cached(cache_dir / f"products_{'trunk' if trunk else 'joint'}_{key}.npy", compute)


def product_text_vectors(encoder, products: pl.DataFrame, cache_dir: Path) -> np.ndarray:
    texts = [t or (title or "") for t, title in zip(products["embedding_text"].to_list(), products["title"].to_list())]
    return _cached(cache_dir / f"products_text_{_key(encoder.text_fingerprint(), *texts)}.npy",
                   lambda: encoder.encode_texts(texts))


def build_recommender(encoder, dataset: LabeledDataset, cache_dir: Path, weights: ScoringWeights) -> Recommender:
    """The recommender over the dataset's catalog: trunk space (joint for encoders without a
    feature map), centred on the catalog mean, product text vectors attached."""
    feats = product_features(encoder, dataset.products, cache_dir)
    text = product_text_vectors(encoder, dataset.products, cache_dir)
    pids = dataset.products["product_id"].to_list()
    space = "trunk" if isinstance(encoder, FeatureMapEncoder) else "joint"
    return Recommender.from_vectors(encoder, dataset.products, pids, feats, space=space, center=True,
                                    text_vectors=(pids, text), weights=weights)


def restrict_to_index(dataset: LabeledDataset, rec: Recommender) -> LabeledDataset:
    """``dataset`` with labels limited to products ``rec`` indexes (scenes left without any skipped)."""
    indexed = set(str(p) for p in rec.product_ids)
    relevant = {s: {p for p in ps if p in indexed} for s, ps in dataset.relevant.items()}
    empty = [s for s, ps in relevant.items() if not ps]
    if len(empty) == len(relevant):
        raise ValueError(f"none of the labeled products of {dataset.root} is in the index: materialize the index on "
                         f"{dataset.root / 'products.csv'} (scene-matcher materialize --catalog ...) or evaluate with "
                         "the CLI, which builds its own")
    return dataclasses.replace(
        dataset, scenes=dataset.scenes.filter(~pl.col("scene_id").is_in(empty)),
        relevant={s: ps for s, ps in relevant.items() if ps},
        skipped_scenes=dataset.skipped_scenes + [(s, "no labeled product in the index") for s in empty])


def prepare_scenes(rec: Recommender, dataset: LabeledDataset, use_captions: bool,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, PreparedScene]:
    """One region pass + analysis per scene (no learned parts: those differ per fold)."""
    rec = rec.with_learned(None)
    out: dict[str, PreparedScene] = {}
    rows = list(dataset.scenes.iter_rows(named=True))
    for i, r in enumerate(track(rows, f"scenes of {dataset.root.name}", unit="scene")):
        out[r["scene_id"]] = rec.prepare_scene(r["image_path"], caption=r["caption"] if use_captions else None)
        if progress:
            progress(i + 1, len(rows))
    return out


def training_composites(rec: Recommender, dataset: LabeledDataset, config: EvaluationConfig, cache_dir: Path,
                        progress: Callable[[str], None] | None = None) -> CompositePairs | None:
    """Synthetic composites (``config.composites``) of every scene of ``dataset``, pasting the products
    ``rec`` indexes; each fold then trains on those of its training scenes only
    (:meth:`CompositePairs.for_scenes`). Cached under ``cache_dir`` by the encoder, the scenes, the
    products and the settings. None when ``config.composites`` is None."""
    if config.composites is None or config.composites.per_scene == 0:
        return None
    from scene_assets.regions import RegionConfig

    enc = rec.encoder
    fp = enc.trunk_fingerprint() if isinstance(enc, FeatureMapEncoder) else enc.fingerprint()
    region = getattr(rec, "region_config", None) or RegionConfig()
    indexed = set(str(p) for p in rec.product_ids)
    products = [(p, path) for p, path in zip(dataset.products["product_id"].to_list(),
                                             dataset.products["image_path"].to_list()) if p in indexed and path]
    scenes = list(zip(dataset.scenes["scene_id"].to_list(), dataset.scenes["image_path"].to_list()))
    key = composites_key(fp, [f"{s}:{p}" for s, p in scenes], [p for p, _ in products], region, config.composites)
    path = cache_dir / f"composites_{key}.npz"
    if path.is_file():
        return CompositePairs.load(path)
    pairs = make_composites(track(scenes, f"composites of {dataset.root.name}", unit="scene"), products, enc,
                            region=region, config=config.composites)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs.save(path)
    if progress:
        progress(f"composites: {len(pairs)} pasted pairs from {len(scenes)} scenes ({pairs.seconds:.0f}s, "
                 f"{len(pairs.skipped)} skipped)")
    return pairs


def _composite_pairs(rec: Recommender, composites: CompositePairs | None, scene_ids: Sequence[str],
                     row: Mapping[str, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The composites of ``scene_ids`` as (queries in the recommender's space, catalog rows)."""
    if composites is None or composites.space != rec.space:
        return None, None
    part = composites.for_scenes(scene_ids)
    idx, rows = part.rows(row)
    if not len(idx):
        return None, None
    from scene_assets.regions import center_and_normalize

    return center_and_normalize(part.vectors[idx], rec.catalog_mean), rows


def fit_learned(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                scene_ids: Sequence[str], config: EvaluationConfig,
                composites: CompositePairs | None = None, feedback: "FeedbackScenes | None" = None) -> LearnedScorer:
    """Projection, room classifier and label priors from the labels of ``scene_ids`` only (and the
    composites made from those scenes, when ``config.composites`` is set). ``feedback``: shopper photos
    with the products shoppers engaged with and passed over (:mod:`evaluation.feedback_training`) - the
    projection also trains on them, weighted; the room classifier and the priors stay label-only (a
    shopper's photo has no room label)."""
    row = {pid: i for i, pid in enumerate(rec.product_ids)}
    rooms = dataset.rooms()
    t0 = time.perf_counter()
    stored = rec.stored_vectors()
    pair_q, pair_rows = _composite_pairs(rec, composites if config.composites is not None else None, scene_ids, row)
    queries = [scenes[s].queries for s in scene_ids]
    positives = [np.asarray(sorted(row[p] for p in dataset.relevant[s] if p in row), dtype=np.int64) for s in scene_ids]
    weighted: dict[str, Any] = {}
    if feedback is not None and len(feedback):
        extra = feedback.training_inputs(row)
        ones = [np.ones(len(p), dtype=np.float32) for p in positives]
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        weighted = {"positive_weights": ones + extra.positive_weights,
                    "scene_weights": [1.0] * len(positives) + extra.scene_weights,
                    "negatives": [empty] * len(positives) + extra.negatives}
        queries, positives = queries + extra.queries, positives + extra.positives
    projection = fit_region_projection(queries, positives, stored, config.projection,
                                       pair_queries=pair_q, pair_products=pair_rows, **weighted)
    t_proj = time.perf_counter() - t0
    room_clf = None
    feats = [scenes[s].regions.global_average for s in scene_ids]
    labels = [rooms[s] for s in scene_ids]
    if config.room_classifier and all(f is not None for f in feats) and len(set(labels)) >= 2:
        room_clf = fit_room_classifier(np.stack(feats), labels)
    categories = dict(zip(dataset.products["product_id"].to_list(), dataset.products["category"].to_list()))
    priors = LabelPriors.fit({s: rooms[s] for s in scene_ids}, {s: sorted(dataset.relevant[s]) for s in scene_ids},
                             categories, ROOM_TYPES)
    fp = rec.encoder.trunk_fingerprint() if isinstance(rec.encoder, FeatureMapEncoder) else rec.encoder.fingerprint()
    info = {"training_dataset": dataset.fingerprint, "training_scenes": len(scene_ids),
            "projection_fit_s": round(t_proj, 2)}
    if weighted:
        info |= {"feedback": feedback.fingerprint(), "feedback_scenes": len(feedback)}
    return LearnedScorer(projection, room_clf, priors, None, fp, info)


def _room_probs(learned: LearnedScorer, scene: PreparedScene) -> np.ndarray:
    clf = learned.room_classifier
    if clf is None or scene.regions.global_average is None:
        return scene.room_probs
    probs = classifier_probs(clf, clf.classes_, scene.regions.global_average, ROOM_TYPES)
    if scene.caption_vector is not None:
        # same combination as analyze_scene: classifier log-probs + the caption's zero-shot logits
        cap = scene.analysis.room_vector()
        probs = probs * np.clip(cap, 1e-9, 1.0)
        probs = probs / probs.sum()
    return probs


def whole_image_scene(scene: PreparedScene) -> PreparedScene:
    """``scene`` with the whole image as its only region (the "regions off" ablation)."""
    reg = scene.regions
    i = reg.labels.index("whole") if "whole" in reg.labels else 0
    one = slice(i, i + 1)
    regions = dataclasses.replace(reg, boxes=reg.boxes[one], labels=[reg.labels[i]],
                                  trunk=None if reg.trunk is None else reg.trunk[one],
                                  joint=None if reg.joint is None else reg.joint[one])
    return dataclasses.replace(scene, regions=regions, queries=scene.queries[one])


def scenes_for(config: EvaluationConfig, scenes: Mapping[str, PreparedScene]) -> Mapping[str, PreparedScene]:
    """The prepared scenes as ``config`` queries them (all regions, or the whole image only)."""
    return scenes if config.regions else {s: whole_image_scene(p) for s, p in scenes.items()}


def score_scenes(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                 scene_ids: Iterable[str], learned: LearnedScorer, fold: int,
                 popularity: np.ndarray, room_popularity: Mapping[str, np.ndarray], seed: int) -> list[SceneResult]:
    """Every product of the catalog scored for each scene, by the recommender with ``learned``
    attached; ``SceneResult.scores`` are its ranker's scores when it has one (the same function of
    the factors and the room posterior the recommender ranks candidates with)."""
    view = rec.with_learned(learned)
    row = {pid: i for i, pid in enumerate(rec.product_ids)}
    rooms = dataset.rooms()
    stored = rec.stored_vectors()
    out = []
    for sid in scene_ids:
        prepared = scenes[sid]
        probs = _room_probs(learned, prepared)
        scene = dataclasses.replace(prepared, room_probs=probs)
        cs = view.score_catalog(None, scene=scene)
        room = rooms[sid]
        whole = prepared.regions.labels.index("whole") if "whole" in prepared.regions.labels else 0
        rng = np.random.default_rng([seed, int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16)])
        base = {
            "random": rng.random(len(row)),
            "popularity": popularity,
            "room popularity": room_popularity.get(room, np.zeros(len(row))) + 1e-6 * popularity,
            "whole image": (prepared.queries[whole] @ stored.T),
            "regions (zero-shot)": column(cs.factors, "visual"),
            "learned projection only": column(cs.factors, "learned"),
        }
        ranked = None if learned.ranker is None else learned.ranker.score(cs.factors, probs).astype(np.float32)
        out.append(SceneResult(sid, room, fold, cs.factors.astype(np.float32),
                               np.asarray(sorted(row[p] for p in dataset.relevant[sid] if p in row), dtype=np.int64),
                               probs, {k: np.asarray(v, dtype=np.float32) for k, v in base.items()}, ranked))
    return out


def serve_scenes(rec: Recommender, scenes: Mapping[str, PreparedScene], scene_ids: Iterable[str],
                 learned: LearnedScorer, config: EvaluationConfig) -> dict[str, list[str]]:
    """scene id -> the product ids ``/match`` returns for it: each scene ranked by
    ``Recommender.recommend_prepared`` (candidate search, fusion, variant collapse, diversity, top
    ``config.served_k``) on the view with ``learned`` attached, its room posterior from ``learned``'s
    room classifier as ``prepare_scene`` would give it."""
    view = rec.with_learned(learned)
    options = config.served_options()
    out = {}
    for sid in scene_ids:
        scene = dataclasses.replace(scenes[sid], room_probs=_room_probs(learned, scenes[sid]))
        out[sid] = view.recommend_prepared(scene, k=config.served_k, **options).product_ids
    return out


@dataclass
class ServedFolds:
    """What ranks every held-out scene through the served path: the recommender, the prepared scenes
    and, per fold, its held-out scene ids with the learned parts that rank them (calibrator attached).
    Kept with the report, so the re-rank sweep (:mod:`evaluation.rerank_sweep`) serves the same
    scenes by the same models under other re-rank options."""

    rec: Recommender
    scenes: Mapping[str, PreparedScene]
    folds: list[tuple[list[str], LearnedScorer]]

    def serve(self, config: EvaluationConfig) -> dict[str, list[str]]:
        """scene id -> the product ids listed with ``config``'s weights, fusion and re-rank options
        (:func:`serve_scenes` per fold)."""
        out: dict[str, list[str]] = {}
        for scene_ids, learned in self.folds:
            out |= serve_scenes(self.rec, self.scenes, scene_ids, learned, config)
        return out


def serve_folds(rec: Recommender, scenes: Mapping[str, PreparedScene], runs: Sequence["FoldRun"],
                calibrators: Mapping[int, Any], config: EvaluationConfig) -> ServedFolds:
    """The served path of a cross-validation: each fold's held-out scenes with the fold's models as
    configured (its ranker included) and its calibrator (which sets the confidence, not the order)."""
    return ServedFolds(rec, scenes, [
        (run.test, dataclasses.replace(_as_configured(run.learned, config), calibrator=calibrators.get(run.fold)))
        for run in runs])


def label_popularity(rec: Recommender, dataset: LabeledDataset, scene_ids: Sequence[str]
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    row = {pid: i for i, pid in enumerate(rec.product_ids)}
    rooms = dataset.rooms()
    pop = np.zeros(len(row))
    by_room: dict[str, np.ndarray] = {}
    for s in scene_ids:
        for p in dataset.relevant[s]:
            if p in row:
                pop[row[p]] += 1
                by_room.setdefault(rooms[s], np.zeros(len(row)))[row[p]] += 1
    return pop, by_room


def split_folds(scene_ids: Sequence[str], k: int, seed: int) -> list[list[str]]:
    if len(scene_ids) < k:
        raise ValueError(f"{len(scene_ids)} scenes cannot make {k} cross-validation folds")
    order = np.random.default_rng(seed).permutation(len(scene_ids))
    return [[scene_ids[i] for i in sorted(part)] for part in np.array_split(order, k)]


@dataclass
class FoldRun:
    """One outer fold: its models fitted on the training scenes and, for a ranker, the inner
    cross-validation models (each fitted on the training scenes minus one inner part)."""

    fold: int
    train: list[str]
    test: list[str]
    learned: LearnedScorer
    inner: list[tuple[list[str], LearnedScorer]] = field(default_factory=list)  # (held-out ids, model)


def fit_fold(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene], fold: int,
             train: Sequence[str], test: Sequence[str], config: EvaluationConfig, inner: bool,
             composites: CompositePairs | None = None) -> FoldRun:
    """Models of one outer fold (plus the inner folds' when ``inner``: what a ranker learns from)."""
    learned = fit_learned(rec, dataset, scenes, train, config, composites)
    run = FoldRun(fold, list(train), list(test), learned)
    if inner:
        k = config.ranker.inner_folds if config.ranker is not None else RankerConfig().inner_folds
        parts = split_folds(list(train), k, config.seed + 1000 + fold)
        for g, held in enumerate(parts):
            rest = [s for h, part in enumerate(parts) if h != g for s in part]
            run.inner.append((held, fit_learned(rec, dataset, scenes, rest, config, composites)))
    return run


def _as_configured(learned: LearnedScorer, config: EvaluationConfig) -> LearnedScorer:
    return learned if config.room_classifier else dataclasses.replace(learned, room_classifier=None)


def score_fold(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene], run: FoldRun,
               config: EvaluationConfig, *, inner: bool = True, in_sample: bool = False
               ) -> tuple[list[SceneResult], list[SceneResult]]:
    """``(held-out results, ranker training results)`` of one fold, factors only (no ranker).
    The training results are the training scenes scored out of fold by the inner models - or, with
    ``in_sample``, by the fold's own models (the leak an ablation row shows)."""
    learned = dataclasses.replace(_as_configured(run.learned, config), ranker=None)
    pop, by_room = label_popularity(rec, dataset, run.train)
    outer = score_scenes(rec, dataset, scenes, run.test, learned, run.fold, pop, by_room, config.seed)
    train_rows: list[SceneResult] = []
    if in_sample:
        train_rows = score_scenes(rec, dataset, scenes, run.train, learned, run.fold, pop, by_room, config.seed)
    elif inner:
        for g, (held, model) in enumerate(run.inner):
            held_set = set(held)
            rest = [s for s in run.train if s not in held_set]
            p2, r2 = label_popularity(rec, dataset, rest)
            train_rows += score_scenes(rec, dataset, scenes, held, _as_configured(model, config), g, p2, r2,
                                       config.seed)
    return outer, train_rows


def rank_fold(outer: Sequence[SceneResult], train_rows: Sequence[SceneResult], ranker_config: RankerConfig
              ) -> tuple[FusionRanker, list[SceneResult]]:
    """Fit the fold's ranker on ``train_rows`` and score the held-out results with it."""
    ranker = fit_ranker(train_rows, ranker_config)
    return ranker, [dataclasses.replace(r, scores=ranker.score(r.factors, r.room_probs).astype(np.float32))
                    for r in outer]


def cross_validate(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                   config: EvaluationConfig, progress: Callable[[str], None] | None = None,
                   runs: list[FoldRun] | None = None, composites: CompositePairs | None = None) -> list[SceneResult]:
    """Out-of-fold results for every scene of ``dataset`` (with a ranker: nested, see the module
    docstring). ``runs``: a list the fitted folds are appended to (the ablation reuses them)."""
    ids = dataset.scene_ids
    folds = split_folds(ids, config.folds, config.seed)
    nested = config.ranker is not None
    results: list[SceneResult] = []
    for f, test in enumerate(track(folds, "cross-validation", unit="fold")):
        t0 = time.perf_counter()
        train = [s for g, part in enumerate(folds) if g != f for s in part]
        run = fit_fold(rec, dataset, scenes, f, train, test, config, inner=nested, composites=composites)
        outer, train_rows = score_fold(rec, dataset, scenes, run, config, inner=nested)
        if nested:
            run.learned.ranker, outer = rank_fold(outer, train_rows, config.ranker)
        results += outer
        if runs is not None:
            runs.append(run)
        if progress:
            extra = f" (ranker on {len(train_rows)} inner out-of-fold scenes)" if nested else ""
            progress(f"fold {f + 1}/{len(folds)}: trained on {len(train)} scenes{extra}, scored {len(test)} "
                     f"({time.perf_counter() - t0:.0f}s)")
    return results
