"""Evaluation domain: score the materialized scene index on labeled scenes, sweep the scoring weights,
publish the best weights, sweep the re-rank options (diversity, variant collapse) - every run logged
to MLflow and linked from the asset's metadata."""

import dataclasses
import time
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from evaluation.config import DEFAULT_RANKER, METRIC_KEYS, RANKER_BY_DEFAULT, EvaluationConfig
from evaluation.dataset import load_labeled_dataset
from evaluation.folds import restrict_to_index
from evaluation.protocol import fit_serving_scorer
from evaluation.report import format_table, load_results
from evaluation.reporting import table_rows
from evaluation.rerank_sweep import rerank_options
from evaluation.run import run_evaluation, run_rerank_sweep, run_weight_sweep
from pipelines.evaluation.resources import LabeledData, MlflowTracking
from pipelines.metadata import markdown_table
from pipelines.resources import CatalogSource, ProjectStorage
from scene_assets.composites import CompositeConfig
from scene_assets.learned import LearnedScorer, ProjectionConfig
from scene_assets.ranking import RankerConfig, ScoringWeights
from scene_assets.recommender_bundle import load_recommender


class ScoringRunConfig(dg.Config):
    folds: int = Field(default=5, description="Cross-validation folds over scenes (when no training dataset is set).")
    seed: int = Field(default=0, description="Seed of the fold split, the projection training and the bootstrap.")
    use_captions: bool = Field(default=False, description="Score scenes with their captions as text context.")
    weights_path: str = Field(default="", description="Scoring weights JSON; empty: the evaluation defaults (used "
                              "when ranker is off, and by the weight sweep).")
    ranker: bool = Field(default=RANKER_BY_DEFAULT, description="Combine the factors with a learned fusion ranker "
                         "(fitted per fold on inner out-of-fold scores) instead of the weights.")
    ranker_model: str = Field(default=DEFAULT_RANKER.model, description="Ranker model: hgb (gradient boosting) or logistic.")
    ranker_negatives: str = Field(default=DEFAULT_RANKER.negatives, description="Ranker negatives: random, or room "
                                  "(half of them labeled in other scenes of the same room type).")
    projection_epochs: int = Field(default=60, description="Training epochs of the region->product projection.")
    composites_per_scene: int = Field(default=CompositeConfig().per_scene, description="Synthetic composites made "
                                      "from each training scene (catalog products pasted into it: exact region/product "
                                      "pairs the projection also learns from); 0: the labels only.")
    gallery_scenes: int = Field(default=4, description="Best and worst scenes shown in the HTML gallery.")


class SweepConfig(dg.Config):
    size: int = Field(default=24, description="Weight configurations tried (the evaluation's own first, then random "
                      "draws from a small grid).")
    seed: int = Field(default=0, description="Seed of the random draws.")
    objective: str = Field(default="ndcg@10", description=f"Metric the best configuration maximises: one of {list(METRIC_KEYS)}.")


def _float_metadata(values: dict) -> dict:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def stored_evaluation_config(scene_evaluation: dict) -> EvaluationConfig:
    """The config a ``scene_evaluation`` materialization ran with. A setting it predates reads as what
    that run did: no ranker (it scored with the weights), no composites (labels only); settings since
    removed are dropped."""
    cfg = {"ranker": None, "composites": None} | dict(scene_evaluation["config"])
    known = {f.name for f in dataclasses.fields(EvaluationConfig)}
    return EvaluationConfig.from_dict({k: v for k, v in cfg.items() if k in known})


def _evaluation_asset(*inputs: str, **kwargs):
    """An evaluation asset: its inputs and its output are small Python objects (paths, run ids, metrics)
    kept by the model IO manager, the data itself lives in files and MLflow."""
    return dg.asset(group_name="evaluation",
                    ins={name: dg.AssetIn(input_manager_key="model_io_manager") for name in inputs},
                    io_manager_key="model_io_manager", **kwargs)


@_evaluation_asset(
    "scene_index",
    description="Scores the materialized scene index on a labeled dataset: every scene ranks the whole catalog; "
    "learned parts are fitted on training scenes only (cross-validation folds, or the training dataset). Logs "
    "an MLflow run (params, metrics, reliability and recall@k plots, best/worst scene gallery) and keeps the "
    "out-of-fold factor matrices for the weight sweep.",
    kinds={"mlflow"},
)
def scene_evaluation(
    context: dg.AssetExecutionContext,
    config: ScoringRunConfig,
    scene_index: dict,
    labeled_data: LabeledData,
    catalog_source: CatalogSource,
    mlflow_tracking: MlflowTracking,
    storage: ProjectStorage,
) -> dg.Output:
    started = time.perf_counter()
    dataset_dir = labeled_data.dataset_dir(catalog_source.catalog_path())
    dataset = load_labeled_dataset(dataset_dir)
    train_dir = labeled_data.train_dir()
    train = load_labeled_dataset(train_dir) if train_dir else None
    weights = ScoringWeights.from_file(config.weights_path) if config.weights_path else None
    ranker = (RankerConfig.from_dict(DEFAULT_RANKER.to_dict() | {"model": config.ranker_model,
                                                                 "negatives": config.ranker_negatives, "seed": config.seed})
              if config.ranker else None)
    eval_config = EvaluationConfig(
        **({"weights": weights} if weights else {}), folds=config.folds, seed=config.seed,
        use_captions=config.use_captions, projection=ProjectionConfig(epochs=config.projection_epochs, seed=config.seed),
        ranker=ranker, composites=CompositeConfig(per_scene=config.composites_per_scene, seed=config.seed))
    recommender, bundle = load_recommender(scene_index["path"])
    out_dir = storage.path("evaluation", context.run_id)
    tracking = mlflow_tracking.logger()
    run = run_evaluation(
        dataset, train=train, config=eval_config, recommender=recommender, cache_dir=storage.path("cache", "evaluation"),
        out_dir=out_dir, tracking=tracking, run_name=f"evaluation-{context.run_id[:8]}",
        extra_params={"index_version": bundle["version"], "dagster_run_id": context.run_id},
        tags={"dagster_run_id": context.run_id, "index_version": bundle["version"]},
        gallery_scenes=config.gallery_scenes, progress=context.log.info)
    report, run_id, results_path = run.report, run.mlflow_run_id, run.results_path
    for sid, reason in report.skipped_scenes[:20]:
        context.log.warning(f"scene {sid} skipped: {reason}")
    url = mlflow_tracking.run_url(tracking.experiment_id, run_id)
    context.log.info("\n" + format_table(report))
    # the pure ranking's figures and, as served.<metric>, what /match returns (the served path)
    headline = _float_metadata({k: report.metrics[k] for k in (*METRIC_KEYS, "hit@10.chair", "hit@10.sofa",
                                                                 "hit@10.table", "room_type_accuracy", "ece",
                                                                 *(f"served.{m}" for m in METRIC_KEYS))
                                if report.metrics.get(k) is not None})
    return dg.Output(
        {"dir": str(out_dir), "results_path": str(results_path), "mlflow_run_id": run_id,
         "experiment_id": tracking.experiment_id, "metrics": report.metrics, "protocol": report.protocol,
         "dataset_fingerprint": dataset.fingerprint, "encoder": report.metrics["encoder"],
         "index_version": bundle["version"], "config": eval_config.to_dict()},
        metadata=headline | {
            "n_scenes": report.metrics["n_scenes"],
            "protocol": report.protocol,
            "fusion": eval_config.fusion,
            "dataset": dg.MetadataValue.path(str(dataset.root)),
            "dataset_fingerprint": dataset.fingerprint,
            "encoder_fingerprint": report.metrics["encoder"],
            "index_version": bundle["version"],
            "mlflow_run": dg.MetadataValue.url(url),
            "mlflow_run_id": run_id,
            "table": markdown_table(pl.DataFrame(table_rows(report)), limit=20),
            "gallery": dg.MetadataValue.path(str(out_dir / "gallery" / "index.html")),
            "skipped_scenes": len(report.skipped_scenes),
            "composite_pairs": report.composite_pairs,
            "composites_seconds": report.timings_s.get("composites", 0.0),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


@_evaluation_asset(
    "scene_evaluation",
    description="Weight sweep over the re-ranking factors on the evaluation's out-of-fold scores: an MLflow parent "
    "run with one nested child per configuration (params repeated on each); the best configuration on all folds "
    "is recorded on the parent, and the held-out estimate of 'pick the best on the other folds' is reported.",
    kinds={"mlflow"},
)
def weight_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    scene_evaluation: dict,
    mlflow_tracking: MlflowTracking,
) -> dg.Output:
    started = time.perf_counter()
    results, _ = load_results(Path(scene_evaluation["results_path"]))
    base = ScoringWeights.from_dict(scene_evaluation["config"]["weights"])
    tracking = mlflow_tracking.logger()
    base_params = {"encoder": scene_evaluation["encoder"], "dataset_hash": scene_evaluation["dataset_fingerprint"],
                   "protocol": scene_evaluation["protocol"], "index_version": scene_evaluation["index_version"],
                   "evaluation_run_id": scene_evaluation["mlflow_run_id"]}
    run = run_weight_sweep(results, base, size=config.size, seed=config.seed, objective=config.objective,
                           tracking=tracking, run_name=f"weight-sweep-{context.run_id[:8]}", base_params=base_params,
                           tags={"dagster_run_id": context.run_id})
    sweep, parent, children = run.sweep, run.mlflow_parent_run_id, run.mlflow_child_run_ids
    j = METRIC_KEYS.index(config.objective)
    top = pl.DataFrame(sweep.rows()).sort(config.objective, descending=True)
    return dg.Output(
        {"best_weights": sweep.best.to_dict(), "mlflow_parent_run_id": parent, "experiment_id": tracking.experiment_id,
         "objective": config.objective, "best": {k: float(sweep.mean[sweep.best_index, i]) for i, k in enumerate(METRIC_KEYS)},
         "nested_heldout": sweep.nested, "n_configs": len(sweep.configs)},
        metadata={
            "n_configs": len(sweep.configs),
            "objective": config.objective,
            f"best_{config.objective}": float(sweep.mean[sweep.best_index, j]),
            f"evaluation_default_{config.objective}": float(sweep.mean[0, j]),
            f"nested_heldout_{config.objective}": float(sweep.nested.get(config.objective, float("nan"))),
            "best_weights": dg.MetadataValue.json(sweep.best.to_dict()),
            "mlflow_parent_run": dg.MetadataValue.url(mlflow_tracking.run_url(tracking.experiment_id, parent)),
            "mlflow_child_runs": len(children),
            "top_configs": markdown_table(top.select([c for c in top.columns if c != "config"]).with_columns(
                pl.col(pl.Float64).round(3)), limit=8),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


@_evaluation_asset(
    "scene_index",
    "scene_evaluation",
    description="Re-rank sweep: every held-out scene served (candidate search, fusion, variant collapse, diversity, "
    "top served_k) once per re-rank configuration - diversity none / MMR lambdas / category caps, variant collapse "
    "on and off - scored on served recall, nDCG@10, MRR, distinct categories@10 and intra-list similarity; the "
    "recommended default is the most diverse keeping >= 95% of the pure ranking's nDCG@10. The served path needs "
    "the fold models and prepared scenes, which weight_sweep's input (the saved out-of-fold factor matrices) does not "
    "hold, so this re-runs scene_evaluation's cross-validation (same config and seed: the same folds and models). "
    "MLflow: a parent run with one child per configuration.",
    kinds={"mlflow"},
)
def rerank_sweep(
    context: dg.AssetExecutionContext,
    scene_index: dict,
    scene_evaluation: dict,
    labeled_data: LabeledData,
    catalog_source: CatalogSource,
    mlflow_tracking: MlflowTracking,
    storage: ProjectStorage,
) -> dg.Output:
    started = time.perf_counter()
    dataset = load_labeled_dataset(labeled_data.dataset_dir(catalog_source.catalog_path()))
    train_dir = labeled_data.train_dir()
    eval_config = stored_evaluation_config(scene_evaluation)
    recommender, bundle = load_recommender(scene_index["path"])
    run = run_evaluation(dataset, train=load_labeled_dataset(train_dir) if train_dir else None, config=eval_config,
                         recommender=recommender, cache_dir=storage.path("cache", "evaluation"), progress=context.log.info)
    tracking = mlflow_tracking.logger()
    swept = run_rerank_sweep(
        run.report, tracking=tracking, run_name=f"rerank-sweep-{context.run_id[:8]}",
        base_params={"encoder": scene_evaluation["encoder"], "dataset_hash": scene_evaluation["dataset_fingerprint"],
                     "protocol": scene_evaluation["protocol"], "index_version": bundle["version"],
                     "evaluation_run_id": scene_evaluation["mlflow_run_id"]},
        tags={"dagster_run_id": context.run_id})
    sweep = swept.sweep
    chosen = None if sweep.chosen is None else rerank_options(sweep.chosen)
    table = pl.DataFrame(sweep.rows).with_columns(pl.col(pl.Float64).round(3))
    return dg.Output(
        {"chosen": chosen, "rows": sweep.rows, "pure_ndcg@10": sweep.pure_ndcg, "keep": sweep.keep,
         "mlflow_parent_run_id": swept.mlflow_parent_run_id, "experiment_id": tracking.experiment_id},
        metadata={
            "n_configs": len(sweep.rows),
            "pure_ndcg@10": sweep.pure_ndcg,
            "chosen": dg.MetadataValue.json(chosen or {}),
            "chosen_config": "none keeps the nDCG@10" if sweep.chosen_index is None else sweep.rows[sweep.chosen_index]["config"],
            "table": markdown_table(table, limit=len(sweep.rows)),
            "mlflow_parent_run": dg.MetadataValue.url(mlflow_tracking.run_url(tracking.experiment_id,
                                                                              swept.mlflow_parent_run_id)),
            "mlflow_child_runs": len(swept.mlflow_child_run_ids),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


@_evaluation_asset(
    "weight_sweep",
    description="The sweep's best scoring weights as a JSON file the recommender reads "
    "(`scene-matcher recommend --weights PATH`, the export job's weights_path).",
    kinds={"json"},
)
def scoring_weights(context: dg.AssetExecutionContext, weight_sweep: dict, storage: ProjectStorage) -> dg.Output:
    weights = ScoringWeights.from_dict(weight_sweep["best_weights"])
    path = storage.path("models", "scoring_weights") / f"{weight_sweep['mlflow_parent_run_id']}.json"
    weights.save(path)
    return dg.Output(
        {"path": str(path), "weights": weights.to_dict(), "mlflow_parent_run_id": weight_sweep["mlflow_parent_run_id"]},
        metadata={"weights_path": dg.MetadataValue.path(str(path)), "weights": dg.MetadataValue.json(weights.to_dict()),
                  "objective": weight_sweep["objective"],
                  **{f"sweep_best.{k}": float(v) for k, v in weight_sweep["best"].items()}},
    )


def save_serving_scorer(recommender, bundle: dict, dataset, scene_evaluation: dict, eval_config: EvaluationConfig,
                        storage: ProjectStorage, *, scenes=None, composites=None, feedback=None
                        ) -> tuple[LearnedScorer, Path]:
    """``fit_serving_scorer`` on ``dataset`` with the evaluation's out-of-fold results (for the ranker and the
    calibrator), stamped with where it came from and saved under ``models/learned/<fingerprint>``: the one
    recipe of learned_scorer and of feedback_scorer (``scenes`` / ``composites``: the dataset's, when already at
    hand; ``feedback``: the shoppers' photos it also trains on)."""
    results, _ = load_results(Path(scene_evaluation["results_path"]))
    try:
        scorer = fit_serving_scorer(recommender, dataset, results, eval_config, scenes=scenes, composites=composites,
                                    cache_dir=storage.path("cache", "evaluation"), feedback=feedback)
    except ValueError as exc:
        raise ValueError(f"{scene_evaluation['results_path']}: {exc}; re-materialize scene_evaluation") from exc
    scorer.info |= {"dataset": str(dataset.root), "index_version": bundle["version"],
                    "evaluation_run_id": scene_evaluation["mlflow_run_id"], "weights": eval_config.weights.to_dict()}
    directory = storage.path("models", "learned", scorer.fingerprint())
    scorer.save(directory)
    return scorer, directory


@_evaluation_asset(
    "scene_index",
    "scene_evaluation",
    description="The learned parts of the scorer for serving: region->product projection (trained on the labels and "
    "on synthetic composites of the training scenes), room-type classifier and "
    "label priors fitted on ALL scenes of the training dataset (the evaluation's cross-validation measured how "
    "well this recipe generalises), the fusion ranker fitted on the evaluation's out-of-fold factor scores (when the "
    "evaluation used one), plus the confidence calibrator fitted on the evaluation's out-of-fold scores. "
    "`scene-matcher recommend` / `serve` attach the latest one to the scene index.",
    kinds={"numpy"},
)
def learned_scorer(
    context: dg.AssetExecutionContext,
    scene_index: dict,
    scene_evaluation: dict,
    labeled_data: LabeledData,
    catalog_source: CatalogSource,
    mlflow_tracking: MlflowTracking,
    storage: ProjectStorage,
) -> dg.Output:
    started = time.perf_counter()
    train_dir = labeled_data.train_dir() or labeled_data.dataset_dir(catalog_source.catalog_path())
    eval_config = stored_evaluation_config(scene_evaluation)
    recommender, bundle = load_recommender(scene_index["path"])
    dataset = restrict_to_index(load_labeled_dataset(train_dir), recommender)
    # projection, room classifier, priors: on all training scenes; ranker and calibrator: on the evaluation's
    # out-of-fold results (each scene scored by models that never saw its labels)
    scorer, directory = save_serving_scorer(recommender, bundle, dataset, scene_evaluation, eval_config, storage)
    fingerprint = scorer.fingerprint()
    tracking = mlflow_tracking.logger()
    run_id = tracking.log_learned_scorer(
        scorer, directory,
        params={"fingerprint": fingerprint, "dataset_hash": dataset.fingerprint,
                "training_scenes": len(dataset.scene_ids), "encoder": bundle["encoder_fingerprint"],
                "projection": eval_config.projection.to_dict(),
                "evaluation_run_id": scene_evaluation["mlflow_run_id"], "fusion": eval_config.fusion}
        | ({"ranker": eval_config.ranker.to_dict()} if scorer.ranker is not None else {}),
        evaluation_metrics=scene_evaluation["metrics"], tags={"dagster_run_id": context.run_id})
    return dg.Output(
        {"path": str(directory), "fingerprint": fingerprint},
        metadata={
            "learned_dir": dg.MetadataValue.path(str(directory)),
            "learned_fingerprint": fingerprint,
            "training_dataset": dg.MetadataValue.path(str(dataset.root)),
            "training_scenes": len(dataset.scene_ids),
            "room_classes": len(scorer.room_classifier.classes_) if scorer.room_classifier else 0,
            "fusion": eval_config.fusion,
            "cross_validated_ndcg@10": float(scene_evaluation["metrics"]["ndcg@10"]),
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(tracking.experiment_id, run_id)),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
