"""The ranking factors: their names, every default weight, and one function per factor.

Each factor scores a (scene, product) pair in [0, 1]; 0.5 means "no evidence".

* ``visual``: ``(cos + 1) / 2`` of the best region.
* ``text``: ``(cos + 1) / 2`` between the caption's text vector and the product's text vector; without
  a caption, between the projected region vectors and the product text vector *if* the encoder's
  projection is trained; otherwise 0.5.
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

:class:`ProductFactors` holds what the factors need to know about each product (index order);
:func:`factor_matrix` scores candidates with every factor. No Dagster imports.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from scene_assets import vocabulary as vocab
from scene_assets.scene_analysis import ROOM_TYPES, STYLES, softmax, vocabulary_lab

if TYPE_CHECKING:
    from scene_assets.prepared_scene import PreparedScene
    from scene_assets.ranking.catalog import CodedColumn

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_WEIGHTS",
    "FACTORS",
    "LEARNED_DEFAULT_WEIGHTS",
    "MATERIAL_STYLE_AFFINITY",
    "NEUTRAL_COLORS",
    "ProductFactors",
    "ROOM_SIZE_FIT",
    "column",
    "factor_matrix",
]

FACTORS: tuple[str, ...] = ("visual", "text", "room_fit", "style", "color", "material", "size", "learned", "prior")
_COLUMN = {name: i for i, name in enumerate(FACTORS)}

# Hand-set weights (no learned scorer), checked coarsely on the IKEA development scenes
# (bench/bench_scene_query.py, one factor at a time next to visual): visual similarity leads; caption
# text (+.008 R@10 there) and room fit (helps once the room posterior is informative: +.027 R@50 with
# the true room) come next; style, colour, material and size only break ties - at 0.05-0.1 each of
# them cost recall on those scenes (colour harmony and size priors are weak evidence for *which*
# product is in the photo). Learned weights should replace these.
DEFAULT_WEIGHTS: dict[str, float] = {
    "visual": 1.0, "text": 0.2, "room_fit": 0.1, "style": 0.01, "color": 0.01, "material": 0.01, "size": 0.01,
    "learned": 0.0, "prior": 0.0,
}

# Weights used once a learned scorer is attached (and no weights were given): the best nDCG@10 of an
# 80-point sweep on the out-of-fold scores of the IKEA development split (5-fold CV), rounded to the
# more recall-friendly of two near-ties. The label prior scored below zero weight there and style /
# material / size only broke ties, so they start at 0; the weight_sweep asset re-tunes all of them.
LEARNED_DEFAULT_WEIGHTS: dict[str, float] = {
    "visual": 0.5, "text": 0.0, "room_fit": 0.2, "style": 0.0, "color": 0.02, "material": 0.0, "size": 0.0,
    "learned": 1.0, "prior": 0.0,
}
assert tuple(DEFAULT_WEIGHTS) == FACTORS and tuple(LEARNED_DEFAULT_WEIGHTS) == FACTORS

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


def column(F: np.ndarray, name: str) -> np.ndarray:
    """The ``name`` factor's column of a factor matrix (``n x len(FACTORS)``)."""
    return F[:, _COLUMN[name]]


def as_str(v: Any) -> str | None:
    """A catalog value as a non-empty string, else None."""
    if v is None:
        return None
    s = str(v)
    return s if s else None


def as_list(v: Any) -> list[str]:
    """A catalog value (None, a string or a sequence) as a list of strings."""
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v if x is not None]


@dataclass(frozen=True)
class ProductFactors:
    """What the factors know about every indexed product (rows in index order). The ``learned_*`` /
    ``prior_per_room`` parts come from the attached learned scorer (None without one)."""

    room_member: np.ndarray  # n x R: 1 where the product belongs in the room
    size_index: np.ndarray  # n, index into _SIZE_CLASSES, -1 = unknown
    color_matrix: np.ndarray  # n x K pixel-colour membership (rows sum to 1 where any)
    has_pixel_color: np.ndarray  # n bool
    non_pixel_value: np.ndarray  # n: colour factor of products naming no pixel colour
    material_affinity: np.ndarray  # n x S (NaN row = no materials)
    styles: np.ndarray  # n x S style distribution
    text_matrix: np.ndarray | None  # n x d unit text vectors (float16 at rest)
    text_mask: np.ndarray | None  # n bool: has a text vector
    projection: Any = None  # the learned region->product projection
    learned_products: np.ndarray | None = None  # n x d' projected product vectors (float16)
    prior_per_room: np.ndarray | None = None  # n x R label prior
    # rows -> the products' index vectors, when the projection is computed for candidates only
    learned_vectors_of: Callable[[np.ndarray], np.ndarray | None] | None = None
    # the label prior evaluated for candidates only (``learned.CatalogPriors``), in place of prior_per_room
    catalog_priors: Any = None

    def projected(self, rows: np.ndarray) -> np.ndarray | None:
        """The learned projection of products ``rows`` (float32 from float16, as stored when held for
        every product), or None without a projection."""
        if self.projection is None:
            return None
        if self.learned_products is not None:
            return self.learned_products[rows].astype(np.float32)
        vectors = self.learned_vectors_of(rows)
        return None if vectors is None else self.projection.transform_products(vectors).astype(np.float16).astype(np.float32)

    @classmethod
    def build(cls, products: pl.DataFrame, categories: "CodedColumn", text_matrix: np.ndarray | None,
              text_mask: np.ndarray | None, style_logits: Callable[[np.ndarray], np.ndarray | None]) -> "ProductFactors":
        """From the catalog's attributes in index order (``ranking.catalog.aligned_catalog``: one row per
        product, nulls where unknown), the products' categories, their unit text vectors (float32;
        stored as float16) and ``style_logits(text_matrix)``: the tempered style-prompt similarities
        of the text vectors (None when they cannot be compared). Column operations only (no Python
        loop over products): at 1M products the per-product loops took minutes, at 10M they do not fit."""
        n = products.height
        member = np.zeros((n, len(ROOM_TYPES)), dtype=np.float64)
        rows, rooms = _pairs(products, "room_hints", {r: i for i, r in enumerate(ROOM_TYPES)})
        member[rows, rooms] = 1.0
        # products naming no known room: the rooms of their category
        by_category = np.zeros((len(categories.names), len(ROOM_TYPES)))
        for c, name in enumerate(categories.names):
            for r in vocab.CATEGORY_ROOMS.get(name, ROOM_TYPES):
                by_category[c, ROOM_TYPES.index(r)] = 1.0
        no_hint = ~member.any(axis=1)
        member[no_hint] = by_category[np.asarray(categories.codes)[no_hint]]

        sizes = np.full(n, -1, dtype=np.int64)
        rows, size = _pairs(products, "size_class", {s: i for i, s in enumerate(_SIZE_CLASSES)})
        sizes[rows] = size

        names, _ = vocabulary_lab()
        C = np.zeros((n, len(names)), dtype=np.float64)
        rows, colour = _pairs(products, "colors", {c: i for i, c in enumerate(names)})
        C[rows, colour] = 1.0
        has_pixel = C.any(axis=1)
        C[has_pixel] /= C[has_pixel].sum(axis=1, keepdims=True)
        non_pixel_value = np.full(n, 0.5)
        rows, _ = _pairs(products, "colors", {"clear": 0})
        non_pixel_value[rows[~has_pixel[rows]]] = _NEUTRAL_FLOOR
        rows, _ = _pairs(products, "colors", {"multicolour": 0})  # multicolour wins over clear
        non_pixel_value[rows[~has_pixel[rows]]] = _MULTICOLOUR_VALUE

        fam_index = {f: i for i, f in enumerate(_MATERIAL_FAMILIES)}
        rows, family = _pairs(products, "materials", {m: fam_index[f] for m, f in vocab.MATERIAL_FAMILY.items()
                                                      if f in fam_index})
        families = np.zeros((n, len(_MATERIAL_FAMILIES)), dtype=bool)
        families[rows, family] = True
        aff = np.asarray([MATERIAL_STYLE_AFFINITY[s] for s in STYLES], dtype=np.float64)  # S x F
        A = np.full((n, len(STYLES)), -np.inf)
        for f in range(len(_MATERIAL_FAMILIES)):  # best family per style, one family at a time (no n x S x F)
            A[families[:, f]] = np.maximum(A[families[:, f]], aff[:, f])
        A[~families.any(axis=1)] = np.nan

        styles = _product_styles(products, text_matrix, text_mask, style_logits)
        if text_matrix is not None:
            # Half precision at rest: cosines of unit vectors move by < 1e-3, and a 100k-product
            # catalog keeps 73 MiB less resident; rows are widened to float32 when scored.
            text_matrix = text_matrix.astype(np.float16)
        return cls(member, sizes, C, has_pixel, non_pixel_value, A, styles, text_matrix, text_mask)

    # the per-product columns a bundle stores (the learned parts come from the scorer attached at load)
    COLUMNS = ("room_member", "size_index", "color_matrix", "has_pixel_color", "non_pixel_value",
               "material_affinity", "styles", "text_matrix", "text_mask")

    def columns(self) -> dict[str, np.ndarray]:
        """The stored columns by name (``text_matrix`` / ``text_mask`` only when there are text vectors)."""
        return {name: getattr(self, name) for name in self.COLUMNS if getattr(self, name) is not None}

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> "ProductFactors":
        """The inverse of :meth:`columns` (arrays may be memory-mapped: rows are read when indexed)."""
        missing = [c for c in cls.COLUMNS[:7] if c not in columns]
        if missing:
            raise ValueError(f"product columns missing: {missing}")
        n = {name: a.shape[0] for name, a in columns.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"product columns disagree on the product count: {n}")
        return cls(**{name: columns.get(name) for name in cls.COLUMNS})

    def for_learned(self, learned: Any, product_ids: Sequence[str], categories: "CodedColumn", index_dim: int,
                    space: str, stored_vectors: Callable[[], np.ndarray | None], *,
                    vectors_of: Callable[[np.ndarray], np.ndarray | None] | None = None,
                    rows_of: Callable[[Sequence[str]], np.ndarray] | None = None) -> "ProductFactors":
        """These factors with the inputs of ``learned`` (a ``LearnedScorer``, or None): the products
        under its projection (when its input dim is the index's ``index_dim``; ``stored_vectors()``:
        the index's vectors) and its label priors per room. With ``vectors_of`` (rows -> those rows'
        vectors) and ``rows_of`` (product ids -> catalog rows, -1 when absent) both are computed per
        query for the candidates instead of held for every product (large catalogs)."""
        learned_products = prior_per_room = None
        proj = getattr(learned, "projection", None)
        if proj is not None:
            if proj.query_map.shape[0] != index_dim:
                log.warning("learned projection expects %d-d vectors; the index holds %d-d %s vectors - "
                            "learned factor disabled", proj.query_map.shape[0], index_dim, space)
                proj = None
            elif vectors_of is not None:
                pass
            else:
                vecs = stored_vectors()
                if vecs is None:
                    log.warning("index cannot reconstruct product vectors - learned factor disabled")
                    proj = None
                else:
                    # half precision at rest, like the text matrix
                    learned_products = proj.transform_products(vecs).astype(np.float16)
        priors = getattr(learned, "priors", None)
        catalog_priors = None
        if priors is not None and rows_of is not None:
            catalog_priors = priors.for_catalog(rows_of(priors.product_ids), categories.codes, categories.names, ROOM_TYPES)
        elif priors is not None:
            eye = np.eye(len(ROOM_TYPES))
            per_room = np.stack([priors.product_prior(list(product_ids), list(categories), eye[r], ROOM_TYPES)
                                 for r in range(len(ROOM_TYPES))], axis=1)
            prior_per_room = per_room.astype(np.float32)  # n x R
        return dataclasses.replace(self, projection=proj, learned_products=learned_products,
                                   prior_per_room=prior_per_room, catalog_priors=catalog_priors,
                                   learned_vectors_of=vectors_of if learned_products is None and proj is not None else None)


def _pairs(products: pl.DataFrame, name: str, index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, index[value])`` of every value of column ``name`` (a list or a single value per product;
    nulls and values ``index`` does not know are left out), once per (row, index) pair."""
    if name not in products.columns or products[name].dtype == pl.Null or not index:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    frame = pl.DataFrame({"row": pl.int_range(products.height, eager=True, dtype=pl.Int64), "value": products[name]})
    if isinstance(frame["value"].dtype, pl.List):
        frame = frame.explode("value")
    frame = (frame.filter(pl.col("value").is_not_null())
             .with_columns(pl.col("value").cast(pl.String).replace_strict(dict(index), default=-1, return_dtype=pl.Int64))
             .filter(pl.col("value") >= 0).unique(maintain_order=True))
    return frame["row"].to_numpy(), frame["value"].to_numpy()


def _product_styles(products: pl.DataFrame, text_matrix, text_mask, style_logits) -> np.ndarray:
    """n x S style distribution of each product: from its text vector (softmax over style prompts)
    mixed with the styles its style words name; uniform when neither says anything."""
    n, S = products.height, len(STYLES)
    Q = np.full((n, S), 1.0 / S)
    if text_matrix is not None:
        logits = style_logits(text_matrix)
        if logits is not None:
            q = softmax(logits, axis=1)
            Q[text_mask] = q[text_mask]
    style_index = {s: i for i, s in enumerate(STYLES)}
    rows, style = _pairs(products, "style_words", {w: style_index[s] for w, s in _STYLE_WORD_TO_STYLE.items()})
    named = np.zeros((n, S))
    named[rows, style] = 1.0
    hits = named.sum(axis=1)
    has = hits > 0
    Q[has] = 0.5 * Q[has] + 0.5 * (named[has] * (1.0 / hits[has])[:, None])
    return Q


# --------------------------------------------------------------------------------------------
# one function per factor: a column of n scores (rows: the candidates' index rows)
# --------------------------------------------------------------------------------------------


def visual(visual_cos: np.ndarray) -> np.ndarray:
    return np.clip((visual_cos + 1.0) / 2.0, 0.0, 1.0)


def text(products: ProductFactors, scene: PreparedScene, rows: np.ndarray, projected_text: bool) -> np.ndarray | None:
    """None (no evidence) without text vectors, or without a caption and a trained projection."""
    if products.text_matrix is None:
        return None
    T = products.text_matrix[rows].astype(np.float32)
    has = products.text_mask[rows]
    sim = None
    if scene.caption_vector is not None:
        sim = T @ scene.caption_vector
    elif projected_text and scene.regions.joint is not None and scene.regions.joint.shape[1] == T.shape[1]:
        sim = (T @ scene.regions.joint.T).max(axis=1)
    if sim is None:
        return None
    return np.where(has, np.clip((sim + 1.0) / 2.0, 0.0, 1.0), 0.5)


def room_fit(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
    # lift of P(the product belongs in the scene's room) over the same probability under a uniform
    # room posterior, squashed L/(1+L) (see the module docstring)
    member = products.room_member[rows]
    lift = (member @ scene.room_probs) / np.maximum(member.mean(axis=1), 1e-9)
    return lift / (1.0 + lift)


def style(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
    lift = len(STYLES) * (products.styles[rows] @ scene.style_probs)
    return lift / (1.0 + lift)


def color(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
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
    C = products.color_matrix[rows]
    return np.where(products.has_pixel_color[rows], C @ match, products.non_pixel_value[rows])


def material(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
    """Affinity under the scene's styles, centred on the product's style-average; 0.5 without materials."""
    out = np.full(rows.shape[0], 0.5)
    A = products.material_affinity[rows]
    has_mat = ~np.isnan(A[:, 0])
    if has_mat.any():
        Am = A[has_mat]
        out[has_mat] = np.clip(0.5 + Am @ scene.style_probs - Am.mean(axis=1), 0.0, 1.0)
    return out


def size(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray:
    fit = np.asarray([ROOM_SIZE_FIT[r] for r in ROOM_TYPES], dtype=np.float64)  # R x 4
    expected = scene.room_probs @ fit  # 4
    sidx = products.size_index[rows]
    return np.where(sidx >= 0, expected[np.maximum(sidx, 0)], float(expected.mean()))


def learned(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray | None:
    projected = products.projected(rows)
    if projected is None:
        return None
    q = products.projection.transform_queries(scene.queries)
    sim = (q @ projected.T).max(axis=0)
    return np.clip((sim + 1.0) / 2.0, 0.0, 1.0)


def prior(products: ProductFactors, scene: PreparedScene, rows: np.ndarray) -> np.ndarray | None:
    """Lift over the catalog-average prior for this scene's room posterior, L/(1+L)."""
    if products.catalog_priors is not None:  # computed for the candidates, against the catalog average
        per_room = products.catalog_priors
        lift = (per_room.per_room(rows) @ scene.room_probs) / max(float(per_room.mean_per_room @ scene.room_probs), 1e-12)
        return lift / (1.0 + lift)
    if products.prior_per_room is None:
        return None
    prior_all = products.prior_per_room @ scene.room_probs.astype(np.float32)
    lift = prior_all[rows] / max(float(prior_all.mean()), 1e-12)
    return lift / (1.0 + lift)


def factor_matrix(products: ProductFactors, scene: PreparedScene, rows: np.ndarray, visual_cos: np.ndarray,
                  *, projected_text: bool) -> np.ndarray:
    """``n x len(FACTORS)`` scores of the candidates ``rows`` (float64; 0.5 where a factor has no
    evidence). ``visual_cos``: each candidate's best region cosine."""
    F = np.full((rows.shape[0], len(FACTORS)), 0.5)
    scores = {
        "visual": visual(visual_cos),
        "text": text(products, scene, rows, projected_text),
        "room_fit": room_fit(products, scene, rows),
        "style": style(products, scene, rows),
        "color": color(products, scene, rows),
        "material": material(products, scene, rows),
        "size": size(products, scene, rows),
        "learned": learned(products, scene, rows),
        "prior": prior(products, scene, rows),
    }
    for name in FACTORS:
        if scores[name] is not None:
            F[:, _COLUMN[name]] = scores[name]
    return F
