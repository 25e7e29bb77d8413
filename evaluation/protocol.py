"""The evaluation protocol: rank the whole catalog for every labeled scene, with strict splits.

Per scene, every product with an image is scored by the same :class:`~scene_assets.matching.Recommender`
the CLI and the API use (``score_catalog``: all factors for all products), so the factors are the
served ones, without the served path's candidate search and re-rank (the served row below). Anything learned from labels (:mod:`scene_assets.learned`: the region->product
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
without recomputing a scene (:func:`evaluation.scoring.score_results`; the weight sweep uses that).

Learned fusion (``EvaluationConfig.ranker``): instead of the hand-set weights, a
:class:`~scene_assets.ranking.FusionRanker` fitted per fold on the *training* scenes scores the
factors. Its training rows must carry out-of-fold projection / prior scores, so each outer fold runs
an inner cross-validation over its training scenes (projection, room classifier and priors refitted
on the inner training part, the inner held-out scenes scored): the ranker learns from those, the
fold's own models (fitted on all its training scenes) score the held-out fold, and the ranker ranks
them (``SceneResult.scores``). The calibrator then calibrates the ranker's scores, out of fold as
before. ``evaluation.ablation`` reuses the fitted folds to score variants with parts turned off.

The served path, next to it: every held-out scene also goes through
:meth:`~scene_assets.matching.Recommender.recommend_prepared` - the candidate search, fusion, variant
collapse, diversity and top ``served_k`` of ``/match`` and the export - on the fold's models (its
calibrator attached), and the same metrics are computed from the list it returns
(``served.<metric>``): what a shopper gets, so the cost of candidate retrieval and diversity shows.

Baselines in the same folds: random, popularity, popularity within the labeled room type, and
whole-image similarity; plus zero-shot regions (max over regions, no learning) and the learned
projection alone, so a report shows where the system stands.

Modules: :mod:`evaluation.config` (what a run does), :mod:`evaluation.folds` (features, scenes,
per-fold models), :mod:`evaluation.scoring` (metrics from results), :mod:`evaluation.report` (summary,
table, stored results); :func:`fit_serving_scorer` is the one recipe of the scorer that serves.

No Dagster imports.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from evaluation.config import EvaluationConfig
from evaluation.dataset import LabeledDataset
from evaluation.feedback_training import FeedbackScenes
from evaluation.folds import (
    FoldRun,
    ServedFolds,
    build_recommender,
    cross_validate,
    fit_learned,
    label_popularity,
    prepare_scenes,
    restrict_to_index,
    scenes_for,
    score_scenes,
    serve_folds,
    training_composites,
)
from evaluation.report import EvaluationReport, summarize
from evaluation.scoring import SceneResult, calibration_pairs, fold_calibrators
from scene_assets.composites import CompositePairs
from scene_assets.learned import IsotonicCalibrator, LearnedScorer
from scene_assets.matching import Recommender
from scene_assets.ranking import fit_ranker
from scene_assets.prepared_scene import PreparedScene

__all__ = ["SplitError", "evaluate", "fit_serving_scorer", "same_data"]


class SplitError(ValueError):
    """Training and scoring data would overlap."""


def same_data(train: LabeledDataset | None, dataset: LabeledDataset) -> bool:
    """Whether ``train`` is the scored dataset itself: the same folder, or the same label files."""
    return train is not None and (train.root == dataset.root or train.fingerprint == dataset.fingerprint)


def fit_serving_scorer(rec: Recommender, dataset: LabeledDataset, results: Sequence[SceneResult],
                       config: EvaluationConfig, *, scenes: Mapping[str, PreparedScene] | None = None,
                       composites: CompositePairs | None = None, cache_dir: str | os.PathLike | None = None,
                       feedback: FeedbackScenes | None = None) -> LearnedScorer:
    """The learned scorer to serve with: projection, room classifier and label priors fitted on ALL
    scenes of ``dataset``; the fusion ranker (when ``config.ranker``) and the confidence calibrator
    fitted on ``results`` - out-of-fold results of the same recipe (each scene scored by models that
    never saw its labels: what the ranker must learn from and the calibrator must calibrate; never
    in-sample scores). ``scenes``: ``dataset``'s prepared scenes, when already at hand; ``composites``:
    ``dataset``'s synthetic composites (:func:`~evaluation.folds.training_composites`), when already at
    hand - made here when ``config.composites`` asks for them and ``cache_dir`` is given. ``feedback``:
    shopper photos the projection also trains on (:mod:`evaluation.feedback_training`; the ranker and the
    calibrator still come from ``results``)."""
    if config.ranker is not None and any(r.scores is None for r in results):
        raise ValueError("the out-of-fold results hold no ranker scores to calibrate on: they were not scored with "
                         "a ranker; re-run the evaluation with one")
    scenes = scenes if scenes is not None else scenes_for(config, prepare_scenes(rec, dataset, config.use_captions))
    if composites is None and cache_dir is not None:
        composites = training_composites(rec, dataset, config, Path(cache_dir))
    scorer = fit_learned(rec, dataset, scenes, dataset.scene_ids, config, composites, feedback=feedback)
    if config.ranker is not None:
        scorer.ranker = fit_ranker(results, config.ranker)
    scorer.calibrator = IsotonicCalibrator.fit(*calibration_pairs(results, config.weights, config.calibration_top_k))
    return scorer


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
    t0 = time.perf_counter()
    composites = training_composites(rec, dataset, config, cache, say) if train is None or same else None
    timings["composites"] = time.perf_counter() - t0
    enc_fp = encoder.fingerprint()
    learned_final = None
    t0 = time.perf_counter()
    if train is None:
        runs: list[FoldRun] = []
        results = cross_validate(rec, dataset, scenes, config, say, runs=runs, composites=composites)
        calibrators = fold_calibrators(results, config)
        serving = serve_folds(rec, scenes, runs, calibrators, config)
        protocol = f"{config.folds}-fold cross-validation over scenes (seed {config.seed})"
    else:
        t1 = time.perf_counter()
        train_rec = rec if same else build_recommender(encoder, train, cache, config.weights)
        train_scenes = scenes if same else scenes_for(config, prepare_scenes(train_rec, train, config.use_captions))
        if not same:
            composites = training_composites(train_rec, train, config, cache, say)
        timings["train_features"] = time.perf_counter() - t1
        # calibrator: on the training data's own out-of-fold scores; the ranker: on its out-of-fold factors
        train_results = cross_validate(train_rec, train, train_scenes, config, say, composites=composites)
        learned_final = fit_serving_scorer(train_rec, train, train_results, config, scenes=train_scenes,
                                           composites=composites)
        pop, by_room = label_popularity(rec, train, train.scene_ids)
        # popularity counts are by product id, so they carry over to the scored catalog
        results = score_scenes(rec, dataset, scenes, dataset.scene_ids, learned_final, 0, pop, by_room, config.seed)
        calibrators = {0: learned_final.calibrator}
        serving = ServedFolds(rec, scenes, [(dataset.scene_ids, learned_final)])
        protocol = (f"trained on {train.root} ({len(train.scene_ids)} scenes), scored on {dataset.root}"
                    + (" - SAME DATA: these figures are NOT held out" if same else ""))
    two_stage_overlap = None
    if config.served_index is not None:
        # the served row through stage 1 of an approximate index; overlap@10 with the exact served lists
        exact_served = serving.serve(config)
        serving = dataclasses.replace(serving, rec=rec.two_stage(config.served_index, nprobe=config.served_nprobe))
        served = serving.serve(config)
        two_stage_overlap = float(np.mean([len(set(served[s][:10]) & set(exact_served[s][:10])) / max(min(10, len(exact_served[s])), 1)
                                           for s in served]))
        say(f"two-stage served row ({config.served_index}, nprobe {config.served_nprobe}): overlap@10 with the exact "
            f"served lists {two_stage_overlap:.3f}")
    else:
        served = serving.serve(config)
    timings["fit_and_score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = summarize(results, config, rec.product_attributes(), calibrators, enc_fp, served)
    timings["summarize"] = time.perf_counter() - t0
    return EvaluationReport(
        metrics=summary["headline"], intervals=summary["intervals"], baselines=summary["baselines"],
        per_room=summary["per_room"], reliability=summary["reliability"], recall_curve=summary["recall_curve"],
        per_scene=summary["per_scene"], protocol=protocol, dataset=dataset.describe(),
        train_dataset=None if train is None else train.describe(),
        timings_s={k: round(v, 2) for k, v in timings.items()}, skipped_scenes=dataset.skipped_scenes,
        learned=learned_final, results=results, product_ids=[str(p) for p in rec.product_ids], config=config,
        serving=serving, composite_pairs=0 if composites is None else len(composites),
        two_stage_overlap_at_10=two_stage_overlap,
    )
