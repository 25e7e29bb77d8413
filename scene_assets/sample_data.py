"""Deterministic generator of a small *synthetic* labeled dataset.

The dataset has the project's "labeled dataset" layout (see ``/work/shared/ikea/README.md``
for the real data):

==========================================  ====================================================
``products.csv``                            product_id, name, type, color, size, description,
                                            image (relative path or empty: catalogs have gaps)
``scenes.csv``                              scene_id, image, room_type, caption
``scene_products.csv``                      scene_id, product_id (the products in that scene)
``images/products/<product_id>.jpg``        product shot: a shape drawn on a white background
``images/scenes/<scene_id>.jpg``            640x480 room with background-removed products pasted
``README.md``                               says the data is synthetic and how it was made
``manifest.json``                           generator name/version, seed, size and sha256 per file
==========================================  ====================================================

Everything is invented: the product names are made up (not real IKEA names), the pictures
are drawn with Pillow. The data exists so that pipelines, tests and demos run without the
licensed real dataset. Nothing is read from disk or the network.

Determinism: the same ``seed`` gives byte-identical files (CSV written by :mod:`csv` with
``\\n`` line ends, JPEG written by Pillow at fixed quality without EXIF/timestamps, randomness
only from :class:`random.Random` seeded with strings). Bytes can differ between Pillow /
libjpeg versions; :func:`ensure_sample_dataset` therefore only checks the manifest (version,
seed, files present with the recorded sizes) and never regenerates a committed copy merely
because another Pillow would encode it differently.

Public API: :func:`generate_sample_dataset`, :func:`ensure_sample_dataset`,
:func:`is_sample_dataset_complete`, plus the constants :data:`GENERATOR_VERSION`,
:data:`DEFAULT_SEED`, :data:`MANIFEST_NAME`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scene_assets.indexes.store import write_atomic_bytes

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "PRODUCT_COLUMNS",
    "SCENE_COLUMNS",
    "SCENE_PRODUCT_COLUMNS",
    "ensure_sample_dataset",
    "generate_sample_dataset",
    "is_sample_dataset_complete",
]

GENERATOR_NAME = "scene_assets.sample_data"
#: Bump whenever the output of :func:`generate_sample_dataset` changes for a given seed.
GENERATOR_VERSION = "1"
DEFAULT_SEED = 7
MANIFEST_NAME = "manifest.json"

PRODUCT_COLUMNS = ("product_id", "name", "type", "color", "size", "description", "image")
SCENE_COLUMNS = ("scene_id", "image", "room_type", "caption")
SCENE_PRODUCT_COLUMNS = ("scene_id", "product_id")

SCENE_W, SCENE_H = 640, 480
PRODUCT_SIZES = (256, 288, 320)
PRODUCT_JPEG_QUALITY = 88
SCENE_JPEG_QUALITY = 82
_SUPERSAMPLE = 2

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)


# --------------------------------------------------------------------------------------
# colour helpers
# --------------------------------------------------------------------------------------


def _shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, int(round(v * f)))) for v in c)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(a[i] * (1 - t) + b[i] * t)) for i in range(3))  # type: ignore[return-value]


def _outline_for(c: RGB) -> RGB:
    # light colours get a grey contour (as white furniture has in real product shots)
    if sum(c) > 600:
        return (186, 186, 186)
    return _shade(c, 0.72)


# --------------------------------------------------------------------------------------
# product painter: draws in unit coordinates on a supersampled white canvas, keeps a mask
# --------------------------------------------------------------------------------------


class _Painter:
    def __init__(self, size: int) -> None:
        self.size = size
        self.n = size * _SUPERSAMPLE
        self.img = Image.new("RGB", (self.n, self.n), WHITE)
        self.mask = Image.new("L", (self.n, self.n), 0)
        self.d = ImageDraw.Draw(self.img)
        self.m = ImageDraw.Draw(self.mask)

    # geometry -------------------------------------------------------------------------
    def _box(self, b: Sequence[float]) -> list[float]:
        return [v * self.n for v in b]

    def _pts(self, pts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.n, y * self.n) for x, y in pts]

    def _w(self, w: float) -> int:
        return max(1, int(round(w * self.n)))

    def _geom(self, draw: ImageDraw.ImageDraw, kind: str, geom, fill, outline, width: int, radius: float):
        if kind == "rect":
            draw.rounded_rectangle(self._box(geom), radius=radius * self.n, fill=fill, outline=outline, width=width)
        elif kind == "ellipse":
            draw.ellipse(self._box(geom), fill=fill, outline=outline, width=width)
        elif kind == "poly":
            draw.polygon(self._pts(geom), fill=fill, outline=outline, width=width)
        elif kind == "chord":
            box, start, end = geom
            draw.chord(self._box(box), start, end, fill=fill, outline=outline, width=width)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)

    def shape(
        self,
        kind: str,
        geom,
        fill: RGB | None,
        *,
        pattern: str = "solid",
        accent: RGB | None = None,
        period: float = 0.07,
        outline: RGB | None | str = "auto",
        width: float = 0.006,
        radius: float = 0.0,
    ) -> None:
        w = self._w(width)
        if outline == "auto":
            outline = _outline_for(fill) if fill is not None else None
        if fill is not None and pattern != "solid":
            tmp = Image.new("L", (self.n, self.n), 0)
            self._geom(ImageDraw.Draw(tmp), kind, geom, 255, None, 0, radius)
            self.img.paste(_texture(self.n, fill, accent or _shade(fill, 0.7), pattern, period), (0, 0), tmp)
            if outline is not None:
                self._geom(self.d, kind, geom, None, outline, w, radius)
        else:
            self._geom(self.d, kind, geom, fill, outline, w, radius)
        self._geom(self.m, kind, geom, 255 if fill is not None else None, 255 if outline is not None else None, w, radius)

    def rect(self, box, fill, **kw) -> None:
        self.shape("rect", box, fill, **kw)

    def ellipse(self, box, fill, **kw) -> None:
        self.shape("ellipse", box, fill, **kw)

    def poly(self, pts, fill, **kw) -> None:
        self.shape("poly", pts, fill, **kw)

    def line(self, pts, fill: RGB, width: float = 0.012) -> None:
        w = self._w(width)
        self.d.line(self._pts(pts), fill=fill, width=w, joint="curve")
        self.m.line(self._pts(pts), fill=255, width=w, joint="curve")

    def render(self) -> tuple[Image.Image, Image.Image]:
        size = (self.size, self.size)
        return self.img.resize(size, Image.Resampling.LANCZOS), self.mask.resize(size, Image.Resampling.LANCZOS)


def _texture(n: int, base: RGB, accent: RGB, pattern: str, period: float) -> Image.Image:
    tex = Image.new("RGB", (n, n), base)
    d = ImageDraw.Draw(tex)
    p = max(6, int(round(period * n)))
    if pattern == "stripes":
        for y in range(0, n, p):
            d.rectangle([0, y, n, y + p // 2 - 1], fill=accent)
    elif pattern == "vstripes":
        for x in range(0, n, p):
            d.rectangle([x, 0, x + p // 3, n], fill=accent)
    elif pattern == "dots":
        r = max(2, p // 5)
        for iy, y in enumerate(range(p // 2, n, p)):
            off = p // 2 if iy % 2 else 0
            for x in range(p // 4 + off, n, p):
                d.ellipse([x - r, y - r, x + r, y + r], fill=accent)
    elif pattern == "check":
        for iy, y in enumerate(range(0, n, p)):
            for ix, x in enumerate(range(0, n, p)):
                if (ix + iy) % 2:
                    d.rectangle([x, y, x + p - 1, y + p - 1], fill=accent)
    elif pattern == "grain":
        for i, y in enumerate(range(0, n, max(3, p // 3))):
            d.line([(0, y), (n, y + (i % 3) * 2)], fill=accent, width=1)
    elif pattern == "weave":
        for y in range(0, n, max(4, p // 2)):
            d.line([(0, y), (n, y)], fill=accent, width=max(1, p // 10))
        for x in range(0, n, p):
            d.line([(x, 0), (x, n)], fill=_mix(base, accent, 0.5), width=max(1, p // 14))
    elif pattern == "glass":
        for i in range(n):  # soft vertical gradient
            d.line([(0, i), (n, i)], fill=_mix(base, accent, i / n * 0.5))
        d.polygon([(n * 0.15, n), (n * 0.35, n), (n * 0.85, 0), (n * 0.65, 0)], fill=_mix(base, WHITE, 0.55))
        d.polygon([(n * 0.42, n), (n * 0.48, n), (n * 0.98, 0), (n * 0.92, 0)], fill=_mix(base, WHITE, 0.4))
    elif pattern != "solid":  # pragma: no cover - programming error
        raise ValueError(pattern)
    return tex


# --------------------------------------------------------------------------------------
# the catalog
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    key: str
    kind: str
    name: str
    type: str
    color: str
    size: str
    description: str
    base: RGB
    accent: RGB = (200, 200, 200)
    detail: RGB = (60, 50, 45)
    pattern: str = "solid"
    variant: str = ""
    has_image: bool = True


_VMPI = "View more product information "

# Names are invented (checked not to be names of the real catalog). Series names repeat
# across products as in a real catalog; colours/sizes/descriptions sometimes missing.
_CATALOG: tuple[_Item, ...] = (
    # living room seating
    _Item("sofa_grey", "sofa", "HOLMSVIK", "Three-seat sofa", "Grey", "228x88 cm",
          _VMPI + "The cover is easy to keep clean as it is removable and can be machine washed.",
          (150, 152, 158), detail=(45, 40, 36), variant="3"),
    _Item("sofa_blue", "sofa", "FJÄLLBRO", "Two-seat sofa", "Dark blue", "176x88 cm",
          "Deep seat cushions with pocket springs give a firm and comfortable sit.",
          (40, 64, 112), detail=(176, 130, 84), variant="2"),
    _Item("armchair_yellow", "armchair", "HOLMSVIK", "Armchair", "Yellow", "82x80 cm",
          _VMPI + "Matches the three-seat sofa in the same series.", (222, 168, 38), detail=(45, 40, 36)),
    _Item("armchair_beige", "armchair", "VÅGSTRÖM", "Armchair", "Beige,birch", "66x83 cm",
          "Layer-glued bent birch frame with a soft, removable cushion.",
          (214, 194, 160), detail=(196, 154, 104), variant="wood"),
    # tables
    _Item("ctable_round", "coffee_table", "TRINDELUND", "Coffee table", "White", "75 cm",
          "Rounded edges and a smooth surface that is easy to wipe clean.", (246, 246, 243),
          detail=(190, 150, 105), variant="round"),
    _Item("ctable_rect", "coffee_table", "SKOGSLIND", "Coffee table", "Black-brown", "118x58 cm",
          _VMPI + "A separate shelf under the top keeps magazines and remotes out of sight.",
          (64, 48, 40), variant="rect"),
    _Item("dining_oak", "dining_table", "MATSLUND", "Table", "Oak", "180x90 cm",
          "Solid oak top that seats six; the surface gets a richer tone over time.",
          (196, 156, 108), accent=(170, 128, 84), pattern="grain", variant="rect"),
    _Item("dining_round", "dining_table", "RUNDHAGA", "Table", "White", "105 cm",
          "A round pedestal table gives everyone plenty of leg room.", (244, 244, 240),
          detail=(150, 150, 150), variant="round"),
    _Item("desk_white", "desk", "SKRIVLIDEN", "Desk", "White", "120x60 cm",
          _VMPI + "The drawer unit can be placed to the left or to the right.", (245, 245, 242),
          detail=(120, 120, 120)),
    _Item("outdoor_table", "outdoor_table", "ALTANVIK", "Table, outdoor", "Grey", "140x78 cm",
          "Slatted acacia top, stained grey, that lets rain drain away.", (150, 148, 140)),
    # chairs and stools
    _Item("chair_black", "chair", "SITTBO", "Chair", "Black", "", "",
          (38, 38, 40), variant="slats"),
    _Item("chair_white", "chair", "SITTBO", "Chair", "White,birch", "",
          "Moulded seat shell on solid birch legs.", (244, 244, 240), detail=(200, 160, 110),
          variant="shell"),
    _Item("bar_stool", "bar_stool", "PALLHULT", "Bar stool", "Stainless steel", "63 cm",
          _VMPI + "The footrest makes it comfortable to sit for a long time.", (168, 172, 178)),
    _Item("swivel_chair", "swivel_chair", "SNURRVIK", "Swivel chair", "Dark grey", "",
          "Adjustable seat height and a backrest that follows your movements.", (72, 74, 80),
          detail=(30, 30, 32)),
    _Item("outdoor_chair", "outdoor_chair", "ALTANVIK", "Chair, outdoor", "Brown stained", "",
          "Slatted chair in solid acacia; can be stacked to save space.", (128, 86, 56)),
    # beds and storage
    _Item("bed_white", "bed", "SOVMARK", "Bed frame", "White", "160x200 cm",
          _VMPI + "Adjustable bed sides allow you to use mattresses of different thicknesses.",
          (244, 244, 241), accent=(172, 176, 184), detail=(150, 154, 162)),
    _Item("bed_darkwood", "bed", "DRÖMSTA", "Bed frame", "Black-brown", "140x200 cm",
          "Headboard in solid wood with a clean, simple look.", (70, 52, 42),
          accent=(170, 200, 226), detail=(240, 244, 248), pattern="stripes"),
    _Item("cot_white", "cot", "VAGGSTA", "Cot", "White", "60x120 cm",
          "The bed base can be placed at two heights.", (246, 246, 244), accent=(250, 228, 160)),
    _Item("wardrobe_white", "wardrobe", "GARDEVIK", "Wardrobe", "White", "100x58x201 cm",
          _VMPI + "Adjustable hinges ensure that the doors hang straight.", (243, 243, 240),
          detail=(150, 150, 150)),
    _Item("chest_pine", "chest", "LÅDBERGA", "Chest of 3 drawers", "Pine", "59,88,117x78 cm",
          "Solid pine, a natural material that ages beautifully.", (220, 184, 132),
          detail=(120, 84, 50)),
    _Item("shoe_cabinet", "shoe_cabinet", "SKOSTRAND", "Shoe cabinet with 2 compartments",
          "Grey-green", "80x127 cm", "Holds at least 8 pairs of shoes on little floor space.",
          (132, 150, 136), detail=(60, 60, 60)),
    _Item("bookcase_white", "bookcase", "BOKVALLA", "Bookcase", "White", "80x202 cm",
          _VMPI + "Adjustable shelves; adapt the space between the shelves to your needs.",
          (244, 244, 241)),
    _Item("cube_shelf", "cube_shelf", "RUTHYLLA", "Shelving unit", "Black-brown", "77,147x147 cm",
          "Use it as a room divider or against the wall; add boxes to hide the clutter.",
          (66, 50, 42), accent=(214, 196, 164)),
    _Item("wall_shelf_oak", "wall_shelf", "PLANKEBO", "Wall shelf", "Oak veneer", "80 cm",
          "Hidden mounting hardware makes the shelf appear to float.", (200, 160, 112),
          detail=(40, 40, 40)),
    _Item("trolley_turquoise", "trolley", "RULLEBY", "Kitchen trolley", "Turquoise", "",
          "Extra storage that you can move to wherever you need it.", (64, 170, 168)),
    _Item("toybox_pink", "toy_box", "TOVSKRIN", "Box with lid", "Pink", "42x35x33 cm",
          "Keeps toys tidy; the hole in the lid is also a handle.", (238, 160, 182),
          accent=(252, 236, 242), pattern="dots"),
    _Item("coat_stand", "coat_stand", "HÄNGLUND", "Hat and coat stand", "Black", "181 cm", "",
          (36, 36, 38), accent=(176, 64, 56)),
    # textiles
    _Item("rug_stripes", "rug", "RANDVIK", "Rug, flatwoven", "Multicolour", "170x240 cm",
          _VMPI + "The rug is reversible, so it lasts longer.", (232, 222, 200),
          accent=(186, 72, 58), detail=(150, 130, 110), pattern="stripes"),
    _Item("rug_dots", "rug", "MOSSKULLA", "Rug, low pile", "Grey", "133x195 cm",
          "Dense, thick pile dampens sound and is soft to walk on.", (176, 176, 178),
          accent=(120, 120, 126), detail=(140, 140, 144), pattern="dots"),
    _Item("rug_round", "rug", "SNÖFJUN", "Rug, high pile", "Off-white", "130 cm",
          "The thick pile dampens sound and provides a soft surface to play on.",
          (240, 234, 222), accent=(222, 214, 198), variant="round", has_image=False),
    _Item("rug_runner", "rug", "KNOPPSTA", "Rug, flatwoven", "Blue,white", "80x250 cm",
          "A long runner for the hallway.", (246, 246, 246), accent=(52, 86, 150),
          detail=(52, 86, 150), pattern="check", variant="runner"),
    _Item("cushion_check", "cushion", "RUTEBO", "Cushion cover", "Red,white", "50x50 cm",
          _VMPI + "The zip makes the cover easy to remove.", (250, 250, 248),
          accent=(196, 44, 48), pattern="check"),
    _Item("cushion_stripes", "cushion", "SOLSKÄR", "Cushion cover", "Yellow", "50x50 cm",
          "Cotton cover with woven stripes.", (246, 214, 90), accent=(252, 244, 214),
          pattern="vstripes"),
    _Item("cushion_dots", "cushion", "PRICKEBO", "Cushion", "Turquoise", "40x58 cm", "",
          (48, 160, 170), accent=(236, 248, 248), pattern="dots", variant="lumbar"),
    _Item("soft_toy", "soft_toy", "NALLEBY", "Soft toy", "", "30 cm",
          "Tested for safety and suitable for all ages.", (152, 102, 62), accent=(214, 176, 132)),
    # lighting
    _Item("floor_lamp", "floor_lamp", "LJUSMARK", "Floor lamp", "Black", "150 cm",
          _VMPI + "Gives a soft, mood-creating light in your room.", (34, 34, 36),
          accent=(236, 228, 210)),
    _Item("table_lamp", "table_lamp", "LJUSMARK", "Table lamp", "White", "36 cm",
          "Gives a soft, mood-creating light.", (248, 248, 244), accent=(120, 150, 170)),
    _Item("pendant_dome", "pendant_dome", "BRASSVIK", "Pendant lamp", "Brass-colour", "38 cm",
          _VMPI + "Gives a directed light; good over a dining table.", (196, 156, 72),
          accent=(255, 236, 170)),
    _Item("pendant_globe", "pendant_globe", "GLOBERUD", "Pendant lamp", "White", "40 cm",
          "Gives a diffused light that is pleasant to the eye.", (247, 247, 244)),
    # decoration
    _Item("vase_blue", "vase", "BLÅSKVIK", "Vase", "Blue", "21 cm", "",
          (80, 130, 196), accent=(140, 180, 226)),
    _Item("vase_green", "vase", "GRÖNSKVIK", "Vase", "Green", "30 cm",
          "Mouth-blown glass; each vase is unique.", (70, 140, 90), accent=(130, 190, 140),
          variant="tall", has_image=False),
    _Item("pot_terracotta", "plant_pot", "KRUKELID", "Plant pot", "Terracotta", "15 cm",
          "Glazed inside, so it holds water.", (188, 98, 60), accent=(60, 130, 60)),
    _Item("pot_white", "plant_pot", "KRUKELID", "Plant pot", "White", "12 cm",
          "Glazed inside, so it holds water.", (246, 246, 244), accent=(84, 150, 70),
          variant="small"),
    _Item("mirror_round", "mirror", "SPEGLUND", "Mirror", "Black", "50 cm",
          _VMPI + "Safety film reduces damage if the glass is broken.", (34, 34, 36),
          accent=(200, 212, 222), variant="round"),
    _Item("mirror_tall", "mirror", "GLANSVIK", "Mirror", "Gold-colour", "40x150 cm",
          "Full-length mirror to see your whole outfit.", (200, 166, 80),
          accent=(198, 210, 220), variant="tall"),
    _Item("frame_landscape", "frame", "RAMSLÖV", "Frame", "White", "40x50 cm",
          "The picture is included; replace it with your own.", (246, 246, 244),
          accent=(150, 196, 232), variant="landscape"),
    _Item("frame_abstract", "frame", "RAMSLÖV", "Frame", "Black", "30x40 cm", "",
          (30, 30, 30), accent=(226, 120, 70), variant="abstract", has_image=False),
)


# --------------------------------------------------------------------------------------
# drawing one product per kind
# --------------------------------------------------------------------------------------


def _draw_sofa(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, leg = it.base, it.detail
    seats = int(it.variant or 3)
    dk, md, lt = _shade(b, 0.8), _shade(b, 0.9), _shade(b, 1.08)
    for x in (0.11, 0.85):
        p.rect((x, 0.74, x + 0.04, 0.85), leg)
    p.rect((0.10, 0.28, 0.90, 0.62), md, radius=0.05)
    sw = 0.66 / seats
    for i in range(seats):
        x0 = 0.17 + i * sw
        p.rect((x0 + 0.008, 0.32, x0 + sw - 0.008, 0.58), b, radius=0.04)
    p.rect((0.15, 0.64, 0.85, 0.78), dk, radius=0.015)
    for i in range(seats):
        x0 = 0.17 + i * sw
        p.rect((x0 + 0.004, 0.54, x0 + sw - 0.004, 0.68), lt, radius=0.025)
    p.rect((0.05, 0.44, 0.18, 0.79), md, radius=0.04)
    p.rect((0.82, 0.44, 0.95, 0.79), md, radius=0.04)


def _draw_armchair(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, wood = it.base, it.detail
    if it.variant == "wood":
        p.line([(0.27, 0.60), (0.22, 0.92)], wood, 0.03)
        p.line([(0.73, 0.60), (0.78, 0.92)], wood, 0.03)
        p.poly([(0.32, 0.12), (0.68, 0.12), (0.73, 0.60), (0.27, 0.60)], b)
        p.poly([(0.25, 0.56), (0.75, 0.56), (0.80, 0.70), (0.20, 0.70)], _shade(b, 1.05))
        p.line([(0.17, 0.48), (0.33, 0.48)], wood, 0.028)
        p.line([(0.67, 0.48), (0.83, 0.48)], wood, 0.028)
        p.line([(0.20, 0.48), (0.18, 0.92)], wood, 0.03)
        p.line([(0.80, 0.48), (0.82, 0.92)], wood, 0.03)
        return
    dk, md, lt = _shade(b, 0.8), _shade(b, 0.9), _shade(b, 1.08)
    for x in (0.23, 0.73):
        p.rect((x, 0.76, x + 0.04, 0.88), it.detail)
    p.rect((0.24, 0.16, 0.76, 0.62), md, radius=0.08)
    p.rect((0.22, 0.64, 0.78, 0.78), dk, radius=0.02)
    p.rect((0.28, 0.52, 0.72, 0.68), lt, radius=0.03)
    p.rect((0.15, 0.40, 0.30, 0.79), b, radius=0.05)
    p.rect((0.70, 0.40, 0.85, 0.79), b, radius=0.05)


def _draw_chair(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "shell":
        legc = it.detail
        for (x0, x1) in ((0.36, 0.30), (0.64, 0.70), (0.44, 0.42), (0.56, 0.58)):
            p.line([(x0, 0.58), (x1, 0.94)], legc, 0.022)
        p.rect((0.31, 0.10, 0.69, 0.50), b, radius=0.12)
        p.rect((0.27, 0.46, 0.73, 0.60), _shade(b, 0.97), radius=0.06)
        return
    dk = _shade(b, 1.25) if sum(b) < 200 else _shade(b, 0.8)
    p.line([(0.36, 0.58), (0.34, 0.94)], b, 0.028)
    p.line([(0.64, 0.58), (0.66, 0.94)], b, 0.028)
    p.line([(0.35, 0.10), (0.35, 0.56)], b, 0.03)
    p.line([(0.65, 0.10), (0.65, 0.56)], b, 0.03)
    p.rect((0.33, 0.10, 0.67, 0.19), b, radius=0.01)
    for x in (0.43, 0.50, 0.57):
        p.line([(x, 0.19), (x, 0.52)], b, 0.018)
    p.poly([(0.30, 0.52), (0.70, 0.52), (0.74, 0.61), (0.26, 0.61)], dk)
    p.line([(0.28, 0.61), (0.27, 0.96)], b, 0.03)
    p.line([(0.72, 0.61), (0.73, 0.96)], b, 0.03)


def _draw_bar_stool(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    dk = _shade(b, 0.75)
    for (x0, x1) in ((0.37, 0.30), (0.63, 0.70), (0.46, 0.44), (0.54, 0.56)):
        p.line([(x0, 0.24), (x1, 0.95)], dk, 0.02)
    p.ellipse((0.31, 0.64, 0.69, 0.72), None, outline=dk, width=0.016)
    p.rect((0.30, 0.19, 0.70, 0.26), dk, radius=0.03)
    p.ellipse((0.30, 0.13, 0.70, 0.23), _shade(b, 1.1))


def _draw_swivel_chair(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, blk = it.base, it.detail
    metal = (150, 152, 156)
    hub = (0.5, 0.84)
    for end in ((0.16, 0.90), (0.84, 0.90), (0.30, 0.95), (0.70, 0.95), (0.5, 0.88)):
        p.line([hub, end], blk, 0.025)
        p.ellipse((end[0] - 0.03, end[1] - 0.01, end[0] + 0.03, end[1] + 0.05), blk)
    p.rect((0.475, 0.58, 0.525, 0.84), metal)
    p.line([(0.26, 0.46), (0.26, 0.58), (0.20, 0.58)], blk, 0.02)
    p.line([(0.74, 0.46), (0.74, 0.58), (0.80, 0.58)], blk, 0.02)
    p.rect((0.31, 0.05, 0.69, 0.47), b, radius=0.08)
    p.rect((0.36, 0.10, 0.64, 0.42), _shade(b, 1.12), radius=0.06, outline=None)
    p.rect((0.25, 0.47, 0.75, 0.60), _shade(b, 0.9), radius=0.05)


def _draw_coffee_table(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "round":
        leg = it.detail
        p.rect((0.22, 0.52, 0.255, 0.86), leg)
        p.rect((0.745, 0.52, 0.78, 0.86), leg)
        p.rect((0.48, 0.56, 0.52, 0.90), leg)
        p.ellipse((0.08, 0.43, 0.92, 0.61), _shade(b, 0.88))
        p.ellipse((0.08, 0.40, 0.92, 0.58), b)
        return
    dk = _shade(b, 1.3)
    p.rect((0.16, 0.48, 0.19, 0.80), _shade(b, 0.8))
    p.rect((0.81, 0.48, 0.84, 0.80), _shade(b, 0.8))
    p.poly([(0.14, 0.70), (0.86, 0.70), (0.91, 0.76), (0.09, 0.76)], dk)
    p.poly([(0.14, 0.40), (0.86, 0.40), (0.94, 0.49), (0.06, 0.49)], b)
    p.rect((0.06, 0.49, 0.94, 0.54), dk)
    p.rect((0.07, 0.54, 0.11, 0.86), b)
    p.rect((0.89, 0.54, 0.93, 0.86), b)


def _draw_dining_table(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "round":
        p.ellipse((0.30, 0.82, 0.70, 0.90), _shade(b, 0.86))
        p.rect((0.46, 0.40, 0.54, 0.86), _shade(b, 0.92))
        p.ellipse((0.10, 0.31, 0.90, 0.47), _shade(b, 0.86))
        p.ellipse((0.10, 0.28, 0.90, 0.44), b)
        return
    dk = _shade(b, 0.78)
    p.rect((0.14, 0.40, 0.17, 0.78), dk)
    p.rect((0.83, 0.40, 0.86, 0.78), dk)
    p.poly([(0.10, 0.30), (0.90, 0.30), (0.97, 0.40), (0.03, 0.40)], b, pattern=it.pattern, accent=it.accent,
           period=0.05)
    p.rect((0.03, 0.40, 0.97, 0.45), dk)
    p.rect((0.05, 0.45, 0.09, 0.90), _shade(b, 0.9))
    p.rect((0.91, 0.45, 0.95, 0.90), _shade(b, 0.9))


def _draw_desk(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.13, 0.40, 0.16, 0.80), _shade(b, 0.86))
    p.rect((0.06, 0.42, 0.10, 0.88), b)
    p.rect((0.60, 0.42, 0.93, 0.88), b)
    for y in (0.42, 0.57, 0.72):
        p.rect((0.62, y + 0.015, 0.91, y + 0.14), b)
        p.rect((0.73, y + 0.06, 0.80, y + 0.075), h, outline=None)
    p.rect((0.04, 0.35, 0.96, 0.42), b)


def _draw_outdoor_table(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    dk = _shade(b, 0.75)
    p.line([(0.16, 0.42), (0.14, 0.82)], dk, 0.03)
    p.line([(0.84, 0.42), (0.86, 0.82)], dk, 0.03)
    p.poly([(0.12, 0.32), (0.88, 0.32), (0.96, 0.44), (0.04, 0.44)], b)
    for t in (0.2, 0.4, 0.6, 0.8):
        p.line([(0.12 + 0.76 * t, 0.32), (0.04 + 0.92 * t, 0.44)], dk, 0.006)
    p.rect((0.04, 0.44, 0.96, 0.48), dk)
    p.line([(0.08, 0.48), (0.07, 0.92)], b, 0.035)
    p.line([(0.92, 0.48), (0.93, 0.92)], b, 0.035)


def _draw_outdoor_chair(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    dk = _shade(b, 0.75)
    p.line([(0.33, 0.55), (0.31, 0.93)], dk, 0.03)
    p.line([(0.67, 0.55), (0.69, 0.93)], dk, 0.03)
    for i in range(5):
        x = 0.34 + i * 0.08
        p.rect((x, 0.10, x + 0.06, 0.52), b, radius=0.01)
    p.rect((0.30, 0.08, 0.70, 0.13), dk, radius=0.01)
    for i in range(3):
        y = 0.52 + i * 0.035
        p.poly([(0.30 - i * 0.012, y), (0.70 + i * 0.012, y), (0.71 + i * 0.012, y + 0.03),
                (0.29 - i * 0.012, y + 0.03)], b)
    p.line([(0.26, 0.62), (0.25, 0.96)], b, 0.035)
    p.line([(0.74, 0.62), (0.75, 0.96)], b, 0.035)
    p.line([(0.24, 0.42), (0.36, 0.42)], dk, 0.025)
    p.line([(0.64, 0.42), (0.76, 0.42)], dk, 0.025)


def _draw_bed(p: _Painter, it: _Item, rng: random.Random) -> None:
    frame, duvet, pat = it.base, it.accent, it.detail
    p.rect((0.06, 0.86, 0.10, 0.92), _shade(frame, 0.85))
    p.rect((0.90, 0.86, 0.94, 0.92), _shade(frame, 0.85))
    p.rect((0.06, 0.26, 0.94, 0.58), frame, radius=0.015)
    p.rect((0.10, 0.30, 0.90, 0.50), _shade(frame, 0.93 if sum(frame) > 500 else 1.15), radius=0.01)
    pillow = (250, 250, 248)
    p.rect((0.15, 0.38, 0.47, 0.52), pillow, radius=0.04)
    p.rect((0.53, 0.38, 0.85, 0.52), pillow, radius=0.04)
    p.poly([(0.12, 0.50), (0.88, 0.50), (0.96, 0.68), (0.04, 0.68)], duvet, pattern=it.pattern, accent=pat,
           period=0.06)
    p.rect((0.04, 0.68, 0.96, 0.79), _shade(duvet, 0.88), pattern=it.pattern, accent=_shade(pat, 0.9),
           period=0.06)
    p.rect((0.03, 0.78, 0.97, 0.87), frame, radius=0.01)


def _draw_cot(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.12, 0.56, 0.88, 0.72), it.accent)
    for i in range(12):
        x = 0.17 + i * 0.06
        p.rect((x, 0.24, x + 0.022, 0.72), b)
    p.rect((0.08, 0.20, 0.92, 0.26), b, radius=0.01)
    p.rect((0.08, 0.70, 0.92, 0.76), b, radius=0.01)
    p.rect((0.07, 0.16, 0.13, 0.92), b, radius=0.01)
    p.rect((0.87, 0.16, 0.93, 0.92), b, radius=0.01)


def _draw_wardrobe(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.20, 0.03, 0.80, 0.93), b)
    p.rect((0.21, 0.93, 0.79, 0.97), _shade(b, 0.85))
    p.rect((0.22, 0.05, 0.495, 0.91), _shade(b, 0.98))
    p.rect((0.505, 0.05, 0.78, 0.91), _shade(b, 0.98))
    p.rect((0.455, 0.42, 0.47, 0.56), h, outline=None)
    p.rect((0.53, 0.42, 0.545, 0.56), h, outline=None)


def _draw_chest(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, k = it.base, it.detail
    for x in (0.16, 0.80):
        p.rect((x, 0.85, x + 0.04, 0.91), _shade(b, 0.8))
    p.rect((0.14, 0.34, 0.86, 0.86), _shade(b, 0.94))
    p.rect((0.11, 0.29, 0.89, 0.35), _shade(b, 1.05))
    for y in (0.36, 0.53, 0.70):
        p.rect((0.16, y + 0.01, 0.84, y + 0.155), b, radius=0.005)
        p.ellipse((0.30, y + 0.065, 0.34, y + 0.10), k, outline=None)
        p.ellipse((0.66, y + 0.065, 0.70, y + 0.10), k, outline=None)


def _draw_shoe_cabinet(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.18, 0.84, 0.22, 0.90), _shade(b, 0.7))
    p.rect((0.78, 0.84, 0.82, 0.90), _shade(b, 0.7))
    p.rect((0.14, 0.18, 0.86, 0.85), b)
    for y in (0.20, 0.52):
        p.rect((0.16, y, 0.84, y + 0.31), _shade(b, 1.05))
        p.rect((0.42, y + 0.03, 0.58, y + 0.045), h, outline=None)


_BOOK_COLOURS: tuple[RGB, ...] = (
    (180, 60, 50), (60, 90, 140), (220, 180, 70), (90, 130, 90), (230, 225, 210),
    (120, 80, 110), (40, 40, 44), (200, 120, 70), (150, 170, 190),
)


def _books(p: _Painter, rng: random.Random, x0: float, x1: float, y_bottom: float, max_h: float) -> None:
    x = x0
    while x < x1 - 0.02:
        if rng.random() < 0.18:
            x += rng.uniform(0.03, 0.07)
            continue
        w = rng.uniform(0.012, 0.022)
        h = rng.uniform(0.55, 0.95) * max_h
        if x + w > x1:
            break
        p.rect((x, y_bottom - h, x + w, y_bottom), rng.choice(_BOOK_COLOURS), width=0.003)
        x += w + 0.002


def _draw_bookcase(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.26, 0.03, 0.74, 0.97), b)
    p.rect((0.29, 0.05, 0.71, 0.93), _shade(b, 0.9), outline=None)
    ys = (0.05, 0.23, 0.41, 0.59, 0.77, 0.93)
    for y0, y1 in zip(ys[:-1], ys[1:]):
        _books(p, rng, 0.30, 0.70, y1, (y1 - y0) * 0.85)
        p.rect((0.28, y1, 0.72, y1 + 0.016), b)


def _draw_cube_shelf(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.08, 0.08, 0.92, 0.92), b)
    for iy in range(4):
        for ix in range(4):
            x0, y0 = 0.10 + ix * 0.205, 0.10 + iy * 0.205
            p.rect((x0, y0, x0 + 0.185, y0 + 0.185), _shade(b, 0.7), outline=None)
            r = rng.random()
            if r < 0.3:
                p.rect((x0 + 0.01, y0 + 0.02, x0 + 0.175, y0 + 0.185), it.accent, radius=0.01)
                p.rect((x0 + 0.07, y0 + 0.05, x0 + 0.115, y0 + 0.07), _shade(it.accent, 0.6), outline=None)
            elif r < 0.6:
                _books(p, rng, x0 + 0.01, x0 + 0.175, y0 + 0.185, 0.16)


def _draw_wall_shelf(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, br = it.base, it.detail
    p.poly([(0.20, 0.57), (0.24, 0.57), (0.24, 0.68)], br)
    p.poly([(0.76, 0.57), (0.80, 0.57), (0.76, 0.68)], br)
    _books(p, rng, 0.12, 0.40, 0.52, 0.17)
    p.ellipse((0.58, 0.36, 0.70, 0.52), (90, 150, 190))
    p.rect((0.62, 0.30, 0.66, 0.38), (90, 150, 190))
    p.rect((0.76, 0.44, 0.86, 0.52), (230, 200, 150))
    p.rect((0.08, 0.52, 0.92, 0.575), b, pattern="grain", accent=_shade(b, 0.88), period=0.03)


def _draw_trolley(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    dk = _shade(b, 0.75)
    p.rect((0.23, 0.12, 0.26, 0.88), dk)
    p.rect((0.74, 0.12, 0.77, 0.88), dk)
    for y in (0.12, 0.42, 0.70):
        p.poly([(0.25, y), (0.75, y), (0.79, y + 0.04), (0.21, y + 0.04)], _shade(b, 1.1))
        p.rect((0.21, y + 0.04, 0.79, y + 0.12), b)
    for x in (0.21, 0.71):
        p.ellipse((x, 0.86, x + 0.08, 0.94), (40, 40, 40))


def _draw_toy_box(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.16, 0.40, 0.84, 0.86), b, pattern=it.pattern, accent=it.accent, period=0.08, radius=0.02)
    p.rect((0.13, 0.32, 0.87, 0.41), _shade(b, 0.9), radius=0.02)
    p.ellipse((0.42, 0.345, 0.58, 0.385), (90, 60, 70), outline=None)


def _draw_coat_stand(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    for end in ((0.30, 0.96), (0.70, 0.96), (0.5, 0.95)):
        p.line([(0.5, 0.84), end], b, 0.02)
    p.line([(0.5, 0.05), (0.5, 0.90)], b, 0.022)
    for (x, y) in ((0.36, 0.06), (0.64, 0.06), (0.40, 0.16), (0.60, 0.16)):
        p.line([(0.5, y + 0.05), (x, y)], b, 0.014)
    coat = it.accent
    p.poly([(0.55, 0.14), (0.64, 0.16), (0.70, 0.52), (0.56, 0.56), (0.52, 0.20)], coat)
    p.ellipse((0.40, 0.02, 0.60, 0.08), (200, 190, 160))


def _draw_rug(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "round":
        p.ellipse((0.06, 0.06, 0.94, 0.94), b)
        for r in (0.30, 0.20):
            p.ellipse((0.5 - r, 0.5 - r, 0.5 + r, 0.5 + r), None, outline=it.accent, width=0.01)
        return
    box = (0.32, 0.05, 0.68, 0.95) if it.variant == "runner" else (0.06, 0.16, 0.94, 0.84)
    x0, y0, x1, y1 = box
    # fringe
    if it.variant == "runner":
        for i in range(12):
            x = x0 + (i + 0.5) * (x1 - x0) / 12
            p.line([(x, y0 - 0.03), (x, y1 + 0.03)], it.detail, 0.004)
    else:
        for i in range(16):
            y = y0 + (i + 0.5) * (y1 - y0) / 16
            p.line([(x0 - 0.03, y), (x1 + 0.03, y)], it.detail, 0.004)
    p.rect(box, b, pattern=it.pattern, accent=it.accent, period=0.09)
    p.rect((x0 + 0.025, y0 + 0.025, x1 - 0.025, y1 - 0.025), None, outline=it.detail, width=0.008)


def _draw_cushion(p: _Painter, it: _Item, rng: random.Random) -> None:
    box = (0.10, 0.26, 0.90, 0.74) if it.variant == "lumbar" else (0.14, 0.14, 0.86, 0.86)
    p.rect(box, it.base, pattern=it.pattern, accent=it.accent, period=0.1, radius=0.12)
    x0, y0, x1, y1 = box
    p.rect((x0 + 0.04, y0 + 0.04, x1 - 0.04, y1 - 0.04), None, outline=_shade(it.base, 0.8), width=0.004,
           radius=0.09)


def _draw_soft_toy(p: _Painter, it: _Item, rng: random.Random) -> None:
    b, lt = it.base, it.accent
    p.ellipse((0.28, 0.46, 0.72, 0.92), b)
    p.ellipse((0.20, 0.50, 0.34, 0.70), b)
    p.ellipse((0.66, 0.50, 0.80, 0.70), b)
    p.ellipse((0.26, 0.80, 0.44, 0.95), lt)
    p.ellipse((0.56, 0.80, 0.74, 0.95), lt)
    p.ellipse((0.27, 0.10, 0.41, 0.24), b)
    p.ellipse((0.59, 0.10, 0.73, 0.24), b)
    p.ellipse((0.31, 0.14, 0.69, 0.50), b)
    p.ellipse((0.42, 0.32, 0.58, 0.45), lt)
    for x in (0.40, 0.56):
        p.ellipse((x, 0.25, x + 0.04, 0.29), (30, 24, 20), outline=None)
    p.ellipse((0.47, 0.33, 0.53, 0.37), (30, 24, 20), outline=None)


def _draw_floor_lamp(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    p.ellipse((0.37, 0.92, 0.63, 0.97), b)
    p.line([(0.5, 0.94), (0.5, 0.22)], b, 0.016)
    p.poly([(0.39, 0.04), (0.61, 0.04), (0.67, 0.25), (0.33, 0.25)], it.accent)


def _draw_table_lamp(p: _Painter, it: _Item, rng: random.Random) -> None:
    p.ellipse((0.36, 0.52, 0.64, 0.92), it.accent)
    p.rect((0.47, 0.44, 0.53, 0.54), _shade(it.accent, 0.8))
    p.poly([(0.34, 0.16), (0.66, 0.16), (0.76, 0.46), (0.24, 0.46)], it.base)


def _draw_pendant_dome(p: _Painter, it: _Item, rng: random.Random) -> None:
    p.line([(0.5, 0.0), (0.5, 0.34)], (30, 30, 30), 0.012)
    p.rect((0.46, 0.32, 0.54, 0.39), _shade(it.base, 0.8))
    p.ellipse((0.30, 0.54, 0.70, 0.62), it.accent, outline=None)
    p.shape("chord", ((0.20, 0.36, 0.80, 0.80), 180, 360), it.base)


def _draw_pendant_globe(p: _Painter, it: _Item, rng: random.Random) -> None:
    p.line([(0.5, 0.0), (0.5, 0.30)], (30, 30, 30), 0.012)
    p.rect((0.46, 0.27, 0.54, 0.32), (120, 120, 120))
    p.ellipse((0.27, 0.30, 0.73, 0.76), it.base)
    p.ellipse((0.36, 0.38, 0.48, 0.50), WHITE, outline=None)


def _draw_vase(p: _Painter, it: _Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "tall":
        p.rect((0.38, 0.10, 0.62, 0.92), b, radius=0.06)
        p.rect((0.42, 0.16, 0.46, 0.86), it.accent, outline=None)
        return
    p.rect((0.42, 0.18, 0.58, 0.50), b)
    p.ellipse((0.40, 0.14, 0.60, 0.21), _shade(b, 0.9))
    p.ellipse((0.30, 0.40, 0.70, 0.92), b)
    p.ellipse((0.37, 0.50, 0.45, 0.70), it.accent, outline=None)


def _leaf(cx: float, cy: float, ang: float, length: float, width: float) -> list[tuple[float, float]]:
    dx, dy = math.cos(ang), math.sin(ang)
    nx, ny = -dy, dx
    tip = (cx + dx * length, cy + dy * length)
    mid = (cx + dx * length * 0.5, cy + dy * length * 0.5)
    return [(cx, cy), (mid[0] + nx * width, mid[1] + ny * width), tip, (mid[0] - nx * width, mid[1] - ny * width)]


def _draw_plant_pot(p: _Painter, it: _Item, rng: random.Random) -> None:
    small = it.variant == "small"
    top = 0.62 if small else 0.56
    green = it.accent
    for i in range(9 if small else 13):
        ang = -math.pi / 2 + rng.uniform(-1.25, 1.25)
        length = rng.uniform(0.22, 0.32) if small else rng.uniform(0.28, 0.46)
        col = _shade(green, rng.uniform(0.75, 1.2))
        p.poly(_leaf(0.5 + rng.uniform(-0.04, 0.04), top + 0.02, ang, length, length * 0.22), col)
    x0, x1 = (0.34, 0.66) if small else (0.30, 0.70)
    p.poly([(x0 + 0.02, top), (x1 - 0.02, top), (x1 - 0.06, 0.93), (x0 + 0.06, 0.93)], it.base)
    p.rect((x0, top - 0.02, x1, top + 0.05), _shade(it.base, 0.92))


def _draw_mirror(p: _Painter, it: _Item, rng: random.Random) -> None:
    if it.variant == "round":
        p.ellipse((0.10, 0.10, 0.90, 0.90), it.base)
        p.ellipse((0.15, 0.15, 0.85, 0.85), it.accent, pattern="glass", accent=(160, 176, 190), outline=None)
        return
    p.rect((0.32, 0.03, 0.68, 0.97), it.base, radius=0.01)
    p.rect((0.35, 0.055, 0.65, 0.945), it.accent, pattern="glass", accent=(160, 176, 190), outline=None)


def _draw_frame(p: _Painter, it: _Item, rng: random.Random) -> None:
    p.rect((0.18, 0.08, 0.82, 0.92), it.base)
    p.rect((0.22, 0.12, 0.78, 0.88), (250, 250, 247), outline=None)
    x0, y0, x1, y1 = 0.29, 0.22, 0.71, 0.78
    if it.variant == "landscape":
        p.rect((x0, y0, x1, y1), it.accent, outline=None)
        p.ellipse((0.56, 0.28, 0.64, 0.36), (250, 210, 90), outline=None)
        p.poly([(x0, 0.60), (0.42, 0.48), (0.55, 0.56), (0.63, 0.50), (x1, 0.56), (x1, y1), (x0, y1)],
               (96, 150, 90), outline=None)
        p.poly([(x0, 0.70), (0.50, 0.63), (x1, 0.69), (x1, y1), (x0, y1)], (70, 120, 70), outline=None)
    else:
        p.rect((x0, y0, x1, y1), (238, 232, 220), outline=None)
        p.ellipse((0.33, 0.28, 0.55, 0.50), it.accent, outline=None)
        p.rect((0.46, 0.46, 0.66, 0.72), (60, 90, 130), outline=None)
        p.rect((0.34, 0.60, 0.44, 0.74), (30, 30, 30), outline=None)


_DRAW: dict[str, Callable[[_Painter, _Item, random.Random], None]] = {
    "sofa": _draw_sofa,
    "armchair": _draw_armchair,
    "chair": _draw_chair,
    "bar_stool": _draw_bar_stool,
    "swivel_chair": _draw_swivel_chair,
    "outdoor_chair": _draw_outdoor_chair,
    "coffee_table": _draw_coffee_table,
    "dining_table": _draw_dining_table,
    "desk": _draw_desk,
    "outdoor_table": _draw_outdoor_table,
    "bed": _draw_bed,
    "cot": _draw_cot,
    "wardrobe": _draw_wardrobe,
    "chest": _draw_chest,
    "shoe_cabinet": _draw_shoe_cabinet,
    "bookcase": _draw_bookcase,
    "cube_shelf": _draw_cube_shelf,
    "wall_shelf": _draw_wall_shelf,
    "trolley": _draw_trolley,
    "toy_box": _draw_toy_box,
    "coat_stand": _draw_coat_stand,
    "rug": _draw_rug,
    "cushion": _draw_cushion,
    "soft_toy": _draw_soft_toy,
    "floor_lamp": _draw_floor_lamp,
    "table_lamp": _draw_table_lamp,
    "pendant_dome": _draw_pendant_dome,
    "pendant_globe": _draw_pendant_globe,
    "vase": _draw_vase,
    "plant_pot": _draw_plant_pot,
    "mirror": _draw_mirror,
    "frame": _draw_frame,
}

# width of the object in a scene, as a fraction of the scene width; and where, measured from
# the top of the object's bounding box (fraction of its height), things put "on" it rest.
_SCENE_WIDTH: dict[str, float] = {
    "sofa": 0.44, "armchair": 0.21, "chair": 0.12, "bar_stool": 0.09, "swivel_chair": 0.16,
    "outdoor_chair": 0.15, "coffee_table": 0.26, "dining_table": 0.40, "desk": 0.36,
    "outdoor_table": 0.36, "bed": 0.52, "cot": 0.30, "wardrobe": 0.21, "chest": 0.20,
    "shoe_cabinet": 0.22, "bookcase": 0.17, "cube_shelf": 0.25, "wall_shelf": 0.26,
    "trolley": 0.11, "toy_box": 0.15, "coat_stand": 0.10, "rug": 0.56, "cushion": 0.075,
    "soft_toy": 0.09, "floor_lamp": 0.09, "table_lamp": 0.07, "pendant_dome": 0.12,
    "pendant_globe": 0.10, "vase": 0.05, "plant_pot": 0.10, "mirror": 0.13, "frame": 0.11,
    "dining_table:round": 0.30, "bed": 0.48,
}
_REST_LEVEL: dict[str, float] = {
    "sofa": 0.50, "armchair": 0.55, "bed": 0.36, "dining_table": 0.08, "dining_table:round": 0.13,
    "coffee_table": 0.10, "coffee_table:round": 0.18, "desk": 0.03, "outdoor_table": 0.10, "chest": 0.04,
    "shoe_cabinet": 0.02, "toy_box": 0.03, "outdoor_chair": 0.55, "cube_shelf": 0.01, "wall_shelf": 0.60,
}


def _lookup(table: dict[str, float], item: _Item, default: float) -> float:
    return table.get(f"{item.kind}:{item.variant}", table.get(item.kind, default))


@dataclass
class _Product:
    item: _Item
    product_id: str
    size: int
    rgb: Image.Image
    mask: Image.Image


def _render_product(item: _Item, seed: int) -> tuple[Image.Image, Image.Image, int]:
    rng = random.Random(f"{seed}:product:{item.key}")
    size = rng.choice(PRODUCT_SIZES)
    painter = _Painter(size)
    _DRAW[item.kind](painter, item, rng)
    rgb, mask = painter.render()
    return rgb, mask, size


def _product_ids(seed: int, n: int) -> list[str]:
    rng = random.Random(f"{seed}:product-ids")
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        digits = f"{rng.randrange(10**8):08d}"
        pid = f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"
        if pid not in seen:
            seen.add(pid)
            out.append(pid)
    return out


# --------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------

# room geometry (one-point perspective)
_VP = (320.0, 196.0)
_BX0, _BY0, _BX1, _BY1 = 70, 24, 570, 300  # back wall


@dataclass(frozen=True)
class _Slot:
    role: str  # rug | back | side | mid | front | wall | ceiling | on | pair
    keys: tuple[str, ...]
    x: float = 0.5
    anchor: int | None = None  # index of an earlier slot
    optional: float = 0.0  # probability to leave the slot empty


@dataclass(frozen=True)
class _Room:
    name: str
    room_type: str
    captions: tuple[str, ...]
    wall: RGB
    floor: str
    floor_rgb: RGB
    slots: tuple[_Slot, ...]
    window: float | None = None  # x centre (fraction of width) of a window on the back wall
    extras: tuple[str, ...] = ()
    tint: tuple[float, float, float] = (1.0, 0.98, 0.95)


_CUSHIONS = ("cushion_check", "cushion_stripes", "cushion_dots")

_ROOMS: tuple[_Room, ...] = (
    _Room("living_a", "Living Room",
          ("a relaxed living room with room for friends", "a warm living room in sandy beige tones",
           "a cosy corner for lazy sunday afternoons"),
          (226, 216, 198), "planks", (196, 160, 118),
          (
              _Slot("rug", ("rug_stripes", "rug_dots")),
              _Slot("back", ("sofa_grey", "sofa_blue"), x=0.42),
              _Slot("wall", ("frame_landscape", "mirror_round"), anchor=1),
              _Slot("on", _CUSHIONS, anchor=1),
              _Slot("on", _CUSHIONS, anchor=1, optional=0.3),
              _Slot("side", ("floor_lamp", "pot_terracotta"), x=0.84),
              _Slot("front", ("ctable_round", "ctable_rect"), x=0.46),
          ),
          window=0.80),
    _Room("living_b", "Living Room",
          ("a green living room full of books", "a calm living room in soft greens",
           "a reading nook that invites you to stay"),
          (196, 212, 190), "planks", (214, 186, 146),
          (
              _Slot("rug", ("rug_dots", "rug_stripes")),
              _Slot("back", ("bookcase_white", "cube_shelf"), x=0.78),
              _Slot("back", ("sofa_blue", "sofa_grey"), x=0.36),
              _Slot("on", _CUSHIONS, anchor=2),
              _Slot("side", ("pot_terracotta", "pot_white"), x=0.07),
              _Slot("front", ("armchair_yellow", "armchair_beige"), x=0.66),
              _Slot("ceiling", ("pendant_dome", "pendant_globe"), x=0.40, optional=0.4),
          ),
          window=0.16),
    _Room("bedroom", "Bedroom",
          ("a calm bedroom in soft greys", "a bright bedroom that makes mornings easier",
           "a bedroom with space for everything you own"),
          (206, 212, 220), "planks", (206, 178, 140),
          (
              _Slot("rug", ("rug_dots", "rug_stripes"), optional=0.3),
              _Slot("back", ("bed_white", "bed_darkwood"), x=0.44),
              _Slot("back", ("wardrobe_white",), x=0.87),
              _Slot("back", ("chest_pine",), x=0.10),
              _Slot("wall", ("frame_landscape", "mirror_round"), anchor=3),
              _Slot("on", ("cushion_dots", "cushion_check"), anchor=1),
              _Slot("on", ("table_lamp", "vase_blue"), anchor=3, optional=0.5),
              _Slot("ceiling", ("pendant_globe", "pendant_dome"), x=0.44, optional=0.4),
          ),
          window=0.66),
    _Room("dining", "Dining",
          ("a rustic way to dine with the whole family", "a dining room for long dinners",
           "dinner is served in warm wood tones"),
          (238, 232, 222), "planks", (150, 110, 80),
          (
              _Slot("back", ("cube_shelf", "bookcase_white"), x=0.84, optional=0.4),
              _Slot("mid", ("dining_oak", "dining_round"), x=0.44),
              _Slot("ceiling", ("pendant_dome", "pendant_globe"), anchor=1),
              _Slot("on", ("vase_green", "vase_blue", "pot_white"), anchor=1),
              _Slot("pair", ("chair_black", "chair_white"), anchor=1),
              _Slot("side", ("mirror_tall", "floor_lamp"), x=0.12, optional=0.4),
          ),
          window=0.62, extras=("dado",)),
    _Room("kitchen", "Kitchen",
          ("a small kitchen for smart chefs", "a fresh kitchen with a splash of turquoise",
           "a bright kitchen where everyone gathers"),
          (240, 240, 236), "tiles", (200, 200, 196),
          (
              _Slot("back", ("bar_stool",), x=0.14),
              _Slot("back", ("trolley_turquoise",), x=0.90),
              _Slot("mid", ("dining_round",), x=0.56),
              _Slot("ceiling", ("pendant_globe",), anchor=2, optional=0.3),
              _Slot("on", ("pot_white", "vase_blue"), anchor=2),
              _Slot("pair", ("chair_white", "chair_black"), anchor=2),
          ),
          window=0.70, extras=("kitchen",), tint=(1.0, 1.0, 0.98)),
    _Room("children", "Baby Children Room",
          ("a soft pastel place to nurture and grow", "a playful room for little dreamers",
           "sweet dreams in mint and pink"),
          (206, 232, 218), "planks", (222, 198, 160),
          (
              _Slot("rug", ("rug_round",)),
              _Slot("back", ("cot_white",), x=0.32),
              _Slot("back", ("toybox_pink",), x=0.74),
              _Slot("wall", ("frame_landscape",), anchor=2, optional=0.3),
              _Slot("on", ("soft_toy",), anchor=2),
              _Slot("side", ("pot_white",), x=0.93, optional=0.5),
          ),
          window=None, extras=("polka",)),
    _Room("office", "Home Office",
          ("a creative space where ideas come to life", "a tidy home office in light greys",
           "a stylish space to get work done"),
          (218, 218, 214), "carpet", (120, 124, 130),
          (
              _Slot("back", ("desk_white",), x=0.44),
              _Slot("wall", ("wall_shelf_oak",), anchor=0),
              _Slot("on", ("table_lamp",), anchor=0),
              _Slot("back", ("cube_shelf", "bookcase_white"), x=0.85),
              _Slot("side", ("pot_terracotta", "pot_white"), x=0.07, optional=0.3),
              _Slot("front", ("swivel_chair",), x=0.40),
          ),
          window=0.14),
    _Room("hallway", "Hallway",
          ("a welcoming hallway with a place for everything", "a neat entrance in deep green",
           "a hallway that keeps the shoes in check"),
          (92, 122, 104), "tiles", (214, 210, 200),
          (
              _Slot("rug", ("rug_runner",), x=0.50),
              _Slot("back", ("coat_stand",), x=0.16),
              _Slot("back", ("shoe_cabinet",), x=0.44),
              _Slot("wall", ("mirror_round", "frame_landscape"), anchor=2),
              _Slot("side", ("mirror_tall",), x=0.93, optional=0.5),
              _Slot("on", ("vase_blue", "pot_white"), anchor=2, optional=0.3),
          ),
          window=None, extras=("door",), tint=(1.0, 0.97, 0.92)),
    _Room("outdoor", "Outdoor",
          ("a sunny balcony for slow breakfasts", "outdoor dining under the open sky",
           "a small terrace that feels like a holiday"),
          (186, 170, 150), "deck", (150, 112, 82),
          (
              _Slot("mid", ("outdoor_table",), x=0.46),
              _Slot("pair", ("outdoor_chair",), anchor=0),
              _Slot("on", ("pot_white", "vase_blue"), anchor=0),
              _Slot("side", ("pot_terracotta",), x=0.90),
              _Slot("back", ("floor_lamp",), x=0.08, optional=0.6),
          ),
          window=0.80, extras=("outdoor",), tint=(1.0, 0.99, 0.96)),
)


def _vgrad(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    w, h = size
    t = np.linspace(0.0, 1.0, h, dtype=np.float64)[:, None, None]
    arr = np.array(top, dtype=np.float64) * (1 - t) + np.array(bottom, dtype=np.float64) * t
    arr = np.repeat(arr, w, axis=1)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def _to_border(p: tuple[float, float]) -> tuple[float, float]:
    """Extend the ray from the vanishing point through p until it leaves the image."""
    dx, dy = p[0] - _VP[0], p[1] - _VP[1]
    ts = []
    if dx:
        ts += [(0 - _VP[0]) / dx, (SCENE_W - _VP[0]) / dx]
    if dy:
        ts += [(0 - _VP[1]) / dy, (SCENE_H - _VP[1]) / dy]
    t = min(v for v in ts if v > 1.0)
    return (_VP[0] + dx * t, _VP[1] + dy * t)


def _draw_window(img: Image.Image, cx: float, outdoor: bool = False) -> None:
    d = ImageDraw.Draw(img)
    w, h = 130, 150
    x0, y0 = int(cx * SCENE_W - w / 2), 62
    x0 = max(_BX0 + 8, min(_BX1 - w - 8, x0))
    sky = _vgrad((w, h), (150, 196, 236), (226, 240, 250))
    d.rectangle([x0 - 8, y0 - 8, x0 + w + 8, y0 + h + 8], fill=(248, 248, 246), outline=(200, 200, 198))
    img.paste(sky, (x0, y0))
    # a tree and a far house behind the glass
    d.ellipse([x0 + 12, y0 + 80, x0 + 70, y0 + 150], fill=(120, 170, 110))
    d.rectangle([x0 + 82, y0 + 100, x0 + 122, y0 + 150], fill=(210, 196, 180))
    d.line([(x0 + w // 2, y0), (x0 + w // 2, y0 + h)], fill=(248, 248, 246), width=6)
    d.line([(x0, y0 + h // 2), (x0 + w, y0 + h // 2)], fill=(248, 248, 246), width=6)
    if not outdoor:
        d.rectangle([x0 - 14, y0 + h + 8, x0 + w + 14, y0 + h + 16], fill=(236, 236, 232), outline=(196, 196, 194))


def _room_background(room: _Room) -> Image.Image:
    img = Image.new("RGB", (SCENE_W, SCENE_H), room.wall)
    d = ImageDraw.Draw(img)
    outdoor = "outdoor" in room.extras
    floor_poly = [(_BX0, _BY1), (_BX1, _BY1), _to_border((_BX1, _BY1)), (SCENE_W, SCENE_H), (0, SCENE_H),
                  _to_border((_BX0, _BY1))]
    # floor
    floor = _vgrad((SCENE_W, SCENE_H), _shade(room.floor_rgb, 0.86), _shade(room.floor_rgb, 1.06))
    fmask = Image.new("L", (SCENE_W, SCENE_H), 0)
    ImageDraw.Draw(fmask).polygon(floor_poly, fill=255)
    img.paste(floor, (0, 0), fmask)
    seam = _shade(room.floor_rgb, 0.78)
    if room.floor in ("planks", "tiles", "deck"):
        step = {"planks": 34, "tiles": 56, "deck": 26}[room.floor]
        for xs in range(_BX0 - 20 * step, _BX1 + 20 * step, step):
            end = _to_border((xs, _BY1 + 1e-6))
            d.line([(xs, _BY1), end], fill=seam, width=1 if room.floor == "planks" else 2)
    if room.floor == "tiles":
        z = 1.0
        while True:
            y = _VP[1] + (_BY1 - _VP[1]) * z
            if y > SCENE_H:
                break
            d.line([(0, y), (SCENE_W, y)], fill=seam, width=2)
            z *= 1.32
    elif room.floor == "planks":
        z, k = 1.0, 0
        while True:  # staggered butt joints
            y0 = _VP[1] + (_BY1 - _VP[1]) * z
            if y0 > SCENE_H:
                break
            for j, xs in enumerate(range(_BX0 - 20 * 34, _BX1 + 20 * 34, 34)):
                if (j + k) % 5 == 0:
                    x = _VP[0] + (xs + 17 - _VP[0]) * z
                    d.line([(x - 12 * z, y0), (x + 12 * z, y0)], fill=seam, width=1)
            z *= 1.22
            k += 2
    # side walls and ceiling (or sky and hedges outdoors)
    side = _shade(room.wall, 0.88)
    left = [(0, -40), (_BX0, _BY0), (_BX0, _BY1), _to_border((_BX0, _BY1))]
    right = [(SCENE_W, -40), (_BX1, _BY0), (_BX1, _BY1), _to_border((_BX1, _BY1))]
    if outdoor:
        sky = _vgrad((SCENE_W, _BY1), (120, 176, 228), (214, 232, 246))
        img.paste(sky, (0, 0))
        d.rectangle([0, _BY1 - 40, SCENE_W, _BY1 + 2], fill=(96, 148, 86))
        for i, cx in enumerate((20, 60, 100, 560, 600, 640)):
            d.ellipse([cx - 44, _BY1 - 90 - (i % 2) * 14, cx + 44, _BY1 - 10], fill=(84 + 8 * (i % 3), 140, 80))
        d.rectangle([_BX0 + 40, 40, _BX1 - 40, _BY1], fill=room.wall)
        for x in range(_BX0 + 40, _BX1 - 40, 18):
            d.line([(x, 40), (x, _BY1)], fill=_shade(room.wall, 0.85), width=2)
        d.polygon([(_BX0 + 20, 44), (_BX1 - 20, 44), (_BX1 - 40, 28), (_BX0 + 40, 28)], fill=(90, 80, 76))
        # railing along the deck edge
        rail = (236, 236, 232)
        d.line([(0, _BY1 + 8), (SCENE_W, _BY1 + 8)], fill=rail, width=4)
    else:
        d.polygon(left, fill=side)
        d.polygon(right, fill=side)
        d.polygon([(0, -40), (SCENE_W, -40), (_BX1, _BY0), (_BX0, _BY0)], fill=_mix(room.wall, WHITE, 0.6))
        wall = _vgrad((_BX1 - _BX0, _BY1 - _BY0), _shade(room.wall, 1.03), _shade(room.wall, 0.95))
        img.paste(wall, (_BX0, _BY0))
        if "dado" in room.extras:
            d.rectangle([_BX0, 200, _BX1, _BY1], fill=_shade(room.wall, 0.9))
            d.line([(_BX0, 200), (_BX1, 200)], fill=(250, 250, 248), width=5)
        if "polka" in room.extras:
            for iy, y in enumerate(range(_BY0 + 22, _BY1 - 10, 34)):
                for x in range(_BX0 + 20 + (17 if iy % 2 else 0), _BX1 - 8, 34):
                    d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(244, 206, 214))
        if "kitchen" in room.extras:
            x0, x1 = _BX0 + 4, _BX0 + 300
            d.rectangle([x0, 46, x1, 128], fill=(250, 250, 248), outline=(200, 200, 198))
            for x in range(x0, x1, 74):
                d.rectangle([x + 3, 49, x + 71, 125], outline=(206, 206, 204), width=2)
                d.line([(x + 60, 110), (x + 60, 122)], fill=(120, 120, 120), width=3)
            for y in range(130, 214, 14):
                d.line([(x0, y), (x1, y)], fill=(218, 222, 224), width=1)
            d.rectangle([x0 - 4, 210, x1 + 4, 222], fill=(70, 70, 72))
            d.rectangle([x0, 222, x1, _BY1 - 6], fill=(250, 250, 248), outline=(200, 200, 198))
            for x in range(x0, x1, 74):
                d.rectangle([x + 3, 226, x + 71, _BY1 - 9], outline=(206, 206, 204), width=2)
                d.line([(x + 20, 234), (x + 52, 234)], fill=(120, 120, 120), width=3)
            d.ellipse([x0 + 120, 196, x0 + 170, 212], fill=(200, 204, 208))
        if "door" in room.extras:
            dx0 = _BX1 - 150
            d.rectangle([dx0 - 8, 64, dx0 + 100, _BY1], fill=(246, 246, 244))
            d.rectangle([dx0, 72, dx0 + 92, _BY1], fill=(236, 232, 224), outline=(200, 196, 190))
            d.rectangle([dx0 + 10, 84, dx0 + 82, 170], outline=(214, 210, 204), width=2)
            d.rectangle([dx0 + 10, 184, dx0 + 82, _BY1 - 14], outline=(214, 210, 204), width=2)
            d.ellipse([dx0 + 76, 186, dx0 + 86, 196], fill=(170, 150, 90))
        # skirting board
        d.rectangle([_BX0, _BY1 - 7, _BX1, _BY1], fill=_mix(room.wall, WHITE, 0.7))
        d.line([left[2], (left[2][0] - 60, left[2][1] + 60 * (_BY1 - _VP[1]) / (_VP[0] - _BX0))],
               fill=_shade(side, 0.85), width=2)
        d.line([right[2], (right[2][0] + 60, right[2][1] + 60 * (_BY1 - _VP[1]) / (_BX1 - _VP[0]))],
               fill=_shade(side, 0.85), width=2)
    if room.window is not None:
        _draw_window(img, room.window, outdoor)
    return img


def _perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """Coefficients for Image.transform(PERSPECTIVE) mapping output points dst to input points src."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    sol = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return [float(v) for v in sol]


def _sprite(prod: _Product, width: float, brightness: float, tint: tuple[float, float, float],
            flip: bool = False) -> Image.Image:
    bbox = prod.mask.getbbox()
    assert bbox is not None
    rgb = prod.rgb.crop(bbox)
    mask = prod.mask.crop(bbox)
    w = max(4, int(round(width)))
    h = max(4, int(round(rgb.height * w / rgb.width)))
    rgb = rgb.resize((w, h), Image.Resampling.LANCZOS)
    mask = mask.resize((w, h), Image.Resampling.LANCZOS)
    arr = np.asarray(rgb, dtype=np.float64) * (brightness * np.array(tint, dtype=np.float64))
    out = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    out.putalpha(mask)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def _floor_sprite(sprite: Image.Image, depth_ratio: float, inset: float) -> Image.Image:
    w, h = sprite.size
    dh = max(4, int(round(h * depth_ratio)))
    k = inset * w
    coeffs = _perspective_coeffs([(k, 0), (w - k, 0), (w, dh), (0, dh)], [(0, 0), (w, 0), (w, h), (0, h)])
    return sprite.transform((w, dh), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)


def _shadow(canvas: Image.Image, x0: float, x1: float, y: float, strength: int = 80) -> None:
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse([x0, y - 7, x1, y + 7], fill=(20, 16, 12, strength))
    canvas.alpha_composite(layer.filter(ImageFilter.GaussianBlur(5)))


def _lighting(img: Image.Image, room: _Room) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    yy, xx = np.mgrid[0:SCENE_H, 0:SCENE_W].astype(np.float64)
    lx = (room.window if room.window is not None else 0.5) * SCENE_W
    dist = np.sqrt(((xx - lx) / SCENE_W) ** 2 + ((yy - 140.0) / SCENE_H) ** 2)
    factor = 1.04 - 0.16 * np.clip(dist, 0.0, 1.2)
    arr = arr * factor[..., None] * np.array(room.tint, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


@dataclass
class _Placed:
    key: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in scene pixels
    scale: float


_ROLE_BOTTOM = {"back": (_BY1 + 18, _BY1 + 28), "side": (_BY1 + 52, _BY1 + 70), "mid": (392, 404),
                "front": (440, 458)}
_ROLE_SCALE = {"back": 1.0, "side": 1.1, "mid": 1.2, "front": 1.38, "rug": 1.0, "wall": 1.0, "ceiling": 1.0}


def _render_scene(room: _Room, index: int, products: dict[str, _Product], seed: int) -> tuple[Image.Image, list[str], str]:
    rng = random.Random(f"{seed}:scene:{index}:{room.name}")
    canvas = _room_background(room).convert("RGBA")
    placed: list[_Placed | None] = []
    used: list[str] = []
    for slot in room.slots:
        anchor = placed[slot.anchor] if slot.anchor is not None else None
        candidates = [k for k in slot.keys if k not in used]
        skip = not candidates or (slot.optional and rng.random() < slot.optional)
        if slot.anchor is not None and anchor is None:
            skip = True
        if skip or len(used) >= 7:
            placed.append(None)
            continue
        key = rng.choice(candidates)
        prod = products[key]
        bright = rng.uniform(0.9, 1.0)
        jitter = rng.uniform(-0.02, 0.02)
        if slot.role == "rug":
            runner = prod.item.variant == "runner"
            width = SCENE_W * (0.20 if runner else _SCENE_WIDTH["rug"]) * rng.uniform(0.95, 1.05)
            spr = _floor_sprite(_sprite(prod, width, bright, room.tint), 0.30 if runner else 0.34,
                                0.16 if runner else 0.10)
            cx = SCENE_W * (slot.x + jitter)
            top = rng.uniform(_BY1 + 40, _BY1 + 58)
            x0, y0 = cx - spr.width / 2, top
            canvas.alpha_composite(spr, (int(round(x0)), int(round(y0))))
            placed.append(_Placed(key, (x0, y0, x0 + spr.width, y0 + spr.height), 1.0))
            used.append(key)
            continue
        if slot.role in ("on", "wall", "ceiling") and anchor is not None:
            scale = anchor.scale
        else:
            scale = _ROLE_SCALE.get(slot.role, 1.0)
        width = SCENE_W * _lookup(_SCENE_WIDTH, prod.item, 0.1) * scale * rng.uniform(0.94, 1.06)
        copies: list[tuple[float, float, bool]] = []  # (centre x, bottom y, flip)
        spr = _sprite(prod, width, bright, room.tint)
        if slot.role in _ROLE_BOTTOM:
            lo, hi = _ROLE_BOTTOM[slot.role]
            copies.append((SCENE_W * (slot.x + jitter), rng.uniform(lo, hi), False))
        elif slot.role == "wall":
            if anchor is not None:
                cx = (anchor.box[0] + anchor.box[2]) / 2 + rng.uniform(-10, 10)
                gap = 16 if products[anchor.key].item.kind in ("sofa", "bed", "armchair") else 44
                bottom = min(anchor.box[1] - gap, _BY1 - 60)
            else:
                cx = SCENE_W * (slot.x + jitter)
                bottom = rng.uniform(190, 215)
            bottom = max(bottom, _BY0 + 20 + spr.height)
            copies.append((cx, bottom, False))
        elif slot.role == "ceiling":
            cx = (anchor.box[0] + anchor.box[2]) / 2 if anchor is not None else SCENE_W * (slot.x + jitter)
            copies.append((cx, _BY0 - 6 + spr.height, False))
        elif slot.role == "on":
            assert anchor is not None
            ax0, ay0, ax1, ay1 = anchor.box
            level = _lookup(_REST_LEVEL, products[anchor.key].item, 0.05)
            aw = ax1 - ax0
            cx = ax0 + aw * rng.uniform(0.25, 0.75)
            copies.append((cx, ay0 + (ay1 - ay0) * level + 3, False))
        elif slot.role == "pair":
            assert anchor is not None
            ax0, ay0, ax1, ay1 = anchor.box
            bottom = ay1 + rng.uniform(6, 14)
            copies.append((ax0 + spr.width * 0.25, bottom, False))
            copies.append((ax1 - spr.width * 0.25, bottom + rng.uniform(-3, 3), True))
        boxes = []
        for cx, bottom, flip in copies:
            s = spr.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else spr
            x0, y0 = cx - s.width / 2, bottom - s.height
            if slot.role in ("back", "side", "mid", "front", "pair"):
                _shadow(canvas, x0 + s.width * 0.06, x0 + s.width * 0.94, bottom - 2)
            canvas.alpha_composite(s, (int(round(x0)), int(round(y0))))
            boxes.append((x0, y0, x0 + s.width, y0 + s.height))
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        placed.append(_Placed(key, box, scale))
        used.append(key)
    img = _lighting(canvas.convert("RGB"), room)
    caption = rng.choice(room.captions)
    return img, used, caption


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False, progressive=False,
                            subsampling="4:2:0")
    return buf.getvalue()


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")




def _readme(seed: int, n_products: int, n_with_image: int, n_scenes: int, n_links: int,
            room_types: Sequence[str]) -> str:
    rooms = ", ".join(sorted(set(room_types)))
    return f"""# Synthetic sample dataset (scene-matcher)

**This dataset is synthetic.** It was generated by `{GENERATOR_NAME}` (generator version
{GENERATOR_VERSION}, seed {seed}); nothing in it comes from a real catalog. Product "photos" are
simple shapes drawn with Pillow on a white background, the product names are invented, and each
room photo is a drawn room with some of the product pictures pasted in (white background removed,
scaled, shadowed and re-lit). It is small on purpose: it lets the pipelines, tests and demos run
without the licensed real dataset, and it is not a benchmark.

Regenerate it (byte-identical for the same seed and library versions) with

```python
from scene_assets.sample_data import generate_sample_dataset
generate_sample_dataset(Path("data/sample"), seed={seed})
```

## Contents

- `products.csv`: product_id, name, type, color, size, description, image: {n_products} products;
  {n_products - n_with_image} rows have an empty `image` on purpose (real catalogs have gaps),
  and some rows have an empty color, size or description.
- `scenes.csv`: scene_id, image, room_type, caption: {n_scenes} room scenes ({rooms}).
- `scene_products.csv`: scene_id, product_id: {n_links} links; exactly the products pasted into
  each scene (a product pasted twice, e.g. a pair of chairs, is listed once). At least one product without a
  catalog image appears in a scene, as happens in real data.
- `images/products/<product_id>.jpg` (256 to 320 px squares), `images/scenes/<scene_id>.jpg`
  ({SCENE_W}x{SCENE_H}).
- `manifest.json`: generator, version, seed and the size and sha256 of every file;
  `ensure_sample_dataset()` uses it to decide whether the folder is complete.
"""


def _manifest_entry(data: bytes) -> dict[str, object]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def generate_sample_dataset(dest: Path, *, seed: int = DEFAULT_SEED) -> Path:
    """Write the synthetic labeled dataset for ``seed`` into ``dest`` and return ``dest``.

    Existing files written by an earlier run (as listed in its manifest) are replaced or removed;
    other files in ``dest`` are left alone. The manifest is written last, so an interrupted run
    leaves a folder that :func:`is_sample_dataset_complete` reports as incomplete.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST_NAME
    old_files: list[str] = []
    if manifest_path.exists():
        try:
            old_files = list(json.loads(manifest_path.read_text("utf-8")).get("files", {}))
        except (OSError, ValueError, AttributeError):
            old_files = []
        manifest_path.unlink()

    files: dict[str, bytes] = {}
    ids = _product_ids(seed, len(_CATALOG))
    products: dict[str, _Product] = {}
    for item, pid in zip(_CATALOG, ids):
        rgb, mask, size = _render_product(item, seed)
        products[item.key] = _Product(item, pid, size, rgb, mask)
        if item.has_image:
            files[f"images/products/{pid}.jpg"] = _jpeg_bytes(rgb, PRODUCT_JPEG_QUALITY)

    scene_rows: list[list[str]] = []
    link_rows: list[list[str]] = []
    for i, room in enumerate(_ROOMS):
        scene_id = "scene_" + hashlib.sha1(f"{GENERATOR_NAME}:{seed}:{i}:{room.name}".encode()).hexdigest()[:10]
        img, keys, caption = _render_scene(room, i, products, seed)
        rel = f"images/scenes/{scene_id}.jpg"
        files[rel] = _jpeg_bytes(img, SCENE_JPEG_QUALITY)
        scene_rows.append([scene_id, rel, room.room_type, caption])
        for pid in sorted({products[k].product_id for k in keys}):
            link_rows.append([scene_id, pid])

    product_rows = []
    for p in sorted(products.values(), key=lambda p: p.product_id):
        it = p.item
        image = f"images/products/{p.product_id}.jpg" if it.has_image else ""
        product_rows.append([p.product_id, it.name, it.type, it.color, it.size, it.description, image])

    files["products.csv"] = _csv_bytes(PRODUCT_COLUMNS, product_rows)
    files["scenes.csv"] = _csv_bytes(SCENE_COLUMNS, scene_rows)
    files["scene_products.csv"] = _csv_bytes(SCENE_PRODUCT_COLUMNS, link_rows)
    files["README.md"] = _readme(seed, len(product_rows), sum(1 for r in product_rows if r[6]), len(scene_rows),
                                 len(link_rows), [r[2] for r in scene_rows]).encode("utf-8")

    for rel in old_files:
        if rel not in files and not Path(rel).is_absolute() and ".." not in Path(rel).parts:
            (dest / rel).unlink(missing_ok=True)
    for rel in sorted(files):
        write_atomic_bytes(dest / rel, files[rel])

    manifest = {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "files": {rel: _manifest_entry(files[rel]) for rel in sorted(files)},
    }
    write_atomic_bytes(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return dest


def is_sample_dataset_complete(dest: Path, *, seed: int = DEFAULT_SEED, verify_hashes: bool = False) -> bool:
    """True when ``dest`` holds a complete sample dataset of this generator version and seed.

    Checks the manifest (generator, version, seed) and that every listed file exists with the
    recorded size; with ``verify_hashes`` also compares sha256 digests.
    """
    manifest_path = Path(dest) / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR_NAME:
        return False
    if manifest.get("version") != GENERATOR_VERSION or manifest.get("seed") != seed:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for rel in ("products.csv", "scenes.csv", "scene_products.csv"):
        if rel not in files:
            return False
    for rel, entry in files.items():
        path = Path(dest) / rel
        try:
            if path.stat().st_size != entry["bytes"]:
                return False
            if verify_hashes and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def ensure_sample_dataset(dest: Path, *, seed: int = DEFAULT_SEED) -> Path:
    """Generate the sample dataset into ``dest`` unless a complete one (same version and seed) is there."""
    dest = Path(dest)
    if not is_sample_dataset_complete(dest, seed=seed):
        generate_sample_dataset(dest, seed=seed)
    return dest


if __name__ == "__main__":  # pragma: no cover - convenience
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/sample")
    print(generate_sample_dataset(target, seed=int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_SEED))
