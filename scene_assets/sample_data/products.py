"""Product shots: one drawing function per kind of item, product ids and rendering."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

from PIL import Image

from scene_assets.sample_data.items import Item
from scene_assets.sample_data.painter import RGB, WHITE, Painter, shade

PRODUCT_SIZES = (256, 288, 320)


def _draw_sofa(p: Painter, it: Item, rng: random.Random) -> None:
    b, leg = it.base, it.detail
    seats = int(it.variant or 3)
    dk, md, lt = shade(b, 0.8), shade(b, 0.9), shade(b, 1.08)
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


def _draw_armchair(p: Painter, it: Item, rng: random.Random) -> None:
    b, wood = it.base, it.detail
    if it.variant == "wood":
        p.line([(0.27, 0.60), (0.22, 0.92)], wood, 0.03)
        p.line([(0.73, 0.60), (0.78, 0.92)], wood, 0.03)
        p.poly([(0.32, 0.12), (0.68, 0.12), (0.73, 0.60), (0.27, 0.60)], b)
        p.poly([(0.25, 0.56), (0.75, 0.56), (0.80, 0.70), (0.20, 0.70)], shade(b, 1.05))
        p.line([(0.17, 0.48), (0.33, 0.48)], wood, 0.028)
        p.line([(0.67, 0.48), (0.83, 0.48)], wood, 0.028)
        p.line([(0.20, 0.48), (0.18, 0.92)], wood, 0.03)
        p.line([(0.80, 0.48), (0.82, 0.92)], wood, 0.03)
        return
    dk, md, lt = shade(b, 0.8), shade(b, 0.9), shade(b, 1.08)
    for x in (0.23, 0.73):
        p.rect((x, 0.76, x + 0.04, 0.88), it.detail)
    p.rect((0.24, 0.16, 0.76, 0.62), md, radius=0.08)
    p.rect((0.22, 0.64, 0.78, 0.78), dk, radius=0.02)
    p.rect((0.28, 0.52, 0.72, 0.68), lt, radius=0.03)
    p.rect((0.15, 0.40, 0.30, 0.79), b, radius=0.05)
    p.rect((0.70, 0.40, 0.85, 0.79), b, radius=0.05)


def _draw_chair(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "shell":
        legc = it.detail
        for (x0, x1) in ((0.36, 0.30), (0.64, 0.70), (0.44, 0.42), (0.56, 0.58)):
            p.line([(x0, 0.58), (x1, 0.94)], legc, 0.022)
        p.rect((0.31, 0.10, 0.69, 0.50), b, radius=0.12)
        p.rect((0.27, 0.46, 0.73, 0.60), shade(b, 0.97), radius=0.06)
        return
    dk = shade(b, 1.25) if sum(b) < 200 else shade(b, 0.8)
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


def _draw_bar_stool(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    dk = shade(b, 0.75)
    for (x0, x1) in ((0.37, 0.30), (0.63, 0.70), (0.46, 0.44), (0.54, 0.56)):
        p.line([(x0, 0.24), (x1, 0.95)], dk, 0.02)
    p.ellipse((0.31, 0.64, 0.69, 0.72), None, outline=dk, width=0.016)
    p.rect((0.30, 0.19, 0.70, 0.26), dk, radius=0.03)
    p.ellipse((0.30, 0.13, 0.70, 0.23), shade(b, 1.1))


def _draw_swivel_chair(p: Painter, it: Item, rng: random.Random) -> None:
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
    p.rect((0.36, 0.10, 0.64, 0.42), shade(b, 1.12), radius=0.06, outline=None)
    p.rect((0.25, 0.47, 0.75, 0.60), shade(b, 0.9), radius=0.05)


def _draw_coffee_table(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "round":
        leg = it.detail
        p.rect((0.22, 0.52, 0.255, 0.86), leg)
        p.rect((0.745, 0.52, 0.78, 0.86), leg)
        p.rect((0.48, 0.56, 0.52, 0.90), leg)
        p.ellipse((0.08, 0.43, 0.92, 0.61), shade(b, 0.88))
        p.ellipse((0.08, 0.40, 0.92, 0.58), b)
        return
    dk = shade(b, 1.3)
    p.rect((0.16, 0.48, 0.19, 0.80), shade(b, 0.8))
    p.rect((0.81, 0.48, 0.84, 0.80), shade(b, 0.8))
    p.poly([(0.14, 0.70), (0.86, 0.70), (0.91, 0.76), (0.09, 0.76)], dk)
    p.poly([(0.14, 0.40), (0.86, 0.40), (0.94, 0.49), (0.06, 0.49)], b)
    p.rect((0.06, 0.49, 0.94, 0.54), dk)
    p.rect((0.07, 0.54, 0.11, 0.86), b)
    p.rect((0.89, 0.54, 0.93, 0.86), b)


def _draw_dining_table(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "round":
        p.ellipse((0.30, 0.82, 0.70, 0.90), shade(b, 0.86))
        p.rect((0.46, 0.40, 0.54, 0.86), shade(b, 0.92))
        p.ellipse((0.10, 0.31, 0.90, 0.47), shade(b, 0.86))
        p.ellipse((0.10, 0.28, 0.90, 0.44), b)
        return
    dk = shade(b, 0.78)
    p.rect((0.14, 0.40, 0.17, 0.78), dk)
    p.rect((0.83, 0.40, 0.86, 0.78), dk)
    p.poly([(0.10, 0.30), (0.90, 0.30), (0.97, 0.40), (0.03, 0.40)], b, pattern=it.pattern, accent=it.accent,
           period=0.05)
    p.rect((0.03, 0.40, 0.97, 0.45), dk)
    p.rect((0.05, 0.45, 0.09, 0.90), shade(b, 0.9))
    p.rect((0.91, 0.45, 0.95, 0.90), shade(b, 0.9))


def _draw_desk(p: Painter, it: Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.13, 0.40, 0.16, 0.80), shade(b, 0.86))
    p.rect((0.06, 0.42, 0.10, 0.88), b)
    p.rect((0.60, 0.42, 0.93, 0.88), b)
    for y in (0.42, 0.57, 0.72):
        p.rect((0.62, y + 0.015, 0.91, y + 0.14), b)
        p.rect((0.73, y + 0.06, 0.80, y + 0.075), h, outline=None)
    p.rect((0.04, 0.35, 0.96, 0.42), b)


def _draw_outdoor_table(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    dk = shade(b, 0.75)
    p.line([(0.16, 0.42), (0.14, 0.82)], dk, 0.03)
    p.line([(0.84, 0.42), (0.86, 0.82)], dk, 0.03)
    p.poly([(0.12, 0.32), (0.88, 0.32), (0.96, 0.44), (0.04, 0.44)], b)
    for t in (0.2, 0.4, 0.6, 0.8):
        p.line([(0.12 + 0.76 * t, 0.32), (0.04 + 0.92 * t, 0.44)], dk, 0.006)
    p.rect((0.04, 0.44, 0.96, 0.48), dk)
    p.line([(0.08, 0.48), (0.07, 0.92)], b, 0.035)
    p.line([(0.92, 0.48), (0.93, 0.92)], b, 0.035)


def _draw_outdoor_chair(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    dk = shade(b, 0.75)
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


def _draw_bed(p: Painter, it: Item, rng: random.Random) -> None:
    frame, duvet, pat = it.base, it.accent, it.detail
    p.rect((0.06, 0.86, 0.10, 0.92), shade(frame, 0.85))
    p.rect((0.90, 0.86, 0.94, 0.92), shade(frame, 0.85))
    p.rect((0.06, 0.26, 0.94, 0.58), frame, radius=0.015)
    p.rect((0.10, 0.30, 0.90, 0.50), shade(frame, 0.93 if sum(frame) > 500 else 1.15), radius=0.01)
    pillow = (250, 250, 248)
    p.rect((0.15, 0.38, 0.47, 0.52), pillow, radius=0.04)
    p.rect((0.53, 0.38, 0.85, 0.52), pillow, radius=0.04)
    p.poly([(0.12, 0.50), (0.88, 0.50), (0.96, 0.68), (0.04, 0.68)], duvet, pattern=it.pattern, accent=pat,
           period=0.06)
    p.rect((0.04, 0.68, 0.96, 0.79), shade(duvet, 0.88), pattern=it.pattern, accent=shade(pat, 0.9),
           period=0.06)
    p.rect((0.03, 0.78, 0.97, 0.87), frame, radius=0.01)


def _draw_cot(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.12, 0.56, 0.88, 0.72), it.accent)
    for i in range(12):
        x = 0.17 + i * 0.06
        p.rect((x, 0.24, x + 0.022, 0.72), b)
    p.rect((0.08, 0.20, 0.92, 0.26), b, radius=0.01)
    p.rect((0.08, 0.70, 0.92, 0.76), b, radius=0.01)
    p.rect((0.07, 0.16, 0.13, 0.92), b, radius=0.01)
    p.rect((0.87, 0.16, 0.93, 0.92), b, radius=0.01)


def _draw_wardrobe(p: Painter, it: Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.20, 0.03, 0.80, 0.93), b)
    p.rect((0.21, 0.93, 0.79, 0.97), shade(b, 0.85))
    p.rect((0.22, 0.05, 0.495, 0.91), shade(b, 0.98))
    p.rect((0.505, 0.05, 0.78, 0.91), shade(b, 0.98))
    p.rect((0.455, 0.42, 0.47, 0.56), h, outline=None)
    p.rect((0.53, 0.42, 0.545, 0.56), h, outline=None)


def _draw_chest(p: Painter, it: Item, rng: random.Random) -> None:
    b, k = it.base, it.detail
    for x in (0.16, 0.80):
        p.rect((x, 0.85, x + 0.04, 0.91), shade(b, 0.8))
    p.rect((0.14, 0.34, 0.86, 0.86), shade(b, 0.94))
    p.rect((0.11, 0.29, 0.89, 0.35), shade(b, 1.05))
    for y in (0.36, 0.53, 0.70):
        p.rect((0.16, y + 0.01, 0.84, y + 0.155), b, radius=0.005)
        p.ellipse((0.30, y + 0.065, 0.34, y + 0.10), k, outline=None)
        p.ellipse((0.66, y + 0.065, 0.70, y + 0.10), k, outline=None)


def _draw_shoe_cabinet(p: Painter, it: Item, rng: random.Random) -> None:
    b, h = it.base, it.detail
    p.rect((0.18, 0.84, 0.22, 0.90), shade(b, 0.7))
    p.rect((0.78, 0.84, 0.82, 0.90), shade(b, 0.7))
    p.rect((0.14, 0.18, 0.86, 0.85), b)
    for y in (0.20, 0.52):
        p.rect((0.16, y, 0.84, y + 0.31), shade(b, 1.05))
        p.rect((0.42, y + 0.03, 0.58, y + 0.045), h, outline=None)


_BOOK_COLOURS: tuple[RGB, ...] = (
    (180, 60, 50), (60, 90, 140), (220, 180, 70), (90, 130, 90), (230, 225, 210),
    (120, 80, 110), (40, 40, 44), (200, 120, 70), (150, 170, 190),
)


def _books(p: Painter, rng: random.Random, x0: float, x1: float, y_bottom: float, max_h: float) -> None:
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


def _draw_bookcase(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.26, 0.03, 0.74, 0.97), b)
    p.rect((0.29, 0.05, 0.71, 0.93), shade(b, 0.9), outline=None)
    ys = (0.05, 0.23, 0.41, 0.59, 0.77, 0.93)
    for y0, y1 in zip(ys[:-1], ys[1:]):
        _books(p, rng, 0.30, 0.70, y1, (y1 - y0) * 0.85)
        p.rect((0.28, y1, 0.72, y1 + 0.016), b)


def _draw_cube_shelf(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.08, 0.08, 0.92, 0.92), b)
    for iy in range(4):
        for ix in range(4):
            x0, y0 = 0.10 + ix * 0.205, 0.10 + iy * 0.205
            p.rect((x0, y0, x0 + 0.185, y0 + 0.185), shade(b, 0.7), outline=None)
            r = rng.random()
            if r < 0.3:
                p.rect((x0 + 0.01, y0 + 0.02, x0 + 0.175, y0 + 0.185), it.accent, radius=0.01)
                p.rect((x0 + 0.07, y0 + 0.05, x0 + 0.115, y0 + 0.07), shade(it.accent, 0.6), outline=None)
            elif r < 0.6:
                _books(p, rng, x0 + 0.01, x0 + 0.175, y0 + 0.185, 0.16)


def _draw_wall_shelf(p: Painter, it: Item, rng: random.Random) -> None:
    b, br = it.base, it.detail
    p.poly([(0.20, 0.57), (0.24, 0.57), (0.24, 0.68)], br)
    p.poly([(0.76, 0.57), (0.80, 0.57), (0.76, 0.68)], br)
    _books(p, rng, 0.12, 0.40, 0.52, 0.17)
    p.ellipse((0.58, 0.36, 0.70, 0.52), (90, 150, 190))
    p.rect((0.62, 0.30, 0.66, 0.38), (90, 150, 190))
    p.rect((0.76, 0.44, 0.86, 0.52), (230, 200, 150))
    p.rect((0.08, 0.52, 0.92, 0.575), b, pattern="grain", accent=shade(b, 0.88), period=0.03)


def _draw_trolley(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    dk = shade(b, 0.75)
    p.rect((0.23, 0.12, 0.26, 0.88), dk)
    p.rect((0.74, 0.12, 0.77, 0.88), dk)
    for y in (0.12, 0.42, 0.70):
        p.poly([(0.25, y), (0.75, y), (0.79, y + 0.04), (0.21, y + 0.04)], shade(b, 1.1))
        p.rect((0.21, y + 0.04, 0.79, y + 0.12), b)
    for x in (0.21, 0.71):
        p.ellipse((x, 0.86, x + 0.08, 0.94), (40, 40, 40))


def _draw_toy_box(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    p.rect((0.16, 0.40, 0.84, 0.86), b, pattern=it.pattern, accent=it.accent, period=0.08, radius=0.02)
    p.rect((0.13, 0.32, 0.87, 0.41), shade(b, 0.9), radius=0.02)
    p.ellipse((0.42, 0.345, 0.58, 0.385), (90, 60, 70), outline=None)


def _draw_coat_stand(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    for end in ((0.30, 0.96), (0.70, 0.96), (0.5, 0.95)):
        p.line([(0.5, 0.84), end], b, 0.02)
    p.line([(0.5, 0.05), (0.5, 0.90)], b, 0.022)
    for (x, y) in ((0.36, 0.06), (0.64, 0.06), (0.40, 0.16), (0.60, 0.16)):
        p.line([(0.5, y + 0.05), (x, y)], b, 0.014)
    coat = it.accent
    p.poly([(0.55, 0.14), (0.64, 0.16), (0.70, 0.52), (0.56, 0.56), (0.52, 0.20)], coat)
    p.ellipse((0.40, 0.02, 0.60, 0.08), (200, 190, 160))


def _draw_rug(p: Painter, it: Item, rng: random.Random) -> None:
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


def _draw_cushion(p: Painter, it: Item, rng: random.Random) -> None:
    box = (0.10, 0.26, 0.90, 0.74) if it.variant == "lumbar" else (0.14, 0.14, 0.86, 0.86)
    p.rect(box, it.base, pattern=it.pattern, accent=it.accent, period=0.1, radius=0.12)
    x0, y0, x1, y1 = box
    p.rect((x0 + 0.04, y0 + 0.04, x1 - 0.04, y1 - 0.04), None, outline=shade(it.base, 0.8), width=0.004,
           radius=0.09)


def _draw_soft_toy(p: Painter, it: Item, rng: random.Random) -> None:
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


def _draw_floor_lamp(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    p.ellipse((0.37, 0.92, 0.63, 0.97), b)
    p.line([(0.5, 0.94), (0.5, 0.22)], b, 0.016)
    p.poly([(0.39, 0.04), (0.61, 0.04), (0.67, 0.25), (0.33, 0.25)], it.accent)


def _draw_table_lamp(p: Painter, it: Item, rng: random.Random) -> None:
    p.ellipse((0.36, 0.52, 0.64, 0.92), it.accent)
    p.rect((0.47, 0.44, 0.53, 0.54), shade(it.accent, 0.8))
    p.poly([(0.34, 0.16), (0.66, 0.16), (0.76, 0.46), (0.24, 0.46)], it.base)


def _draw_pendant_dome(p: Painter, it: Item, rng: random.Random) -> None:
    p.line([(0.5, 0.0), (0.5, 0.34)], (30, 30, 30), 0.012)
    p.rect((0.46, 0.32, 0.54, 0.39), shade(it.base, 0.8))
    p.ellipse((0.30, 0.54, 0.70, 0.62), it.accent, outline=None)
    p.shape("chord", ((0.20, 0.36, 0.80, 0.80), 180, 360), it.base)


def _draw_pendant_globe(p: Painter, it: Item, rng: random.Random) -> None:
    p.line([(0.5, 0.0), (0.5, 0.30)], (30, 30, 30), 0.012)
    p.rect((0.46, 0.27, 0.54, 0.32), (120, 120, 120))
    p.ellipse((0.27, 0.30, 0.73, 0.76), it.base)
    p.ellipse((0.36, 0.38, 0.48, 0.50), WHITE, outline=None)


def _draw_vase(p: Painter, it: Item, rng: random.Random) -> None:
    b = it.base
    if it.variant == "tall":
        p.rect((0.38, 0.10, 0.62, 0.92), b, radius=0.06)
        p.rect((0.42, 0.16, 0.46, 0.86), it.accent, outline=None)
        return
    p.rect((0.42, 0.18, 0.58, 0.50), b)
    p.ellipse((0.40, 0.14, 0.60, 0.21), shade(b, 0.9))
    p.ellipse((0.30, 0.40, 0.70, 0.92), b)
    p.ellipse((0.37, 0.50, 0.45, 0.70), it.accent, outline=None)


def _leaf(cx: float, cy: float, ang: float, length: float, width: float) -> list[tuple[float, float]]:
    dx, dy = math.cos(ang), math.sin(ang)
    nx, ny = -dy, dx
    tip = (cx + dx * length, cy + dy * length)
    mid = (cx + dx * length * 0.5, cy + dy * length * 0.5)
    return [(cx, cy), (mid[0] + nx * width, mid[1] + ny * width), tip, (mid[0] - nx * width, mid[1] - ny * width)]


def _draw_plant_pot(p: Painter, it: Item, rng: random.Random) -> None:
    small = it.variant == "small"
    top = 0.62 if small else 0.56
    green = it.accent
    for i in range(9 if small else 13):
        ang = -math.pi / 2 + rng.uniform(-1.25, 1.25)
        length = rng.uniform(0.22, 0.32) if small else rng.uniform(0.28, 0.46)
        col = shade(green, rng.uniform(0.75, 1.2))
        p.poly(_leaf(0.5 + rng.uniform(-0.04, 0.04), top + 0.02, ang, length, length * 0.22), col)
    x0, x1 = (0.34, 0.66) if small else (0.30, 0.70)
    p.poly([(x0 + 0.02, top), (x1 - 0.02, top), (x1 - 0.06, 0.93), (x0 + 0.06, 0.93)], it.base)
    p.rect((x0, top - 0.02, x1, top + 0.05), shade(it.base, 0.92))


def _draw_mirror(p: Painter, it: Item, rng: random.Random) -> None:
    if it.variant == "round":
        p.ellipse((0.10, 0.10, 0.90, 0.90), it.base)
        p.ellipse((0.15, 0.15, 0.85, 0.85), it.accent, pattern="glass", accent=(160, 176, 190), outline=None)
        return
    p.rect((0.32, 0.03, 0.68, 0.97), it.base, radius=0.01)
    p.rect((0.35, 0.055, 0.65, 0.945), it.accent, pattern="glass", accent=(160, 176, 190), outline=None)


def _draw_frame(p: Painter, it: Item, rng: random.Random) -> None:
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


_DRAW: dict[str, Callable[[Painter, Item, random.Random], None]] = {
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

@dataclass
class Product:
    item: Item
    product_id: str
    size: int
    rgb: Image.Image
    mask: Image.Image


def render_product(item: Item, seed: int) -> tuple[Image.Image, Image.Image, int]:
    rng = random.Random(f"{seed}:product:{item.key}")
    size = rng.choice(PRODUCT_SIZES)
    painter = Painter(size)
    _DRAW[item.kind](painter, item, rng)
    rgb, mask = painter.render()
    return rgb, mask, size


def product_ids(seed: int, n: int) -> list[str]:
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
