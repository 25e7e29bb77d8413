"""Scene rendering: products placed into a room's slots as background-free, shadowed, re-lit sprites."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scene_assets.sample_data.items import Item
from scene_assets.sample_data.products import Product
from scene_assets.sample_data.rooms import BACK_Y0, BACK_Y1, SCENE_H, SCENE_W, Room, room_background


# width of the object in a scene, as a fraction of the scene width; and where, measured from
# the top of the object's bounding box (fraction of its height), things put "on" it rest.
_SCENE_WIDTH: dict[str, float] = {
    "sofa": 0.44, "armchair": 0.21, "chair": 0.12, "bar_stool": 0.09, "swivel_chair": 0.16,
    "outdoor_chair": 0.15, "coffee_table": 0.26, "dining_table": 0.40, "desk": 0.36,
    "outdoor_table": 0.36, "cot": 0.30, "wardrobe": 0.21, "chest": 0.20,
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


def _lookup(table: dict[str, float], item: Item, default: float) -> float:
    return table.get(f"{item.kind}:{item.variant}", table.get(item.kind, default))


def _perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """Coefficients for Image.transform(PERSPECTIVE) mapping output points dst to input points src."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    sol = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return [float(v) for v in sol]


def _sprite(prod: Product, width: float, brightness: float, tint: tuple[float, float, float],
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


def _lighting(img: Image.Image, room: Room) -> Image.Image:
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


_ROLE_BOTTOM = {"back": (BACK_Y1 + 18, BACK_Y1 + 28), "side": (BACK_Y1 + 52, BACK_Y1 + 70), "mid": (392, 404),
                "front": (440, 458)}
_ROLE_SCALE = {"back": 1.0, "side": 1.1, "mid": 1.2, "front": 1.38, "rug": 1.0, "wall": 1.0, "ceiling": 1.0}


def render_scene(room: Room, index: int, products: dict[str, Product], seed: int) -> tuple[Image.Image, list[str], str]:
    rng = random.Random(f"{seed}:scene:{index}:{room.name}")
    canvas = room_background(room).convert("RGBA")
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
            top = rng.uniform(BACK_Y1 + 40, BACK_Y1 + 58)
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
                bottom = min(anchor.box[1] - gap, BACK_Y1 - 60)
            else:
                cx = SCENE_W * (slot.x + jitter)
                bottom = rng.uniform(190, 215)
            bottom = max(bottom, BACK_Y0 + 20 + spr.height)
            copies.append((cx, bottom, False))
        elif slot.role == "ceiling":
            cx = (anchor.box[0] + anchor.box[2]) / 2 if anchor is not None else SCENE_W * (slot.x + jitter)
            copies.append((cx, BACK_Y0 - 6 + spr.height, False))
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
