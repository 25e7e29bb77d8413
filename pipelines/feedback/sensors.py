"""New feedback in the server's database becomes a partition of feedback_events and a run."""

import dagster as dg

from pipelines.feedback.assets import feedback_events
from pipelines.feedback.partitions import feedback_event_ranges, range_key
from pipelines.feedback.resources import FeedbackDatabase

feedback_events_job = dg.define_asset_job(
    "feedback_events_job",
    selection=[feedback_events],
    partitions_def=feedback_event_ranges,
    description="Read one range of new shopper events from the feedback database.",
)


@dg.sensor(
    job=feedback_events_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Checks the feedback database for events newer than the cursor (the last event id read); the new "
    "range becomes a feedback_events partition and a run. feedback_pairs follows by its automation condition.",
)
def feedback_sensor(context: dg.SensorEvaluationContext, feedback_db: FeedbackDatabase):
    cursor = int(context.cursor) if context.cursor else 0
    store = feedback_db.store()
    try:
        newest = store.max_event_id()
        where = store.describe()
    finally:
        store.close()
    if newest <= cursor:
        return dg.SkipReason(f"no feedback events after id {cursor} in {where}")
    key = range_key(cursor + 1, newest)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key)],
        dynamic_partitions_requests=[feedback_event_ranges.build_add_request([key])],
        cursor=str(newest),
    )
