"""Synthetic composites: catalog products pasted into scene photos, as exact (region, product) pairs
for training the region->product projection (no Dagster imports).

A labeled room photo gives ~13 (scene, product) pairs but not *where* each product is, and a dataset
has only a few hundred photos. Product photos sit on a white background, so a cut-out mask comes from
the image itself (:func:`product_cutout`). Pasting cut-outs into scene photos at varied scale,
position, brightness, saturation and with part of the object occluded gives any number of pairs whose
region is known exactly: the pasted box, pooled from the scene's feature map the way the scene query
pools its regions (:mod:`scene_assets.regions`). The projection then learns "a product inside
clutter -> that product" from thousands of pairs instead of ~1,500 labels.

Split discipline: every composite records its source scene, and a fold trains only on composites
made from its *training* scenes (:meth:`CompositePairs.for_scenes`), so a scored scene's pixels never
reach the models that score it. Pasted products are drawn uniformly from the catalog (not from the
labels, which would tell which products matter).

Measured (IKEA development split, 5-fold CV, projection-only row): see README "Retrieval quality".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scene_assets.encoders import FeatureMapEncoder
from scene_assets.regions import RegionConfig, input_size_for, pool_regions

__all__ = ["CompositeConfig", "CompositePairs", "make_composites", "product_cutout"]

# a pixel is background when all three channels are at least this bright (product shots on white)
_WHITE = 232


@dataclass(frozen=True)
class CompositeConfig:
    """How many composites and how they vary."""

    per_scene: int = 20  # composites made from each scene photo (0: none, the labels only)
    pastes: int = 3  # products pasted into one composite (one pair each)
    scale: tuple[float, float] = (0.22, 0.5)  # pasted object's long side, as a share of the image's short side
    brightness: tuple[float, float] = (0.65, 1.15)
    saturation: tuple[float, float] = (0.7, 1.2)
    occlusion: float = 0.3  # chance that the lower 15-40 % of the object is hidden
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_scene < 0 or self.pastes < 1:
            raise ValueError("per_scene must be >= 0 and pastes >= 1")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must be 0 < low <= high <= 1, got {self.scale}")
        object.__setattr__(self, "scale", (float(lo), float(hi)))
        object.__setattr__(self, "brightness", tuple(float(v) for v in self.brightness))
        object.__setattr__(self, "saturation", tuple(float(v) for v in self.saturation))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d | {k: list(d[k]) for k in ("scale", "brightness", "saturation")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CompositeConfig":
        d = dict(d)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class CompositePairs:
    """Pooled region features of pasted products: ``vectors[i]`` (raw trunk features of the pasted box,
    or joint vectors for encoders without a feature map) shows ``product_ids[i]``, pasted into a
    composite made from scene ``source_scenes[i]``."""

    vectors: np.ndarray  # M x D float32
    product_ids: list[str]
    source_scenes: list[str]
    space: str  # "trunk" | "joint"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (product or scene id, reason)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.product_ids)

    def for_scenes(self, scene_ids: Sequence[str]) -> "CompositePairs":
        """The pairs made from ``scene_ids`` only (a fold's training scenes)."""
        keep = set(scene_ids)
        idx = np.asarray([i for i, s in enumerate(self.source_scenes) if s in keep], dtype=np.int64)
        return CompositePairs(self.vectors[idx] if len(idx) else self.vectors[:0],
                              [self.product_ids[i] for i in idx], [self.source_scenes[i] for i in idx],
                              self.space, self.skipped, self.seconds)

    def rows(self, product_row: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(indices into vectors, catalog rows)`` of the pairs whose product ``product_row`` knows."""
        pairs = [(i, product_row[p]) for i, p in enumerate(self.product_ids) if p in product_row]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        a, b = zip(*pairs)
        return np.asarray(a, np.int64), np.asarray(b, np.int64)

    def save(self, path: str | Path) -> None:
        from scene_assets.indexes.store import write_atomic

        write_atomic(Path(path), lambda tmp: np.savez(
            tmp, vectors=self.vectors, product_ids=np.asarray(self.product_ids, dtype=str),
            source_scenes=np.asarray(self.source_scenes, dtype=str), space=np.asarray(self.space),
            skipped=np.asarray([list(s) for s in self.skipped], dtype=str).reshape(-1, 2),
            seconds=np.asarray(self.seconds)))

    @classmethod
    def load(cls, path: str | Path) -> "CompositePairs":
        with np.load(path) as z:
            return cls(z["vectors"].astype(np.float32), [str(p) for p in z["product_ids"]],
                       [str(s) for s in z["source_scenes"]], str(z["space"]),
                       [(str(a), str(b)) for a, b in z["skipped"]], float(z["seconds"]))


def product_cutout(image) -> tuple[Any, Any] | None:
    """``(object crop RGB, soft mask L)`` of a product shot on a white background, or None when the
    photo has no white background to cut from (the object would cover < 2 % or > 97 % of it)."""
    from PIL import Image, ImageFilter

    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    fg = rgb.min(axis=2) <= _WHITE
    # close small holes (white highlights inside the object) and drop speckle at its edge
    mask = Image.fromarray(fg.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(5))
    m = np.asarray(mask) > 127
    share = float(m.mean())
    if share < 0.02 or share > 0.97:
        return None
    ys, xs = np.nonzero(m)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return image.convert("RGB").crop(box), mask.crop(box).filter(ImageFilter.GaussianBlur(1))


def _paste(canvas, cutout, rng: np.random.Generator, slot: int, config: CompositeConfig) -> tuple[int, int, int, int]:
    """Paste ``cutout`` into horizontal band ``slot`` of ``canvas`` (bands limit overlap); its box."""
    from PIL import Image, ImageEnhance

    img, mask = cutout
    w, h = canvas.size
    side = rng.uniform(*config.scale) * min(w, h)
    s = side / max(img.size)
    nw, nh = max(8, int(img.size[0] * s)), max(8, int(img.size[1] * s))
    img = img.resize((nw, nh), Image.BICUBIC)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(*config.brightness))
    img = ImageEnhance.Color(img).enhance(rng.uniform(*config.saturation))
    mask = mask.resize((nw, nh), Image.BILINEAR)
    band = w / config.pastes
    x0 = int(rng.uniform(slot * band, max(slot * band, (slot + 1) * band - nw)))
    y0 = int(rng.uniform(0.15 * h, max(0.15 * h, h - nh)))
    if rng.random() < config.occlusion:
        cut = int(nh * rng.uniform(0.15, 0.4))
        mask = mask.copy()
        mask.paste(0, (0, nh - cut, nw, nh))
    canvas.paste(img, (x0, y0), mask)
    return x0, y0, min(w, x0 + nw), min(h, y0 + nh)


def _cells(box: tuple[int, int, int, int], size: tuple[int, int], map_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Map-cell rectangle ``(r0, r1, c0, c1)`` covering a pixel box of an image of ``size`` (w, h)."""
    (x0, y0, x1, y1), (w, h), (mh, mw) = box, size, map_size
    r0, c0 = min(mh - 1, int(y0 / h * mh)), min(mw - 1, int(x0 / w * mw))
    return r0, max(r0 + 1, min(mh, int(np.ceil(y1 / h * mh)))), c0, max(c0 + 1, min(mw, int(np.ceil(x1 / w * mw))))


def composites_key(encoder_fingerprint: str, scene_ids: Sequence[str], product_ids: Sequence[str],
                   region: RegionConfig, config: CompositeConfig) -> str:
    h = hashlib.sha256()
    for part in (encoder_fingerprint, repr(region.to_dict()), repr(config.to_dict()), *scene_ids, "|", *product_ids):
        h.update(str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def make_composites(
    scenes: Iterable[tuple[str, str | Path]],
    products: Sequence[tuple[str, str | Path]],
    encoder,
    *,
    region: RegionConfig | None = None,
    config: CompositeConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> CompositePairs:
    """``config.per_scene`` composites from each ``(scene_id, image path)``, pasting products drawn
    uniformly from ``(product_id, image path)``; ``progress(scenes done)``. A scene or product image that cannot be read (or has
    no white background to cut from) is skipped with the reason recorded; it never stops the run."""
    from PIL import Image

    from scene_assets.images import open_rgb

    region = region or RegionConfig()
    config = config or CompositeConfig()
    t0 = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    products = list(products)
    cutouts: dict[str, Any] = {}
    skipped: list[tuple[str, str]] = []

    def cutout(pid: str, path) -> Any:
        if pid not in cutouts:
            try:
                cutouts[pid] = product_cutout(open_rgb(Path(path)))
                if cutouts[pid] is None:
                    skipped.append((pid, "product photo has no white background to cut the object from"))
            except Exception as e:  # a broken product image skips that product, never the run
                cutouts[pid] = None
                skipped.append((pid, f"product image unreadable: {e}"))
        return cutouts[pid]

    trunk = isinstance(encoder, FeatureMapEncoder)
    vectors: list[np.ndarray] = []
    pasted: list[str] = []
    sources: list[str] = []
    for n, (sid, path) in enumerate(scenes):
        try:
            scene = open_rgb(Path(path))
        except Exception as e:
            skipped.append((sid, f"scene image unreadable: {e}"))
            continue
        in_h, in_w = input_size_for(*scene.size, region)
        base = scene.resize((in_w, in_h), Image.BICUBIC)
        for _ in range(config.per_scene):
            canvas = base.copy()
            boxes, pids = [], []
            for slot in range(config.pastes):
                for _try in range(10):
                    pid, ppath = products[int(rng.integers(len(products)))]
                    c = cutout(pid, ppath)
                    if c is not None:
                        break
                else:
                    continue
                boxes.append(_paste(canvas, c, rng, slot, config))
                pids.append(pid)
            if not boxes:
                continue
            if trunk:
                fmap = encoder.image_feature_map(canvas, size=(in_h, in_w))
                rects = np.asarray([_cells(b, canvas.size, fmap.shape[1:]) for b in boxes])
                vectors.append(pool_regions(fmap, rects, region.pool_power))
            else:
                vectors.append(np.asarray(encoder.encode_images([canvas.crop(b) for b in boxes]), dtype=np.float32))
            pasted += pids
            sources += [sid] * len(pids)
        if progress:
            progress(n + 1)
    dim = vectors[0].shape[1] if vectors else (encoder.trunk_dim if trunk else encoder.dim)
    return CompositePairs(np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32), pasted, sources,
                          "trunk" if trunk else "joint", skipped, time.perf_counter() - t0)
