"""The recommendation engine: scene photo -> catalog products that fit it.

:class:`Recommender` holds the encoder, the FAISS product index (+ its product ids), the enriched
catalog and optional extras (product text vectors, the catalog mean for centring, a calibrator, a
room classifier, a learned scorer). ``recommend(image)`` runs

1. **decode** (``images.open_rgb`` for paths / bytes / file objects),
2. **regions**: one trunk pass, region vectors (``scene_assets.regions``),
3. **analysis**: room / style posteriors and colour palette (``scene_assets.scene_analysis``), reusing
   the region pass's whole-image vector and pooled trunk features,
4. **search**: every region vector queries the index in ONE batched FAISS call (top
   ``per_region_k`` each); a product's visual score is its MAX over regions (and we keep which region);
   category / room filters are applied inside the search (an ``IDSelector``) so they act *before*
   top-k,
5. **rank** (``scene_assets.ranking``): per-candidate factors in [0, 1] (``ranking.factors``), one
   score by the fusion ``ranking.fusion.choose_fusion`` picks (weighted mean, or the learned
   scorer's fusion ranker), confidence = calibrator(score) or an uncalibrated logistic squash,
   then variant collapse, diversity (MMR or a per-category cap), top ``k`` (``ranking.rerank``).

Vector spaces. ``space="joint"``: the index holds the encoder's joint image embeddings (384-d for the
default encoder) and regions are projected with the encoder's head. ``space="trunk"``: the index holds
pooled 1280-d trunk features and regions are compared to them directly - no projection, so nothing is
lost while the head is untrained. Either space may be centred on the catalog mean (``catalog_mean``:
the mean of the L2-normalised product vectors; index vectors must then be
``normalize(normalize(v) - mean)``, which :meth:`Recommender.from_vectors` does).

Steps 4-5 run in :meth:`Recommender.recommend_prepared` on an already prepared scene (steps 1-3,
:meth:`Recommender.prepare_scene`): ``recommend`` is the two in a row, and the evaluation's served
row calls the second on its prepared scenes.

A recommender is not changed once built: :meth:`Recommender.with_learned` returns a view with another
learned scorer attached, sharing the index and the per-product arrays.

No Dagster imports.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import faiss
import numpy as np
import polars as pl

from scene_assets.indexes import flat
from scene_assets.indexes.flat_choice import available_cores, best_per_id
from scene_assets.indexes.flat_spec import choose_index_spec
from scene_assets.indexes.ids import assign_ids
from scene_assets.indexes.searcher import VectorSearcher, as_searcher, open_index
from scene_assets.ranking import rerank as reranking
from scene_assets.ranking.catalog import ProductInfo, StringColumn, align_text_vectors, aligned_catalog
from scene_assets.ranking.config import Diversity, FusionChoice, RankingConfig, ScoringWeights
from scene_assets.ranking.factors import FACTORS, ProductFactors, as_list, column, factor_matrix, visual
from scene_assets.ranking.fusion import Fusion, choose_fusion
from scene_assets.prepared_scene import PreparedScene
from scene_assets.recommendation import CatalogScores, Recommendation, RecommendationResult
from scene_assets.regions import RegionConfig, SceneRegions, center_and_normalize, compute_regions, single_threaded
from scene_assets.scene_analysis import DEFAULT_TEMPERATURE, ROOM_TYPES, analyze_scene, product_style_logits, prompt_vectors

log = logging.getLogger(__name__)

__all__ = ["Recommender", "build_product_index", "catalog_mean"]

Space = Literal["joint", "trunk"]
_RERANK_DEFAULTS = RankingConfig()

# Uncalibrated confidence = logistic(slope * (score - mid)). A placeholder until a calibrator is set:
# on the IKEA development scenes the top-10 scores average ~0.67 at a precision@10 of ~0.07, so the
# midpoint sits above typical top scores (-> ~0.2) rather than pretending 0.5+ for a 7 % hit rate.
# Above this many products the learned projection is computed for each query's candidates instead of
# held for every product (n x 256 float16, plus n x d float32 reconstructed once to compute it).
LEARNED_PRECOMPUTE_MAX = 200_000

_DEFAULT_SIGMOID_MID = 0.8
_DEFAULT_SIGMOID_SLOPE = 12.0


# --------------------------------------------------------------------------------------------
# index helpers
# --------------------------------------------------------------------------------------------


def _candidate_depths(items, candidate_similarities: np.ndarray) -> list[float]:
    """Each item's rank among the candidates by visual similarity, as a fraction of the candidates."""
    n = int(candidate_similarities.shape[0])
    if not n:
        return []
    descending = -np.sort(-np.asarray(candidate_similarities, dtype=np.float32))
    return [float(np.searchsorted(-descending, -np.float32(it.visual_similarity), side="right")) / n for it in items]


def catalog_mean(vectors: np.ndarray, chunk_rows: int = 262_144) -> np.ndarray:
    """Mean of the L2-normalised rows (the centring vector).  Catalogs over ``chunk_rows`` are
    summed a chunk at a time (in float64) so no normalised copy of the whole matrix is made."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.shape[0] <= chunk_rows:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v.mean(axis=0).astype(np.float32)
    total = np.zeros(v.shape[1], dtype=np.float64)
    for start in range(0, v.shape[0], chunk_rows):
        rows = v[start:start + chunk_rows]
        total += (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).sum(axis=0, dtype=np.float64)
    return (total / v.shape[0]).astype(np.float32)


def manifest_search_threads(manifest: dict) -> int:
    """The FAISS thread count a saved index's search was measured fastest on (``indexes.flat_choice``);
    1 for an index saved before it was measured, or of the sharded kind."""
    return int((manifest.get("spec") or {}).get("search_threads", 1))


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
# recommender
# --------------------------------------------------------------------------------------------


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
    ``predict`` (isotonic); set later with :meth:`set_calibrator`. ``weights``: the weights of the
    weighted fusion, given explicitly (they then win over a learned scorer's fusion ranker, see
    ``ranking.fusion.choose_fusion``); None: the defaults. ``search_threads``: FAISS
    OpenMP threads during a query, at most the machine's cores (1 by default; a saved index names the
    count measured fastest when it was built, ``indexes.flat_choice``, which ``from_index_dir`` and
    ``recommender_bundle.load_recommender`` pass; None = leave FAISS' setting). The numpy
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
        product_factors: ProductFactors | None = None,
        product_info: ProductInfo | None = None,
        int_ids: np.ndarray | None = None,
        rescore: bool = False,
        learned_for_candidates: bool | None = None,
        vector_prefetch: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        if space not in ("joint", "trunk"):
            raise ValueError(f"space must be 'joint' or 'trunk', got {space!r}")
        self.encoder = encoder
        self.index = index = as_searcher(index)
        self.space: Space = space
        self._given_weights = weights
        self.fusion: Fusion = choose_fusion(weights, None)
        self.region_config = region_config or RegionConfig()
        self.per_region_k = int(per_region_k)
        # a count chosen on a bigger build machine is capped to this one's cores (no oversubscription)
        self.search_threads = None if search_threads is None else max(1, min(int(search_threads), available_cores()))
        self.temperature = float(temperature)
        self.room_classifier = room_classifier
        self.room_classes = room_classes
        self.calibrator = calibrator
        self.catalog_mean = None if catalog_mean is None else np.asarray(catalog_mean, dtype=np.float32).ravel()
        if self.catalog_mean is not None and self.catalog_mean.shape[0] != index.d:
            raise ValueError(f"catalog_mean has dim {self.catalog_mean.shape[0]}, index has {index.d}")

        # a StringColumn (large catalogs: no Python string per product) or an object array
        self.product_ids = (product_ids if isinstance(product_ids, StringColumn)
                            else np.asarray(list(product_ids), dtype=object))
        n = len(self.product_ids)
        if n != int(index.ntotal):
            raise ValueError(f"{n} product ids for an index of {index.ntotal} vectors")
        if int_ids is None:
            int_ids = assign_ids(list(self.product_ids))
        elif len(int_ids) != n:
            raise ValueError(f"{len(int_ids)} int ids for {n} products")
        self._int_ids = np.asarray(int_ids, dtype=np.int64)
        self._int_order = np.argsort(self._int_ids)
        self._int_sorted = self._int_ids[self._int_order]
        self._product_vectors = None
        if product_vectors is not None:
            # float16 rows (a memory-mapped file at large catalogs) are kept as they are, widened per row
            pv = np.asarray(product_vectors)
            if pv.dtype not in (np.float16, np.float32):
                pv = pv.astype(np.float32)
            if pv.shape != (n, index.d):
                raise ValueError(f"product_vectors shape {pv.shape} != ({n}, {index.d})")
            self._product_vectors = pv
        if rescore and self._product_vectors is None:
            raise ValueError("rescore needs product_vectors: the exact vectors the candidates are re-scored with")
        self.rescore = bool(rescore)
        # rows -> start reading those rows of memory-mapped product_vectors (recommender_bundle.row_prefetcher)
        self._vector_prefetch = vector_prefetch
        # the learned projection of products computed for each query's candidates only (two-stage
        # serving), not held for the whole catalog: None = so above LEARNED_PRECOMPUTE_MAX products
        self.learned_for_candidates = (n > LEARNED_PRECOMPUTE_MAX if learned_for_candidates is None
                                       else bool(learned_for_candidates))
        self._build_product_table(catalog, text_vectors, product_factors, product_info)
        self.learned = None
        if learned is not None:
            self._attach_learned(learned, replace=False)

    @property
    def int_ids(self) -> np.ndarray:
        """Each product's int id in the index (``indexes.ids.product_int_id``), in ``product_ids`` order."""
        return self._int_ids

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
        if opened.int_ids is not None:
            kwargs.setdefault("int_ids", opened.int_ids)
        kwargs.setdefault("space", manifest.get("vector_space", "joint"))
        kwargs.setdefault("search_threads", manifest_search_threads(manifest))
        if "catalog_mean" not in kwargs and manifest.get("catalog_mean") is not None:
            kwargs["catalog_mean"] = np.asarray(manifest["catalog_mean"], dtype=np.float32)
        return cls(encoder, index, pids, catalog, **kwargs)

    def _build_product_table(self, catalog: pl.DataFrame | None, text_vectors,
                             product_factors: ProductFactors | None = None,
                             product_info: ProductInfo | None = None) -> None:
        if product_info is not None and product_factors is None:
            raise ValueError("stored product info comes with stored product factors")
        if product_info is None:
            attributes = aligned_catalog(self.product_ids, catalog)
            info = ProductInfo.build(attributes)
        else:
            info = product_info
            if len(info.category) != len(self.product_ids):
                raise ValueError(f"product info has {len(info.category)} rows for {len(self.product_ids)} products")
        self.info = info
        self._title, self._ptype, self._image_path = info.title, info.product_type, info.image_path
        self._category, self._group, self._variant_group = info.category, info.group, info.variant_group
        if product_factors is not None:
            # computed when the bundle was written (``recommender_bundle.write_product_columns``) and
            # opened memory-mapped: rows are read as candidates need them, nothing rebuilt per product
            if product_factors.room_member.shape[0] != len(self.product_ids):
                raise ValueError(f"product factors have {product_factors.room_member.shape[0]} rows for "
                                 f"{len(self.product_ids)} products")
            self.products = product_factors
            # the scene analysis' room/style prompt vectors, as computing the columns would have: the
            # text tower is loaded now, not by the first request
            prompt_vectors(self.encoder)
            return
        text_matrix, text_mask = align_text_vectors(self.product_ids, text_vectors)
        self.products = ProductFactors.build(attributes, info.category, text_matrix, text_mask,
                                             product_style_logits(self.encoder, self.temperature))

    # -- learned parts --------------------------------------------------------------------
    def with_learned(self, learned: Any) -> "Recommender":
        """A view of this recommender with ``learned`` attached (None: none) in place of its learned
        scorer, room classifier and calibrator; it shares the index and the per-product arrays, and
        this recommender is left as it is (evaluation folds score through such views)."""
        view = copy.copy(self)
        view._attach_learned(learned, replace=True)
        return view

    def two_stage(self, factory: str, *, nprobe: int | None = None) -> "Recommender":
        """A view of this recommender served two-stage as a large catalog is: stage 1 searches an
        approximate index of the same vectors (FAISS ``factory``, e.g. ``"IVF32,PQ64"``; trained on
        them; ``nprobe`` lists per query), stage 2 re-scores the candidates from the exact vectors held
        as float16 and computes the learned projection for the candidates only. Its answers next to
        this recommender's show what the approximate stage costs (``scene-matcher evaluate
        --served-index``)."""
        vectors = self.stored_vectors()
        if vectors is None:
            raise ValueError("two_stage needs the index's vectors (an index that cannot reconstruct them)")
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        if not index.is_trained:
            raise ValueError(f"{factory}: not trained by {vectors.shape[0]} vectors")
        if faiss.try_extract_index_ivf(index) is None:
            index = faiss.IndexIDMap(index)
        index.add_with_ids(vectors, self._int_ids)
        if nprobe is not None:
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is None:
                raise ValueError(f"{factory}: nprobe is for an IVF index")
            ivf.nprobe = int(nprobe)
        view = copy.copy(self)
        view.index = as_searcher(index)
        view._product_vectors = vectors.astype(np.float16)
        view.rescore = True
        view.learned_for_candidates = True
        if self.learned is not None:
            view._attach_learned(self.learned, replace=False)
        return view

    def _attach_learned(self, learned: Any, *, replace: bool) -> None:
        """Attach a :class:`scene_assets.learned.LearnedScorer`: its projection feeds the ``learned``
        factor (when its input dim is the index's), its label priors the ``prior`` factor, its room
        classifier the room posterior and its calibrator the confidence (``ProductFactors.for_learned``).
        ``replace=False`` keeps a room classifier / calibrator set before. Rebinds attributes only
        (views share the rest)."""
        if replace:
            self.room_classifier = self.room_classes = self.calibrator = None
        self.learned = learned
        self.fusion = choose_fusion(self._given_weights, learned)
        self.products = self.products.for_learned(
            learned, self.product_ids, self._category, self.index.d, self.space, self.stored_vectors,
            vectors_of=self._vectors_for if self.learned_for_candidates else None,
            rows_of=(lambda ids: self._rows_of(assign_ids(list(ids)))) if self.learned_for_candidates else None)
        if getattr(learned, "room_classifier", None) is not None and self.room_classifier is None:
            self.room_classifier = learned.room_classifier
            self.room_classes = list(learned.room_classifier.classes_)
        if getattr(learned, "calibrator", None) is not None and self.calibrator is None:
            self.calibrator = learned.calibrator

    @property
    def weights(self) -> ScoringWeights:
        """The weights of the weighted fusion (given, else the defaults for the learned scorer)."""
        return self.fusion.weights

    @property
    def ranker(self) -> Any:
        """The learned scorer's fusion ranker when it scores the candidates (see ``choose_fusion``)."""
        return self.fusion.ranker


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
        return self.products.text_matrix is not None and self.encoder.image_text_aligned

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
        # each product once, at its best region; ids -> rows only for those, in ascending id order: at
        # 1M products the lookup of all 3,000 unsorted ids in the sorted id table took 1.4 ms
        uniq, best = best_per_id(D, I)
        rows = self._rows_of(uniq)
        known = rows >= 0
        rows, best = rows[known], best[known]
        by_row = np.argsort(rows)
        rows, best = rows[by_row], best[by_row]
        if self.rescore:
            # stage 2 of two-stage serving: the approximate index (PQ codes) found the candidates; their
            # visual score and best region are computed again from the exact vectors
            sims = scene.queries @ self._vectors_for(rows).T  # regions x candidates
            best = np.argmax(sims, axis=0)
            return rows, sims[best, np.arange(rows.shape[0])], best
        return rows, D.ravel()[best], best // D.shape[1]

    # -- factors --------------------------------------------------------------------------

    # -- filters and factors --------------------------------------------------------------
    def _factor_matrix(self, scene: PreparedScene, rows: np.ndarray, visual_cos: np.ndarray) -> np.ndarray:
        return factor_matrix(self.products, scene, rows, visual_cos, projected_text=self._uses_projected_text())

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
        diversity: Diversity = _RERANK_DEFAULTS.diversity,
        collapse_variants: bool = _RERANK_DEFAULTS.collapse_variants,
        mmr_lambda: float = _RERANK_DEFAULTS.mmr_lambda,
        category_cap: int = _RERANK_DEFAULTS.category_cap,
        per_region_k: int | None = None,
        region_config: RegionConfig | None = None,
        weights: ScoringWeights | None = None,
        fusion: FusionChoice = "auto",
    ) -> RecommendationResult:
        """Top-``k`` products for a scene (PIL image, path, or encoded bytes); see module docstring.

        ``include_categories`` / ``exclude_categories`` name vocabulary categories or their groups;
        ``room`` (one of ROOM_TYPES) keeps only products that belong in that room and replaces the
        predicted room posterior. Filters act inside the search, so ``k`` results come back
        whenever that many products pass them. The re-rank options have the limits of
        :class:`~scene_assets.ranking.config.RankingConfig`. ``weights``: weights for this request (in
        place of the recommender's); ``fusion``: weights, ranker or auto (``ranking.fusion.choose_fusion``).
        Prepares the scene, then ranks it with :meth:`recommend_prepared`."""
        t_start = time.perf_counter()
        scene = self.prepare_scene(image, caption=caption, room=room, region_config=region_config)
        result = self.recommend_prepared(
            scene, k=k, include_categories=include_categories, exclude_categories=exclude_categories, room=room,
            diversity=diversity, collapse_variants=collapse_variants, mmr_lambda=mmr_lambda, category_cap=category_cap,
            per_region_k=per_region_k, weights=weights, fusion=fusion)
        result.timings_ms["total"] = (time.perf_counter() - t_start) * 1000
        result.params.update(caption=caption, region_config=(region_config or self.region_config).to_dict())
        return result

    def recommend_prepared(
        self,
        scene: PreparedScene,
        *,
        k: int = 10,
        include_categories: Sequence[str] | str | None = None,
        exclude_categories: Sequence[str] | str | None = None,
        room: str | None = None,
        diversity: Diversity = _RERANK_DEFAULTS.diversity,
        collapse_variants: bool = _RERANK_DEFAULTS.collapse_variants,
        mmr_lambda: float = _RERANK_DEFAULTS.mmr_lambda,
        category_cap: int = _RERANK_DEFAULTS.category_cap,
        per_region_k: int | None = None,
        weights: ScoringWeights | None = None,
        fusion: FusionChoice = "auto",
    ) -> RecommendationResult:
        """:meth:`recommend` on a scene already prepared (:meth:`prepare_scene`): candidate search,
        scoring, variant collapse, diversity and top ``k`` - the one implementation ``recommend``
        runs, so the evaluation's served row ranks exactly as ``/match`` does. ``room`` is the room
        filter only: prepare the scene with the same ``room`` for its posterior. The result's params
        name no caption or region config (the scene's preparation decided them; ``recommend`` fills
        them in) and ``timings_ms["total"]`` is the time since the scene was prepared."""
        if k < 1:
            raise ValueError("k must be >= 1")
        if diversity not in ("mmr", "category_cap", None):
            raise ValueError(f"diversity must be 'mmr', 'category_cap' or None, got {diversity!r}")
        options = RankingConfig(diversity=diversity, collapse_variants=collapse_variants, mmr_lambda=mmr_lambda,
                                category_cap=category_cap)
        scoring = (self.fusion if weights is None and fusion == "auto"
                   else choose_fusion(weights or self._given_weights, self.learned, fusion))
        t_start = time.perf_counter()
        timings = dict(scene.timings_ms)
        t0 = time.perf_counter()
        allowed = reranking.allowed_mask(self._category, self._group, self.products.room_member, include_categories,
                                         exclude_categories, room)
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
                items = self._rerank(scene, rows, vis, reg, k=k, fusion=scoring, options=options)
            rerank_ms += (time.perf_counter() - t0) * 1000
            exhausted = prk >= n_allowed or prk >= self.index.ntotal
            if len(items) >= k or exhausted:
                break
            prk = min(prk * 4, int(self.index.ntotal))
        timings["search"] = search_ms
        timings["rerank"] = rerank_ms
        timings["total"] = (time.perf_counter() - t_start) * 1000
        params = {
            "k": k, "caption": None, "include_categories": as_list(include_categories) or None,
            "exclude_categories": as_list(exclude_categories) or None, "room": room,
            "diversity": diversity, "collapse_variants": collapse_variants,
            "mmr_lambda": mmr_lambda if diversity == "mmr" else None,
            "category_cap": category_cap if diversity == "category_cap" else None,
            "per_region_k": prk, "space": self.space, "centered": self.catalog_mean is not None,
            "fusion": scoring.label,
            "region_config": None,
            "confidence_method": ("calibrator" if self.calibrated else
                                  f"logistic(score; mid={_DEFAULT_SIGMOID_MID}, slope={_DEFAULT_SIGMOID_SLOPE})"),
        }
        return RecommendationResult(items, scene.analysis, scene.regions, timings, self.calibrated,
                                    scoring.weights, params, n_candidates, _candidate_depths(items, vis))

    def _rerank(self, scene: PreparedScene, rows: np.ndarray, vis: np.ndarray, reg: np.ndarray, *, k: int,
                fusion: Fusion, options: RankingConfig) -> list[Recommendation]:
        if rows.shape[0] == 0:
            return []
        F = self._factor_matrix(scene, rows, vis)
        score = fusion.score(F, scene.room_probs)
        chosen, variants = reranking.rerank(
            score, k=k, variant_group=self._variant_group[rows], category=self._category[rows],
            vectors_of=lambda positions: self._vectors_for(rows[positions]), diversity=options.diversity,
            collapse=options.collapse_variants, mmr_lambda=options.mmr_lambda, cap=options.category_cap)
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
                factors={f: float(v) for f, v in zip(FACTORS, F[j])},
                region={"index": ri, "label": scene.regions.labels[ri], "box": scene.regions.box(ri)},
                variants=[self.product_ids[rows[v]] for v in variants.get(int(j), [])],
                image_path=self._image_path[r],
            ))
        return out

    def product_attributes(self) -> pl.DataFrame:
        """product_id, title, product_type, category, image_path of every indexed product, in index
        (``product_ids``) order - what the re-ranker knows about each product."""
        return pl.DataFrame({"product_id": [str(p) for p in self.product_ids], "title": list(self._title),
                             "product_type": list(self._ptype), "category": [str(c) for c in self._category],
                             "image_path": list(self._image_path)},
                            schema={"product_id": pl.String, "title": pl.String, "product_type": pl.String,
                                    "category": pl.String, "image_path": pl.String})

    def stored_vectors(self) -> np.ndarray | None:
        """The index's vectors in ``product_ids`` order (centred/normalised as stored)."""
        return self._vectors_for(np.arange(len(self.product_ids)))

    def _vectors_for(self, rows: np.ndarray) -> np.ndarray | None:
        if self._product_vectors is not None:
            if self._vector_prefetch is not None:
                self._vector_prefetch(rows)
            return self._product_vectors[rows].astype(np.float32, copy=False)
        return self.index.reconstruct(self._int_ids[rows])

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
            scores = self.fusion.score(F, scene.room_probs)
        else:
            F = np.full((n, len(FACTORS)), np.nan)
            column(F, "visual")[:] = visual(vis)
            scores = column(F, "visual").copy()
        ids = self.product_ids if isinstance(self.product_ids, np.ndarray) else self.product_ids[all_rows]
        return CatalogScores(ids, scores, vis, F, best_region, scene)

    def rank_all(self, image, *, caption: str | None = None, room: str | None = None, rerank: bool = True,
                 region_config: RegionConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(product_ids, scores)`` of every indexed product, best first."""
        return self.score_catalog(image, caption=caption, room=room, rerank=rerank,
                                  region_config=region_config).ranked()


def _wants_2d(model: Any) -> bool:
    """IsotonicRegression.predict takes 1-D input; most other sklearn models want 2-D."""
    return type(model).__name__ != "IsotonicRegression"
