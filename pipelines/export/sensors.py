"""New scene photos in the inbox become an export batch (a dynamic partition) and a run; a nightly and
a weekly schedule re-export every scene in the inbox (recommendations change when the catalog does)."""

import json

import dagster as dg

from pipelines.export.assets import scene_recommendations
from pipelines.export.partitions import scene_batches
from pipelines.export.resources import SceneInbox
from scene_assets.export import SceneFile, batch_key, list_scene_images, new_scene_files, watermark_of, write_batch_manifest

export_recommendations_job = dg.define_asset_job(
    "export_recommendations_job",
    selection=[scene_recommendations],
    partitions_def=scene_batches,
    description="Recommendations for one batch of scene photos: Parquet, CSV and an HTML gallery.",
)


def create_batch(scene_inbox: SceneInbox, prefix: str, files: list[SceneFile], when: float | None = None) -> str:
    """Fix the batch's scene list in its manifest (content-addressed key) and return the key."""
    key = batch_key(prefix, files, when)
    write_batch_manifest(scene_inbox.manifest_path(key), key, scene_inbox.path(), files)
    return key


@dg.sensor(
    job=export_recommendations_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the scene inbox; files added or rewritten since the cursor (their newest mtime) form one "
    "new export batch.",
)
def scene_inbox_sensor(context: dg.SensorEvaluationContext, scene_inbox: SceneInbox):
    watermark = tuple(json.loads(context.cursor)) if context.cursor else None
    files = new_scene_files(scene_inbox.path(), watermark)
    if not files:
        return dg.SkipReason(f"no new scene images in {scene_inbox.path()}")
    key = create_batch(scene_inbox, "inbox", files)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key)],
        dynamic_partitions_requests=[scene_batches.build_add_request([key])],
        cursor=json.dumps(list(watermark_of(files, watermark))),
    )


def full_export_request(context: dg.ScheduleEvaluationContext, scene_inbox: SceneInbox) -> dg.RunRequest | dg.SkipReason:
    """Every scene in the inbox as one new batch (keyed on the scheduled time) and a run request for it."""
    files = list_scene_images(scene_inbox.path())
    if not files:
        return dg.SkipReason(f"no scene images in {scene_inbox.path()}")
    when = context.scheduled_execution_time.timestamp() if context.scheduled_execution_time else None
    key = create_batch(scene_inbox, "full", files, when)
    # Schedules cannot return partition requests, so the partition is added directly (idempotent).
    context.instance.add_dynamic_partitions(scene_batches.name, [key])
    return dg.RunRequest(partition_key=key, run_key=key)


def full_export_schedule(name: str, cron_schedule: str, description: str) -> dg.ScheduleDefinition:
    """A schedule (off by default) that re-exports every scene in the inbox against the current index."""

    @dg.schedule(
        name=name,
        job=export_recommendations_job,
        cron_schedule=cron_schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _full_export(context: dg.ScheduleEvaluationContext, scene_inbox: SceneInbox):
        return full_export_request(context, scene_inbox)

    return _full_export


weekly_full_export = full_export_schedule(
    "weekly_full_export", "0 3 * * 1", "Weekly full re-export: every scene in the inbox against the current index."
)
nightly_full_export = full_export_schedule(
    "nightly_full_export", "0 2 * * *", "Nightly full re-export: every scene in the inbox against the current index."
)
