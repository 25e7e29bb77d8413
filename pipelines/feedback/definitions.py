import dagster as dg

from pipelines.feedback.assets import feedback_events, feedback_pairs
from pipelines.feedback.sensors import feedback_events_job, feedback_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[feedback_events, feedback_pairs], jobs=[feedback_events_job], sensors=[feedback_sensor])
