"""What a scene photo is: room type, design style, colour palette.

`analyze_scene(image, encoder)` returns a :class:`SceneAnalysis` with

* ``room_probs`` over :data:`ROOM_TYPES` and ``style_probs`` over :data:`STYLES`: zero-shot, i.e. the
  cosine between the scene's joint-space image vector and the text vectors of a few prompts per class
  (averaged per class), turned into probabilities with a softmax at a fixed temperature. A caption,
  when given, is extra text evidence: its cosines to the same prompts are added to the image's before
  the softmax. A fitted classifier (anything with ``predict_proba`` over pooled ``1280``-d trunk
  features, plus its class list) replaces the zero-shot image evidence for rooms or styles.
* ``palette``: k-means in CIE Lab over the pixels of a ≤64×64 thumbnail, each cluster named by the
  nearest vocabulary colour (:data:`scene_assets.vocabulary.COLOR_RGB`, distance in Lab), clusters
  with the same name merged, with their pixel share.

About the zero-shot evidence: it is only as good as the image→text alignment of the encoder. The
default encoder's projection head is random until trained (``DefaultEncoder.projection_trained``);
with a random head the image-vs-prompt cosines are noise, so by default (``image_weight="auto"``) the
image evidence is then left out and the posterior is uniform unless a caption or a classifier speaks.
Pass ``image_weight=1.0`` to use it anyway.

Pure numpy / scikit-learn; no Dagster imports. The prompt text vectors are computed once per encoder
and cached.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scene_assets import vocabulary as vocab
from scene_assets.encoders import FeatureMapEncoder

__all__ = [
    "DEFAULT_TEMPERATURE",
    "PaletteColor",
    "ProbabilisticClassifier",
    "ROOM_PROMPTS",
    "ROOM_TYPES",
    "STYLES",
    "STYLE_PROMPTS",
    "SceneAnalysis",
    "analyze_scene",
    "color_palette",
    "lab_to_rgb",
    "prompt_vectors",
    "rgb_to_lab",
    "softmax",
    "vocabulary_lab",
]

ROOM_TYPES: tuple[str, ...] = vocab.ROOM_TYPES
STYLES: tuple[str, ...] = (
    "contemporary", "traditional", "minimalist", "scandinavian", "industrial", "rustic", "bohemian",
    "mid-century modern", "coastal",
)

# Several prompts per class; their text vectors are averaged (then re-normalised) per class.
_ROOM_PHRASES: dict[str, tuple[str, ...]] = {
    "Bedroom": ("a bedroom", "a bedroom with a bed", "a cosy bedroom interior"),
    "Dining": ("a dining room", "a dining area with a dining table and chairs", "a place to eat together"),
    "Living Room": ("a living room", "a living room with a sofa", "a lounge interior"),
    "Kitchen": ("a kitchen", "a kitchen with cabinets and a worktop", "a home kitchen interior"),
    "Baby Children Room": ("a children's room", "a nursery with a baby cot", "a kids' bedroom with toys"),
    "Outdoor": ("an outdoor patio", "a balcony with garden furniture", "a garden terrace"),
    "Home Office": ("a home office", "a study with a desk and an office chair", "a workspace at home"),
    "Hallway": ("a hallway", "an entrance hall with coat hooks and a shoe rack", "a home entryway"),
    "Laundry": ("a laundry room", "a utility room with a washing machine", "a room for washing clothes"),
    "Bathroom": ("a bathroom", "a bathroom with a wash-basin and a shower", "a home bathroom interior"),
}
ROOM_PROMPTS: dict[str, tuple[str, ...]] = {
    room: tuple(f"a photo of {p}" for p in phrases) for room, phrases in _ROOM_PHRASES.items()
}
STYLE_PROMPTS: dict[str, tuple[str, ...]] = {
    "contemporary": ("a contemporary interior", "a modern room with clean lines", "contemporary home decor"),
    "traditional": ("a traditional interior", "a classic room with ornate furniture", "traditional home decor"),
    "minimalist": ("a minimalist interior", "a sparse uncluttered room", "minimalist home decor"),
    "scandinavian": ("a scandinavian interior", "a nordic room with light wood and white walls",
                     "scandinavian home decor"),
    "industrial": ("an industrial interior", "a loft with exposed brick, metal and concrete",
                   "industrial home decor"),
    "rustic": ("a rustic interior", "a farmhouse room with rough wood", "rustic home decor"),
    "bohemian": ("a bohemian interior", "a boho room with plants, rattan and patterned textiles",
                 "bohemian home decor"),
    "mid-century modern": ("a mid-century modern interior", "a retro room with teak furniture",
                           "mid-century modern home decor"),
    "coastal": ("a coastal interior", "a beach house room in white and blue", "coastal home decor"),
}
assert tuple(ROOM_PROMPTS) == ROOM_TYPES and tuple(STYLE_PROMPTS) == STYLES

# Softmax temperature applied to (summed) cosines. Cosines of sentence embeddings to short prompts
# spread over roughly 0.1..0.6, so 0.05 turns a 0.1 cosine lead into a factor e^2 ≈ 7.4.
DEFAULT_TEMPERATURE = 0.05
DEFAULT_PALETTE_CLUSTERS = 6
DEFAULT_PALETTE_SIZE = 64


class ProbabilisticClassifier(Protocol):
    """A fitted classifier: ``predict_proba(X)`` over ``N x 1280`` pooled trunk features."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# colour science (sRGB D65 <-> CIE Lab), numpy only
# --------------------------------------------------------------------------------------------

_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPS = 216 / 24389  # (6/29)^3
_KAPPA = 24389 / 27


def rgb_to_lab(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """sRGB (``... x 3``, 0..255) -> CIE L*a*b* (D65, 2° observer), float64, same leading shape."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_rgb(lab: np.ndarray | Sequence[float]) -> np.ndarray:
    """CIE L*a*b* (D65) -> sRGB 0..255 (float64, clipped to the gamut)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f ** 3 > _EPS, f ** 3, (116.0 * f - 16.0) / _KAPPA) * _WHITE_D65
    lin = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(c * 255.0, 0.0, 255.0)


_VOCAB_LAB: tuple[tuple[str, ...], np.ndarray] | None = None


def vocabulary_lab() -> tuple[tuple[str, ...], np.ndarray]:
    """(colour names, ``K x 3`` Lab) of the vocabulary colours that have a pixel appearance."""
    global _VOCAB_LAB
    if _VOCAB_LAB is None:
        names = tuple(vocab.COLOR_RGB)
        _VOCAB_LAB = (names, rgb_to_lab(np.array([vocab.COLOR_RGB[n] for n in names], dtype=np.float64)))
    return _VOCAB_LAB


# --------------------------------------------------------------------------------------------
# palette
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaletteColor:
    name: str  # vocabulary colour
    share: float  # fraction of pixels
    lab: tuple[float, float, float]  # share-weighted mean Lab of the merged clusters
    hex: str  # that mean as sRGB

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "share": round(self.share, 4),
                "lab": [round(v, 2) for v in self.lab], "hex": self.hex}


def _thumbnail_pixels(image, max_side: int) -> np.ndarray:
    from PIL import Image

    im = image if image.mode == "RGB" else image.convert("RGB")
    w, h = im.size
    scale = min(1.0, max_side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        # reduce first (cheap integer box filter) so the final filter sees few pixels
        factor = max(1, min(w // size[0], h // size[1]) // 2)
        if factor > 1:
            im = im.reduce(factor)
        im = im.resize(size, Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).reshape(-1, 3)


_THREADPOOLS: Any = None


def _single_threaded():
    """All native thread pools at one thread (cached controller: created after sklearn is imported
    so its OpenMP runtime is covered)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def color_palette(
    image,
    *,
    n_colors: int = DEFAULT_PALETTE_CLUSTERS,
    max_side: int = DEFAULT_PALETTE_SIZE,
    seed: int = 0,
) -> list[PaletteColor]:
    """The scene's colours: k-means (``n_colors`` clusters, seeded) in Lab over the pixels of a
    thumbnail at most ``max_side`` a side; clusters named by the nearest vocabulary colour and merged
    by name. Sorted by share, shares sum to 1."""
    from sklearn.cluster import KMeans

    if n_colors < 1:
        raise ValueError("n_colors must be >= 1")
    pixels = _thumbnail_pixels(image, max_side)
    lab = rgb_to_lab(pixels.astype(np.float64))
    distinct = np.unique(pixels, axis=0).shape[0]
    k = int(min(n_colors, distinct, lab.shape[0]))
    if k <= 1:
        centres, labels = lab.mean(axis=0, keepdims=True), np.zeros(lab.shape[0], dtype=np.int64)
    else:
        # One BLAS/OpenMP thread: on a few thousand 3-d points the thread pools cost ~100x the
        # work (measured 340-770 ms with the default pools on 2 cores, 4 ms with one thread).
        with _single_threaded():
            km = KMeans(n_clusters=k, n_init=2, max_iter=100, random_state=seed).fit(lab)
        centres, labels = km.cluster_centers_, km.labels_
    counts = np.bincount(labels, minlength=centres.shape[0]).astype(np.float64)
    shares = counts / counts.sum()
    names, vocab_lab = vocabulary_lab()
    nearest = np.argmin(((centres[:, None, :] - vocab_lab[None, :, :]) ** 2).sum(-1), axis=1)
    merged: dict[str, tuple[float, np.ndarray]] = {}
    for c, share in enumerate(shares):
        if share <= 0:
            continue
        name = names[int(nearest[c])]
        s0, lab0 = merged.get(name, (0.0, np.zeros(3)))
        merged[name] = (s0 + share, lab0 + share * centres[c])
    out = []
    for name, (share, lab_sum) in merged.items():
        mean_lab = lab_sum / share
        r, g, b = (int(round(v)) for v in lab_to_rgb(mean_lab))
        out.append(PaletteColor(name, float(share), tuple(float(v) for v in mean_lab), f"#{r:02x}{g:02x}{b:02x}"))
    out.sort(key=lambda p: (-p.share, p.name))
    return out


# --------------------------------------------------------------------------------------------
# zero-shot / classifier probabilities
# --------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


_PROMPT_CACHE: "weakref.WeakKeyDictionary[Any, dict[str, np.ndarray]]" = weakref.WeakKeyDictionary()
_PROMPT_LOCK = threading.Lock()


def _class_vectors(encoder, prompts: Mapping[str, Sequence[str]]) -> np.ndarray:
    classes = list(prompts)
    texts = [t for c in classes for t in prompts[c]]
    vecs = np.asarray(encoder.encode_texts(texts), dtype=np.float32)
    out = np.zeros((len(classes), vecs.shape[1]), dtype=np.float32)
    i = 0
    for j, c in enumerate(classes):
        n = len(prompts[c])
        m = vecs[i : i + n].mean(axis=0)
        out[j] = m / max(float(np.linalg.norm(m)), 1e-12)
        i += n
    return out


def prompt_vectors(encoder) -> dict[str, np.ndarray]:
    """``{"rooms": R x dim, "styles": S x dim}`` class text vectors (prompts averaged), cached per
    encoder object (the text tower never changes for an encoder)."""
    with _PROMPT_LOCK:
        cached = _PROMPT_CACHE.get(encoder)
    if cached is not None:
        return cached
    out = {"rooms": _class_vectors(encoder, ROOM_PROMPTS), "styles": _class_vectors(encoder, STYLE_PROMPTS)}
    with _PROMPT_LOCK:
        _PROMPT_CACHE[encoder] = out
    return out


def product_style_logits(encoder, temperature: float = DEFAULT_TEMPERATURE):
    """``text_matrix -> tempered similarities of product text vectors to the style prompts`` (None for
    another dimension): the input of ``ProductFactors``' style column, for the recommender and the
    two-stage bundle writer alike. The prompts are encoded on the first call (cached per encoder)."""

    def logits(text_matrix: np.ndarray) -> np.ndarray | None:
        styles = prompt_vectors(encoder)["styles"]
        if styles.shape[1] != text_matrix.shape[1]:
            return None
        return (text_matrix @ styles.T) / temperature

    return logits


def _auto_image_weight(encoder) -> float:
    """1 when the encoder's image and text vectors are meant to be comparable, 0 for the default
    encoder with its untrained (random) projection head."""
    return 1.0 if encoder.image_text_aligned else 0.0


def _classifier_probs(clf: Any, classes: Sequence[str] | None, features: np.ndarray,
                      targets: Sequence[str]) -> np.ndarray:
    """Classifier probabilities re-ordered onto ``targets`` (classes it does not know get 0)."""
    if isinstance(clf, tuple) and len(clf) == 2 and classes is None:
        clf, classes = clf
    classes = list(classes if classes is not None else getattr(clf, "classes_"))
    proba = np.asarray(clf.predict_proba(np.asarray(features, dtype=np.float32).reshape(1, -1)))[0]
    if proba.shape[0] != len(classes):
        raise ValueError(f"classifier gave {proba.shape[0]} probabilities for {len(classes)} classes")
    out = np.zeros(len(targets), dtype=np.float64)
    index = {str(c): i for i, c in enumerate(classes)}
    for j, t in enumerate(targets):
        if t in index:
            out[j] = proba[index[t]]
    total = out.sum()
    if total <= 0:
        raise ValueError(f"classifier classes {classes} share none of {list(targets)}")
    return out / total


def _argmax_or_none(probs: Mapping[str, float]) -> str | None:
    values = list(probs.values())
    if not values or max(values) - min(values) < 1e-9:
        return None
    return max(probs, key=probs.__getitem__)


@dataclass
class SceneAnalysis:
    room_probs: dict[str, float]
    style_probs: dict[str, float]
    palette: list[PaletteColor]
    caption: str | None = None
    room_source: str = "zero_shot"  # zero_shot | classifier | uniform, "+caption" when mixed in
    style_source: str = "zero_shot"
    temperature: float = DEFAULT_TEMPERATURE
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def room_type(self) -> str | None:
        """Most probable room, or None when nothing spoke (uniform posterior)."""
        return _argmax_or_none(self.room_probs)

    @property
    def style(self) -> str | None:
        return _argmax_or_none(self.style_probs)

    def room_vector(self) -> np.ndarray:
        return np.array([self.room_probs[r] for r in ROOM_TYPES], dtype=np.float64)

    def style_vector(self) -> np.ndarray:
        return np.array([self.style_probs[s] for s in STYLES], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "room_type": self.room_type,
            "room_probs": {k: round(v, 4) for k, v in self.room_probs.items()},
            "room_source": self.room_source,
            "style": self.style,
            "style_probs": {k: round(v, 4) for k, v in self.style_probs.items()},
            "style_source": self.style_source,
            "palette": [p.to_dict() for p in self.palette],
            "caption": self.caption,
            "temperature": self.temperature,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def _posterior(
    classes: Sequence[str],
    class_vecs: np.ndarray,
    image_vec: np.ndarray | None,
    image_weight: float,
    caption_vec: np.ndarray | None,
    caption_weight: float,
    classifier_probs: np.ndarray | None,
    temperature: float,
) -> tuple[dict[str, float], str]:
    logits = np.zeros(len(classes), dtype=np.float64)
    sources = []
    if classifier_probs is not None:
        logits += np.log(np.clip(classifier_probs, 1e-9, 1.0))
        sources.append("classifier")
    elif image_vec is not None and image_weight > 0 and image_vec.shape[-1] == class_vecs.shape[1]:
        logits += image_weight * (class_vecs @ image_vec) / temperature
        sources.append("zero_shot")
    if caption_vec is not None and caption_weight > 0:
        logits += caption_weight * (class_vecs @ caption_vec) / temperature
        sources.append("caption")
    probs = softmax(logits) if sources else np.full(len(classes), 1.0 / len(classes))
    return {c: float(p) for c, p in zip(classes, probs)}, "+".join(sources) or "uniform"


def analyze_scene(
    image,
    encoder,
    *,
    caption: str | None = None,
    caption_vector: np.ndarray | None = None,
    image_vector: np.ndarray | None = None,
    trunk_features: np.ndarray | None = None,
    room_classifier: Any = None,
    room_classes: Sequence[str] | None = None,
    style_classifier: Any = None,
    style_classes: Sequence[str] | None = None,
    image_weight: float | str = "auto",
    caption_weight: float = 1.0,
    temperature: float = DEFAULT_TEMPERATURE,
    n_colors: int = DEFAULT_PALETTE_CLUSTERS,
    seed: int = 0,
) -> SceneAnalysis:
    """Room type, style and palette of ``image`` (an RGB PIL image).

    ``caption_vector`` (the caption's text vector), ``image_vector`` (joint space, normalised) and
    ``trunk_features`` (pooled ``1280``-d) can be passed
    when the caller already has them (the recommender takes both from its single region pass);
    otherwise they are computed here (one extra forward pass). Classifiers: ``room_classifier`` is
    anything with ``predict_proba`` over pooled trunk features; its classes come from
    ``room_classes``, its ``classes_`` attribute, or a ``(classifier, classes)`` tuple.
    """
    import time

    timings: dict[str, float] = {}
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    t0 = time.perf_counter()
    palette = color_palette(image, n_colors=n_colors, seed=seed)
    timings["palette"] = (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    w_img = _auto_image_weight(encoder) if image_weight == "auto" else float(image_weight)
    need_trunk = (room_classifier is not None or style_classifier is not None) and trunk_features is None
    if need_trunk:
        if not isinstance(encoder, FeatureMapEncoder):
            raise ValueError(f"a classifier needs pooled trunk features; {type(encoder).__name__} has none")
        trunk_features = encoder.encode_image_trunk_features([image])[0]
    if image_vector is None and w_img > 0 and (room_classifier is None or style_classifier is None):
        image_vector = encoder.encode_images([image])[0]
    vecs = prompt_vectors(encoder)
    caption_vec = None
    if caption_vector is not None:
        caption_vec = np.asarray(caption_vector, dtype=np.float64).ravel()
    elif caption and caption.strip():
        caption_vec = np.asarray(encoder.encode_texts([caption.strip()])[0], dtype=np.float64)
    img_vec = None if image_vector is None else np.asarray(image_vector, dtype=np.float64).ravel()
    if img_vec is not None:
        img_vec = img_vec / max(float(np.linalg.norm(img_vec)), 1e-12)
    room_clf = None if room_classifier is None else _classifier_probs(room_classifier, room_classes, trunk_features, ROOM_TYPES)
    style_clf = None if style_classifier is None else _classifier_probs(style_classifier, style_classes, trunk_features, STYLES)
    room_probs, room_source = _posterior(ROOM_TYPES, vecs["rooms"], img_vec, w_img, caption_vec, caption_weight,
                                         room_clf, temperature)
    style_probs, style_source = _posterior(STYLES, vecs["styles"], img_vec, w_img, caption_vec, caption_weight,
                                           style_clf, temperature)
    timings["probabilities"] = (time.perf_counter() - t0) * 1000
    return SceneAnalysis(
        room_probs=room_probs,
        style_probs=style_probs,
        palette=palette,
        caption=caption,
        room_source=room_source,
        style_source=style_source,
        temperature=temperature,
        timings_ms=timings,
    )


# public name for callers that apply a classifier to features they already have (the evaluation)
classifier_probs = _classifier_probs
