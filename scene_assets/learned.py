"""Parts of the scorer learned from labeled scene/product pairs (no Dagster imports).

Three small models, each fitted only on *training* scenes (see ``evaluation.protocol`` for the split
discipline) and stored without pickles (``.npz`` + JSON) so a bundle can be read by any process:

* :class:`RegionProjection` - two linear maps, one for scene-region vectors and one for product
  vectors (both in the centred trunk space of the region pass), trained so that for every training
  scene the *best* region lands near the products labeled in it (softmax over the whole catalog,
  max over regions; random negatives = the rest of the catalog). ../shared/FINDINGS.md measured
  this as the largest single gain on the IKEA data. Initialised from the catalog's principal
  components, so an untrained map is "zero-shot similarity after PCA".
* :class:`LinearRoomClassifier` - multinomial logistic regression on the scene's pooled trunk
  features (sklearn to fit, numpy to apply; ``predict_proba`` + ``classes_`` like sklearn).
* :class:`LabelPriors` - how often each product / category appears in labeled scenes of each room
  type; turned into a per-product prior for a scene from its room posterior (popularity within the
  room, backed off to category-in-room and overall popularity).

:class:`IsotonicCalibrator` maps a re-ranking score to P(the product is in the scene).

:class:`~scene_assets.ranking.ranker.FusionRanker` (optional) replaces the hand-set factor weights with a
model fitted on out-of-fold factor scores of labeled scenes.

:class:`LearnedScorer` bundles them with ``save`` / ``load``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IsotonicCalibrator",
    "LabelPriors",
    "LearnedScorer",
    "LinearRoomClassifier",
    "ProjectionConfig",
    "RegionProjection",
    "fit_region_projection",
    "fit_room_classifier",
]

FORMAT_VERSION = 2  # 2: optional fusion ranker
READABLE_VERSIONS = (1, 2)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------------------------
# region -> product projection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectionConfig:
    """Training settings of :func:`fit_region_projection`."""

    dim: int = 256  # output dimension of both maps
    pca_dim: int = 384  # inputs are first reduced to the catalog's top principal components (speed)
    epochs: int = 60  # passes over the training scenes
    batch_scenes: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05  # softmax temperature over cosine similarities
    seed: int = 0
    # one map for regions and products (an untrained map is then exactly zero-shot similarity): on the
    # IKEA development split, 5-fold CV, projection-only nDCG@10 .144 -> .154 (two maps -> one)
    shared_map: bool = True
    # synthetic composite pairs (scene_assets.composites): each step adds the softmax loss of
    # ``composite_batch`` pasted regions against the catalog, times ``composite_weight``
    composite_weight: float = 1.0
    composite_batch: int = 128

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RegionProjection:
    """``score(scene, product) = max_r cos(q_r @ query_map, x_p @ product_map)``."""

    query_map: np.ndarray  # D x d
    product_map: np.ndarray  # D x d
    config: dict[str, Any] = field(default_factory=dict)

    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        return _l2(np.asarray(queries, dtype=np.float32) @ self.query_map)

    def transform_products(self, products: np.ndarray) -> np.ndarray:
        return _l2(np.asarray(products, dtype=np.float32) @ self.product_map)

    def scores(self, queries: np.ndarray, projected_products: np.ndarray) -> np.ndarray:
        """Max over regions of the cosine between projected regions and projected products."""
        return (self.transform_queries(queries) @ projected_products.T).max(axis=0)


def fit_region_projection(
    scene_queries: Sequence[np.ndarray],
    positives: Sequence[np.ndarray],
    products: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    pair_queries: np.ndarray | None = None,
    pair_products: np.ndarray | None = None,
    positive_weights: Sequence[np.ndarray] | None = None,
    scene_weights: Sequence[float] | None = None,
    negatives: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> RegionProjection:
    """Fit the two maps. ``scene_queries[i]``: ``R_i x D`` region vectors of training scene i
    (centred + normalised, as the recommender queries with them); ``positives[i]``: row indices into
    ``products`` (``n x D``, the catalog's stored vectors) of the products labeled in scene i.
    Scenes without positives are skipped.

    ``pair_queries`` (``M x D``, centred + normalised like the scene regions) and ``pair_products``
    (``M`` rows into ``products``): exact (region, product) pairs, e.g. synthetic composites
    (:mod:`scene_assets.composites`); each step also trains on ``config.composite_batch`` of them.

    Weighted scenes (shopper feedback, :mod:`evaluation.feedback_training`): ``positive_weights[i]`` (one
    per row of ``positives[i]``) weighs scene i's positives inside its loss (a purchase says more than a
    click); ``scene_weights[i]`` weighs scene i against the others (a labeled scene 1); ``negatives[i]`` =
    (rows, weights) of products shown in scene i and passed over: each counts ``1 + weight`` times in the
    softmax's denominator, so the map is pushed harder to rank them below the positives. Without any of
    the three, training is exactly the unweighted recipe above."""
    import torch

    cfg = config or ProjectionConfig()
    keep = [i for i, p in enumerate(positives) if len(p)]
    weighted = positive_weights is not None or scene_weights is not None or negatives is not None
    for name, given in (("positive_weights", positive_weights), ("scene_weights", scene_weights),
                        ("negatives", negatives)):
        if given is not None and len(given) != len(positives):
            raise ValueError(f"{len(given)} {name} for {len(positives)} scenes")
    if not keep:
        raise ValueError("no training scene has a labeled product in the catalog")
    X = np.asarray(products, dtype=np.float32)
    n, D = X.shape
    k = min(cfg.pca_dim, D, n)
    d = min(cfg.dim, k)
    # Fixed PCA basis of the product vectors: training works on k-d inputs (a few times cheaper per
    # step than the full trunk width), and the maps start as "zero-shot similarity in the top-d
    # components" (identity on the first d of them).
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    basis = vt[:k].T.astype(np.float32)  # D x k
    init = np.eye(k, d, dtype=np.float32)
    gen = torch.Generator().manual_seed(cfg.seed)
    Wq = torch.nn.Parameter(torch.from_numpy(init.copy()))
    Wp = Wq if cfg.shared_map else torch.nn.Parameter(torch.from_numpy(init.copy()))
    opt = torch.optim.AdamW([Wq] if cfg.shared_map else [Wq, Wp], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    Xt = torch.from_numpy(X @ basis)
    pairs = pair_queries is not None and len(pair_queries) > 0 and cfg.composite_weight > 0
    if pairs:
        if len(pair_queries) != len(pair_products):
            raise ValueError(f"{len(pair_queries)} pair queries but {len(pair_products)} pair products")
        Ct = torch.from_numpy(np.asarray(pair_queries, dtype=np.float32) @ basis)
        Cr = torch.from_numpy(np.asarray(pair_products, dtype=np.int64))
    # regions of all training scenes in one padded tensor: S x Rmax x D, with a mask
    qs = [np.asarray(scene_queries[i], dtype=np.float32) for i in keep]
    rmax = max(q.shape[0] for q in qs)
    Q = np.zeros((len(qs), rmax, k), dtype=np.float32)
    M = np.zeros((len(qs), rmax), dtype=bool)
    for j, q in enumerate(qs):
        Q[j, : q.shape[0]] = q @ basis
        M[j, : q.shape[0]] = True
    P = np.zeros((len(qs), n), dtype=np.float32)
    for j, i in enumerate(keep):
        P[j, np.asarray(positives[i], dtype=np.int64)] = (
            1.0 if positive_weights is None else np.asarray(positive_weights[i], dtype=np.float32))
    Qt, Mt, Pt = torch.from_numpy(Q), torch.from_numpy(M), torch.from_numpy(P)
    if weighted:
        W = np.ones(len(qs), dtype=np.float32) if scene_weights is None else np.asarray(
            [scene_weights[i] for i in keep], dtype=np.float32)
        B = np.zeros((len(qs), n), dtype=np.float32)  # log of how many times each product counts as a negative
        for j, i in enumerate(keep):
            if negatives is not None and len(negatives[i][0]):
                rows, weights = negatives[i]
                B[j, np.asarray(rows, dtype=np.int64)] = np.log1p(np.maximum(np.asarray(weights, dtype=np.float32), 0))
        if not (np.isfinite(P).all() and (P >= 0).all() and np.isfinite(W).all() and (W >= 0).all() and W.sum() > 0):
            raise ValueError("positive and scene weights must be finite, >= 0, and not all 0")
        Wt, Bt = torch.from_numpy(W), torch.from_numpy(B)
    inv_t = 1.0 / cfg.temperature
    for _ in range(cfg.epochs):
        order = torch.randperm(len(qs), generator=gen)
        for s in range(0, len(qs), cfg.batch_scenes):
            b = order[s : s + cfg.batch_scenes]
            prod = torch.nn.functional.normalize(Xt @ Wp, dim=1)  # n x d
            reg = torch.nn.functional.normalize(Qt[b] @ Wq, dim=2)  # B x R x d
            sim = torch.einsum("brd,nd->brn", reg, prod)
            sim = sim.masked_fill(~Mt[b].unsqueeze(-1), -2.0)
            logits = sim.max(dim=1).values * inv_t  # B x n
            if weighted:
                logp = torch.log_softmax(logits + Bt[b], dim=1)
                pos, w = Pt[b], Wt[b]
                per_scene = -(logp * pos).sum(dim=1) / pos.sum(dim=1).clamp_min(1e-12)
                loss = (per_scene * w).sum() / w.sum().clamp_min(1e-12)
            else:
                logp = torch.log_softmax(logits, dim=1)
                pos = Pt[b]
                loss = -((logp * pos).sum(dim=1) / pos.sum(dim=1)).mean()
            if pairs:
                cb = torch.randint(len(Ct), (cfg.composite_batch,), generator=gen)
                cq = torch.nn.functional.normalize(Ct[cb] @ Wq, dim=1)
                clogp = torch.log_softmax((cq @ prod.T) * inv_t, dim=1)
                loss = loss - cfg.composite_weight * clogp.gather(1, Cr[cb, None]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return RegionProjection(basis @ Wq.detach().numpy(), basis @ Wp.detach().numpy(),
                            cfg.to_dict() | {"training_scenes": len(qs), "training_pairs": len(Ct) if pairs else 0}
                            | ({"weighted": True} if weighted else {}))


# --------------------------------------------------------------------------------------------
# room classifier
# --------------------------------------------------------------------------------------------


@dataclass
class LinearRoomClassifier:
    """Softmax(normalize(x) @ coef.T + intercept) over ``classes_``."""

    coef: np.ndarray  # C x D
    intercept: np.ndarray  # C
    classes_: list[str]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = _l2(np.atleast_2d(np.asarray(X, dtype=np.float32))) @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> list[str]:
        return [self.classes_[i] for i in np.argmax(self.predict_proba(X), axis=1)]


def fit_room_classifier(features: np.ndarray, rooms: Sequence[str], C: float = 10.0) -> LinearRoomClassifier:
    """Multinomial logistic regression on L2-normalised pooled trunk features."""
    from sklearn.linear_model import LogisticRegression

    rooms = [str(r) for r in rooms]
    if len(set(rooms)) < 2:
        raise ValueError(f"a room classifier needs at least two room types, got {sorted(set(rooms))}")
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(_l2(features), rooms)
    return LinearRoomClassifier(clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32),
                                [str(c) for c in clf.classes_])


# --------------------------------------------------------------------------------------------
# label priors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogPriors:
    """:class:`LabelPriors` over one catalog, evaluated per query for its candidates
    (:meth:`LabelPriors.for_catalog`)."""

    labeled_rows: np.ndarray  # sorted catalog rows of the labeled products in the catalog
    labeled_index: np.ndarray  # their index in LabelPriors.product_ids
    category_codes: np.ndarray  # catalog row -> catalog category code
    prior_category: np.ndarray  # catalog category code -> LabelPriors category index
    category_part: np.ndarray  # LabelPriors category x room: a * share / members
    counts: np.ndarray  # labeled product x room
    pop: np.ndarray  # labeled product
    popularity_strength: float
    denominator: np.ndarray  # room
    mean_per_room: np.ndarray  # room: the catalog average of the per-room prior

    def per_room(self, rows: np.ndarray) -> np.ndarray:
        """rows x room prior, as ``LabelPriors.product_prior`` per room."""
        rows = np.asarray(rows)
        cat = self.category_part[self.prior_category[np.asarray(self.category_codes[rows])]]
        pos = np.minimum(np.searchsorted(self.labeled_rows, rows), max(len(self.labeled_rows) - 1, 0))
        hit = (self.labeled_rows[pos] == rows) if len(self.labeled_rows) else np.zeros(rows.shape, bool)
        counts = np.zeros_like(cat)
        pop = np.zeros(rows.shape[0])
        counts[hit] = self.counts[self.labeled_index[pos[hit]]]
        pop[hit] = self.pop[self.labeled_index[pos[hit]]]
        return (counts + cat + self.popularity_strength * pop[:, None]) / self.denominator


@dataclass
class LabelPriors:
    """Counts from training labels: product x room and category x room."""

    rooms: list[str]
    product_ids: list[str]
    product_room_counts: np.ndarray  # P x R: labeled scenes of room r that contain product p
    categories: list[str]
    category_room_counts: np.ndarray  # C x R
    room_scene_counts: np.ndarray  # R: training scenes per room type
    # back-off strengths (pseudo-counts)
    category_strength: float = 1.0
    popularity_strength: float = 0.5

    @classmethod
    def fit(cls, scene_rooms: Mapping[str, str], scene_products: Mapping[str, Sequence[str]],
            product_category: Mapping[str, str], rooms: Sequence[str]) -> "LabelPriors":
        rooms = list(rooms)
        r_index = {r: i for i, r in enumerate(rooms)}
        pids = sorted({p for ps in scene_products.values() for p in ps})
        p_index = {p: i for i, p in enumerate(pids)}
        cats = sorted(set(product_category.values()) | {"other"})
        c_index = {c: i for i, c in enumerate(cats)}
        pr = np.zeros((len(pids), len(rooms)), dtype=np.float32)
        cr = np.zeros((len(cats), len(rooms)), dtype=np.float32)
        rs = np.zeros(len(rooms), dtype=np.float32)
        for sid, room in scene_rooms.items():
            if room not in r_index:
                continue
            r = r_index[room]
            rs[r] += 1
            for p in set(scene_products.get(sid, ())):
                pr[p_index[p], r] += 1
                cr[c_index[product_category.get(p, "other")], r] += 1
        return cls(rooms, pids, pr, cats, cr, rs)

    def product_prior(self, product_ids: Sequence[str], categories: Sequence[str],
                      room_probs: np.ndarray, rooms: Sequence[str]) -> np.ndarray:
        """Expected share of training scenes of the scene's room that contain each product, with
        back-off: ``(c(p, r) + a * share(cat(p), r) / n_cat + b * pop(p)) / (n_r + a + b)``,
        averaged over the room posterior ``room_probs`` (ordered as ``rooms``)."""
        own = {r: i for i, r in enumerate(self.rooms)}
        cols = [own.get(r, -1) for r in rooms]
        probs = np.asarray(room_probs, dtype=np.float64)
        p_index = {p: i for i, p in enumerate(self.product_ids)}
        c_index = {c: i for i, c in enumerate(self.categories)}
        rows = np.asarray([p_index.get(p, -1) for p in product_ids])
        crow = np.asarray([c_index.get(c, c_index["other"]) for c in categories])
        n = len(product_ids)
        counts = np.zeros((n, len(rooms)))
        valid = rows >= 0
        cat_share = np.zeros((n, len(rooms)))
        room_n = np.zeros(len(rooms))
        # products per category in the scored catalog spread the category's share over its members
        cat_members = np.bincount(crow, minlength=len(self.categories)).astype(np.float64)
        for j, c in enumerate(cols):
            if c < 0:
                continue
            counts[valid, j] = self.product_room_counts[rows[valid], c]
            room_n[j] = self.room_scene_counts[c]
            col = self.category_room_counts[:, c]
            share = col / max(float(col.sum()), 1.0)
            cat_share[:, j] = share[crow] / np.maximum(cat_members[crow], 1.0)
        pop = np.zeros(n)
        total_scenes = max(float(self.room_scene_counts.sum()), 1.0)
        pop[valid] = self.product_room_counts[rows[valid]].sum(axis=1) / total_scenes
        a, b = self.category_strength, self.popularity_strength
        per_room = (counts + a * cat_share + b * pop[:, None]) / (room_n + a + b)
        return per_room @ probs

    def for_catalog(self, labeled_rows: np.ndarray, category_codes: np.ndarray, category_names: Sequence[str],
                    rooms: Sequence[str]) -> "CatalogPriors":
        """:meth:`product_prior` of a whole catalog, evaluated for the rows asked for (a query's
        candidates) instead of held for every product: ``labeled_rows[i]`` is the catalog row of
        ``self.product_ids[i]`` (-1: not in the catalog); ``category_codes`` (one per catalog row, may be
        memory-mapped) index ``category_names``. The catalog-wide parts (products per category, the
        catalog average per room) are computed once, here, from the codes."""
        own = {r: i for i, r in enumerate(self.rooms)}
        cols = np.asarray([own.get(r, -1) for r in rooms])
        c_index = {c: i for i, c in enumerate(self.categories)}
        prior_category = np.asarray([c_index.get(str(c), c_index["other"]) for c in category_names])
        n = len(category_codes)
        # products per category in the scored catalog spread the category's share over its members
        members = np.bincount(prior_category[np.asarray(category_codes)], minlength=len(self.categories)).astype(np.float64)
        room_n = np.where(cols >= 0, self.room_scene_counts[np.maximum(cols, 0)], 0.0)
        totals = self.category_room_counts[:, np.maximum(cols, 0)].sum(axis=0)
        share = np.where(cols >= 0, self.category_room_counts[:, np.maximum(cols, 0)] / np.maximum(totals, 1.0), 0.0)
        a, b = self.category_strength, self.popularity_strength
        category_part = a * share / np.maximum(members, 1.0)[:, None]  # prior category x room
        known = np.flatnonzero(np.asarray(labeled_rows) >= 0)
        counts = np.where(cols >= 0, self.product_room_counts[:, np.maximum(cols, 0)], 0.0)  # labeled x room
        pop = self.product_room_counts.sum(axis=1) / max(float(self.room_scene_counts.sum()), 1.0)
        denominator = room_n + a + b
        # the catalog average of the per-room prior: every member of a category adds its share once
        mean = (counts[known].sum(axis=0) + (category_part * members[:, None]).sum(axis=0)
                + b * pop[known].sum()) / max(n, 1) / denominator
        order = np.argsort(np.asarray(labeled_rows)[known])
        return CatalogPriors(np.asarray(labeled_rows)[known][order], known[order], category_codes, prior_category,
                             category_part, counts, pop, b, denominator, mean)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"prior_product_room_counts": self.product_room_counts,
                "prior_category_room_counts": self.category_room_counts,
                "prior_room_scene_counts": self.room_scene_counts}

    def meta(self) -> dict[str, Any]:
        return {"rooms": self.rooms, "product_ids": self.product_ids, "categories": self.categories,
                "category_strength": self.category_strength, "popularity_strength": self.popularity_strength}


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------


@dataclass
class IsotonicCalibrator:
    """Monotone map score -> P(relevant), piecewise linear between fitted thresholds."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> "IsotonicCalibrator":
        from sklearn.isotonic import IsotonicRegression

        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        if scores.size == 0:
            raise ValueError("no scores to calibrate on")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        return cls(np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[float]]) -> "IsotonicCalibrator":
        return cls(np.asarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64))


# --------------------------------------------------------------------------------------------
# bundle
# --------------------------------------------------------------------------------------------


@dataclass
class LearnedScorer:
    """Everything fitted from labels, plus where it came from."""

    projection: RegionProjection | None = None
    room_classifier: LinearRoomClassifier | None = None
    priors: LabelPriors | None = None
    calibrator: IsotonicCalibrator | None = None
    trunk_fingerprint: str | None = None  # the feature space the projection was fitted in
    info: dict[str, Any] = field(default_factory=dict)  # training dataset hash, scenes, timings
    ranker: Any = None  # scene_assets.ranking.ranker.FusionRanker: scores candidates instead of the weights

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for arr in self._arrays().values():
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps(self._meta(), sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def _arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.projection is not None:
            out["projection_query_map"] = self.projection.query_map
            out["projection_product_map"] = self.projection.product_map
        if self.room_classifier is not None:
            out["room_coef"] = self.room_classifier.coef
            out["room_intercept"] = self.room_classifier.intercept
        if self.priors is not None:
            out.update(self.priors.to_arrays())
        if self.ranker is not None:
            out.update(self.ranker.to_arrays())
        return out

    def _meta(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "trunk_fingerprint": self.trunk_fingerprint,
            "projection_config": None if self.projection is None else self.projection.config,
            "room_classes": None if self.room_classifier is None else self.room_classifier.classes_,
            "priors": None if self.priors is None else self.priors.meta(),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "ranker": None if self.ranker is None else self.ranker.meta(),
            "info": self.info,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        from scene_assets.indexes.store import write_atomic, write_atomic_bytes

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        write_atomic(d / "learned.npz", lambda tmp: np.savez(tmp, **arrays))
        meta = self._meta() | {"fingerprint": self.fingerprint(), "saved_at": time.time()}
        write_atomic_bytes(d / "learned.json", (json.dumps(meta, indent=1, default=str) + "\n").encode())
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "LearnedScorer":
        d = Path(directory)
        meta_path, arr_path = d / "learned.json", d / "learned.npz"
        if not meta_path.is_file() or not arr_path.is_file():
            raise FileNotFoundError(f"{d}: no learned.json / learned.npz (fit one with `scene-matcher evaluate` "
                                    "or materialize the trained_scorer asset)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"{meta_path}: format_version {meta.get('format_version')} is not one of {READABLE_VERSIONS}")
        with np.load(arr_path) as z:
            arrays = {k: z[k] for k in z.files}
        projection = None
        if "projection_query_map" in arrays:
            projection = RegionProjection(arrays["projection_query_map"], arrays["projection_product_map"],
                                          meta.get("projection_config") or {})
        room = None
        if "room_coef" in arrays:
            room = LinearRoomClassifier(arrays["room_coef"], arrays["room_intercept"], list(meta["room_classes"]))
        priors = None
        if meta.get("priors"):
            pm = meta["priors"]
            priors = LabelPriors(pm["rooms"], pm["product_ids"], arrays["prior_product_room_counts"],
                                 pm["categories"], arrays["prior_category_room_counts"],
                                 arrays["prior_room_scene_counts"], pm["category_strength"],
                                 pm["popularity_strength"])
        cal = IsotonicCalibrator.from_dict(meta["calibrator"]) if meta.get("calibrator") else None
        ranker = None
        if meta.get("ranker"):
            from scene_assets.ranking.ranker import FusionRanker

            ranker = FusionRanker.from_stored(meta["ranker"], arrays)
        return cls(projection, room, priors, cal, meta.get("trunk_fingerprint"), meta.get("info") or {}, ranker)
