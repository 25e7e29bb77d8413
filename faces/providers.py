"""Every bundle provider: where `scene-matcher recommend` and `serve` get their recommender from.

A provider answers ``version()`` (cheap, polled by the HTTP app) and ``load()`` (expensive:
``LoadedRecommender``). Which bundle and which learned scorer each one picks follows the one policy
stated in ``pipelines/serving.py`` (the export job follows it too); the loading step is
``scene_assets.recommender_bundle.load_served``, so all three faces rank a scene identically:

* :class:`MaterializedBundleProvider`: the latest ``scene_index`` materialization of a Dagster
  instance, with the latest ``learned_scorer`` (``learned=LATEST``, the default), a named scorer
  folder, or none (``learned=None``);
* :class:`DirectoryBundleProvider`: one bundle folder (``--index DIR``), with a named scorer folder
  or none; the Dagster instance is not consulted;
* :class:`StaticProvider`: an already built recommender (scripts, demos, tests).

A scorer fitted on another encoder than the bundle's is refused (``BundleError`` from ``load()``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import dagster as dg

from pipelines.serving import BUNDLE_ASSETS, NoBundleError, latest_bundle_dir, latest_learned_dir
from scene_assets.matching import Recommender
from scene_assets.ranking import ScoringWeights
from scene_assets.recommender_bundle import (
    LoadedRecommender,
    bundle_version,
    encoder_from_bundle,
    load_learned_scorer,
    load_served,
    read_bundle,
    served_version,
)

LATEST: Final = "latest"  # learned=LATEST: the latest learned_scorer materialization, if any


class EncoderReuse:
    """Keeps the last encoder a provider built: a reload whose bundle names the same encoder spec
    (the usual case: only products changed) reuses the loaded weights instead of holding two copies."""

    def __init__(self, device: str | None = None):
        self.device = device
        self._key: str | None = None
        self._encoder: Any = None

    def get(self, bundle: dict):
        key = json.dumps(bundle["encoder_spec"], sort_keys=True, default=str)
        if key != self._key:
            self._encoder = None  # drop the old weights before loading new ones
            self._encoder = encoder_from_bundle(bundle, device=self.device)
            self._key = key
        return self._encoder


class _BundleProvider:
    """What both bundle providers share: the scorer choice, the version and the load.

    ``learned``: a scorer folder (loaded once, here: a bad folder fails at start-up, not at the first
    request), or None for none; :class:`MaterializedBundleProvider` also takes :data:`LATEST`."""

    def __init__(self, *, device: str | None, weights: ScoringWeights | None, learned: str | os.PathLike | None):
        self.device = device
        self.weights = weights
        self._encoders = EncoderReuse(device)
        self._named_scorer = None
        if learned is not None and learned != LATEST:
            scorer = load_learned_scorer(learned)
            self._named_scorer = (scorer, scorer.fingerprint())

    def _bundle_version(self) -> str | None:
        raise NotImplementedError

    def _bundle_dir(self) -> Path:
        raise NotImplementedError

    def _scorer(self) -> tuple[Any, str] | None:
        """(scorer or its folder, fingerprint) to attach, or None."""
        return self._named_scorer

    def describe(self) -> str:
        """One line saying what this provider serves (printed by `recommend` and `serve`)."""
        raise NotImplementedError

    def scorer_fingerprint(self) -> str | None:
        scorer = self._scorer()
        return None if scorer is None else scorer[1]

    def version(self) -> str | None:
        version = self._bundle_version()
        return None if version is None else served_version(version, self.scorer_fingerprint())

    def load(self) -> LoadedRecommender:
        directory = self._bundle_dir()
        scorer = self._scorer()
        loaded = load_served(directory, encoder=self._encoders.get(read_bundle(directory)), weights=self.weights,
                             learned=None if scorer is None else scorer[0],
                             learned_fingerprint=None if scorer is None else scorer[1])
        loaded.info["source"] = self.describe()
        return loaded


class DirectoryBundleProvider(_BundleProvider):
    """Serves the bundle in one folder (``scene-matcher serve --index DIR``), with the scorer in
    ``learned`` (a folder) or none; its version is the bundle's, so rebuilding the folder in place is
    picked up by a polling server."""

    def __init__(self, directory: str | os.PathLike, *, device: str | None = None,
                 weights: ScoringWeights | None = None, learned: str | os.PathLike | None = None):
        super().__init__(device=device, weights=weights, learned=learned)
        self.directory = Path(directory)

    def _bundle_version(self) -> str | None:
        return bundle_version(self.directory)

    def _bundle_dir(self) -> Path:
        return self.directory

    def describe(self) -> str:
        scorer = self.scorer_fingerprint()
        return f"bundle {self.directory}; " + ("no learned scorer" if scorer is None else f"learned scorer {scorer}")


class MaterializedBundleProvider(_BundleProvider):
    """Serves the bundle of the latest scene_index materialization of a Dagster instance, with the
    latest learned_scorer materialization (``learned=LATEST``, the default; a newly fitted scorer is a
    new version, picked up by a polling server), a named scorer folder, or none (``learned=None``)."""

    def __init__(self, instance: dg.DagsterInstance, *, device: str | None = None,
                 weights: ScoringWeights | None = None, learned: str | os.PathLike | None = LATEST,
                 bundle_asset: str = "scene_index"):
        super().__init__(device=device, weights=weights, learned=learned)
        self.instance = instance
        self._latest_scorer = learned == LATEST
        if bundle_asset not in BUNDLE_ASSETS:
            raise ValueError(f"bundle_asset must be one of {sorted(BUNDLE_ASSETS)}, got {bundle_asset!r}")
        self.bundle_asset = bundle_asset

    def _bundle_version(self) -> str | None:
        try:
            return latest_bundle_dir(self.instance, BUNDLE_ASSETS[self.bundle_asset])[1]
        except NoBundleError:
            return None

    def _bundle_dir(self) -> Path:
        return latest_bundle_dir(self.instance, BUNDLE_ASSETS[self.bundle_asset])[0]

    def _scorer(self) -> tuple[Any, str] | None:
        return latest_learned_dir(self.instance) if self._latest_scorer else self._named_scorer

    def describe(self) -> str:
        if self._latest_scorer:
            latest = self.scorer_fingerprint()
            scorer = "the latest learned_scorer materialization (" + (latest or "none yet") + ")"
        else:
            scorer = "no learned scorer" if self._named_scorer is None else f"learned scorer {self._named_scorer[1]}"
        return f"the latest {self.bundle_asset} materialization; {scorer}"


class StaticProvider:
    """A provider for an already built :class:`Recommender` that never changes (scripts, demos)."""

    def __init__(self, recommender: Recommender, version: str = "static", info: dict | None = None) -> None:
        self._loaded = LoadedRecommender(version, recommender, dict(info or {}))

    def version(self) -> str | None:
        return self._loaded.version

    def load(self) -> LoadedRecommender:
        return self._loaded
