"""The recommendation engine: scene photo -> catalog products that fit it.

:class:`Recommender` holds the encoder, the FAISS product index (+ its product ids), the enriched
catalog and optional extras (product text vectors, the catalog mean for centring, a calibrator, a
room classifier). ``recommend(image)`` runs

1. **decode** (``images.open_rgb`` for paths / bytes / file objects),
2. **regions**: one trunk pass, region vectors (``scene_assets.regions``),
3. **analysis**: room / style posteriors and colour palette (``scene_assets.scene_analysis``), reusing
   the region pass's whole-image vector and pooled trunk features,
4. **search**: every region vector queries the index in ONE batched FAISS call (top
   ``per_region_k`` each); a product's visual score is its MAX over regions (and we keep which region);
   category / room filters are applied inside the search (an ``IDSelector``) so they act *before*
   top-k,
5. **rerank**: per-candidate factors in [0, 1] (:data:`FACTORS`), score = weighted mean with
   :class:`ScoringWeights` - or, when the attached learned scorer holds a fusion ranker
   (``scene_assets.ranker``) and no weights were given, the ranker's score of the factors -
   confidence = calibrator(score) or an uncalibrated logistic squash,
   variant collapse, diversity (MMR or a per-category cap), top ``k``.

Vector spaces. ``space="joint"``: the index holds the encoder's joint image embeddings (384-d for the
default encoder) and regions are projected with the encoder's head. ``space="trunk"``: the index holds
pooled 1280-d trunk features and regions are compared to them directly - no projection, so nothing is
lost while the head is untrained. Either space may be centred on the catalog mean (``catalog_mean``:
the mean of the L2-normalised product vectors; index vectors must then be
``normalize(normalize(v) - mean)``, which :meth:`Recommender.from_vectors` does).

Factors (each in [0, 1]):

* ``visual``: ``(cos + 1) / 2`` of the best region.
* ``text``: ``(cos + 1) / 2`` between the caption's text vector and the product's text vector; without
  a caption, between the projected region vectors and the product text vector *if* the encoder's
  projection is trained; otherwise 0.5 (no evidence).
* ``room_fit``: P(fit) = sum over rooms of P(room) * [room in the product's rooms] (``room_hints`` of
  the product, else ``CATEGORY_ROOMS`` of its category), as a lift L over P(fit) under a uniform
  room posterior, squashed to L/(1+L): 0.5 for products that fit every room or when the room is
  unknown (a raw P(fit) would just favour generic categories), 0 for products that fit none of the
  likely rooms, towards 1 for room-specific products in their room.
* ``style``: lift of the product's style distribution (from its text vector / style words) under the
  scene's style posterior, squashed to L/(1+L): 0.5 when either side is uninformative.
* ``color``: how well the product's colours sit in the scene palette: each pixel colour matched by the
  palette share within a Lab kernel (full at 15 % share); neutral colours (black, white, grey, ...)
  always at least 0.7; averaged over the product's colours; 0.5 when it names none.
* ``material``: a small style -> material-family affinity table, centred so an uninformative style
  posterior gives 0.5.
* ``size``: size_class vs room type (a large wardrobe in a bathroom is unlikely), expected over the
  room posterior.
* ``learned``: ``(cos + 1) / 2`` of the best region under the region->product projection learned
  from labeled scenes (``scene_assets.learned``); 0.5 without a learned scorer.
* ``prior``: how often the product (backed off to its category) appears in labeled training scenes
  of the scene's likely room, as a lift over the catalog average squashed to L/(1+L); 0.5 without
  one.

No Dagster imports.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import polars as pl

from scene_assets.indexes import flat
from scene_assets.indexes.flat_spec import choose_index_spec
from scene_assets.indexes.ids import assign_ids
from scene_assets.indexes.searcher import VectorSearcher, as_searcher, open_index
from scene_assets import vocabulary as vocab
from scene_assets.regions import (
    RegionConfig,
    SceneRegions,
    center_and_normalize,
    compute_regions,
    single_threaded,
)
from scene_assets.scene_analysis import (
    DEFAULT_TEMPERATURE,
    ROOM_TYPES,
    STYLES,
    SceneAnalysis,
    analyze_scene,
    prompt_vectors,
    softmax,
    vocabulary_lab,
)

log = logging.getLogger(__name__)

__all__ = [
    "CatalogScores",
    "FACTORS",
    "LEARNED_DEFAULT_WEIGHTS",
    "MATERIAL_STYLE_AFFINITY",
    "NEUTRAL_COLORS",
    "PreparedScene",
    "ROOM_SIZE_FIT",
    "Recommendation",
    "RecommendationResult",
    "Recommender",
    "ScoringWeights",
    "build_product_index",
    "catalog_mean",
]

FACTORS: tuple[str, ...] = ("visual", "text", "room_fit", "style", "color", "material", "size", "learned", "prior")
Space = Literal["joint", "trunk"]
Diversity = Literal["mmr", "category_cap"] | None

# Colours that go with anything: they never clash with a palette.
NEUTRAL_COLORS: frozenset[str] = frozenset(
    {"black", "white", "grey", "silver", "ivory", "cream", "beige", "clear"}
)
_NEUTRAL_FLOOR = 0.7
_MULTICOLOUR_VALUE = 0.6
_COLOR_SIGMA_LAB = 15.0  # Lab kernel width: ~ the distance between neighbouring vocabulary colours
_COLOR_SATURATION_SHARE = 0.15  # a colour covering 15 % of the scene is fully matched

# Fit of a product's size class in a room: (small, medium, large, xlarge).
_SIZE_CLASSES: tuple[str, ...] = ("small", "medium", "large", "xlarge")
ROOM_SIZE_FIT: dict[str, tuple[float, float, float, float]] = {
    "Bedroom": (1.0, 1.0, 1.0, 1.0),
    "Dining": (1.0, 1.0, 1.0, 0.8),
    "Living Room": (1.0, 1.0, 1.0, 1.0),
    "Kitchen": (1.0, 1.0, 0.9, 0.8),
    "Baby Children Room": (1.0, 1.0, 0.9, 0.7),
    "Outdoor": (1.0, 1.0, 1.0, 0.9),
    "Home Office": (1.0, 1.0, 1.0, 0.7),
    "Hallway": (1.0, 1.0, 0.7, 0.4),
    "Laundry": (1.0, 1.0, 0.8, 0.5),
    "Bathroom": (1.0, 0.9, 0.5, 0.2),
}
assert tuple(ROOM_SIZE_FIT) == ROOM_TYPES

# How well a material family suits a design style (0..1). Small on purpose: a hint, not a rule.
_MATERIAL_FAMILIES: tuple[str, ...] = (
    "wood", "natural fibre", "metal", "ceramic", "textile", "leather", "stone", "plastic", "glass", "paper",
)
MATERIAL_STYLE_AFFINITY: dict[str, tuple[float, ...]] = {
    #                     wood fibre metal cer  text leath stone plast glass paper
    "contemporary":       (0.6, 0.4, 0.8, 0.6, 0.6, 0.7, 0.7, 0.6, 0.8, 0.5),
    "traditional":        (0.9, 0.5, 0.5, 0.7, 0.8, 0.8, 0.6, 0.2, 0.5, 0.4),
    "minimalist":         (0.7, 0.4, 0.7, 0.7, 0.5, 0.5, 0.7, 0.6, 0.7, 0.5),
    "scandinavian":       (1.0, 0.7, 0.5, 0.7, 0.8, 0.5, 0.5, 0.5, 0.6, 0.6),
    "industrial":         (0.7, 0.3, 1.0, 0.5, 0.4, 0.8, 0.8, 0.3, 0.6, 0.3),
    "rustic":             (1.0, 0.8, 0.6, 0.7, 0.7, 0.7, 0.8, 0.1, 0.4, 0.4),
    "bohemian":           (0.8, 1.0, 0.5, 0.8, 0.9, 0.6, 0.4, 0.2, 0.5, 0.5),
    "mid-century modern": (0.9, 0.5, 0.6, 0.6, 0.7, 0.8, 0.4, 0.6, 0.6, 0.4),
    "coastal":            (0.8, 0.9, 0.4, 0.7, 0.8, 0.4, 0.5, 0.3, 0.7, 0.4),
}
assert tuple(MATERIAL_STYLE_AFFINITY) == STYLES

# Style words of product text (vocabulary.STYLE_WORDS) that name one of the scene styles.
_STYLE_WORD_TO_STYLE: dict[str, str] = {
    "modern": "contemporary", "contemporary": "contemporary", "sleek": "contemporary",
    "traditional": "traditional", "classic": "traditional", "carved": "traditional",
    "minimalist": "minimalist", "scandinavian": "scandinavian", "industrial": "industrial",
    "rustic": "rustic", "farmhouse": "rustic", "distressed": "rustic", "vintage": "rustic",
    "antique": "traditional", "boho": "bohemian", "bohemian": "bohemian", "tribal": "bohemian",
    "fringed": "bohemian", "braided": "bohemian", "coastal": "coastal",
}

# Uncalibrated confidence = logistic(slope * (score - mid)). A placeholder until a calibrator is set:
# on the IKEA development scenes the top-10 scores average ~0.67 at a precision@10 of ~0.07, so the
# midpoint sits above typical top scores (-> ~0.2) rather than pretending 0.5+ for a 7 % hit rate.
_DEFAULT_SIGMOID_MID = 0.8
_DEFAULT_SIGMOID_SLOPE = 12.0


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------


def read_mapping_file(path: str | os.PathLike) -> Mapping[str, Any]:
    """A JSON or YAML (by suffix) file that must hold a mapping; errors name the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ScoringWeights:
    """Weights of the re-ranking factors; the score is their weighted mean (so it stays in [0, 1]).

    Hand-set defaults, checked coarsely on the IKEA development scenes (bench/bench_scene_query.py,
    one factor at a time next to visual): visual similarity leads; caption text (+.008 R@10 there) and
    room fit (helps once the room posterior is informative: +.027 R@50 with the true room) come
    next; style, colour, material and size only break ties - at 0.05-0.1 each of them cost recall
    on those scenes (colour harmony and size priors are weak evidence for *which* product is in the
    photo). Learned weights should replace these."""

    visual: float = 1.0
    text: float = 0.2
    room_fit: float = 0.1
    style: float = 0.01
    color: float = 0.01
    material: float = 0.01
    size: float = 0.01
    learned: float = 0.0
    prior: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"ScoringWeights.{f.name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        if self.total() <= 0:
            raise ValueError("ScoringWeights: at least one weight must be > 0")

    def total(self) -> float:
        return float(sum(getattr(self, f) for f in FACTORS))

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in FACTORS], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScoringWeights":
        d = dict(d)
        for key in ("scoring_weights", "weights"):
            if set(d) == {key} and isinstance(d[key], Mapping):
                d = dict(d[key])
        unknown = set(d) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown scoring weight(s) {sorted(unknown)}; known: {list(FACTORS)}")
        return cls(**{k: float(v) for k, v in d.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ScoringWeights":
        """JSON or YAML file holding the weights (flat, or under a ``weights`` / ``scoring_weights``
        key); weights it does not name keep their defaults."""
        return cls.from_dict(read_mapping_file(path))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


# Weights used once a learned scorer is attached (and no weights were given): the best nDCG@10 of an
# 80-point sweep on the out-of-fold scores of the IKEA development split (5-fold CV), rounded to the
# more recall-friendly of two near-ties. The label prior scored below zero weight there and style /
# material / size only broke ties, so they start at 0; the weight_sweep asset re-tunes all of them.
LEARNED_DEFAULT_WEIGHTS: dict[str, float] = {
    "visual": 0.5, "text": 0.0, "room_fit": 0.2, "style": 0.0, "color": 0.02, "material": 0.0, "size": 0.0,
    "learned": 1.0, "prior": 0.0,
}


# --------------------------------------------------------------------------------------------
# index helpers
# --------------------------------------------------------------------------------------------


def catalog_mean(vectors: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised rows (the centring vector)."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v.mean(axis=0).astype(np.float32)


def build_product_index(
    vectors: np.ndarray,
    product_ids: Sequence[str],
    *,
    center: bool = True,
    exact_threshold: int = 50_000,
) -> tuple[faiss.Index, np.ndarray, np.ndarray | None]:
    """In-memory product index for ``vectors`` (any space). Returns ``(index, stored_vectors,
    mean)``: the stored vectors are ``normalize(normalize(v) - mean)`` when ``center`` (mean =
    :func:`catalog_mean`), else ``normalize(v)``."""
    mean = catalog_mean(vectors) if center else None
    stored = center_and_normalize(np.asarray(vectors, dtype=np.float32), mean)
    spec = choose_index_spec(stored.shape[0], stored.shape[1], exact_threshold=exact_threshold)
    index = flat.build_index(stored, list(product_ids), spec)
    return index, stored, mean


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


@dataclass
class Recommendation:
    rank: int
    product_id: str
    title: str | None
    category: str
    product_type: str | None
    score: float
    confidence: float
    visual_similarity: float  # raw cosine of the best region
    factors: dict[str, float]
    region: dict[str, Any]  # {"index", "label", "box": [x0, y0, x1, y1]} in image pixels
    variants: list[str] = field(default_factory=list)  # collapsed variant SKUs
    image_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "product_id": self.product_id,
            "title": self.title,
            "category": self.category,
            "product_type": self.product_type,
            "score": _r(self.score),
            "confidence": _r(self.confidence),
            "visual_similarity": _r(self.visual_similarity),
            "factors": {k: _r(v) for k, v in self.factors.items()},
            "region": self.region,
            "variants": list(self.variants),
            "image_path": self.image_path,
        }


@dataclass
class RecommendationResult:
    items: list[Recommendation]
    scene: SceneAnalysis
    regions: SceneRegions
    timings_ms: dict[str, float]
    calibrated: bool
    weights: ScoringWeights
    params: dict[str, Any]
    candidates: int  # products scored after filters (before collapse/diversity/top-k)

    @property
    def product_ids(self) -> list[str]:
        return [it.product_id for it in self.items]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [it.to_dict() for it in self.items],
            "scene": self.scene.to_dict(),
            "regions": {k: v for k, v in self.regions.to_dict().items() if k != "regions"}
            | {"count": len(self.regions)},
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "calibrated": self.calibrated,
            "confidence_method": self.params.get("confidence_method"),
            "weights": self.weights.to_dict(),
            "params": {k: v for k, v in self.params.items() if k != "confidence_method"},
            "candidates": self.candidates,
        }


@dataclass
class PreparedScene:
    """Everything about one scene that does not depend on the candidate products."""

    image: Any
    regions: SceneRegions
    queries: np.ndarray  # N x d query vectors in the index space (centred/normalised)
    analysis: SceneAnalysis
    room_probs: np.ndarray  # R (possibly overridden by the caller's room)
    style_probs: np.ndarray  # S
    caption_vector: np.ndarray | None
    timings_ms: dict[str, float]


@dataclass
class CatalogScores:
    """Scores of every indexed product for one scene (``Recommender.score_catalog``)."""

    product_ids: np.ndarray  # object array, index order
    scores: np.ndarray
    visual_cosine: np.ndarray
    factors: np.ndarray  # n x len(FACTORS)
    best_region: np.ndarray  # n, index into regions
    scene: PreparedScene

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.scores, kind="stable")
        return self.product_ids[order], self.scores[order]


# --------------------------------------------------------------------------------------------
# recommender
# --------------------------------------------------------------------------------------------


def _as_str(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s if s else None


def _list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v if x is not None]


class Recommender:
    """Scene -> products engine (see module docstring).

    ``index`` is a ``VectorSearcher`` (or a FAISS index, wrapped as one) whose ids are
    ``indexes.ids.product_int_id(product_id)``;
    ``product_ids`` lists every indexed product (e.g. ``manifest["product_ids"]``). ``catalog`` is
    the enriched polars catalog (product_id, title, product_type, category, colors, materials,
    size_class, variant_group, room_hints, style_words, image_path ...; missing columns get
    neutral defaults, products missing from the catalog are scored as category "other").
    ``text_vectors``: product_id -> text vector (mapping, or ``(ids, matrix)``), same dim as the
    encoder's text space. ``product_vectors``: the stored index vectors in ``product_ids`` order
    (used for MMR and ``score_catalog``; otherwise reconstructed from the index when needed).
    ``calibrator``: callable score -> probability, or an object with ``predict_proba`` (Platt) /
    ``predict`` (isotonic); set later with :meth:`set_calibrator`. ``search_threads``: FAISS
    OpenMP threads during a query (1 by default: 30 region queries against a flat index of thousands
    are not worth a second thread on small machines, and an idle-spinning pool slows the next torch
    pass - measured 17 ms -> 5 ms per search on 2 cores; None = leave FAISS' setting). The numpy
    parts of a query likewise run with one BLAS thread (``regions.single_threaded``).
    """

    def __init__(
        self,
        encoder,
        index: faiss.Index | VectorSearcher,
        product_ids: Sequence[str],
        catalog: pl.DataFrame | None = None,
        *,
        space: Space = "joint",
        catalog_mean: np.ndarray | None = None,
        text_vectors: Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray] | None = None,
        product_vectors: np.ndarray | None = None,
        weights: ScoringWeights | None = None,
        region_config: RegionConfig | None = None,
        calibrator: Any = None,
        room_classifier: Any = None,
        room_classes: Sequence[str] | None = None,
        learned: Any = None,
        per_region_k: int = 100,
        temperature: float = DEFAULT_TEMPERATURE,
        search_threads: int | None = 1,
    ) -> None:
        if space not in ("joint", "trunk"):
            raise ValueError(f"space must be 'joint' or 'trunk', got {space!r}")
        self.encoder = encoder
        self.index = index = as_searcher(index)
        self.space: Space = space
        self._weights_given = weights is not None
        self.weights = weights or ScoringWeights()
        self.region_config = region_config or RegionConfig()
        self.per_region_k = int(per_region_k)
        self.search_threads = search_threads
        self.temperature = float(temperature)
        self.room_classifier = room_classifier
        self.room_classes = room_classes
        self.calibrator = calibrator
        self.catalog_mean = None if catalog_mean is None else np.asarray(catalog_mean, dtype=np.float32).ravel()
        if self.catalog_mean is not None and self.catalog_mean.shape[0] != index.d:
            raise ValueError(f"catalog_mean has dim {self.catalog_mean.shape[0]}, index has {index.d}")

        self.product_ids = np.asarray(list(product_ids), dtype=object)
        n = self.product_ids.shape[0]
        if n != int(index.ntotal):
            raise ValueError(f"{n} product ids for an index of {index.ntotal} vectors")
        int_ids = assign_ids(list(self.product_ids))
        self._int_ids = int_ids
        self._int_order = np.argsort(int_ids)
        self._int_sorted = int_ids[self._int_order]
        self._row = {pid: i for i, pid in enumerate(self.product_ids)}
        self._product_vectors = None
        if product_vectors is not None:
            pv = np.asarray(product_vectors, dtype=np.float32)
            if pv.shape != (n, index.d):
                raise ValueError(f"product_vectors shape {pv.shape} != ({n}, {index.d})")
            self._product_vectors = pv
        self._build_product_table(catalog)
        self._text_matrix, self._text_mask = self._align_text_vectors(text_vectors)
        self._product_styles = self._build_product_styles()
        self.learned = None
        self._learned_products: np.ndarray | None = None
        self._prior_per_room: np.ndarray | None = None
        if learned is not None:
            self.set_learned(learned, replace=False)
        if self._text_matrix is not None:
            # Half precision at rest: cosines of unit vectors move by < 1e-3, and a 100k-product
            # catalog keeps 73 MiB less resident; rows are widened to float32 when scored.
            self._text_matrix = self._text_matrix.astype(np.float16)

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def from_vectors(
        cls,
        encoder,
        catalog: pl.DataFrame | None,
        product_ids: Sequence[str],
        vectors: np.ndarray,
        *,
        space: Space = "joint",
        center: bool = True,
        **kwargs: Any,
    ) -> "Recommender":
        """Build an in-memory index from raw product vectors (joint embeddings or pooled trunk
        features), centred on the catalog mean when ``center``."""
        index, stored, mean = build_product_index(vectors, product_ids, center=center)
        return cls(encoder, index, product_ids, catalog, space=space, catalog_mean=mean,
                   product_vectors=stored, **kwargs)

    @classmethod
    def from_index_dir(
        cls,
        encoder,
        directory: str | os.PathLike,
        catalog: pl.DataFrame | None,
        *,
        expected_fingerprint: str | None = None,
        **kwargs: Any,
    ) -> "Recommender":
        """Load a saved index of either kind (``indexes.searcher.open_index``). The manifest's
        ``vector_space`` and ``catalog_mean`` (a list) are used unless given as keyword arguments."""
        opened = open_index(directory, expected_fingerprint=expected_fingerprint)
        index, manifest, pids = opened.searcher, opened.manifest, opened.product_ids
        kwargs.setdefault("space", manifest.get("vector_space", "joint"))
        if "catalog_mean" not in kwargs and manifest.get("catalog_mean") is not None:
            kwargs["catalog_mean"] = np.asarray(manifest["catalog_mean"], dtype=np.float32)
        return cls(encoder, index, pids, catalog, **kwargs)

    def _build_product_table(self, catalog: pl.DataFrame | None) -> None:
        n = len(self.product_ids)
        cols = ("product_id", "title", "product_type", "category", "colors", "materials", "size_class",
                "variant_group", "room_hints", "style_words", "image_path", "parsed_product_type")
        rows: dict[str, dict[str, Any]] = {}
        if catalog is not None and catalog.height:
            if "product_id" not in catalog.columns:
                raise ValueError("catalog needs a product_id column")
            present = [c for c in cols if c in catalog.columns]
            for rec in catalog.select(present).iter_rows(named=True):
                rows[str(rec["product_id"])] = rec
        missing = [pid for pid in self.product_ids if pid not in rows]
        if missing:
            log.warning("%d indexed products are not in the catalog (scored as category 'other'), e.g. %s",
                        len(missing), missing[:3])
        get = lambda pid, c: rows.get(pid, {}).get(c)  # noqa: E731
        self._title = [_as_str(get(p, "title")) for p in self.product_ids]
        self._ptype = [_as_str(get(p, "product_type")) or _as_str(get(p, "parsed_product_type"))
                       for p in self.product_ids]
        self._image_path = [_as_str(get(p, "image_path")) for p in self.product_ids]
        cats = []
        for p in self.product_ids:
            c = _as_str(get(p, "category")) or vocab.OTHER_CATEGORY
            cats.append(c if c in vocab.CATEGORY_ROOMS else vocab.OTHER_CATEGORY)
        self._category = np.asarray(cats, dtype=object)
        self._group = np.asarray([vocab.CATEGORY_GROUP.get(c, "other") for c in cats], dtype=object)
        self._variant_group = np.asarray(
            [_as_str(get(p, "variant_group")) or p for p in self.product_ids], dtype=object)

        # room membership (n x R)
        room_index = {r: i for i, r in enumerate(ROOM_TYPES)}
        M = np.zeros((n, len(ROOM_TYPES)), dtype=np.float64)
        for i, p in enumerate(self.product_ids):
            hints = [h for h in _list(get(p, "room_hints")) if h in room_index]
            rooms = hints or vocab.CATEGORY_ROOMS.get(cats[i], ROOM_TYPES)
            for r in rooms:
                M[i, room_index[r]] = 1.0
        self._room_member = M

        # size class (n,), -1 = unknown
        size_index = {s: i for i, s in enumerate(_SIZE_CLASSES)}
        self._size_idx = np.asarray([size_index.get(_as_str(get(p, "size_class")) or "", -1)
                                     for p in self.product_ids], dtype=np.int64)

        # colours: n x K pixel-colour membership (rows sum to 1 where any), plus flags
        names, _ = vocabulary_lab()
        color_index = {c: i for i, c in enumerate(names)}
        C = np.zeros((n, len(names)), dtype=np.float64)
        has_pixel = np.zeros(n, dtype=bool)
        non_pixel_value = np.full(n, 0.5)  # products naming no pixel colour
        for i, p in enumerate(self.product_ids):
            colours = _list(get(p, "colors"))
            px = [c for c in colours if c in color_index]
            if px:
                has_pixel[i] = True
                for c in px:
                    C[i, color_index[c]] = 1.0
                C[i] /= C[i].sum()
            elif "multicolour" in colours:
                non_pixel_value[i] = _MULTICOLOUR_VALUE
            elif "clear" in colours:
                non_pixel_value[i] = _NEUTRAL_FLOOR
        self._color_matrix = C
        self._has_pixel_color = has_pixel
        self._non_pixel_value = non_pixel_value

        # materials: n x F family membership; affinity per style n x S (NaN row = no materials)
        fam_index = {f: i for i, f in enumerate(_MATERIAL_FAMILIES)}
        aff = np.asarray([MATERIAL_STYLE_AFFINITY[s] for s in STYLES], dtype=np.float64)  # S x F
        A = np.full((n, len(STYLES)), np.nan)
        for i, p in enumerate(self.product_ids):
            fams = {vocab.MATERIAL_FAMILY.get(m) for m in _list(get(p, "materials"))} - {None}
            idx = [fam_index[f] for f in fams if f in fam_index]
            if idx:
                A[i] = aff[:, idx].max(axis=1)
        self._material_affinity = A
        self._style_words = [_list(get(p, "style_words")) for p in self.product_ids]

    def _align_text_vectors(self, text_vectors) -> tuple[np.ndarray | None, np.ndarray | None]:
        if text_vectors is None:
            return None, None
        if isinstance(text_vectors, tuple):
            ids, mat = text_vectors
            mat = np.asarray(mat, dtype=np.float32)
            if len(ids) == len(self.product_ids) and all(a == b for a, b in zip(ids, self.product_ids)):
                # Already in index order (a saved bundle): normalise in place, no per-product copy;
                # all-zero rows mark products without a text vector.
                norms = np.linalg.norm(mat, axis=1)
                mask = norms > 0
                mat /= np.where(mask, norms, 1.0)[:, None]
                return mat, mask
            mapping = {str(pid): mat[i] for i, pid in enumerate(ids)}
        else:
            mapping = text_vectors
        if not mapping:
            return None, None
        dim = len(next(iter(mapping.values())))
        T = np.zeros((len(self.product_ids), dim), dtype=np.float32)
        mask = np.zeros(len(self.product_ids), dtype=bool)
        for i, pid in enumerate(self.product_ids):
            v = mapping.get(pid)
            if v is not None:
                v = np.asarray(v, dtype=np.float32)
                nv = float(np.linalg.norm(v))
                if nv > 0:
                    T[i] = v / nv
                    mask[i] = True
        return T, mask

    def _build_product_styles(self) -> np.ndarray:
        """n x S style distribution of each product: from its text vector (softmax over style
        prompts) mixed with the styles its style words name; uniform when neither says anything."""
        n, S = len(self.product_ids), len(STYLES)
        Q = np.full((n, S), 1.0 / S)
        if self._text_matrix is not None:
            style_vecs = prompt_vectors(self.encoder)["styles"]
            if style_vecs.shape[1] == self._text_matrix.shape[1]:
                q = softmax((self._text_matrix @ style_vecs.T) / self.temperature, axis=1)
                Q[self._text_mask] = q[self._text_mask]
        style_index = {s: i for i, s in enumerate(STYLES)}
        for i, words in enumerate(self._style_words):
            hits = {_STYLE_WORD_TO_STYLE[w] for w in words if w in _STYLE_WORD_TO_STYLE}
            if hits:
                onehot = np.zeros(S)
                for h in hits:
                    onehot[style_index[h]] = 1.0 / len(hits)
                Q[i] = 0.5 * Q[i] + 0.5 * onehot
        return Q

    # -- learned parts --------------------------------------------------------------------
    def set_learned(self, learned: Any, *, replace: bool = True) -> None:
        """Attach a :class:`scene_assets.learned.LearnedScorer` (None detaches): its projection
        feeds the ``learned`` factor (when its input dim is the index's), its label priors the
        ``prior`` factor, its room classifier the room posterior and its calibrator the confidence.
        ``replace=False`` keeps a room classifier / calibrator set before."""
        if replace:
            self.room_classifier = self.room_classes = self.calibrator = None
        if not self._weights_given:
            self.weights = ScoringWeights(**LEARNED_DEFAULT_WEIGHTS) if learned is not None else ScoringWeights()
        self.learned = learned
        self._learned_products = None
        self._prior_per_room = None
        proj = getattr(learned, "projection", None)
        if proj is not None:
            if proj.query_map.shape[0] != self.index.d:
                log.warning("learned projection expects %d-d vectors; the index holds %d-d %s vectors - "
                            "learned factor disabled", proj.query_map.shape[0], self.index.d, self.space)
            else:
                vecs = self.stored_vectors()
                if vecs is None:
                    log.warning("index cannot reconstruct product vectors - learned factor disabled")
                else:
                    # half precision at rest, like the text matrix
                    self._learned_products = proj.transform_products(vecs).astype(np.float16)
        priors = getattr(learned, "priors", None)
        if priors is not None:
            eye = np.eye(len(ROOM_TYPES))
            per_room = np.stack([
                priors.product_prior(list(self.product_ids), list(self._category), eye[r], ROOM_TYPES)
                for r in range(len(ROOM_TYPES))], axis=1)
            self._prior_per_room = per_room.astype(np.float32)  # n x R
        if getattr(learned, "room_classifier", None) is not None and self.room_classifier is None:
            self.room_classifier = learned.room_classifier
            self.room_classes = list(learned.room_classifier.classes_)
        if getattr(learned, "calibrator", None) is not None and self.calibrator is None:
            self.calibrator = learned.calibrator

    # -- calibration ----------------------------------------------------------------------
    def set_calibrator(self, calibrator: Any) -> None:
        """Callable score -> probability (vectorised), or a fitted sklearn model: ``predict_proba``
        (e.g. Platt / LogisticRegression on the score) or ``predict`` (IsotonicRegression)."""
        self.calibrator = calibrator

    def confidence(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        cal = self.calibrator
        if cal is None:
            p = 1.0 / (1.0 + np.exp(-_DEFAULT_SIGMOID_SLOPE * (s - _DEFAULT_SIGMOID_MID)))
        elif hasattr(cal, "predict_proba"):
            p = np.asarray(cal.predict_proba(s.reshape(-1, 1)))[:, -1]
        elif hasattr(cal, "predict"):
            p = np.asarray(cal.predict(s.reshape(-1, 1) if _wants_2d(cal) else s))
        elif callable(cal):
            p = np.asarray(cal(s), dtype=np.float64)
        else:
            raise TypeError(f"calibrator {type(cal).__name__} is not callable and has no predict/predict_proba")
        return np.clip(np.asarray(p, dtype=np.float64).reshape(s.shape), 0.0, 1.0)

    @property
    def calibrated(self) -> bool:
        return self.calibrator is not None

    # -- scene preparation ----------------------------------------------------------------
    def _decode(self, image):
        from PIL import Image

        from scene_assets.images import open_rgb

        if isinstance(image, Image.Image):
            return image if image.mode == "RGB" else image.convert("RGB")
        return open_rgb(image)  # a path, bytes or a binary file object

    def _query_vectors(self, regions: SceneRegions) -> np.ndarray:
        if self.space == "trunk" and regions.trunk is None:
            raise ValueError("space='trunk' needs an encoder with a feature map (kind='default')")
        q = regions.vectors(self.space, self.catalog_mean)
        if q.shape[1] != self.index.d:
            raise ValueError(f"query dim {q.shape[1]} != index dim {self.index.d} (space={self.space!r})")
        return q

    def prepare_scene(
        self,
        image,
        *,
        caption: str | None = None,
        room: str | None = None,
        region_config: RegionConfig | None = None,
    ) -> PreparedScene:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        img = self._decode(image)
        timings["decode"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        # joint vectors are needed for a joint-space index, and (cheap: one 30 x 1280 product) for
        # zero-shot analysis / text matching once the projection head is trained
        regions = compute_regions(img, self.encoder, region_config or self.region_config,
                                  project=self.space == "joint" or self.encoder.image_text_aligned)
        with single_threaded():
            queries = self._query_vectors(regions)
        timings["regions"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        whole = regions.labels.index("whole") if "whole" in regions.labels else None
        image_vec = None
        trunk_feat = None
        if regions.joint is not None:
            image_vec = regions.joint[whole] if whole is not None else regions.joint.mean(axis=0)
        if regions.global_average is not None:
            trunk_feat = regions.global_average
        caption_vec = None
        if caption and caption.strip():
            caption_vec = np.asarray(self.encoder.encode_texts([caption.strip()])[0], dtype=np.float32)
        analysis = analyze_scene(
            img, self.encoder, caption=caption, caption_vector=caption_vec, image_vector=image_vec,
            trunk_features=trunk_feat, room_classifier=self.room_classifier, room_classes=self.room_classes,
            temperature=self.temperature,
        )
        room_probs = analysis.room_vector()
        if room is not None:
            if room not in ROOM_TYPES:
                raise ValueError(f"unknown room {room!r}; one of {list(ROOM_TYPES)}")
            room_probs = np.array([1.0 if r == room else 0.0 for r in ROOM_TYPES])
        timings["analysis"] = (time.perf_counter() - t0) * 1000
        return PreparedScene(img, regions, queries, analysis, room_probs, analysis.style_vector(),
                             caption_vec, timings)

    def _uses_projected_text(self) -> bool:
        return self._text_matrix is not None and self.encoder.image_text_aligned

    # -- filters --------------------------------------------------------------------------
    def _allowed_mask(self, include_categories, exclude_categories, room) -> np.ndarray | None:
        def match(names) -> np.ndarray:
            names = {names} if isinstance(names, str) else set(names)
            unknown = names - set(vocab.CATEGORIES) - set(vocab.CATEGORY_GROUP.values())
            if unknown:
                raise ValueError(f"unknown categories {sorted(unknown)}; use keys of vocabulary.CATEGORIES "
                                 "or their groups")
            return np.isin(self._category, list(names)) | np.isin(self._group, list(names))

        mask = np.ones(len(self.product_ids), dtype=bool)
        if include_categories:
            mask &= match(include_categories)
        if exclude_categories:
            mask &= ~match(exclude_categories)
        if room is not None:
            mask &= self._room_member[:, ROOM_TYPES.index(room)] > 0
        return None if mask.all() else mask

    # -- search ---------------------------------------------------------------------------
    def _rows_of(self, int_ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._int_sorted, int_ids)
        pos = np.minimum(pos, len(self._int_sorted) - 1)
        rows = self._int_order[pos]
        return np.where(self._int_sorted[pos] == int_ids, rows, -1)

    def _search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        k = int(min(k, self.index.ntotal))
        return self.index.search(queries, k, allowed_ids=None if allowed is None else self._int_ids[allowed])

    def _candidates(self, scene: PreparedScene, per_region_k: int, allowed: np.ndarray | None):
        """(rows, best cosine, best region) of the merged per-region top-k, by max over regions."""
        D, I = self._search(scene.queries, per_region_k, allowed)
        rows = self._rows_of(I.ravel())
        scores = D.ravel()
        region = np.repeat(np.arange(D.shape[0]), D.shape[1])
        ok = rows >= 0
        rows, scores, region = rows[ok], scores[ok], region[ok]
        order = np.argsort(-scores, kind="stable")
        rows, scores, region = rows[order], scores[order], region[order]
        uniq, first = np.unique(rows, return_index=True)
        return uniq, scores[first], region[first]

    # -- factors --------------------------------------------------------------------------
    def _factor_matrix(self, scene: PreparedScene, rows: np.ndarray, visual_cos: np.ndarray) -> np.ndarray:
        n = rows.shape[0]
        F = np.full((n, len(FACTORS)), 0.5)
        F[:, 0] = np.clip((visual_cos + 1.0) / 2.0, 0.0, 1.0)

        # text
        if self._text_matrix is not None:
            T = self._text_matrix[rows].astype(np.float32)
            has = self._text_mask[rows]
            sim = None
            if scene.caption_vector is not None:
                sim = T @ scene.caption_vector
            elif self._uses_projected_text() and scene.regions.joint is not None \
                    and scene.regions.joint.shape[1] == T.shape[1]:
                sim = (T @ scene.regions.joint.T).max(axis=1)
            if sim is not None:
                F[:, 1] = np.where(has, np.clip((sim + 1.0) / 2.0, 0.0, 1.0), 0.5)

        # room fit: lift of P(the product belongs in the scene's room) over the same probability
        # under an uninformative (uniform) room posterior, squashed L/(1+L): 0 when it fits none of
        # the likely rooms, 0.5 for products that fit every room or when nothing is known about the
        # room, towards 1 for room-specific products in their room (a bed in a bedroom).
        member = self._room_member[rows]
        lift = (member @ scene.room_probs) / np.maximum(member.mean(axis=1), 1e-9)
        F[:, 2] = lift / (1.0 + lift)

        # style: lift of the product's style distribution under the scene posterior, L/(1+L)
        lift = len(STYLES) * (self._product_styles[rows] @ scene.style_probs)
        F[:, 3] = lift / (1.0 + lift)

        # colour harmony
        F[:, 4] = self._color_factor(scene, rows)

        # material: affinity under the scene's styles, centred on the style-average
        A = self._material_affinity[rows]
        has_mat = ~np.isnan(A[:, 0])
        if has_mat.any():
            Am = A[has_mat]
            F[has_mat, 5] = np.clip(0.5 + Am @ scene.style_probs - Am.mean(axis=1), 0.0, 1.0)

        # size vs room
        fit = np.asarray([ROOM_SIZE_FIT[r] for r in ROOM_TYPES], dtype=np.float64)  # R x 4
        expected = scene.room_probs @ fit  # 4
        sidx = self._size_idx[rows]
        F[:, 6] = np.where(sidx >= 0, expected[np.maximum(sidx, 0)], float(expected.mean()))

        # learned region->product similarity
        if self._learned_products is not None:
            q = self.learned.projection.transform_queries(scene.queries)
            sim = (q @ self._learned_products[rows].astype(np.float32).T).max(axis=0)
            F[:, 7] = np.clip((sim + 1.0) / 2.0, 0.0, 1.0)

        # label prior: lift over the catalog-average prior for this scene's room posterior
        if self._prior_per_room is not None:
            prior_all = self._prior_per_room @ scene.room_probs.astype(np.float32)
            lift = prior_all[rows] / max(float(prior_all.mean()), 1e-12)
            F[:, 8] = lift / (1.0 + lift)
        return F

    def _color_factor(self, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
        names, lab = vocabulary_lab()
        idx = {c: i for i, c in enumerate(names)}
        shares = np.zeros(len(names))
        for pc in scene.analysis.palette:
            if pc.name in idx:
                shares[idx[pc.name]] += pc.share
        d2 = ((lab[:, None, :] - lab[None, :, :]) ** 2).sum(-1)
        kernel = np.exp(-d2 / (2 * _COLOR_SIGMA_LAB ** 2))
        match = np.clip((kernel @ shares) / _COLOR_SATURATION_SHARE, 0.0, 1.0)
        neutral = np.array([c in NEUTRAL_COLORS for c in names])
        match = np.where(neutral, np.maximum(match, _NEUTRAL_FLOOR), match)
        C = self._color_matrix[rows]
        return np.where(self._has_pixel_color[rows], C @ match, self._non_pixel_value[rows])

    @property
    def ranker(self) -> Any:
        """The learned scorer's fusion ranker when it scores the candidates: attached and no weights
        were given explicitly (explicit weights ask for the hand-weighted mix)."""
        ranker = getattr(self.learned, "ranker", None)
        return None if self._weights_given else ranker

    def _score(self, F: np.ndarray, scene: PreparedScene) -> np.ndarray:
        """The ranker's score of each row of ``F`` (see :mod:`scene_assets.ranker`: a function of the
        row and the scene only, so candidates score as they do in the whole-catalog evaluation), else
        the weighted mean of the factors."""
        ranker = self.ranker
        if ranker is not None:
            return ranker.score(F, scene.room_probs)
        w = self.weights.vector()
        return F @ w / w.sum()

    # -- public API -----------------------------------------------------------------------
    def recommend(
        self,
        image,
        *,
        k: int = 10,
        caption: str | None = None,
        include_categories: Sequence[str] | str | None = None,
        exclude_categories: Sequence[str] | str | None = None,
        room: str | None = None,
        diversity: Diversity = "mmr",
        collapse_variants: bool = True,
        mmr_lambda: float = 0.7,
        category_cap: int = 3,
        per_region_k: int | None = None,
        region_config: RegionConfig | None = None,
    ) -> RecommendationResult:
        """Top-``k`` products for a scene (PIL image, path, or encoded bytes); see module docstring.

        ``include_categories`` / ``exclude_categories`` name vocabulary categories or their groups;
        ``room`` (one of ROOM_TYPES) keeps only products that belong in that room and replaces the
        predicted room posterior. Filters act inside the search, so ``k`` results come back
        whenever that many products pass them."""
        if k < 1:
            raise ValueError("k must be >= 1")
        if diversity not in ("mmr", "category_cap", None):
            raise ValueError(f"diversity must be 'mmr', 'category_cap' or None, got {diversity!r}")
        t_start = time.perf_counter()
        scene = self.prepare_scene(image, caption=caption, room=room, region_config=region_config)
        timings = dict(scene.timings_ms)

        t0 = time.perf_counter()
        allowed = self._allowed_mask(include_categories, exclude_categories, room)
        n_allowed = int(allowed.sum()) if allowed is not None else len(self.product_ids)
        prk = int(per_region_k or self.per_region_k)
        search_ms = rerank_ms = 0.0
        items: list[Recommendation] = []
        n_candidates = 0
        while True:
            t0 = time.perf_counter()
            with single_threaded(), flat.faiss_threads(self.search_threads):
                rows, vis, reg = self._candidates(scene, prk, allowed) if n_allowed else (
                    np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
            search_ms += (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            n_candidates = int(rows.shape[0])
            with single_threaded():
                items = self._rerank(scene, rows, vis, reg, k=k, diversity=diversity,
                                     collapse_variants=collapse_variants, mmr_lambda=mmr_lambda,
                                     category_cap=category_cap)
            rerank_ms += (time.perf_counter() - t0) * 1000
            exhausted = prk >= n_allowed or prk >= self.index.ntotal
            if len(items) >= k or exhausted:
                break
            prk = min(prk * 4, int(self.index.ntotal))
        timings["search"] = search_ms
        timings["rerank"] = rerank_ms
        timings["total"] = (time.perf_counter() - t_start) * 1000
        params = {
            "k": k, "caption": caption, "include_categories": _list(include_categories) or None,
            "exclude_categories": _list(exclude_categories) or None, "room": room,
            "diversity": diversity, "collapse_variants": collapse_variants,
            "mmr_lambda": mmr_lambda if diversity == "mmr" else None,
            "category_cap": category_cap if diversity == "category_cap" else None,
            "per_region_k": prk, "space": self.space, "centered": self.catalog_mean is not None,
            "fusion": "weights" if self.ranker is None else f"ranker ({self.ranker.kind})",
            "region_config": (region_config or self.region_config).to_dict(),
            "confidence_method": ("calibrator" if self.calibrated else
                                  f"logistic(score; mid={_DEFAULT_SIGMOID_MID}, slope={_DEFAULT_SIGMOID_SLOPE})"),
        }
        return RecommendationResult(items, scene.analysis, scene.regions, timings, self.calibrated,
                                    self.weights, params, n_candidates)

    def _rerank(self, scene, rows, vis, reg, *, k, diversity, collapse_variants, mmr_lambda, category_cap):
        if rows.shape[0] == 0:
            return []
        F = self._factor_matrix(scene, rows, vis)
        score = self._score(F, scene)
        order = np.argsort(-score, kind="stable")
        variants: dict[int, list[str]] = {}
        if collapse_variants:
            keep, seen = [], {}
            for j in order:
                g = self._variant_group[rows[j]]
                if g in seen:
                    variants[seen[g]].append(self.product_ids[rows[j]])
                    continue
                seen[g] = j
                variants[j] = []
                keep.append(j)
            order = np.asarray(keep, dtype=np.int64)
        if diversity == "category_cap":
            # at most `category_cap` per category; if that leaves fewer than k (e.g. a filter keeps
            # one category), the best capped-out products fill the remaining slots
            counts: dict[str, int] = {}
            keep, overflow = [], []
            for j in order:
                c = self._category[rows[j]]
                if counts.get(c, 0) < category_cap:
                    counts[c] = counts.get(c, 0) + 1
                    keep.append(j)
                    if len(keep) >= k:
                        break
                else:
                    overflow.append(j)
            chosen = sorted(keep + overflow[: max(0, k - len(keep))], key=lambda j: -score[j])
        elif diversity == "mmr":
            chosen = self._mmr(rows, score, order, k, mmr_lambda)
        else:
            chosen = list(order[:k])
        conf = self.confidence(score[chosen]) if chosen else np.zeros(0)
        out = []
        for rank, (j, c) in enumerate(zip(chosen, conf), start=1):
            r = int(rows[j])
            ri = int(reg[j])
            out.append(Recommendation(
                rank=rank,
                product_id=str(self.product_ids[r]),
                title=self._title[r],
                category=str(self._category[r]),
                product_type=self._ptype[r],
                score=float(score[j]),
                confidence=float(c),
                visual_similarity=float(vis[j]),
                factors={f: float(F[j, i]) for i, f in enumerate(FACTORS)},
                region={"index": ri, "label": scene.regions.labels[ri], "box": scene.regions.box(ri)},
                variants=variants.get(j, []),
                image_path=self._image_path[r],
            ))
        return out

    def product_attributes(self) -> pl.DataFrame:
        """product_id, title, product_type, category, image_path of every indexed product, in index
        (``product_ids``) order - what the re-ranker knows about each product."""
        return pl.DataFrame({"product_id": [str(p) for p in self.product_ids], "title": self._title,
                             "product_type": self._ptype, "category": [str(c) for c in self._category],
                             "image_path": self._image_path},
                            schema={"product_id": pl.String, "title": pl.String, "product_type": pl.String,
                                    "category": pl.String, "image_path": pl.String})

    def stored_vectors(self) -> np.ndarray | None:
        """The index's vectors in ``product_ids`` order (centred/normalised as stored)."""
        return self._vectors_for(np.arange(len(self.product_ids)))

    def _vectors_for(self, rows: np.ndarray) -> np.ndarray | None:
        if self._product_vectors is not None:
            return self._product_vectors[rows]
        return self.index.reconstruct(self._int_ids[rows])

    def _mmr(self, rows, score, order, k, lam) -> list[int]:
        pool = np.asarray(order[: max(5 * k, 50)], dtype=np.int64)
        if pool.size <= 1:
            return list(pool[:k])
        V = self._vectors_for(rows[pool])
        if V is None:
            log.warning("index cannot reconstruct vectors; MMR falls back to plain ranking")
            return list(pool[:k])
        V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
        sim = V @ V.T
        rel = score[pool]
        chosen = [0]
        max_sim = sim[0].copy()
        available = np.ones(pool.size, dtype=bool)
        available[0] = False
        while len(chosen) < min(k, pool.size):
            mmr = lam * rel - (1.0 - lam) * max_sim
            mmr[~available] = -np.inf
            nxt = int(np.argmax(mmr))
            chosen.append(nxt)
            available[nxt] = False
            max_sim = np.maximum(max_sim, sim[nxt])
        return [int(pool[i]) for i in chosen]

    def score_catalog(
        self,
        image,
        *,
        caption: str | None = None,
        room: str | None = None,
        rerank: bool = True,
        region_config: RegionConfig | None = None,
        scene: PreparedScene | None = None,
    ) -> CatalogScores:
        """Scores of EVERY indexed product for a scene (for evaluation). ``rerank=False``: the
        visual factor only (max over regions)."""
        scene = scene or self.prepare_scene(image, caption=caption, room=room, region_config=region_config)
        with single_threaded(), flat.faiss_threads(self.search_threads):
            return self._score_catalog(scene, rerank)

    def _score_catalog(self, scene: PreparedScene, rerank: bool) -> CatalogScores:
        n = len(self.product_ids)
        if self._product_vectors is not None:
            sims = scene.queries @ self._product_vectors.T  # N_regions x n
            best_region = np.argmax(sims, axis=0)
            vis = sims[best_region, np.arange(n)]
        else:
            rows, vis_c, reg_c = self._candidates(scene, n, None)
            vis = np.full(n, -1.0, dtype=np.float32)
            best_region = np.zeros(n, dtype=np.int64)
            vis[rows], best_region[rows] = vis_c, reg_c
        all_rows = np.arange(n)
        if rerank:
            F = self._factor_matrix(scene, all_rows, vis)
            scores = self._score(F, scene)
        else:
            F = np.full((n, len(FACTORS)), np.nan)
            F[:, 0] = np.clip((vis + 1.0) / 2.0, 0.0, 1.0)
            scores = F[:, 0].copy()
        return CatalogScores(self.product_ids, scores, vis, F, best_region, scene)

    def rank_all(self, image, *, caption: str | None = None, room: str | None = None, rerank: bool = True,
                 region_config: RegionConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(product_ids, scores)`` of every indexed product, best first."""
        return self.score_catalog(image, caption=caption, room=room, rerank=rerank,
                                  region_config=region_config).ranked()

    def rank_all_many(self, images: Sequence[Any], *, captions: Sequence[str | None] | None = None,
                      **kwargs: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        captions = list(captions) if captions is not None else [None] * len(images)
        return [self.rank_all(im, caption=c, **kwargs) for im, c in zip(images, captions)]

    def recommend_many(self, images: Sequence[Any], *, captions: Sequence[str | None] | None = None,
                       **kwargs: Any) -> list[RecommendationResult]:
        captions = list(captions) if captions is not None else [None] * len(images)
        return [self.recommend(im, caption=c, **kwargs) for im, c in zip(images, captions)]


def _wants_2d(model: Any) -> bool:
    """IsotonicRegression.predict takes 1-D input; most other sklearn models want 2-D."""
    return type(model).__name__ != "IsotonicRegression"
