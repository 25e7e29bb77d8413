import dagster as dg

from pipelines.export.assets import scene_recommendations
from pipelines.export.sensors import (
    export_recommendations_job,
    nightly_full_export,
    scene_inbox_sensor,
    weekly_full_export,
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[scene_recommendations],
        jobs=[export_recommendations_job],
        sensors=[scene_inbox_sensor],
        schedules=[nightly_full_export, weekly_full_export],
    )
