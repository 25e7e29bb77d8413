"""Feedback domain (#20): shopper events read from the server's database in ranges of event ids, the
weighted (scene, product) training pairs made from them, the A/B report, and the learned scorer retrained on
labels + feedback behind a blocking check on the labeled held-out folds. Logic in scene_assets/feedback.py
and evaluation/feedback_training.py."""

import time

import dagster as dg
import polars as pl
from pydantic import Field

from evaluation.dataset import load_labeled_dataset
from evaluation.feedback_training import FeedbackTrainingConfig, feedback_check, prepare_feedback_scenes
from evaluation.folds import prepare_scenes, restrict_to_index, scenes_for, training_composites
from evaluation.reporting import write_variant_plot
from pipelines.evaluation.assets import save_serving_scorer, stored_evaluation_config
from pipelines.evaluation.resources import LabeledData, MlflowTracking
from pipelines.feedback.partitions import feedback_event_ranges, parse_range
from pipelines.metadata import counts_table, markdown_table
from pipelines.feedback.resources import FeedbackDatabase
from pipelines.resources import CatalogSource, ProjectStorage
from scene_assets.feedback import RATE_EVENTS, events_frame, feedback_pairs as make_pairs, variant_rates
from scene_assets.recommender_bundle import load_recommender

GROUP = "feedback"


def _all_events(partitions: pl.DataFrame) -> pl.DataFrame:
    """Every partition's events as one frame (the events schema when there is no partition yet), each event
    once: a partition re-read after new events were appended to an earlier range must not count twice."""
    return (partitions if partitions.width else events_frame([])).unique("event_id", keep="last")


@dg.asset(
    group_name=GROUP,
    partitions_def=feedback_event_ranges,
    kinds={"sql", "polars"},
    description="Shopper events (impression, click, add_to_cart, purchase) on served recommendations, one partition "
    "per range of event ids the feedback sensor found new, with the scene photo's sha256 and the index version and "
    "variant that served them. Re-materializing a partition reads the same ids again.",
)
def feedback_events(context: dg.AssetExecutionContext, feedback_db: FeedbackDatabase) -> dg.Output[pl.DataFrame]:
    started = time.perf_counter()
    first, last = parse_range(context.partition_key)
    store = feedback_db.store()
    try:
        frame = events_frame(store.events_between(first, last))
    finally:
        store.close()
    return dg.Output(frame, metadata={
        "events": frame.height,
        "first_event_id": first,
        "last_event_id": last,
        "by_event": counts_table(frame, "event"),
        "variants": dg.MetadataValue.json(sorted(frame["variant"].unique().to_list())),
        "recommendations": frame["recommendation_id"].n_unique(),
        "database": store.describe(),
        "seconds": round(time.perf_counter() - started, 3),
        "preview": markdown_table(frame.select("event_id", "product_id", "rank", "event", "variant")),
    })


@dg.asset(
    group_name=GROUP,
    ins={"feedback_events": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    kinds={"polars"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Training pairs from every feedback partition: per (scene photo, product) a positive (engaged: "
    "click .3, add to cart .6, purchase 1, once per recommendation, weighted by the inverse of how likely its rank "
    "is looked at) or a negative (shown and passed over, weighted by that likelihood). The examination propensity "
    "by rank is estimated from the impressions (a 1/log2(rank+1) prior where they are too few).",
)
def feedback_pairs(context: dg.AssetExecutionContext, feedback_events: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    started = time.perf_counter()
    events = _all_events(feedback_events)
    pairs, propensity = make_pairs(events)
    return dg.Output(pairs, metadata={
        "events": events.height,
        "pairs": pairs.height,
        "positives": int((pairs["label"] == 1).sum()),
        "negatives": int((pairs["label"] == 0).sum()),
        "scenes": pairs["scene_sha256"].n_unique(),
        "products": pairs["product_id"].n_unique(),
        "propensity_by_rank": dg.MetadataValue.md(
            "| rank | P(examined) |\n|---|---|\n" + "\n".join(f"| {r} | {p:.3f} |" for r, p in sorted(propensity.items()))),
        "seconds": round(time.perf_counter() - started, 3),
        "preview": markdown_table(pairs),
    })


@dg.asset(
    group_name=GROUP,
    ins={"feedback_events": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    kinds={"polars", "mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The A/B report: per scoring variant, recommendations served and the share of them clicked, added "
    "to cart and bought, with 95 % Wilson intervals; one MLflow run per variant (experiment scene-matcher-ab) and a "
    "bar chart. The leader is the variant with the highest click-through; `decided` says whether its interval clears "
    "every other variant's.",
)
def ab_report(context: dg.AssetExecutionContext, feedback_events: pl.DataFrame, feedback_db: FeedbackDatabase,
              mlflow_tracking: MlflowTracking, storage: ProjectStorage) -> dg.Output[pl.DataFrame]:
    started = time.perf_counter()
    store = feedback_db.store()
    try:
        served = store.served_by_variant()
    finally:
        store.close()
    events = _all_events(feedback_events)
    rates = variant_rates(served, events)
    if rates.is_empty():
        return dg.Output(rates, metadata={"variants": 0, "served": 0, "seconds": round(time.perf_counter() - started, 3)})
    run_tag = f"{int(time.time())}"
    plot = write_variant_plot(rates, storage.path("feedback", "ab", run_tag) / "variant_rates.png")
    tracking = mlflow_tracking.logger(f"{mlflow_tracking.experiment}-ab")
    links = {}
    for row in rates.iter_rows(named=True):
        run_id = tracking.start_run(f"ab-{row['variant']}", tags={"kind": "ab_variant", "variant": row["variant"]})
        tracking.log(run_id, params={"variant": row["variant"], "events_seen": events.height},
                     metrics={k: v for k, v in row.items() if k != "variant"})
        tracking.log_artifact(run_id, plot)
        tracking.finish(run_id)
        links[f"mlflow_run_{row['variant']}"] = dg.MetadataValue.url(mlflow_tracking.run_url(tracking.experiment_id, run_id))
    ordered = rates.sort("ctr", descending=True)
    leader = ordered.row(0, named=True)
    decided = all(leader["ctr_low"] > other["ctr_high"] for other in ordered.iter_rows(named=True)
                  if other["variant"] != leader["variant"])
    return dg.Output(rates, metadata={
        "variants": rates.height,
        "served": int(rates["served"].sum()),
        "events": events.height,
        "leader": leader["variant"],
        "decided": decided and rates.height > 1,
        "table": markdown_table(rates.select("variant", "served", *[c for name in RATE_EVENTS
                                                                     for c in (name, f"{name}_low", f"{name}_high")])
                                .with_columns(pl.selectors.float().round(4)), limit=20),
        "plot": dg.MetadataValue.path(str(plot)),
        **links,
        "seconds": round(time.perf_counter() - started, 3),
    })


class FeedbackScorerConfig(dg.Config):
    scene_weight: float = Field(default=FeedbackTrainingConfig().scene_weight, description="The most one shopper "
                                "photo counts in the projection's training, a labeled scene counting 1 (its weight "
                                "grows with the engagement it got: 1 - exp(-sum of its positive pair weights)).")
    negative_strength: float = Field(default=FeedbackTrainingConfig().negative_strength, description="How hard "
                                     "products shown and passed over push down: each counts 1 + this x its pair "
                                     "weight times in the softmax's denominator. 0: positives only.")
    tolerance: float = Field(default=FeedbackTrainingConfig().tolerance, description="nDCG@10 the blocking check "
                             "lets the feedback cost on the labeled held-out folds beyond its 95 % interval.")

    def training(self) -> FeedbackTrainingConfig:
        return FeedbackTrainingConfig(self.scene_weight, self.negative_strength, self.tolerance)


FEEDBACK_CHECK_SPEC = dg.AssetCheckSpec(
    "feedback_scorer_holds_on_labels",
    asset="feedback_scorer",
    blocking=True,
    description="Before a feedback-trained scorer may serve: the evaluation's folds over the labeled scenes, each "
    "held-out fold scored by a model fitted on its training labels alone and by one fitted on them plus the feedback "
    "(minus feedback on photos that are held-out scenes). Fails when the 95 % interval of the paired nDCG@10 "
    "difference lies entirely below -tolerance.",
)


@dg.asset(
    group_name=GROUP,
    ins={"scene_index": dg.AssetIn(input_manager_key="model_io_manager"),
         "scene_evaluation": dg.AssetIn(input_manager_key="model_io_manager")},
    io_manager_key="model_io_manager",
    kinds={"numpy", "mlflow"},
    # its check runs in the same step, as the project's other checks do: the labeled scenes and the feedback
    # photos are prepared once for the fit and for the held-out comparison
    check_specs=[FEEDBACK_CHECK_SPEC],
    # nightly, on whatever feedback arrived: a retrain prepares every labeled scene and feedback photo, fits the
    # projection and cross-validates (minutes), too heavy to repeat for every batch of events the sensor finds
    automation_condition=dg.AutomationCondition.on_cron("0 3 * * *"),
    description="The learned scorer retrained on the labels AND the shoppers' feedback: learned_scorer's recipe "
    "(same evaluation config, calibrator and ranker from the evaluation's out-of-fold results) with every archived "
    "scene photo that got an engagement added to the region->product projection's training - engaged products as "
    "weighted positives, products passed over as hard negatives. It serves only once its blocking check "
    "(feedback_scorer_holds_on_labels) passed; `scene-matcher serve` then prefers it to an older learned_scorer, and "
    "a variant plan can pin either version (`learned: <folder>`).",
)
def feedback_scorer(context: dg.AssetExecutionContext, config: FeedbackScorerConfig, scene_index: dict,
                    scene_evaluation: dict, feedback_pairs: pl.DataFrame, labeled_data: LabeledData,
                    catalog_source: CatalogSource, feedback_db: FeedbackDatabase, mlflow_tracking: MlflowTracking,
                    storage: ProjectStorage):
    started = time.perf_counter()
    eval_config = stored_evaluation_config(scene_evaluation)
    recommender, bundle = load_recommender(scene_index["path"])
    train_dir = labeled_data.train_dir() or labeled_data.dataset_dir(catalog_source.catalog_path())
    dataset = restrict_to_index(load_labeled_dataset(train_dir), recommender)
    scenes = scenes_for(eval_config, prepare_scenes(recommender, dataset, eval_config.use_captions))
    feedback = prepare_feedback_scenes(recommender, feedback_pairs, feedback_db.photos().path_of, config.training(),
                                       eval_config)
    for sha, why in feedback.skipped:
        context.log.warning(f"feedback photo {sha[:12]} skipped: {why}")
    if not len(feedback):
        raise dg.Failure(f"no feedback scene to learn from: {feedback_pairs.height} pairs, "
                         f"{len(feedback.skipped)} photos skipped (see the warnings); nothing retrained")
    composites = training_composites(recommender, dataset, eval_config, storage.path("cache", "evaluation"))
    scorer, directory = save_serving_scorer(recommender, bundle, dataset, scene_evaluation, eval_config, storage,
                                            scenes=scenes, composites=composites, feedback=feedback)
    fingerprint = scorer.fingerprint()
    tracking = mlflow_tracking.logger()
    run_id = tracking.log_learned_scorer(
        scorer, directory,
        params={"fingerprint": fingerprint, "dataset_hash": dataset.fingerprint, "training_scenes": len(dataset.scene_ids),
                "feedback_scenes": len(feedback), "feedback": feedback.fingerprint(),
                "feedback_config": feedback.config.to_dict(), "encoder": bundle["encoder_fingerprint"],
                "evaluation_run_id": scene_evaluation["mlflow_run_id"]},
        evaluation_metrics=scene_evaluation["metrics"], tags={"dagster_run_id": context.run_id, "kind": "feedback_scorer"})
    yield dg.Output(
        {"path": str(directory), "fingerprint": fingerprint, "feedback": feedback.fingerprint()},
        metadata={
            "learned_dir": dg.MetadataValue.path(str(directory)),
            "learned_fingerprint": fingerprint,
            "labeled_scenes": len(dataset.scene_ids),
            "feedback_scenes": len(feedback),
            "feedback_photos_skipped": len(feedback.skipped),
            "feedback_pairs": feedback_pairs.height,
            "feedback_fingerprint": feedback.fingerprint(),
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(tracking.experiment_id, run_id)),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    check = feedback_check(recommender, dataset, scenes, eval_config, feedback, composites=composites)
    table = pl.DataFrame(check.table()).with_columns(pl.selectors.float().round(4))
    yield dg.AssetCheckResult(
        check_name=FEEDBACK_CHECK_SPEC.name,
        passed=check.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"nDCG@10 on {check.scenes} held-out labeled scenes: {check.labels_only['ndcg@10']:.4f} labels "
                     f"only, {check.with_feedback['ndcg@10']:.4f} with feedback (difference "
                     f"{check.difference['ndcg@10']:+.4f} ± {check.half_width['ndcg@10']:.4f})"),
        metadata={
            "learned_fingerprint": fingerprint,
            "learned_dir": dg.MetadataValue.path(str(directory)),
            "feedback_fingerprint": feedback.fingerprint(),
            "ndcg@10_labels_only": check.labels_only["ndcg@10"],
            "ndcg@10_with_feedback": check.with_feedback["ndcg@10"],
            "ndcg@10_difference": check.difference["ndcg@10"],
            "ndcg@10_half_width": check.half_width["ndcg@10"],
            "scenes": check.scenes,
            "folds": check.folds,
            "feedback_scenes": check.feedback_scenes,
            "excluded_feedback": check.excluded_feedback,
            "table": markdown_table(table, limit=len(table)),
            "seconds": check.seconds,
        },
    )
