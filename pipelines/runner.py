"""Run the project's jobs from the command line against the persistent Dagster instance.

Each step is a real Dagster run recorded in $DAGSTER_HOME, so the UI shows what the CLI did.
"""

from __future__ import annotations

import dagster as dg


def _metadata_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        interesting = {
            key: value.value
            for key, value in metadata.items()
            if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue)) and not key.startswith("dagster/")
        }
        rows = metadata.get("dagster/row_count")
        head = f"{materialization.asset_key.to_user_string()}"
        if rows is not None:
            head += f": {rows.value} rows"
        details = ", ".join(f"{k}={v}" for k, v in list(interesting.items())[:6])
        lines.append(f"{head}{' (' + details + ')' if details else ''}")
    return lines


def run_main_job(instance: dg.DagsterInstance | None = None) -> dict:
    from pipelines.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    job = defs.resolve_job_def("main_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    lines = _metadata_lines(result)
    checks = [
        f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
        f"{'passed' if evaluation.passed else 'FAILED'}"
        for evaluation in result.get_asset_check_evaluations()
    ]
    return {"success": result.success, "run_id": result.run_id, "lines": lines + checks}
