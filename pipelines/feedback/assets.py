"""Feedback domain (#20): shopper events read from the server's database in ranges of event ids, and
the weighted (scene, product) training pairs made from them. Logic in scene_assets/feedback.py."""

import time

import dagster as dg
import polars as pl

from evaluation.reporting import write_variant_plot
from pipelines.evaluation.resources import MlflowTracking
from pipelines.feedback.partitions import feedback_event_ranges, parse_range
from pipelines.metadata import counts_table, markdown_table
from pipelines.feedback.resources import FeedbackDatabase
from pipelines.resources import ProjectStorage
from scene_assets.feedback import RATE_EVENTS, events_frame, feedback_pairs as make_pairs, variant_rates

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
