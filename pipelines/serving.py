"""Which recommender bundle to serve: the one the latest `scene_index` materialization recorded.

Lineage, not file listing: the Dagster instance's event log names the bundle folder
(`index_dir` metadata) and its version; a server polls this and reloads when a new
materialization lands. Used by `scene-matcher recommend` / `serve` and the export job.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from scene_assets.ranking import ScoringWeights
from scene_assets.recommender_bundle import EncoderReuse, LoadedRecommender, bundle_info, load_recommender, read_bundle

SCENE_INDEX = dg.AssetKey("scene_index")
LEARNED_SCORER = dg.AssetKey("learned_scorer")


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


def latest_learned_dir(instance: dg.DagsterInstance) -> tuple[Path, str] | None:
    """(folder, fingerprint) of the latest learned_scorer materialization, if any."""
    event = instance.get_latest_materialization_event(LEARNED_SCORER)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    return Path(str(metadata["learned_dir"].value)), str(metadata["learned_fingerprint"].value)


class MaterializedBundleProvider:
    """Serves the bundle of the latest scene_index materialization of a Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance, *, device: str | None = None, weights: ScoringWeights | None = None,
                 use_learned: bool = True):
        self.instance = instance
        self.device = device
        self.weights = weights
        self.use_learned = use_learned
        self._encoders = EncoderReuse(device)

    def _learned(self) -> tuple[Path, str] | None:
        return latest_learned_dir(self.instance) if self.use_learned else None

    def version(self) -> str | None:
        # a newly trained scorer is a new version too: a polling server picks it up
        try:
            version = latest_bundle_dir(self.instance)[1]
        except NoBundleError:
            return None
        learned = self._learned()
        return version if learned is None else f"{version}+{learned[1][:12]}"

    def load(self) -> LoadedRecommender:
        directory, _ = latest_bundle_dir(self.instance)
        bundle = read_bundle(directory)
        encoder = self._encoders.get(bundle)
        learned = self._learned()
        scorer = None
        if learned is not None:
            from scene_assets.learned import LearnedScorer

            scorer = LearnedScorer.load(learned[0])
            # a scorer fitted on another encoder's features does not apply to this index: serve without it
            if scorer.trunk_fingerprint not in (None, bundle["encoder_fingerprint"]):
                scorer = None
        recommender, bundle = load_recommender(directory, encoder=encoder, weights=self.weights, learned=scorer)
        version = bundle["version"] if scorer is None else f"{bundle['version']}+{learned[1][:12]}"
        return LoadedRecommender(version, recommender, {**bundle_info(directory, bundle, recommender), "source": "dagster"})
