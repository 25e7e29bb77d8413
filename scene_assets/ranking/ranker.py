"""Learned fusion of the re-ranking factors: a ranker over per-(scene, product) scores (no Dagster imports).

The hand-set :class:`~scene_assets.ranking.config.ScoringWeights` mix the factors linearly with one weight
each. :class:`FusionRanker` learns the mix from labeled scenes instead: a pointwise classifier
("is this product in this scene?") over the factor scores, a few cheap derived features and the
scene's room posterior, trained on labeled products (positives) against products drawn from the
rest of the catalog (negatives). ../shared/FINDINGS.md measured a gradient-boosted ranker of this
kind above any hand-weighted fusion on the IKEA data.

Split discipline (see ``evaluation.protocol``): the rows a ranker learns from must carry factor
scores that were made *out of fold* - the projection (``learned`` factor) and the label priors
(``prior`` factor) of a training scene must come from models that did not see that scene's labels,
otherwise the ranker learns how good in-sample projection scores look and over-trusts them on new
scenes. The protocol gets those rows from an inner cross-validation over the training scenes; the
``learned_scorer`` asset from the evaluation's out-of-fold factor matrices.

Models: ``"hgb"`` (sklearn ``HistGradientBoostingClassifier``) or ``"logistic"`` (sklearn
``LogisticRegression`` on standardised features). Either is fitted with sklearn and applied with
numpy only (:class:`TreeEnsemble`: the fitted trees as flat arrays), so a ranker is stored in the
learned scorer's ``.npz`` + JSON like everything else - no pickles - and costs about a millisecond per
thousand candidates at query time.

Features are per (scene, product) and never depend on which other products are scored, so a product
gets the same score whether the whole catalog is ranked (evaluation) or only the candidates the
index returned (serving): :func:`ranker_features`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from scene_assets.ranking.factors import FACTORS, column
from scene_assets.scene_analysis import ROOM_TYPES

__all__ = [
    "FusionRanker",
    "RankerConfig",
    "TreeEnsemble",
    "fit_ranker",
    "ranker_feature_names",
    "ranker_features",
    "training_rows",
]

ModelKind = Literal["hgb", "logistic"]
NegativeKind = Literal["random", "room"]


@dataclass(frozen=True)
class RankerConfig:
    """How a :class:`FusionRanker` is trained (goes into reports, MLflow params and the saved model).

    ``exclude``: factors left out of the features (ablations; also "room" for the room posterior
    columns). ``negatives``: ``"random"`` draws negatives uniformly from the catalog minus the
    scene's labels; ``"room"`` draws half of them from products labeled in *other* training scenes
    of the same room type (hard negatives) and half at random."""

    model: ModelKind = "hgb"
    negatives: NegativeKind = "random"
    negatives_per_scene: int = 300
    inner_folds: int = 4  # inner cross-validation that makes the training rows' scores out of fold
    exclude: tuple[str, ...] = ()
    room_features: bool = False  # the room posterior as features (interactions with room type)
    # HistGradientBoostingClassifier settings
    max_iter: int = 150
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    # LogisticRegression setting
    C: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in ("hgb", "logistic"):
            raise ValueError(f"ranker model must be 'hgb' or 'logistic', got {self.model!r}")
        if self.negatives not in ("random", "room"):
            raise ValueError(f"ranker negatives must be 'random' or 'room', got {self.negatives!r}")
        if self.negatives_per_scene < 1 or self.inner_folds < 2:
            raise ValueError("negatives_per_scene must be >= 1 and inner_folds >= 2")
        object.__setattr__(self, "exclude", tuple(sorted(set(self.exclude))))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["exclude"] = list(self.exclude)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RankerConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ranker setting(s) {sorted(unknown)}")
        if "exclude" in d:
            d["exclude"] = tuple(d["exclude"] or ())
        return cls(**d)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


def ranker_feature_names(exclude: Sequence[str] = (), room_features: bool = False) -> list[str]:
    """Columns of :func:`ranker_features`: the factors not excluded, two derived ones (visual x
    learned agreement, the prior's log-odds), and the room posterior when ``room_features``."""
    names = [f for f in FACTORS if f not in exclude]
    if "visual" in names and "learned" in names:
        names.append("visual*learned")
    if "prior" in names:
        names.append("logit(prior)")
    if room_features and "room" not in exclude:
        names += [f"room={r}" for r in ROOM_TYPES]
    return names


def ranker_features(F: np.ndarray, room_probs: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``n x len(names)`` features for ``F`` (``n x len(FACTORS)`` factor scores of n products in one
    scene) and the scene's room posterior (over ``ROOM_TYPES``). Row i depends on product i and the
    scene only."""
    F = np.asarray(F, dtype=np.float32)
    n = F.shape[0]
    out = np.empty((n, len(names)), dtype=np.float32)
    room_probs = np.asarray(room_probs, dtype=np.float32)
    for j, name in enumerate(names):
        if name in FACTORS:
            out[:, j] = column(F, name)
        elif name == "visual*learned":
            out[:, j] = column(F, "visual") * column(F, "learned")
        elif name == "logit(prior)":
            p = np.clip(column(F, "prior"), 1e-4, 1 - 1e-4)
            out[:, j] = np.log(p / (1 - p))
        elif name.startswith("room="):
            out[:, j] = room_probs[ROOM_TYPES.index(name.removeprefix("room="))]
        else:
            raise ValueError(f"unknown ranker feature {name!r}")
    return out


# --------------------------------------------------------------------------------------------
# models applied with numpy
# --------------------------------------------------------------------------------------------


@dataclass
class TreeEnsemble:
    """Regression trees as flat arrays: ``raw(x) = baseline + sum over trees of the leaf value``.

    Node ``k``: ``feature[k]`` (-1 for a leaf), ``threshold[k]`` (go left when ``x <= threshold``),
    ``missing_left[k]`` (where NaN goes), ``left[k]`` / ``right[k]`` (node indices into the same
    arrays), ``value[k]`` (leaf value). ``roots[t]``: the root node of tree t."""

    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    missing_left: np.ndarray  # bool
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    value: np.ndarray  # float64
    roots: np.ndarray  # int32
    baseline: float
    max_depth: int

    @classmethod
    def from_sklearn(cls, model) -> "TreeEnsemble":
        """From a fitted binary ``HistGradientBoostingClassifier`` (numeric features only)."""
        trees = [p[0] for p in model._predictors]  # one predictor per iteration (binary: one class)
        feat, thr, miss, left, right, val, roots = [], [], [], [], [], [], []
        offset = 0
        depth = 0
        for t in trees:
            nodes = t.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            roots.append(offset)
            feat.append(np.where(leaf, -1, nodes["feature_idx"]).astype(np.int32))
            thr.append(nodes["num_threshold"].astype(np.float64))
            miss.append(nodes["missing_go_to_left"].astype(bool))
            left.append(np.where(leaf, -1, nodes["left"].astype(np.int64) + offset).astype(np.int32))
            right.append(np.where(leaf, -1, nodes["right"].astype(np.int64) + offset).astype(np.int32))
            val.append(nodes["value"].astype(np.float64))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        baseline = float(np.ravel(model._baseline_prediction)[0])
        if not trees:
            return cls(*(np.zeros(0, d) for d in (np.int32, np.float64, bool, np.int32, np.int32, np.float64)),
                       np.zeros(0, np.int32), baseline, 0)
        return cls(np.concatenate(feat), np.concatenate(thr), np.concatenate(miss), np.concatenate(left),
                   np.concatenate(right), np.concatenate(val), np.asarray(roots, dtype=np.int32), baseline, depth)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw score (log-odds) of each row of ``X``.

        QuickScorer (Lucchese et al., SIGIR 2015) in numpy: every split condition of every tree is
        evaluated once per row; a false condition (the row goes right) rules out the leaves of that
        node's left subtree, kept as a bit mask per node (8 to 64 bits: the leaves of the largest
        tree); the leaf a row reaches in a tree is the leftmost one no false condition ruled out. No
        walk down the trees, so the cost does not grow with their depth: ~2 ms for 800 candidates and
        150 trees of 15 leaves on one core. Float32 input is compared in float32 against thresholds
        rounded down to float32, which decides exactly as the float64 comparison. Trees of more than
        64 leaves are walked level by level instead (:meth:`raw_walk`)."""
        X = np.asarray(X)
        if X.dtype != np.float32:
            X = X.astype(np.float64)
        n = X.shape[0]
        if self.roots.size == 0 or n == 0:
            return np.full(n, self.baseline)
        plan = self._plan()
        if plan is None:
            return self.raw_walk(X)
        feat, thr64, thr32, miss_left, masks, starts, values = plan
        x = np.ascontiguousarray(X.T)[feat]  # conditions x rows
        go_left = x <= (thr32 if X.dtype == np.float32 else thr64)[:, None]
        nan = np.isnan(x)
        if nan.any():
            go_left = np.where(nan, miss_left[:, None], go_left)
        signed = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[masks.dtype.itemsize]
        # all ones where the row goes left (nothing ruled out), the node's mask where it goes right
        ruled = masks[:, None] | (-(go_left.astype(signed))).view(masks.dtype)
        kept = np.bitwise_and.reduceat(ruled, starts, axis=0)  # trees x rows
        lowest = kept & (~kept + masks.dtype.type(1))  # the lowest set bit: the leftmost leaf still possible
        leaf = np.log2(lowest.astype(np.float64)).astype(np.int64)
        return self.baseline + values[np.arange(values.shape[0])[:, None], leaf].sum(axis=0)

    def _plan(self):
        """Per-condition arrays of :meth:`raw`, built once (None when a tree has more than 64 leaves)."""
        cached = getattr(self, "_quickscorer", False)
        if cached is not False:
            return cached
        n_trees = self.roots.size
        ends = np.append(self.roots[1:], self.feature.size)
        feat, thr, miss, masks, starts = [], [], [], [], []
        values: list[np.ndarray] = []
        plan = None
        for t in range(n_trees):
            leaves: list[int] = []
            spans: dict[int, tuple[int, int]] = {}  # internal node -> leaves [a, b) of its left subtree

            def visit(k: int) -> tuple[int, int]:
                if self.feature[k] < 0:
                    leaves.append(k)
                    return len(leaves) - 1, len(leaves)
                a, b = visit(int(self.left[k]))
                spans[k] = (a, b)
                _, c = visit(int(self.right[k]))
                return a, c

            visit(int(self.roots[t]))
            if len(leaves) > 64:
                break
            values.append(self.value[leaves])
            starts.append(len(feat))
            nodes = [k for k in range(int(self.roots[t]), int(ends[t])) if k in spans]
            if not nodes:  # a one-leaf tree: a condition that always holds
                feat.append(0), thr.append(np.inf), miss.append(True), masks.append(0)
            for k in nodes:
                a, b = spans[k]
                feat.append(int(self.feature[k]))
                thr.append(float(self.threshold[k]))
                miss.append(bool(self.missing_left[k]))
                masks.append(((1 << 64) - 1) & ~(((1 << (b - a)) - 1) << a))
        else:
            width = next(w for w in (8, 16, 32, 64) if w >= max(len(v) for v in values))
            dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width]
            table = np.zeros((n_trees, width))
            for t, v in enumerate(values):
                table[t, : len(v)] = v
            thr64 = np.asarray(thr, dtype=np.float64)
            thr32 = thr64.astype(np.float32)
            thr32 = np.where(thr32.astype(np.float64) > thr64, np.nextafter(thr32, np.float32(-np.inf)), thr32)
            plan = (np.asarray(feat, dtype=np.int64), thr64, thr32, np.asarray(miss, dtype=bool),
                    np.asarray([m & ((1 << width) - 1) for m in masks], dtype=dtype), np.asarray(starts, dtype=np.int64),
                    table)
        self._quickscorer = plan
        return plan

    def raw_walk(self, X: np.ndarray) -> np.ndarray:
        """:meth:`raw` by walking every tree in lock-step, one level per step (any tree size)."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        if self.roots.size == 0 or n == 0:
            return np.full(n, self.baseline)
        # node position of every (row, tree); leaves point to themselves
        pos = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        feat = self.feature
        leaf = feat < 0
        f_safe = np.where(leaf, 0, feat)
        rows = np.arange(n)[:, None]
        for _ in range(self.max_depth):
            f = f_safe[pos]
            x = X[rows, f]
            go_left = np.where(np.isnan(x), self.missing_left[pos], x <= self.threshold[pos])
            nxt = np.where(go_left, self.left[pos], self.right[pos])
            pos = np.where(leaf[pos], pos, nxt)
        return self.baseline + self.value[pos].sum(axis=1)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}feature": self.feature, f"{prefix}threshold": self.threshold,
                f"{prefix}missing_left": self.missing_left, f"{prefix}left": self.left,
                f"{prefix}right": self.right, f"{prefix}value": self.value, f"{prefix}roots": self.roots}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str, baseline: float, max_depth: int) -> "TreeEnsemble":
        g = lambda k: np.asarray(arrays[f"{prefix}{k}"])  # noqa: E731
        return cls(g("feature").astype(np.int32), g("threshold").astype(np.float64), g("missing_left").astype(bool),
                   g("left").astype(np.int32), g("right").astype(np.int32), g("value").astype(np.float64),
                   g("roots").astype(np.int32), float(baseline), int(max_depth))


@dataclass
class FusionRanker:
    """``score(F, room_probs)`` = P(product in scene) under the fitted model, in [0, 1] (not
    calibrated: negatives are subsampled - the learned scorer's calibrator maps it to a confidence)."""

    feature_names: list[str]
    kind: ModelKind
    trees: TreeEnsemble | None = None
    coef: np.ndarray | None = None  # logistic: on standardised features
    intercept: float = 0.0
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # training rows, scenes, fit seconds

    def features(self, F: np.ndarray, room_probs: np.ndarray) -> np.ndarray:
        return ranker_features(F, room_probs, self.feature_names)

    def raw(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "hgb":
            return self.trees.raw(X)
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def score(self, F: np.ndarray, room_probs: np.ndarray) -> np.ndarray:
        z = self.raw(self.features(F, room_probs))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    # -- storage (inside LearnedScorer's npz / json) --------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        if self.kind == "hgb":
            return self.trees.to_arrays("ranker_tree_")
        return {"ranker_coef": self.coef, "ranker_mean": self.mean, "ranker_scale": self.scale}

    def meta(self) -> dict[str, Any]:
        out = {"kind": self.kind, "feature_names": list(self.feature_names), "config": self.config, "info": self.info}
        if self.kind == "hgb":
            out |= {"baseline": self.trees.baseline, "max_depth": self.trees.max_depth}
        else:
            out |= {"intercept": self.intercept}
        return out

    @classmethod
    def from_stored(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "FusionRanker":
        kind = meta["kind"]
        common = {"feature_names": list(meta["feature_names"]), "kind": kind, "config": dict(meta.get("config") or {}),
                  "info": dict(meta.get("info") or {})}
        if kind == "hgb":
            return cls(**common, trees=TreeEnsemble.from_arrays(arrays, "ranker_tree_", meta["baseline"], meta["max_depth"]))
        return cls(**common, coef=np.asarray(arrays["ranker_coef"], dtype=np.float64),
                   intercept=float(meta["intercept"]), mean=np.asarray(arrays["ranker_mean"], dtype=np.float64),
                   scale=np.asarray(arrays["ranker_scale"], dtype=np.float64))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def training_rows(results: Sequence[Any], config: RankerConfig, names: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, scene index)`` from out-of-fold scene results (objects with ``factors``,
    ``relevant_rows``, ``room_probs``, ``room_type``, ``scene_id``): every labeled product of a scene is
    a positive; ``negatives_per_scene`` negatives per scene (see :class:`RankerConfig`). Seeded by
    the config's seed and the scene id, so the rows do not depend on the order of ``results``."""
    import hashlib

    by_room: dict[str, set[int]] = {}
    for r in results:
        by_room.setdefault(r.room_type, set()).update(int(x) for x in r.relevant_rows)
    Xs, ys, gs = [], [], []
    for i, r in enumerate(results):
        n = r.factors.shape[0]
        pos = np.unique(np.asarray(r.relevant_rows, dtype=np.int64))
        if pos.size == 0:
            continue
        rng = np.random.default_rng([config.seed, int(hashlib.sha256(str(r.scene_id).encode()).hexdigest()[:8], 16)])
        is_pos = np.zeros(n, dtype=bool)
        is_pos[pos] = True
        k = min(config.negatives_per_scene, n - pos.size)
        neg: np.ndarray
        if config.negatives == "room":
            hard = np.asarray(sorted(by_room.get(r.room_type, set()) - set(pos.tolist())), dtype=np.int64)
            k_hard = min(k // 2, hard.size)
            chosen = rng.choice(hard, size=k_hard, replace=False) if k_hard else np.zeros(0, np.int64)
            rest = np.flatnonzero(~is_pos & ~np.isin(np.arange(n), chosen))
            neg = np.concatenate([chosen, rng.choice(rest, size=min(k - k_hard, rest.size), replace=False)])
        else:
            neg = rng.choice(np.flatnonzero(~is_pos), size=k, replace=False)
        rows = np.concatenate([pos, neg])
        Xs.append(ranker_features(r.factors[rows], r.room_probs, names))
        ys.append(np.concatenate([np.ones(pos.size), np.zeros(neg.size)]))
        gs.append(np.full(rows.size, i))
    if not Xs:
        raise ValueError("no training scene has a labeled product")
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(gs)


def fit_ranker(results: Sequence[Any], config: RankerConfig | None = None) -> FusionRanker:
    """Fit a :class:`FusionRanker` on out-of-fold scene results (see the module docstring for why
    they must be out of fold)."""
    import time

    config = config or RankerConfig()
    names = ranker_feature_names(config.exclude, config.room_features)
    if not names:
        raise ValueError("every ranker feature is excluded")
    t0 = time.perf_counter()
    X, y, groups = training_rows(results, config, names)
    if y.min() == y.max():
        raise ValueError("ranker training rows hold one class only")
    # every scene weighs the same, however many products it labels
    counts = np.bincount(groups)
    pos_counts = np.bincount(groups, weights=y)
    w = np.where(y > 0, 1.0 / pos_counts[groups], 1.0 / (counts - pos_counts)[groups])
    w = w * (len(y) / w.sum())
    info = {"training_scenes": int(len(np.unique(groups))), "training_rows": int(len(y)),
            "positives": int(y.sum())}
    if config.model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf, l2_regularization=config.l2_regularization,
            early_stopping=False, random_state=config.seed)
        model.fit(X, y, sample_weight=w)
        ranker = FusionRanker(names, "hgb", trees=TreeEnsemble.from_sklearn(model), config=config.to_dict())
    else:
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0).astype(np.float64)
        scale = X.std(axis=0).astype(np.float64)
        scale[scale < 1e-9] = 1.0
        model = LogisticRegression(C=config.C, max_iter=2000)
        model.fit((X - mean) / scale, y, sample_weight=w)
        ranker = FusionRanker(names, "logistic", coef=model.coef_.ravel().astype(np.float64),
                              intercept=float(model.intercept_[0]), mean=mean, scale=scale, config=config.to_dict())
    ranker.info = info | {"fit_s": round(time.perf_counter() - t0, 2)}
    return ranker
