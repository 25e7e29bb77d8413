"""Drawing primitives of the sample generator: colours, textures and the product painter.

The painter draws in unit coordinates on a supersampled white canvas and keeps a mask of
everything drawn, so that the scenes can paste the product without its white background.
"""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw

_SUPERSAMPLE = 2

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)


# --------------------------------------------------------------------------------------
# colour helpers
# --------------------------------------------------------------------------------------


def shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, int(round(v * f)))) for v in c)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(a[i] * (1 - t) + b[i] * t)) for i in range(3))  # type: ignore[return-value]


def _outline_for(c: RGB) -> RGB:
    # light colours get a grey contour (as white furniture has in real product shots)
    if sum(c) > 600:
        return (186, 186, 186)
    return shade(c, 0.72)


# --------------------------------------------------------------------------------------
# product painter: draws in unit coordinates on a supersampled white canvas, keeps a mask
# --------------------------------------------------------------------------------------


class Painter:
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
            self.img.paste(_texture(self.n, fill, accent or shade(fill, 0.7), pattern, period), (0, 0), tmp)
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
            d.line([(x, 0), (x, n)], fill=mix(base, accent, 0.5), width=max(1, p // 14))
    elif pattern == "glass":
        for i in range(n):  # soft vertical gradient
            d.line([(0, i), (n, i)], fill=mix(base, accent, i / n * 0.5))
        d.polygon([(n * 0.15, n), (n * 0.35, n), (n * 0.85, 0), (n * 0.65, 0)], fill=mix(base, WHITE, 0.55))
        d.polygon([(n * 0.42, n), (n * 0.48, n), (n * 0.98, 0), (n * 0.92, 0)], fill=mix(base, WHITE, 0.4))
    elif pattern != "solid":  # pragma: no cover - programming error
        raise ValueError(pattern)
    return tex
