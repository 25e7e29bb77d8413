"""What is served: ONE policy for `scene-matcher recommend`, `scene-matcher serve` and the export job.

* **Bundle**: the latest ``scene_index`` materialization of the Dagster instance (lineage, not file
  listing: its ``index_dir`` metadata names the folder), or of ``two_stage_bundle`` (large catalogs
  served from the merged sharded index, ``--bundle-asset two_stage_bundle``), unless a folder is named
  (``--index DIR``).
* **Learned scorer**: the latest ``learned_scorer`` materialization, or the latest ``feedback_scorer``
  (retrained on shopper feedback) whose blocking check passed after it, if any, unless a scorer folder is
  named (``--learned DIR``) or none is wanted (``--no-learned``; the export job's ``use_learned:
  false``). A named bundle folder gets a named scorer only: ``--index DIR`` serves that folder as it
  is and does not consult the Dagster instance, whose scorers belong to its own bundles.
* **A scorer fitted on another encoder** (its ``trunk_fingerprint`` is not the bundle's
  ``encoder_fingerprint``) is refused, never dropped silently: loading raises ``BundleError`` naming both
  fingerprints and the two ways out (refit it, or serve without it). ``recommend`` exits 2 with that
  line, the export run fails with it, a starting server answers ``/ready`` 503 with it and a running
  server keeps serving what it served (``/ready``'s ``last_reload_error`` says why).
* **Version**: the bundle's version, ``+`` the scorer's fingerprint when one is attached
  (``recommender_bundle.served_version``): ``/match``'s ``index_version``, the export's ``index_version``
  column and ``recommend --json``'s ``index.version`` name the same pair.

The loading step itself is ``scene_assets.recommender_bundle.load_served``; this module finds what the
instance's latest materializations recorded.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

SCENE_INDEX = dg.AssetKey("scene_index")
TWO_STAGE_BUNDLE = dg.AssetKey("two_stage_bundle")
BUNDLE_ASSETS = {"scene_index": SCENE_INDEX, "two_stage_bundle": TWO_STAGE_BUNDLE}
LEARNED_SCORER = dg.AssetKey("learned_scorer")
FEEDBACK_CHECK = dg.AssetCheckKey(dg.AssetKey("feedback_scorer"), "feedback_scorer_holds_on_labels")


class NoBundleError(RuntimeError):
    pass


def latest_bundle_dir(instance: dg.DagsterInstance, asset: dg.AssetKey = SCENE_INDEX) -> tuple[Path, str]:
    """(folder, version) of the latest materialization of the bundle asset ``asset`` (scene_index or
    two_stage_bundle), or NoBundleError."""
    event = instance.get_latest_materialization_event(asset)
    if event is None or event.asset_materialization is None:
        how = ("run `scene-matcher materialize` first" if asset == SCENE_INDEX else
               "run the ivf_* jobs first (scene-matcher materialize --job ivf_merge_job writes it)")
        raise NoBundleError(
            f"no {asset.to_user_string()} materialization in the Dagster instance at {instance.root_directory}; "
            f"{how} (or pass --index DIR)"
        )
    metadata = event.asset_materialization.metadata
    directory = Path(str(metadata["index_dir"].value))
    version = str(metadata["bundle_version"].value) if "bundle_version" in metadata else str(event.storage_id)
    return directory, version


def latest_learned_dir(instance: dg.DagsterInstance) -> tuple[Path, str] | None:
    """(folder, fingerprint) of the newest scorer that may serve: the latest learned_scorer materialization,
    or a feedback_scorer whose blocking check passed after it (the newest such), if any."""
    candidates = []
    event = instance.get_latest_materialization_event(LEARNED_SCORER)
    if event is not None and event.asset_materialization is not None:
        metadata = event.asset_materialization.metadata
        candidates.append((event.timestamp, Path(str(metadata["learned_dir"].value)),
                           str(metadata["learned_fingerprint"].value)))
    passed = latest_passed_feedback_scorer(instance)
    if passed is not None:
        candidates.append(passed)
    if not candidates:
        return None
    _, directory, fingerprint = max(candidates, key=lambda c: c[0])
    return directory, fingerprint


def latest_passed_feedback_scorer(instance: dg.DagsterInstance, limit: int = 20) -> tuple[float, Path, str] | None:
    """(time, folder, fingerprint) of the newest feedback_scorer whose blocking check passed (its evaluation
    names the scorer it judged) among the check's latest ``limit`` passes, None when none did. A failed check's scorer never serves by default; a
    variant plan can still pin it by folder, for an A/B test."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    passed = {AssetCheckExecutionRecordStatus.SUCCEEDED}  # an evaluation that passed (FAILED: one that did not)
    for record in instance.event_log_storage.get_asset_check_execution_history(FEEDBACK_CHECK, limit=limit,
                                                                                status=passed):
        entry = record.event
        if entry is None or entry.dagster_event is None:
            continue
        metadata = entry.dagster_event.event_specific_data.metadata
        if "learned_dir" in metadata and "learned_fingerprint" in metadata:
            return entry.timestamp, Path(str(metadata["learned_dir"].value)), str(metadata["learned_fingerprint"].value)
    return None
