"""Run the main job from the command line against the persistent Dagster instance.

Assets with different partitioning cannot share one Dagster run, so the main job is a sequence of
real runs (all recorded in $DAGSTER_HOME and visible in the UI). Sharded steps run as one ranged
run over every shard, so the model loads once; in the UI a backfill of the same assets can instead
launch one run per shard on other processes or machines.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG


def _metadata_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per asset: a ranged run materializes every shard with the same (run-wide) metadata,
    so partitions of one asset are folded into one line."""
    by_asset: dict[str, tuple[dg.AssetMaterialization, list[str]]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        key = materialization.asset_key.to_user_string()
        first, partitions = by_asset.setdefault(key, (materialization, []))
        if materialization.partition:
            partitions.append(materialization.partition)
    lines = []
    for key, (materialization, partitions) in by_asset.items():
        metadata = materialization.metadata
        numbers = {
            name: value.value
            for name, value in metadata.items()
            if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue)) and not name.startswith("dagster/")
        }
        head = key + (f" [{len(partitions)} shards]" if partitions else "")
        if "dagster/row_count" in metadata:
            head += f": {metadata['dagster/row_count'].value} rows"
        details = ", ".join(f"{name}={value}" for name, value in list(numbers.items())[:7])
        lines.append(f"{head}{' (' + details + ')' if details else ''}")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else "FAILED"
        lines.append(f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {status}")
    return lines


def run_main_job(
    instance: dg.DagsterInstance | None = None, defs: dg.Definitions | None = None, log_level: str = "WARNING"
) -> dict:
    """The main job: catalog → per-shard vectors → index, as consecutive runs."""
    from pipelines.jobs import MAIN_JOB_STEPS

    return run_jobs([step.name for step in MAIN_JOB_STEPS], instance=instance, defs=defs, log_level=log_level)


def run_jobs(
    job_names: list[str],
    instance: dg.DagsterInstance | None = None,
    defs: dg.Definitions | None = None,
    log_level: str = "WARNING",
    run_config: dict | None = None,
) -> dict:
    """Run the named jobs one after another in this process, recorded in the instance; stops at the first
    failure. ``run_config`` (ops/resources config) is merged into every job's run config."""
    if defs is None:
        from pipelines.definitions import defs
    instance = instance or dg.DagsterInstance.get()
    lines: list[str] = []
    run_ids: list[str] = []
    for name in job_names:
        job = defs.resolve_job_def(name)
        tags = {}
        if job.partitions_def is not None:
            keys = job.partitions_def.get_partition_keys()
            tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            raise_on_error=False,
            # Full event logs stay in the instance (the UI shows them); the console gets warnings only.
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        run_ids.append(result.run_id)
        lines.extend(_metadata_lines(result))
        if not result.success:
            failure = next((e for e in result.all_events if e.is_failure), None)
            message = failure.message if failure else "see the run in the Dagster UI"
            lines.append(f"{name} FAILED (run {result.run_id}): {message}")
            return {"success": False, "run_ids": run_ids, "lines": lines}
    return {"success": True, "run_ids": run_ids, "lines": lines}
