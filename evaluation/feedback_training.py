"""Learning from shoppers (#20): the scene photos shoppers engaged with become weighted training scenes
of the learned scorer, and a feedback-trained scorer must hold up on the labeled held-out folds before it
may serve. No Dagster imports.

* :func:`prepare_feedback_scenes` - each scene photo of the feedback pairs (``scene_assets.feedback``:
  ``scene_sha256, product_id, label, weight``) is read from the server's photo archive and prepared once
  (the region pass the recommender queries with). A photo with no positive pair is not a training scene;
  one missing from the archive or unreadable is skipped with the reason (never the whole run).
* :class:`FeedbackScenes` - those scenes as weighted training scenes of
  :func:`~scene_assets.learned.fit_region_projection`: the engaged products are the scene's positives,
  weighted by the pairs' inverse-propensity weights; the scene's weight against a labeled scene (1) grows
  with the evidence (``1 - exp(-total positive weight)``: one click at rank 1 is ~.26 of a labeled scene,
  a purchase ~.63, several engagements close to 1) times ``FeedbackTrainingConfig.scene_weight``; products
  shown and passed over are hard negatives (``negative_strength`` times the pairs' weights).
* :func:`feedback_check` - the check a feedback-trained scorer passes before serving: the evaluation's
  K folds over the labeled scenes, each held-out fold scored by a model fitted on the fold's training
  labels alone and by one fitted on the same labels plus the feedback - minus the feedback on photos that
  ARE held-out scenes (same bytes: their labels would leak into their own scoring). Paired per scene:
  the feedback model passes unless the 95 % interval of its mean nDCG@10 difference lies entirely below
  ``-tolerance`` (a regression the folds can tell from noise).

The scorer that then serves is :func:`evaluation.protocol.fit_serving_scorer`'s recipe with the feedback
scenes added to the projection's training (its ``feedback`` argument); its calibrator / ranker come from
the evaluation's out-of-fold results, as the labels-only one's do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from evaluation.config import EvaluationConfig
from evaluation.dataset import LabeledDataset
from evaluation.folds import (
    _as_configured,
    fit_learned,
    label_popularity,
    scenes_for,
    score_scenes,
    split_folds,
)
from evaluation.scoring import METRIC_KEYS, score_results
from scene_assets.composites import CompositePairs
from scene_assets.matching import Recommender
from scene_assets.prepared_scene import PreparedScene
from scene_assets.progress import track

__all__ = ["FeedbackCheck", "FeedbackScene", "FeedbackScenes", "FeedbackTrainingConfig", "feedback_check",
           "prepare_feedback_scenes", "scene_photo_sha256"]


@dataclass(frozen=True)
class FeedbackTrainingConfig:
    """How much shopper feedback counts next to the labels."""

    scene_weight: float = 1.0  # the most one shopper photo counts, a labeled scene being 1
    negative_strength: float = 1.0  # times the pairs' weights of products shown and passed over
    tolerance: float = 0.0  # nDCG@10 the check lets the feedback cost beyond its interval

    def __post_init__(self) -> None:
        for name in ("scene_weight", "negative_strength", "tolerance"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"FeedbackTrainingConfig.{name} must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FeedbackScene:
    """One shopper photo with what shoppers did with the products recommended for it."""

    sha256: str
    scene: PreparedScene
    positives: Mapping[str, float]  # product id -> positive weight
    negatives: Mapping[str, float]  # product id -> negative weight


@dataclass(frozen=True)
class TrainingInputs:
    """Feedback scenes as :func:`~scene_assets.learned.fit_region_projection` takes them (rows of a catalog)."""

    queries: list[np.ndarray]
    positives: list[np.ndarray]
    positive_weights: list[np.ndarray]
    scene_weights: list[float]
    negatives: list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FeedbackScenes:
    scenes: tuple[FeedbackScene, ...]
    config: FeedbackTrainingConfig = field(default_factory=FeedbackTrainingConfig)
    skipped: tuple[tuple[str, str], ...] = ()  # (photo sha256, why)

    def __len__(self) -> int:
        return len(self.scenes)

    def without(self, photos: Iterable[str]) -> "FeedbackScenes":
        """These scenes minus the photos ``photos`` (sha256)."""
        drop = set(photos)
        return dataclasses.replace(self, scenes=tuple(s for s in self.scenes if s.sha256 not in drop))

    def fingerprint(self) -> str:
        h = hashlib.sha256(repr(sorted(self.config.to_dict().items())).encode())
        for s in self.scenes:
            h.update(s.sha256.encode())
            h.update(repr(sorted(s.positives.items())).encode())
            h.update(repr(sorted(s.negatives.items())).encode())
        return h.hexdigest()[:16]

    def training_inputs(self, row: Mapping[str, int]) -> TrainingInputs:
        """The scenes against the catalog rows ``row`` (product id -> row); products not in it are dropped,
        and so are scenes left without a positive."""
        out = TrainingInputs([], [], [], [], [])
        for s in self.scenes:
            pos = [(row[p], w) for p, w in sorted(s.positives.items()) if p in row and w > 0]
            if not pos:
                continue
            neg = [(row[p], w) for p, w in sorted(s.negatives.items()) if p in row and w > 0]
            total = sum(w for _, w in pos)
            out.queries.append(s.scene.queries)
            out.positives.append(np.asarray([r for r, _ in pos], dtype=np.int64))
            out.positive_weights.append(np.asarray([w for _, w in pos], dtype=np.float32))
            out.scene_weights.append(self.config.scene_weight * (1.0 - math.exp(-total)))
            out.negatives.append((np.asarray([r for r, _ in neg], dtype=np.int64),
                                  self.config.negative_strength * np.asarray([w for _, w in neg], dtype=np.float32)))
        return out


def prepare_feedback_scenes(rec: Recommender, pairs: pl.DataFrame, photo_path: Callable[[str], Path],
                            config: FeedbackTrainingConfig | None = None,
                            evaluation: EvaluationConfig | None = None) -> FeedbackScenes:
    """The training scenes of ``pairs`` (``scene_assets.feedback.feedback_pairs``' frame). ``photo_path``:
    sha256 -> the archived photo (``ScenePhotoArchive.path_of``). ``evaluation``: whose region setting the
    scenes are queried with (whole image only when ``regions`` is off), like the labeled scenes."""
    config = config or FeedbackTrainingConfig()
    missing = sorted({"scene_sha256", "product_id", "label", "weight"} - set(pairs.columns))
    if missing:
        raise ValueError(f"feedback pairs lack the column(s) {missing}")
    plain = rec.with_learned(None)
    scenes, skipped = [], []
    by_scene = pairs.partition_by("scene_sha256", as_dict=True) if pairs.height else {}
    for (sha,), group in track(sorted(by_scene.items()), "feedback scenes", unit="photo"):
        pos = dict(group.filter(pl.col("label") == 1).select("product_id", "weight").iter_rows())
        if not pos:
            skipped.append((sha, "no product engaged with"))
            continue
        path = photo_path(sha)
        if not Path(path).is_file():
            skipped.append((sha, f"photo not in the archive ({path})"))
            continue
        try:
            prepared = plain.prepare_scene(str(path))
        except (OSError, ValueError) as exc:  # a truncated or foreign file: that photo only
            skipped.append((sha, f"{path}: {type(exc).__name__}: {exc}"))
            continue
        neg = dict(group.filter(pl.col("label") == 0).select("product_id", "weight").iter_rows())
        scenes.append(FeedbackScene(sha, prepared, pos, neg))
    if evaluation is not None and not evaluation.regions:
        whole = scenes_for(evaluation, {s.sha256: s.scene for s in scenes})
        scenes = [dataclasses.replace(s, scene=whole[s.sha256]) for s in scenes]
    return FeedbackScenes(tuple(scenes), config, tuple(skipped))


def scene_photo_sha256(dataset: LabeledDataset) -> dict[str, str]:
    """scene id -> sha256 of its photo file (what the server archives an uploaded photo under)."""
    return {sid: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for sid, path in dataset.scenes.select("scene_id", "image_path").iter_rows()}


@dataclass(frozen=True)
class FeedbackCheck:
    """Labels only vs labels + feedback, on the same held-out folds."""

    labels_only: dict[str, float]  # mean metric over the held-out scenes
    with_feedback: dict[str, float]
    difference: dict[str, float]  # with_feedback - labels_only, mean of the per-scene differences
    half_width: dict[str, float]  # 95 % half-width of that mean (paired, normal approximation)
    scenes: int
    folds: int
    feedback_scenes: int
    excluded_feedback: int  # feedback photos left out of a fold because they are its held-out scenes
    tolerance: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.difference["ndcg@10"] + self.half_width["ndcg@10"] >= -self.tolerance

    def table(self) -> list[dict[str, Any]]:
        return [{"metric": k, "labels_only": self.labels_only[k], "with_feedback": self.with_feedback[k],
                 "difference": self.difference[k], "ci_low": self.difference[k] - self.half_width[k],
                 "ci_high": self.difference[k] + self.half_width[k]} for k in METRIC_KEYS]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"passed": self.passed}


def feedback_check(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                   config: EvaluationConfig, feedback: FeedbackScenes, *, composites: CompositePairs | None = None,
                   photos: Mapping[str, str] | None = None, progress: Callable[[str], None] | None = None
                   ) -> FeedbackCheck:
    """See the module docstring. ``scenes``: ``dataset``'s prepared scenes (as ``config`` queries them);
    ``photos``: scene id -> photo sha256 (default: hashed from the files). Scored by the weighted factors
    (``config.weights``) - the learned ranker, when the evaluation uses one, is fitted on out-of-fold
    factors that a check per fold would have to nest once more; the projection the feedback changes is one
    of those factors either way."""
    t0 = time.perf_counter()
    photos = dict(photos) if photos is not None else scene_photo_sha256(dataset)
    ids = dataset.scene_ids
    folds = split_folds(ids, config.folds, config.seed)
    per_model: dict[str, list[np.ndarray]] = {"labels": [], "feedback": []}
    excluded = 0
    for f, test in enumerate(folds):
        t1 = time.perf_counter()
        train = [s for g, part in enumerate(folds) if g != f for s in part]
        held = feedback.without(photos[s] for s in test if s in photos)
        excluded += len(feedback) - len(held)
        pop, by_room = label_popularity(rec, dataset, train)
        for name, extra in (("labels", None), ("feedback", held)):
            model = fit_learned(rec, dataset, scenes, train, config, composites, feedback=extra)
            model = dataclasses.replace(_as_configured(model, config), ranker=None)
            results = score_scenes(rec, dataset, scenes, test, model, f, pop, by_room, config.seed)
            per_model[name].append(score_results(results, config.weights))
        if progress:
            progress(f"feedback check fold {f + 1}/{len(folds)}: {len(held)} feedback scenes "
                     f"({len(feedback) - len(held)} held out), {time.perf_counter() - t1:.0f}s")
    base, fb = np.concatenate(per_model["labels"]), np.concatenate(per_model["feedback"])
    diff = fb - base
    half = 1.96 * diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.full(diff.shape[1], np.inf)
    keys = list(METRIC_KEYS)
    return FeedbackCheck(
        labels_only=dict(zip(keys, map(float, base.mean(axis=0)))),
        with_feedback=dict(zip(keys, map(float, fb.mean(axis=0)))),
        difference=dict(zip(keys, map(float, diff.mean(axis=0)))),
        half_width=dict(zip(keys, map(float, half))),
        scenes=len(diff), folds=len(folds), feedback_scenes=len(feedback), excluded_feedback=excluded,
        tolerance=feedback.config.tolerance, seconds=round(time.perf_counter() - t0, 2))
