"""The evaluation protocol: rank the whole catalog for every labeled scene, with strict splits.

Per scene, every product with an image is scored by the same :class:`~scene_assets.matching.Recommender`
the CLI and the API use (``score_catalog``: all factors for all products), so the numbers describe
what is served. Anything learned from labels (:mod:`scene_assets.learned`: the region->product
projection, the room classifier, the label priors, the confidence calibrator) is fitted on
*training* scenes only:

* ``evaluate(dataset)``: K-fold cross-validation over the dataset's scenes (seeded); a scene is
  always scored by models that never saw its labels. The calibrator for fold f is fitted on the
  out-of-fold scores of the *other* folds.
* ``evaluate(dataset, train=other)``: models fitted on all of ``other``'s scenes (its calibrator on
  ``other``'s own cross-validated scores), every scene of ``dataset`` scored once. The same folder
  for both is refused (:class:`SplitError`) unless ``allow_same_dataset`` - then the report says in
  its ``protocol`` field that the figures are not held out.

Per-scene factor matrices are kept (``SceneResult.factors``), so any weight configuration is scored
without recomputing a scene (:func:`score_results`; the weight sweep uses that).

Learned fusion (``EvaluationConfig.ranker``): instead of the hand-set weights, a
:class:`~scene_assets.ranker.FusionRanker` fitted per fold on the *training* scenes scores the
factors. Its training rows must carry out-of-fold projection / prior scores, so each outer fold runs
an inner cross-validation over its training scenes (projection, room classifier and priors refitted
on the inner training part, the inner held-out scenes scored): the ranker learns from those, the
fold's own models (fitted on all its training scenes) score the held-out fold, and the ranker ranks
them (``SceneResult.scores``). The calibrator then calibrates the ranker's scores, out of fold as
before. ``evaluation.ablation`` reuses the fitted folds to score variants with parts turned off.

Baselines in the same folds: random, popularity, popularity within the labeled room type, and
whole-image similarity; plus zero-shot regions (max over regions, no learning) and the learned
projection alone, so a report shows where the system stands.

No Dagster imports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from evaluation.dataset import EVALUATION_GROUPS, LabeledDataset, evaluation_group
from evaluation.metrics import (
    bootstrap_interval,
    expected_calibration_error,
    reliability_curve,
)
from scene_assets.encoders import FeatureMapEncoder
from scene_assets.learned import (
    IsotonicCalibrator,
    LabelPriors,
    LearnedScorer,
    ProjectionConfig,
    fit_region_projection,
    fit_room_classifier,
)
from scene_assets.matching import (
    FACTORS,
    LEARNED_DEFAULT_WEIGHTS,
    PreparedScene,
    Recommender,
    ScoringWeights,
    read_mapping_file,
)
from scene_assets.progress import track
from scene_assets.ranker import FusionRanker, RankerConfig, fit_ranker
from scene_assets.scene_analysis import ROOM_TYPES, classifier_probs

log = logging.getLogger(__name__)

__all__ = [
    "EvaluationConfig",
    "EvaluationReport",
    "SceneResult",
    "SplitError",
    "evaluate",
    "score_results",
]

METRIC_KEYS = ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10")
BASELINES = ("random", "popularity", "room popularity", "whole image", "regions (zero-shot)",
             "learned projection only")
# Default scoring weights of the evaluation = the recommender's defaults with a learned scorer
# attached (how they were chosen: scene_assets.matching.LEARNED_DEFAULT_WEIGHTS).
DEFAULT_EVALUATION_WEIGHTS: dict[str, float] = dict(LEARNED_DEFAULT_WEIGHTS)
# The learned-fusion recipe, and whether an evaluation (and so the learned_scorer asset) uses it by
# default: decided on the cross-validated nDCG@10 / MRR of `scene-matcher evaluate --ablation`. On the
# IKEA development split (143 scenes, 5 folds) the ranker tied the learned default weights - nDCG@10
# .157 vs .160 (paired difference +.002, 95% -.013..+.018), MRR .388 vs .419 (+.031, -.012..+.074) -
# with a better-calibrated confidence (ECE .009 vs .019): no win, so it stays opt-in (--fusion ranker,
# the scene_evaluation asset's `ranker` setting). Those weights were themselves picked by a sweep on
# the same scenes' out-of-fold scores, so the tie slightly flatters them.
DEFAULT_RANKER = RankerConfig()
RANKER_BY_DEFAULT = False


class SplitError(ValueError):
    """Training and scoring data would overlap."""


def same_data(train: LabeledDataset | None, dataset: LabeledDataset) -> bool:
    """Whether ``train`` is the scored dataset itself: the same folder, or the same label files."""
    return train is not None and (train.root == dataset.root or train.fingerprint == dataset.fingerprint)


@dataclass(frozen=True)
class EvaluationConfig:
    """What an evaluation run does; ``to_dict`` goes into reports and MLflow params."""

    weights: ScoringWeights = field(default_factory=lambda: ScoringWeights(**DEFAULT_EVALUATION_WEIGHTS))
    folds: int = 5
    seed: int = 0
    use_captions: bool = False  # score with the scene captions as text context
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    calibration_top_k: int = 10  # confidence is calibrated / measured on each scene's top k
    bootstrap_resamples: int = 1000
    # learned fusion of the factors (None: the weights above); see the module docstring
    ranker: RankerConfig | None = field(default_factory=lambda: DEFAULT_RANKER if RANKER_BY_DEFAULT else None)
    room_classifier: bool = True  # False: zero-shot room posterior (no classifier fitted on labels)
    regions: bool = True  # False: the whole image is the only query (projection fitted on it alone)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.to_dict(), "folds": self.folds, "seed": self.seed,
                "use_captions": self.use_captions, "projection": self.projection.to_dict(),
                "calibration_top_k": self.calibration_top_k, "bootstrap_resamples": self.bootstrap_resamples,
                "ranker": None if self.ranker is None else self.ranker.to_dict(),
                "room_classifier": self.room_classifier, "regions": self.regions}

    @property
    def fusion(self) -> str:
        """How the factors are combined: ``"weights"`` or ``"ranker:<model>"``."""
        return "weights" if self.ranker is None else f"ranker:{self.ranker.model}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvaluationConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown evaluation setting(s) {sorted(unknown)}")
        if "weights" in d:
            d["weights"] = ScoringWeights(**(DEFAULT_EVALUATION_WEIGHTS | dict(d["weights"])))
        if "projection" in d:
            d["projection"] = ProjectionConfig(**dict(d["projection"]))
        if "ranker" in d:
            r = d["ranker"]
            d["ranker"] = (None if r is None or r is False else DEFAULT_RANKER if r is True
                           else RankerConfig.from_dict(DEFAULT_RANKER.to_dict() | dict(r)))
        cfg = cls(**d)
        if cfg.folds < 2:
            raise ValueError("folds must be >= 2")
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EvaluationConfig":
        """JSON or YAML: ``{"weights": {...}, "folds": 5, "projection": {...}, "ranker": {...} or null,
        ...}``; a flat mapping of factor names is read as weights, and scores with them (no ranker)."""
        data = read_mapping_file(path)
        if data and set(data) <= set(FACTORS):
            data = {"weights": data, "ranker": None}
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


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
        """What the system ranks by: the ranker's scores, else the factors weighted by ``w``."""
        return self.scores if self.scores is not None else self.factors @ w


@dataclass
class EvaluationReport:
    metrics: dict[str, Any]  # the flat headline keys (n_scenes, recall@10, ..., encoder, config)
    intervals: dict[str, tuple[float, float]]
    baselines: dict[str, dict[str, float]]
    per_room: dict[str, dict[str, float]]
    reliability: list[dict[str, float]]
    recall_curve: dict[str, list[float]]  # k -> recall@k for the system and each baseline
    per_scene: pl.DataFrame
    protocol: str
    dataset: dict[str, Any]
    train_dataset: dict[str, Any] | None
    timings_s: dict[str, float]
    skipped_scenes: list[tuple[str, str]]
    learned: LearnedScorer | None = None  # fitted on all training scenes (train mode only)
    results: list[SceneResult] = field(default_factory=list, repr=False)  # out-of-fold factor matrices
    product_ids: list[str] = field(default_factory=list, repr=False)  # catalog order of the matrices
    config: EvaluationConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.metrics | {
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "baselines": self.baselines,
            "per_room": self.per_room,
            "reliability": self.reliability,
            "recall_curve": self.recall_curve,
            "protocol": self.protocol,
            "dataset": self.dataset,
            "train_dataset": self.train_dataset,
            "timings_s": self.timings_s,
            "skipped_scenes": [list(s) for s in self.skipped_scenes],
        }


# --------------------------------------------------------------------------------------------
# features and scenes
# --------------------------------------------------------------------------------------------


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
    rec.set_learned(None)
    out: dict[str, PreparedScene] = {}
    rows = list(dataset.scenes.iter_rows(named=True))
    for i, r in enumerate(track(rows, f"scenes of {dataset.root.name}", unit="scene")):
        out[r["scene_id"]] = rec.prepare_scene(r["image_path"], caption=r["caption"] if use_captions else None)
        if progress:
            progress(i + 1, len(rows))
    return out


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------


def fit_learned(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                scene_ids: Sequence[str], config: EvaluationConfig) -> LearnedScorer:
    """Projection, room classifier and label priors from the labels of ``scene_ids`` only."""
    row = {pid: i for i, pid in enumerate(rec.product_ids)}
    rooms = dataset.rooms()
    t0 = time.perf_counter()
    stored = rec.stored_vectors()
    projection = fit_region_projection(
        [scenes[s].queries for s in scene_ids],
        [np.asarray(sorted(row[p] for p in dataset.relevant[s] if p in row), dtype=np.int64) for s in scene_ids],
        stored, config.projection)
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
    return LearnedScorer(projection, room_clf, priors, None, fp,
                         {"training_dataset": dataset.fingerprint, "training_scenes": len(scene_ids),
                          "projection_fit_s": round(t_proj, 2)})


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
    rec.set_learned(learned)
    row = {pid: i for i, pid in enumerate(rec.product_ids)}
    rooms = dataset.rooms()
    stored = rec.stored_vectors()
    out = []
    for sid in scene_ids:
        prepared = scenes[sid]
        probs = _room_probs(learned, prepared)
        scene = dataclasses.replace(prepared, room_probs=probs)
        cs = rec.score_catalog(None, scene=scene)
        room = rooms[sid]
        whole = prepared.regions.labels.index("whole") if "whole" in prepared.regions.labels else 0
        rng = np.random.default_rng([seed, int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16)])
        base = {
            "random": rng.random(len(row)),
            "popularity": popularity,
            "room popularity": room_popularity.get(room, np.zeros(len(row))) + 1e-6 * popularity,
            "whole image": (prepared.queries[whole] @ stored.T),
            "regions (zero-shot)": cs.factors[:, FACTORS.index("visual")],
            "learned projection only": cs.factors[:, FACTORS.index("learned")],
        }
        ranked = None if learned.ranker is None else learned.ranker.score(cs.factors, probs).astype(np.float32)
        out.append(SceneResult(sid, room, fold, cs.factors.astype(np.float32),
                               np.asarray(sorted(row[p] for p in dataset.relevant[sid] if p in row), dtype=np.int64),
                               probs, {k: np.asarray(v, dtype=np.float32) for k, v in base.items()}, ranked))
    return out


def _popularity(rec: Recommender, dataset: LabeledDataset, scene_ids: Sequence[str]
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


def _folds(scene_ids: Sequence[str], k: int, seed: int) -> list[list[str]]:
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
             train: Sequence[str], test: Sequence[str], config: EvaluationConfig, inner: bool) -> FoldRun:
    """Models of one outer fold (plus the inner folds' when ``inner``: what a ranker learns from)."""
    learned = fit_learned(rec, dataset, scenes, train, config)
    run = FoldRun(fold, list(train), list(test), learned)
    if inner:
        k = config.ranker.inner_folds if config.ranker is not None else RankerConfig().inner_folds
        parts = _folds(list(train), k, config.seed + 1000 + fold)
        for g, held in enumerate(parts):
            rest = [s for h, part in enumerate(parts) if h != g for s in part]
            run.inner.append((held, fit_learned(rec, dataset, scenes, rest, config)))
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
    pop, by_room = _popularity(rec, dataset, run.train)
    outer = score_scenes(rec, dataset, scenes, run.test, learned, run.fold, pop, by_room, config.seed)
    train_rows: list[SceneResult] = []
    if in_sample:
        train_rows = score_scenes(rec, dataset, scenes, run.train, learned, run.fold, pop, by_room, config.seed)
    elif inner:
        for g, (held, model) in enumerate(run.inner):
            held_set = set(held)
            rest = [s for s in run.train if s not in held_set]
            p2, r2 = _popularity(rec, dataset, rest)
            train_rows += score_scenes(rec, dataset, scenes, held, _as_configured(model, config), g, p2, r2,
                                       config.seed)
    rec.set_learned(None)
    return outer, train_rows


def rank_fold(outer: Sequence[SceneResult], train_rows: Sequence[SceneResult], ranker_config: RankerConfig
              ) -> tuple[FusionRanker, list[SceneResult]]:
    """Fit the fold's ranker on ``train_rows`` and score the held-out results with it."""
    ranker = fit_ranker(train_rows, ranker_config)
    return ranker, [dataclasses.replace(r, scores=ranker.score(r.factors, r.room_probs).astype(np.float32))
                    for r in outer]


def cross_validate(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                   config: EvaluationConfig, progress: Callable[[str], None] | None = None,
                   runs: list[FoldRun] | None = None) -> list[SceneResult]:
    """Out-of-fold results for every scene of ``dataset`` (with a ranker: nested, see the module
    docstring). ``runs``: a list the fitted folds are appended to (the ablation reuses them)."""
    ids = dataset.scene_ids
    folds = _folds(ids, config.folds, config.seed)
    nested = config.ranker is not None
    results: list[SceneResult] = []
    for f, test in enumerate(track(folds, "cross-validation", unit="fold")):
        t0 = time.perf_counter()
        train = [s for g, part in enumerate(folds) if g != f for s in part]
        run = fit_fold(rec, dataset, scenes, f, train, test, config, inner=nested)
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


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def _ranks(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
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
    w = weights.vector()
    w = w / w.sum()
    out = np.zeros((len(results), len(METRIC_KEYS)))
    for i, r in enumerate(results):
        s = r.system_scores(w) if system else r.factors @ w
        m = metrics_from_ranks(_ranks(s, r.relevant_rows), len(r.relevant_rows))
        out[i] = [m[k] for k in METRIC_KEYS]
    return out


def calibration_pairs(results: Sequence[SceneResult], w: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, relevant?) of each scene's top ``top_k`` under what the system ranks by (the ranker's
    scores where a result has them, else the factors weighted by ``w``)."""
    scores, labels = [], []
    for r in results:
        s = r.system_scores(w)
        top = np.argsort(-s, kind="stable")[:top_k]
        scores.append(s[top])
        labels.append(np.isin(top, r.relevant_rows).astype(np.float64))
    return np.concatenate(scores), np.concatenate(labels)


def _group_hits(results: Sequence[SceneResult], scores: Sequence[np.ndarray], groups: np.ndarray) -> dict[str, list[float]]:
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
            out[g].append(float(_ranks(sub, pos)[0] < 10))
    return out


def _recall_curve(results: Sequence[SceneResult], scores: Sequence[np.ndarray], ks: Sequence[int]) -> list[float]:
    vals = np.zeros(len(ks))
    for r, s in zip(results, scores):
        ranks = _ranks(s, r.relevant_rows)
        vals += np.array([(ranks < k).sum() / len(r.relevant_rows) for k in ks])
    return (vals / max(len(results), 1)).round(4).tolist()


def summarize(results: Sequence[SceneResult], config: EvaluationConfig, products: pl.DataFrame,
              calibrators: Mapping[int, Any], encoder_fingerprint: str) -> dict[str, Any]:
    """Headline metrics, intervals, baselines, per-room breakdown, calibration, recall curves.
    ``products``: product_type and category in the order of the factor matrices' rows."""
    if not results:
        raise ValueError("no scene could be scored")
    w = config.weights.vector()
    w = w / w.sum()
    per_scene = score_results(results, config.weights, system=True)
    system_scores = [r.system_scores(w) for r in results]
    groups = np.asarray([evaluation_group(t, c) for t, c in
                         zip(products["product_type"].to_list(), products["category"].to_list())], dtype=object)
    headline: dict[str, Any] = {"n_scenes": len(results)}
    for j, k in enumerate(METRIC_KEYS):
        headline[k] = round(float(per_scene[:, j].mean()), 4)
    group_hits = _group_hits(results, system_scores, groups)
    for g in EVALUATION_GROUPS:
        headline[f"hit@10.{g}"] = round(float(np.mean(group_hits[g])), 4) if group_hits[g] else None
        headline[f"n_scenes.{g}"] = len(group_hits[g])
    room_ok = np.array([r.predicted_room == r.room_type for r in results], dtype=float)
    headline["room_type_accuracy"] = round(float(room_ok.mean()), 4)

    conf, outcome = [], []
    for r, s in zip(results, system_scores):
        top = np.argsort(-s, kind="stable")[: config.calibration_top_k]
        cal = calibrators.get(r.fold)
        conf.append(cal(s[top]) if cal is not None else np.full(top.size, np.nan))
        outcome.append(np.isin(top, r.relevant_rows).astype(float))
    conf_all, out_all = np.concatenate(conf), np.concatenate(outcome)
    ok = ~np.isnan(conf_all)
    headline["ece"] = round(expected_calibration_error(conf_all[ok], out_all[ok]), 4) if ok.any() else None
    reliability = [dataclasses.asdict(b) for b in reliability_curve(conf_all[ok], out_all[ok])] if ok.any() else []

    intervals = {k: tuple(round(v, 4) for v in bootstrap_interval(per_scene[:, j], n_resamples=config.bootstrap_resamples,
                                                                     seed=config.seed))
                 for j, k in enumerate(METRIC_KEYS)}
    intervals["room_type_accuracy"] = tuple(round(v, 4) for v in bootstrap_interval(
        room_ok, n_resamples=config.bootstrap_resamples, seed=config.seed))

    baselines: dict[str, dict[str, float]] = {}
    ks = [1, 5, 10, 20, 50, 100, 200]
    curves = {"system": _recall_curve(results, system_scores, ks)}
    for name in BASELINES:
        rows = []
        scores = [r.baselines[name] for r in results]
        for r, s in zip(results, scores):
            m = metrics_from_ranks(_ranks(s, r.relevant_rows), len(r.relevant_rows))
            rows.append([m[k] for k in METRIC_KEYS])
        arr = np.asarray(rows)
        baselines[name] = {k: round(float(arr[:, j].mean()), 4) for j, k in enumerate(METRIC_KEYS)}
        gh = _group_hits(results, scores, groups)
        baselines[name] |= {f"hit@10.{g}": round(float(np.mean(gh[g])), 4) if gh[g] else None for g in EVALUATION_GROUPS}
        curves[name] = _recall_curve(results, scores, ks)
    curves["k"] = ks

    per_room: dict[str, dict[str, float]] = {}
    rooms = np.asarray([r.room_type for r in results])
    for room in sorted(set(rooms)):
        mask = rooms == room
        per_room[room] = {"n_scenes": int(mask.sum())} | {
            k: round(float(per_scene[mask, j].mean()), 4) for j, k in enumerate(METRIC_KEYS)
        } | {"room_type_accuracy": round(float(room_ok[mask].mean()), 4)}

    scene_rows = pl.DataFrame({
        "scene_id": [r.scene_id for r in results], "room_type": [r.room_type for r in results],
        "predicted_room": [r.predicted_room for r in results], "fold": [r.fold for r in results],
        "n_relevant": [len(r.relevant_rows) for r in results],
    } | {k: per_scene[:, j] for j, k in enumerate(METRIC_KEYS)})
    headline["encoder"] = encoder_fingerprint
    headline["config"] = config.weights.to_dict()
    headline["fusion"] = config.fusion
    return {"headline": headline, "intervals": intervals, "baselines": baselines, "per_room": per_room,
            "reliability": reliability, "recall_curve": curves, "per_scene": scene_rows}


def _fold_calibrators(results: Sequence[SceneResult], config: EvaluationConfig) -> dict[int, IsotonicCalibrator]:
    """For each fold: isotonic calibrator fitted on the other folds' out-of-fold top-k scores."""
    w = config.weights.vector()
    w = w / w.sum()
    folds = sorted({r.fold for r in results})
    out = {}
    for f in folds:
        others = [r for r in results if r.fold != f]
        if others:
            out[f] = IsotonicCalibrator.fit(*calibration_pairs(others, w, config.calibration_top_k))
    return out


def save_results(path: Path, results: Sequence[SceneResult], product_ids: Sequence[str]) -> Path:
    """Out-of-fold factor matrices and baselines of every scene in one ``.npz`` (for the sweep)."""
    from scene_assets.indexes.store import write_atomic

    names = list(BASELINES)
    rel = [r.relevant_rows for r in results]
    arrays = {
        "scene_ids": np.asarray([r.scene_id for r in results]),
        "room_types": np.asarray([r.room_type for r in results]),
        "folds": np.asarray([r.fold for r in results]),
        "factors": np.stack([r.factors for r in results]).astype(np.float32),
        "relevant_rows": np.concatenate(rel),
        "relevant_offsets": np.cumsum([0] + [len(x) for x in rel]),
        "room_probs": np.stack([r.room_probs for r in results]),
        "baselines": np.stack([np.stack([r.baselines[n] for n in names]) for r in results]).astype(np.float32),
        "baseline_names": np.asarray(names),
        "product_ids": np.asarray([str(p) for p in product_ids]),
        "factor_names": np.asarray(FACTORS),
    }
    if results and all(r.scores is not None for r in results):
        arrays["scores"] = np.stack([r.scores for r in results]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return path


def load_results(path: Path) -> tuple[list[SceneResult], list[str]]:
    with np.load(path, allow_pickle=False) as z:
        if list(z["factor_names"]) != list(FACTORS):
            raise ValueError(f"{path}: factors {list(z['factor_names'])} differ from this version's {list(FACTORS)}")
        off = z["relevant_offsets"]
        names = [str(n) for n in z["baseline_names"]]
        scores = z["scores"] if "scores" in z.files else None
        results = [
            SceneResult(str(z["scene_ids"][i]), str(z["room_types"][i]), int(z["folds"][i]),
                        z["factors"][i].astype(np.float32), z["relevant_rows"][off[i]: off[i + 1]],
                        z["room_probs"][i], {n: z["baselines"][i, j].astype(np.float32) for j, n in enumerate(names)},
                        None if scores is None else scores[i].astype(np.float32))
            for i in range(len(z["scene_ids"]))
        ]
        return results, [str(p) for p in z["product_ids"]]


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def evaluate(
    dataset: LabeledDataset,
    *,
    train: LabeledDataset | None = None,
    config: EvaluationConfig | None = None,
    encoder=None,
    recommender: Recommender | None = None,
    cache_dir: str | os.PathLike = "data/cache/evaluation",
    allow_same_dataset: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Score ``dataset`` (see module docstring). ``progress`` gets one-line status messages.

    ``recommender``: score with this one (e.g. the materialized scene index bundle) instead of
    building one from ``dataset``'s products; labeled products it does not index are dropped, and
    scenes left without any are skipped with that reason."""
    from scene_assets.encoders import build_encoder

    config = config or EvaluationConfig()
    say = progress or (lambda msg: None)
    cache = Path(cache_dir)
    same = same_data(train, dataset)
    if same and not allow_same_dataset:
        raise SplitError(f"--train-dataset and --dataset are the same data ({dataset.root}): the figures would not "
                         "be held out. Drop --train-dataset to cross-validate over its scenes.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if recommender is not None:
        rec = recommender
        encoder = rec.encoder
        dataset = restrict_to_index(dataset, rec)
    else:
        encoder = encoder or build_encoder()
        rec = build_recommender(encoder, dataset, cache, config.weights)
    timings["eval_catalog_features"] = time.perf_counter() - t0
    say(f"catalog: {len(rec.product_ids)} products with images ({timings['eval_catalog_features']:.1f}s)")
    t0 = time.perf_counter()
    scenes = scenes_for(config, prepare_scenes(rec, dataset, config.use_captions))
    timings["eval_scenes"] = time.perf_counter() - t0
    say(f"scenes: {len(scenes)} prepared ({timings['eval_scenes']:.1f}s)")
    enc_fp = encoder.fingerprint()
    learned_final = None
    t0 = time.perf_counter()
    if train is None:
        results = cross_validate(rec, dataset, scenes, config, say)
        calibrators = _fold_calibrators(results, config)
        protocol = f"{config.folds}-fold cross-validation over scenes (seed {config.seed})"
    else:
        t1 = time.perf_counter()
        train_rec = rec if same else build_recommender(encoder, train, cache, config.weights)
        train_scenes = scenes if same else scenes_for(config, prepare_scenes(train_rec, train, config.use_captions))
        timings["train_features"] = time.perf_counter() - t1
        # calibrator: on the training data's own out-of-fold scores; the ranker: on its out-of-fold factors
        train_results = cross_validate(train_rec, train, train_scenes, config, say)
        w = config.weights.vector() / config.weights.total()
        calibrator = IsotonicCalibrator.fit(*calibration_pairs(train_results, w, config.calibration_top_k))
        learned_final = fit_learned(train_rec, train, train_scenes, train.scene_ids, config)
        learned_final.calibrator = calibrator
        if config.ranker is not None:
            learned_final.ranker = fit_ranker(train_results, config.ranker)
        pop, by_room = _popularity(rec, train, train.scene_ids)
        # popularity counts are by product id, so they carry over to the scored catalog
        results = score_scenes(rec, dataset, scenes, dataset.scene_ids, learned_final, 0, pop, by_room, config.seed)
        rec.set_learned(None)
        calibrators = {0: calibrator}
        protocol = (f"trained on {train.root} ({len(train.scene_ids)} scenes), scored on {dataset.root}"
                    + (" - SAME DATA: these figures are NOT held out" if same else ""))
    timings["fit_and_score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = summarize(results, config, rec.product_attributes(), calibrators, enc_fp)
    timings["summarize"] = time.perf_counter() - t0
    return EvaluationReport(
        metrics=summary["headline"], intervals=summary["intervals"], baselines=summary["baselines"],
        per_room=summary["per_room"], reliability=summary["reliability"], recall_curve=summary["recall_curve"],
        per_scene=summary["per_scene"], protocol=protocol, dataset=dataset.describe(),
        train_dataset=None if train is None else train.describe(),
        timings_s={k: round(v, 2) for k, v in timings.items()}, skipped_scenes=dataset.skipped_scenes,
        learned=learned_final, results=results, product_ids=[str(p) for p in rec.product_ids], config=config,
    )


def format_table(report: EvaluationReport) -> str:
    """The readable table the CLI prints."""
    m = report.metrics
    cols = list(METRIC_KEYS) + [f"hit@10.{g}" for g in EVALUATION_GROUPS]
    lines = [f"scene-matcher evaluation: {m['n_scenes']} scenes, {report.dataset['products']} products ranked per scene",
             f"protocol: {report.protocol}", f"encoder: {m['encoder']}", ""]
    head = f"{'method':<26}" + "".join(f"{c:>13}" for c in cols)
    lines += [head, "-" * len(head)]

    def fmt(v):
        return f"{v:13.3f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>13}"

    for name, vals in report.baselines.items():
        lines.append(f"{name:<26}" + "".join(fmt(vals.get(c)) for c in cols))
    lines.append(f"{'scene-matcher':<26}" + "".join(fmt(m.get(c)) for c in cols))
    lines.append(f"{'  95% interval':<26}" + "".join(
        f"{f'{report.intervals[c][0]:.3f}-{report.intervals[c][1]:.3f}':>13}" if c in report.intervals else f"{'':>13}"
        for c in cols))
    lines.append("")
    lines.append(f"room-type accuracy {m['room_type_accuracy']:.3f} "
                 f"(95% {report.intervals['room_type_accuracy'][0]:.3f}-{report.intervals['room_type_accuracy'][1]:.3f}); "
                 f"ECE of the top-10 confidence {m['ece'] if m['ece'] is None else format(m['ece'], '.3f')}; "
                 + ", ".join(f"{g}: {m[f'n_scenes.{g}']} scenes" for g in EVALUATION_GROUPS))
    lines.append("")
    lines.append(f"{'room type':<22}{'n':>4}" + "".join(f"{c:>11}" for c in METRIC_KEYS) + f"{'room acc':>11}")
    for room, vals in report.per_room.items():
        lines.append(f"{room:<22}{vals['n_scenes']:>4}" + "".join(f"{vals[c]:11.3f}" for c in METRIC_KEYS)
                     + f"{vals['room_type_accuracy']:11.3f}")
    lines.append("")
    if report.config is not None and report.config.ranker is not None:
        r = report.config.ranker
        lines.append(f"fusion: learned ranker ({r.model}, {r.negatives} negatives, fitted per fold on "
                     f"{r.inner_folds}-fold inner out-of-fold scores)"
                     + (f", without {', '.join(r.exclude)}" if r.exclude else ""))
    else:
        lines.append("weights: " + ", ".join(f"{k}={v:g}" for k, v in m["config"].items() if v))
    if report.skipped_scenes:
        lines.append(f"skipped {len(report.skipped_scenes)} scene(s), e.g. {report.skipped_scenes[0][0]}: "
                     f"{report.skipped_scenes[0][1]}")
    return "\n".join(lines)
