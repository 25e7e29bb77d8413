"""The rooms of the sample scenes: their layouts (slots for products) and drawn backgrounds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from scene_assets.sample_data.painter import RGB, WHITE, mix, shade

SCENE_W, SCENE_H = 640, 480

# room geometry (one-point perspective)
VANISHING_POINT = (320.0, 196.0)
BACK_X0, BACK_Y0, BACK_X1, BACK_Y1 = 70, 24, 570, 300  # back wall


@dataclass(frozen=True)
class _Slot:
    role: str  # rug | back | side | mid | front | wall | ceiling | on | pair
    keys: tuple[str, ...]
    x: float = 0.5
    anchor: int | None = None  # index of an earlier slot
    optional: float = 0.0  # probability to leave the slot empty


@dataclass(frozen=True)
class Room:
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

ROOMS: tuple[Room, ...] = (
    Room("living_a", "Living Room",
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
    Room("living_b", "Living Room",
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
    Room("bedroom", "Bedroom",
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
    Room("dining", "Dining",
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
    Room("kitchen", "Kitchen",
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
    Room("children", "Baby Children Room",
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
    Room("office", "Home Office",
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
    Room("hallway", "Hallway",
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
    Room("outdoor", "Outdoor",
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
    dx, dy = p[0] - VANISHING_POINT[0], p[1] - VANISHING_POINT[1]
    ts = []
    if dx:
        ts += [(0 - VANISHING_POINT[0]) / dx, (SCENE_W - VANISHING_POINT[0]) / dx]
    if dy:
        ts += [(0 - VANISHING_POINT[1]) / dy, (SCENE_H - VANISHING_POINT[1]) / dy]
    t = min(v for v in ts if v > 1.0)
    return (VANISHING_POINT[0] + dx * t, VANISHING_POINT[1] + dy * t)


def _draw_window(img: Image.Image, cx: float, outdoor: bool = False) -> None:
    d = ImageDraw.Draw(img)
    w, h = 130, 150
    x0, y0 = int(cx * SCENE_W - w / 2), 62
    x0 = max(BACK_X0 + 8, min(BACK_X1 - w - 8, x0))
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


def room_background(room: Room) -> Image.Image:
    img = Image.new("RGB", (SCENE_W, SCENE_H), room.wall)
    d = ImageDraw.Draw(img)
    outdoor = "outdoor" in room.extras
    floor_poly = [(BACK_X0, BACK_Y1), (BACK_X1, BACK_Y1), _to_border((BACK_X1, BACK_Y1)), (SCENE_W, SCENE_H), (0, SCENE_H),
                  _to_border((BACK_X0, BACK_Y1))]
    # floor
    floor = _vgrad((SCENE_W, SCENE_H), shade(room.floor_rgb, 0.86), shade(room.floor_rgb, 1.06))
    fmask = Image.new("L", (SCENE_W, SCENE_H), 0)
    ImageDraw.Draw(fmask).polygon(floor_poly, fill=255)
    img.paste(floor, (0, 0), fmask)
    seam = shade(room.floor_rgb, 0.78)
    if room.floor in ("planks", "tiles", "deck"):
        step = {"planks": 34, "tiles": 56, "deck": 26}[room.floor]
        for xs in range(BACK_X0 - 20 * step, BACK_X1 + 20 * step, step):
            end = _to_border((xs, BACK_Y1 + 1e-6))
            d.line([(xs, BACK_Y1), end], fill=seam, width=1 if room.floor == "planks" else 2)
    if room.floor == "tiles":
        z = 1.0
        while True:
            y = VANISHING_POINT[1] + (BACK_Y1 - VANISHING_POINT[1]) * z
            if y > SCENE_H:
                break
            d.line([(0, y), (SCENE_W, y)], fill=seam, width=2)
            z *= 1.32
    elif room.floor == "planks":
        z, k = 1.0, 0
        while True:  # staggered butt joints
            y0 = VANISHING_POINT[1] + (BACK_Y1 - VANISHING_POINT[1]) * z
            if y0 > SCENE_H:
                break
            for j, xs in enumerate(range(BACK_X0 - 20 * 34, BACK_X1 + 20 * 34, 34)):
                if (j + k) % 5 == 0:
                    x = VANISHING_POINT[0] + (xs + 17 - VANISHING_POINT[0]) * z
                    d.line([(x - 12 * z, y0), (x + 12 * z, y0)], fill=seam, width=1)
            z *= 1.22
            k += 2
    # side walls and ceiling (or sky and hedges outdoors)
    side = shade(room.wall, 0.88)
    left = [(0, -40), (BACK_X0, BACK_Y0), (BACK_X0, BACK_Y1), _to_border((BACK_X0, BACK_Y1))]
    right = [(SCENE_W, -40), (BACK_X1, BACK_Y0), (BACK_X1, BACK_Y1), _to_border((BACK_X1, BACK_Y1))]
    if outdoor:
        sky = _vgrad((SCENE_W, BACK_Y1), (120, 176, 228), (214, 232, 246))
        img.paste(sky, (0, 0))
        d.rectangle([0, BACK_Y1 - 40, SCENE_W, BACK_Y1 + 2], fill=(96, 148, 86))
        for i, cx in enumerate((20, 60, 100, 560, 600, 640)):
            d.ellipse([cx - 44, BACK_Y1 - 90 - (i % 2) * 14, cx + 44, BACK_Y1 - 10], fill=(84 + 8 * (i % 3), 140, 80))
        d.rectangle([BACK_X0 + 40, 40, BACK_X1 - 40, BACK_Y1], fill=room.wall)
        for x in range(BACK_X0 + 40, BACK_X1 - 40, 18):
            d.line([(x, 40), (x, BACK_Y1)], fill=shade(room.wall, 0.85), width=2)
        d.polygon([(BACK_X0 + 20, 44), (BACK_X1 - 20, 44), (BACK_X1 - 40, 28), (BACK_X0 + 40, 28)], fill=(90, 80, 76))
        # railing along the deck edge
        rail = (236, 236, 232)
        d.line([(0, BACK_Y1 + 8), (SCENE_W, BACK_Y1 + 8)], fill=rail, width=4)
    else:
        d.polygon(left, fill=side)
        d.polygon(right, fill=side)
        d.polygon([(0, -40), (SCENE_W, -40), (BACK_X1, BACK_Y0), (BACK_X0, BACK_Y0)], fill=mix(room.wall, WHITE, 0.6))
        wall = _vgrad((BACK_X1 - BACK_X0, BACK_Y1 - BACK_Y0), shade(room.wall, 1.03), shade(room.wall, 0.95))
        img.paste(wall, (BACK_X0, BACK_Y0))
        if "dado" in room.extras:
            d.rectangle([BACK_X0, 200, BACK_X1, BACK_Y1], fill=shade(room.wall, 0.9))
            d.line([(BACK_X0, 200), (BACK_X1, 200)], fill=(250, 250, 248), width=5)
        if "polka" in room.extras:
            for iy, y in enumerate(range(BACK_Y0 + 22, BACK_Y1 - 10, 34)):
                for x in range(BACK_X0 + 20 + (17 if iy % 2 else 0), BACK_X1 - 8, 34):
                    d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(244, 206, 214))
        if "kitchen" in room.extras:
            x0, x1 = BACK_X0 + 4, BACK_X0 + 300
            d.rectangle([x0, 46, x1, 128], fill=(250, 250, 248), outline=(200, 200, 198))
            for x in range(x0, x1, 74):
                d.rectangle([x + 3, 49, x + 71, 125], outline=(206, 206, 204), width=2)
                d.line([(x + 60, 110), (x + 60, 122)], fill=(120, 120, 120), width=3)
            for y in range(130, 214, 14):
                d.line([(x0, y), (x1, y)], fill=(218, 222, 224), width=1)
            d.rectangle([x0 - 4, 210, x1 + 4, 222], fill=(70, 70, 72))
            d.rectangle([x0, 222, x1, BACK_Y1 - 6], fill=(250, 250, 248), outline=(200, 200, 198))
            for x in range(x0, x1, 74):
                d.rectangle([x + 3, 226, x + 71, BACK_Y1 - 9], outline=(206, 206, 204), width=2)
                d.line([(x + 20, 234), (x + 52, 234)], fill=(120, 120, 120), width=3)
            d.ellipse([x0 + 120, 196, x0 + 170, 212], fill=(200, 204, 208))
        if "door" in room.extras:
            dx0 = BACK_X1 - 150
            d.rectangle([dx0 - 8, 64, dx0 + 100, BACK_Y1], fill=(246, 246, 244))
            d.rectangle([dx0, 72, dx0 + 92, BACK_Y1], fill=(236, 232, 224), outline=(200, 196, 190))
            d.rectangle([dx0 + 10, 84, dx0 + 82, 170], outline=(214, 210, 204), width=2)
            d.rectangle([dx0 + 10, 184, dx0 + 82, BACK_Y1 - 14], outline=(214, 210, 204), width=2)
            d.ellipse([dx0 + 76, 186, dx0 + 86, 196], fill=(170, 150, 90))
        # skirting board
        d.rectangle([BACK_X0, BACK_Y1 - 7, BACK_X1, BACK_Y1], fill=mix(room.wall, WHITE, 0.7))
        d.line([left[2], (left[2][0] - 60, left[2][1] + 60 * (BACK_Y1 - VANISHING_POINT[1]) / (VANISHING_POINT[0] - BACK_X0))],
               fill=shade(side, 0.85), width=2)
        d.line([right[2], (right[2][0] + 60, right[2][1] + 60 * (BACK_Y1 - VANISHING_POINT[1]) / (BACK_X1 - VANISHING_POINT[0]))],
               fill=shade(side, 0.85), width=2)
    if room.window is not None:
        _draw_window(img, room.window, outdoor)
    return img
