import dagster as dg

from pipelines.feedback.assets import (
    ab_report,
    feedback_events,
    feedback_pairs,
    feedback_scorer,
)
from pipelines.feedback.sensors import feedback_events_job, feedback_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[feedback_events, feedback_pairs, ab_report, feedback_scorer],
                          jobs=[feedback_events_job], sensors=[feedback_sensor])
