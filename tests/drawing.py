"""Synthetic product pictures shared by the recommender and API tests: a coloured shape on white,
with a seeded jitter so two products of the same shape and colour still differ."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "box", "triangle", "stripes", "ring", "cross")


def product_image(colour: tuple[int, int, int], shape: str, seed: int) -> Image.Image:
    j = int(np.random.default_rng(seed).integers(0, 12))
    img = Image.new("RGB", (160, 160), (250, 250, 250))
    d = ImageDraw.Draw(img)
    if shape == "disc":
        d.ellipse([30 + j, 30, 130, 130 - j], fill=colour)
    elif shape == "box":
        d.rectangle([25, 40 + j, 135, 125], fill=colour)
    elif shape == "triangle":
        d.polygon([(80, 20 + j), (140, 140), (20, 140)], fill=colour)
    elif shape == "stripes":
        for x in range(10 + j, 150, 24):
            d.rectangle([x, 20, x + 10, 140], fill=colour)
    elif shape == "ring":
        d.ellipse([25, 25, 135, 135], outline=colour, width=18 + j)
    else:
        d.rectangle([70, 15, 90 + j, 145], fill=colour)
        d.rectangle([15, 70, 145, 90 + j], fill=colour)
    return img
