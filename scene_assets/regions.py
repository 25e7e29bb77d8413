"""Region-aware query vectors for a scene from ONE forward pass of the image trunk.

A room photo holds ~13 products and each fills a small part of it, so a scene is queried with many
region vectors and a product scores by its best region (max over regions; see ../shared/FINDINGS.md).
Encoding every crop separately costs one trunk pass per crop (26 crops: 924 ms on 2 cores). Here the
whole image goes through the trunk once at a higher resolution (short side ``short_side``, aspect
kept, both sides rounded to multiples of the trunk stride 32) giving the ``1280 x H x W`` last conv
map, and every region pools a rectangle of map cells (one small matrix product for all regions). Pooling is a generalised mean (GeM, ``pool_power=3`` by default; 1 = plain
average): on the IKEA development scenes GeM beat the average at every resolution and region set
tried (+0.004..0.007 Recall@10, +0.02..0.03 MRR; bench/bench_scene_query.py). Regions:

* ``whole``: the full map;
* ``grids``: ``g x g`` grids over the map (default 2, 3, 4; cell edges rounded to map cells);
* ``windows``: overlapping windows ``(size, stride)`` as fractions of the map side, e.g.
  ``(0.5, 0.25)`` gives 3x3 half-size windows.

The ``N x 1280`` pooled features are the *trunk space* vectors; ``encoder.project_trunk_features``
maps them to the joint space (``N x 384``). Boxes are returned in the original image's pixel
coordinates so results can say which region matched.

Encoders without a feature map (the fake test encoder, open_clip models) fall back to encoding the
same boxes as separate crops (slow, joint space only).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scene_assets.encoders import FeatureMapEncoder
# the centring of index vectors and queries lives with the index vectors; re-exported here for callers
from scene_assets.indexes.vectors import center_and_normalize, center_and_normalize_in_place  # noqa: F401

__all__ = [
    "RegionConfig",
    "single_threaded",
    "SceneRegions",
    "center_and_normalize",
    "center_and_normalize_in_place",
    "compute_regions",
    "input_size_for",
    "region_layout",
]

TRUNK_STRIDE = 32


@dataclass(frozen=True)
class RegionConfig:
    """Which regions to pool and at what resolution."""

    short_side: int = 448  # trunk input short side (pixels); 448 -> 14 map cells
    max_long_side: int = 896  # cap for panoramas / tall photos
    include_whole: bool = True
    grids: tuple[int, ...] = (2, 3, 4)
    windows: tuple[tuple[float, float], ...] = ()  # (size, stride) as fractions of the map side
    pool_power: float = 3.0  # generalised mean over a region's cells: 1 = average, 3 = GeM

    def __post_init__(self) -> None:
        if self.short_side < TRUNK_STRIDE or self.max_long_side < self.short_side:
            raise ValueError("need 32 <= short_side <= max_long_side")
        if any(int(g) < 1 for g in self.grids):
            raise ValueError("grid sizes must be >= 1")
        for size, stride in self.windows:
            if not (0 < size <= 1 and 0 < stride <= 1):
                raise ValueError(f"window (size, stride) must be fractions in (0, 1], got {(size, stride)}")
        object.__setattr__(self, "grids", tuple(int(g) for g in self.grids))
        object.__setattr__(self, "windows", tuple((float(a), float(b)) for a, b in self.windows))
        if not (self.pool_power >= 1.0 and math.isfinite(self.pool_power)):
            raise ValueError(f"pool_power must be a finite number >= 1, got {self.pool_power}")
        if not self.include_whole and not self.grids and not self.windows:
            raise ValueError("RegionConfig selects no region")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grids"] = list(self.grids)
        d["windows"] = [list(w) for w in self.windows]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegionConfig":
        d = dict(d)
        if "grids" in d:
            d["grids"] = tuple(d["grids"])
        if "windows" in d:
            d["windows"] = tuple(tuple(w) for w in d["windows"])
        return cls(**d)

    @classmethod
    def whole_only(cls, short_side: int = 224, max_long_side: int = 448, pool_power: float = 1.0) -> "RegionConfig":
        """The whole image only (average pooled by default, like the standard image embedding)."""
        return cls(short_side=short_side, max_long_side=max_long_side, grids=(), windows=(),
                   pool_power=pool_power)


def input_size_for(width: int, height: int, config: RegionConfig) -> tuple[int, int]:
    """Trunk input ``(h, w)``: short side ``config.short_side``, aspect kept, long side capped,
    both rounded to multiples of 32 (so map cells map exactly onto input pixels)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    scale = config.short_side / min(width, height)
    scale = min(scale, config.max_long_side / max(width, height))
    h = max(TRUNK_STRIDE, int(round(height * scale / TRUNK_STRIDE)) * TRUNK_STRIDE)
    w = max(TRUNK_STRIDE, int(round(width * scale / TRUNK_STRIDE)) * TRUNK_STRIDE)
    return h, w


def _edges(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive spans covering ``0..length`` (rounded; each at least one cell)."""
    out = []
    for i in range(parts):
        a = int(math.floor(i * length / parts + 0.5))
        b = int(math.floor((i + 1) * length / parts + 0.5))
        a = min(a, length - 1)
        out.append((a, max(b, a + 1)))
    return out


def _window_spans(length: int, size: float, stride: float) -> list[tuple[int, int]]:
    n = max(1, int(round(size * length)))
    step = max(1, int(round(stride * length)))
    starts = list(range(0, max(1, length - n + 1), step))
    if starts[-1] + n < length:
        starts.append(length - n)
    return [(s, min(length, s + n)) for s in starts]


def region_layout(map_h: int, map_w: int, config: RegionConfig) -> tuple[np.ndarray, list[str]]:
    """Regions as map-cell rectangles ``N x 4`` int ``(r0, r1, c0, c1)`` (end exclusive) + labels.
    Duplicate rectangles (tiny maps) are kept once."""
    rects: list[tuple[int, int, int, int]] = []
    labels: list[str] = []
    seen: set[tuple[int, int, int, int]] = set()

    def add(rect, label):
        if rect not in seen:
            seen.add(rect)
            rects.append(rect)
            labels.append(label)

    if config.include_whole:
        add((0, map_h, 0, map_w), "whole")
    for g in config.grids:
        for i, (r0, r1) in enumerate(_edges(map_h, g)):
            for j, (c0, c1) in enumerate(_edges(map_w, g)):
                add((r0, r1, c0, c1), f"grid{g}:{i},{j}")
    for size, stride in config.windows:
        for i, (r0, r1) in enumerate(_window_spans(map_h, size, stride)):
            for j, (c0, c1) in enumerate(_window_spans(map_w, size, stride)):
                add((r0, r1, c0, c1), f"win{size:g}/{stride:g}:{i},{j}")
    return np.asarray(rects, dtype=np.int64).reshape(-1, 4), labels


def pool_regions(fmap: np.ndarray, rects: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Generalised mean ``(mean x^p)^(1/p)`` of ``fmap`` (``C x H x W``, non-negative when
    ``power != 1``) over each rectangle -> ``N x C``. ``power=1`` is average pooling, ``power=3``
    GeM. One matrix product: (N x HW area-normalised cell masks) @ (HW x C) - no cancellation, so
    float32 is exact enough, and ~1 ms for 30 regions of a 14 x 19 map."""
    c, h, w = fmap.shape
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    masks = np.zeros((rects.shape[0], h, w), dtype=np.float32)
    for i, (r0, r1, c0, c1) in enumerate(rects):
        masks[i, r0:r1, c0:c1] = 1.0 / float((r1 - r0) * (c1 - c0))
    x = np.asarray(fmap, dtype=np.float32).reshape(c, h * w)
    if power != 1.0:
        x = np.power(np.maximum(x, 0.0), power, dtype=np.float32)
    pooled = masks.reshape(rects.shape[0], h * w) @ x.T
    if power != 1.0:
        pooled = np.power(np.maximum(pooled, 0.0), 1.0 / power)
    return np.ascontiguousarray(pooled, dtype=np.float32)


_THREADPOOLS: Any = None


def single_threaded(user_api: str | None = "blas"):
    """Context manager: the native thread pools of ``user_api`` ("blas", "openmp" or None = all) at
    one thread, restored on exit (threadpoolctl; ~6 us per use).

    Why: on a 2-core machine the small numpy matrix products of a scene query are not worth two
    threads, and a 2-thread OpenBLAS pool keeps spinning after each call, stealing the CPU from the
    next torch forward pass (measured: trunk pass 68 ms alone, 130 ms right after a 2-thread pooling
    matmul, 75 ms with the matmul on one thread)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api=user_api)


@dataclass
class SceneRegions:
    """Region vectors of one scene."""

    boxes: np.ndarray  # N x 4 float (x0, y0, x1, y1) in original image pixels
    labels: list[str]
    trunk: np.ndarray | None  # N x 1280 pooled trunk features (raw), None for crop fallback
    joint: np.ndarray | None  # N x dim projected + normalised (None until projected)
    image_size: tuple[int, int]  # (w, h) of the original image
    input_size: tuple[int, int]  # (h, w) fed to the trunk
    map_size: tuple[int, int]  # (H, W) of the feature map (virtual for the crop fallback)
    method: str = "feature_map"  # feature_map | crops
    # average of the whole map (1280-d): comparable to ``encode_image_trunk_features`` pooling,
    # what a room classifier over pooled trunk features expects (None for the crop fallback)
    global_average: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def vectors(self, space: str = "joint", mean: np.ndarray | None = None) -> np.ndarray:
        """Query vectors: ``"joint"`` (projected) or ``"trunk"`` (pooled 1280-d), normalised and
        centred on ``mean`` when given (:func:`center_and_normalize`)."""
        if space == "joint":
            if self.joint is None:
                raise ValueError("joint vectors not computed; call compute_regions(..., project=True)")
            return center_and_normalize(self.joint, mean)
        if space == "trunk":
            if self.trunk is None:
                raise ValueError(f"no trunk features (regions computed by {self.method!r})")
            return center_and_normalize(self.trunk, mean)
        raise ValueError(f"space must be 'joint' or 'trunk', got {space!r}")

    def box(self, i: int) -> list[int]:
        return [int(round(v)) for v in self.boxes[i]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self),
            "method": self.method,
            "image_size": list(self.image_size),
            "input_size": list(self.input_size),
            "map_size": list(self.map_size),
            "regions": [{"label": lab, "box": self.box(i)} for i, lab in enumerate(self.labels)],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def _rects_to_boxes(rects: np.ndarray, map_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    map_h, map_w = map_size
    w, h = image_size
    r0, r1, c0, c1 = rects.T.astype(np.float64)
    return np.stack([c0 * w / map_w, r0 * h / map_h, c1 * w / map_w, r1 * h / map_h], axis=1)


def compute_regions(
    image,
    encoder,
    config: RegionConfig | None = None,
    *,
    project: bool = True,
) -> SceneRegions:
    """Region vectors of ``image`` (RGB PIL image) from one trunk pass (see module docstring).

    ``project=True`` also fills ``joint`` via ``encoder.project_trunk_features``."""
    config = config or RegionConfig()
    w, h = image.size
    in_h, in_w = input_size_for(w, h, config)
    timings: dict[str, float] = {}
    if isinstance(encoder, FeatureMapEncoder):
        t0 = time.perf_counter()
        # large photos: a cheap integer box reduction first (both sides stay >= the target), so the
        # bicubic resize inside image_feature_map works on < 2x the target size
        factor = min(w // in_w, h // in_h)
        small = image.reduce(factor) if factor >= 2 else image
        fmap = encoder.image_feature_map(small, size=(in_h, in_w))
        timings["forward"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        map_size = (int(fmap.shape[1]), int(fmap.shape[2]))
        rects, labels = region_layout(*map_size, config)
        with single_threaded():
            trunk = pool_regions(fmap, rects, config.pool_power)
            global_average = fmap.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
        timings["pool"] = (time.perf_counter() - t0) * 1000
        joint = None
        if project:
            t0 = time.perf_counter()
            joint = encoder.project_trunk_features(trunk)
            timings["project"] = (time.perf_counter() - t0) * 1000
        return SceneRegions(_rects_to_boxes(rects, map_size, (w, h)), labels, trunk, joint, (w, h),
                            (in_h, in_w), map_size, "feature_map", global_average, timings)

    # fallback: separate crops through the encoder's own preprocessing
    t0 = time.perf_counter()
    map_size = (in_h // TRUNK_STRIDE, in_w // TRUNK_STRIDE)
    rects, labels = region_layout(*map_size, config)
    boxes = _rects_to_boxes(rects, map_size, (w, h))
    crops = [image.crop(tuple(int(round(v)) for v in b)) for b in boxes]
    joint = np.asarray(encoder.encode_images(crops), dtype=np.float32)
    timings["forward"] = (time.perf_counter() - t0) * 1000
    return SceneRegions(boxes, labels, None, joint, (w, h), (in_h, in_w), map_size, "crops", None, timings)
