"""Which recommender bundle to serve: the one the latest `scene_index` materialization recorded.

Lineage, not file listing: the Dagster instance's event log names the bundle folder
(`index_dir` metadata) and its version; a server polls this and reloads when a new
materialization lands. Used by `scene-matcher recommend` / `serve` and the export job.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from scene_assets.matching import ScoringWeights
from scene_assets.recommender_bundle import EncoderReuse, LoadedRecommender, bundle_info, load_recommender, read_bundle

SCENE_INDEX = dg.AssetKey("scene_index")


class NoBundleError(RuntimeError):
    pass


def latest_bundle_dir(instance: dg.DagsterInstance) -> tuple[Path, str]:
    """(folder, version) of the latest scene_index materialization, or NoBundleError."""
    event = instance.get_latest_materialization_event(SCENE_INDEX)
    if event is None or event.asset_materialization is None:
        raise NoBundleError(
            f"no scene_index materialization in the Dagster instance at {instance.root_directory}; "
            "run `scene-matcher materialize` first (or pass --index DIR)"
        )
    metadata = event.asset_materialization.metadata
    directory = Path(str(metadata["index_dir"].value))
    version = str(metadata["bundle_version"].value) if "bundle_version" in metadata else str(event.storage_id)
    return directory, version


class MaterializedBundleProvider:
    """Serves the bundle of the latest scene_index materialization of a Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance, *, device: str | None = None, weights: ScoringWeights | None = None):
        self.instance = instance
        self.device = device
        self.weights = weights
        self._encoders = EncoderReuse(device)

    def version(self) -> str | None:
        try:
            return latest_bundle_dir(self.instance)[1]
        except NoBundleError:
            return None

    def load(self) -> LoadedRecommender:
        directory, _ = latest_bundle_dir(self.instance)
        encoder = self._encoders.get(read_bundle(directory))
        recommender, bundle = load_recommender(directory, encoder=encoder, weights=self.weights)
        return LoadedRecommender(bundle["version"], recommender, {**bundle_info(directory, bundle), "source": "dagster"})
