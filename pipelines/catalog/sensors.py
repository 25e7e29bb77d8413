"""A new or changed catalog file re-runs the main job's assets.

The sensor's cursor is the catalog file's fingerprint (path, size, mtime, sha256). When the bytes (or
the configured path) change, it requests the catalog and everything the main job builds from it —
enrichment, the vectors of every shard, the alignment head and both indexes — as one backfill: those
assets are partitioned differently, so they cannot share one run, and the backfill daemon runs them in
dependency order (the sharded assets' single-run backfill policy keeps them to one ranged run, like
`scene-matcher materialize`). A file that was only touched (new mtime, same bytes) moves the cursor
without a run. Off by default: switch it on in the UI (Automation).
"""

import functools
import json
import operator

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from pipelines.jobs import MAIN_JOB_STEPS
from pipelines.resources import CatalogSource
from scene_assets.catalog import catalog_changed, file_fingerprint

# The assets of the main job's steps (catalog → enrichment → vectors → indexes); evaluation and export
# stay out (evaluation is costly and tracked in MLflow, exports are per scene batch).
MAIN_JOB_SELECTION = functools.reduce(operator.or_, (step.selection for step in MAIN_JOB_STEPS))
CATALOG_SHA_TAG = "scene_matcher/catalog_sha256"  # first 16 hex digits of the file that triggered the backfill

# --------------------------------------------------------------------------------------------
# the sensor


@dg.sensor(
    asset_selection=MAIN_JOB_SELECTION,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the catalog file of the catalog_source resource (cursor: size, mtime and sha256); when it "
    "is new or its bytes change, launches one backfill of the catalog and every main-job asset downstream of it.",
)
def catalog_file_sensor(context: dg.SensorEvaluationContext, catalog_source: CatalogSource):
    previous = json.loads(context.cursor) if context.cursor else None
    path = catalog_source.catalog_path()
    current = file_fingerprint(path, previous)
    if current is None:
        return dg.SkipReason(f"catalog file {path} not found")
    if not catalog_changed(previous, current):
        return dg.SensorResult(skip_reason=f"catalog {path} unchanged (sha256 {current['sha256'][:12]})",
                               cursor=json.dumps(current))
    if context.repository_def is None:
        raise dg.DagsterInvariantViolationError("catalog_file_sensor needs its Definitions to resolve the assets to request")
    asset_graph = context.repository_def.asset_graph
    subset = AssetGraphSubset.from_asset_keys(MAIN_JOB_SELECTION.resolve(asset_graph), asset_graph)
    context.log.info(f"catalog {path} is new or changed (sha256 {current['sha256'][:12]}): requesting the main job's assets")
    return dg.SensorResult(
        run_requests=[dg.RunRequest.for_asset_graph_subset(subset, tags={CATALOG_SHA_TAG: current["sha256"][:16]})],
        cursor=json.dumps(current),
    )
