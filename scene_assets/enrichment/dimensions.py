"""Dimensions, volumes and the size class read from product text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Largest dimension (cm) below which a product is in the class; beyond the last it is "xlarge".
# A 10" vase is small, a dining chair medium, a table large, a bed, rug or wardrobe xlarge.
SIZE_CLASS_LIMITS_CM: tuple[tuple[str, float], ...] = (("small", 30.0), ("medium", 90.0), ("large", 180.0))

_NUM = r"\d+(?:\.\d+)?"
# Numbers joined by x (a box), "," without spaces (several widths: "59,88,117x78"), or "-" (a range).
# The look-arounds keep "S/2" and "2/A" (set counts) out.
_NUM_GROUP = rf"(?<![\d./]){_NUM}(?:\s*[xX*]\s*{_NUM}|,{_NUM}|\s*-\s*{_NUM})*(?![\d]|\s*/)"
_METRIC = re.compile(rf"({_NUM_GROUP})\s*(mm|cm|m)\b", re.IGNORECASE)
_INCH_MARKED = re.compile(rf"({_NUM_GROUP})\s*(?:\"|''|inch(?:es)?\b)", re.IGNORECASE)
_INCH_WORD = re.compile(rf"({_NUM_GROUP})\s*in\.?(?=\s|,|$)", re.IGNORECASE)  # "10 IN" – merchant strings only
_BARE_BOX = re.compile(rf"(?<![\d./]){_NUM}(?:\s*[xX]\s*{_NUM})+(?![\d.]|\s*/)")
_BARE_TRAILING = re.compile(rf"(?<=[A-Za-z\s])({_NUM})\s*$")
_VOLUME = re.compile(r"(?<![\d./])(\d+(?:[.,]\d{1,2})?)\s*(ml|cl|dl|l)\b", re.IGNORECASE)
_NUMBER = re.compile(_NUM)
_DIGIT = re.compile(r"\d")
_UNIT_TO_CM = {"mm": 0.1, "cm": 1.0, "m": 100.0, "in": 2.54}
_LITRES = {"ml": 0.001, "cl": 0.01, "dl": 0.1, "l": 1.0}
# A trailing bare number after these words is a count, not a size ("SET OF 3").
_COUNT_WORDS_BEFORE_NUMBER = frozenset({"of", "set", "pack", "pair", "pairs", "pc", "pcs", "piece", "pieces", "no"})


@dataclass
class _Sizes:
    values_cm: list[float]
    spans: list[str]
    volume_l: float | None


def _numbers_cm(span: str, unit: str) -> list[float]:
    factor = _UNIT_TO_CM[unit]
    return [round(float(n) * factor, 2) for n in _NUMBER.findall(span)]


def extract_sizes(text: str, merchant_style: bool) -> tuple[str, _Sizes]:
    """Find every size and volume, return the text without them plus the values."""
    sizes = _Sizes([], [], None)
    if not _DIGIT.search(text):
        return text, sizes
    found: list[tuple[int, str, list[float]]] = []  # (position, matched text, values in cm)

    def take(pattern: re.Pattern[str], unit: str | None = None) -> None:
        """Record every match (unit from the pattern's second group unless given) and blank it out."""
        nonlocal text
        for match in pattern.finditer(text):
            numbers = match.group(1) if pattern.groups else match.group(0)
            found.append((match.start(), match.group(0).strip(), _numbers_cm(numbers, unit or match.group(2).lower())))
        # Spaces of the same length keep later positions valid for ordering the spans.
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)

    take(_METRIC)
    take(_INCH_MARKED, "in")
    if merchant_style:
        take(_INCH_WORD, "in")
        take(_BARE_BOX, "in")
        trailing = None if found else _BARE_TRAILING.search(text)
        words_before = text[: trailing.start()].split() if trailing else []
        if trailing and not (words_before and words_before[-1].lower() in _COUNT_WORDS_BEFORE_NUMBER):
            found.append((trailing.start(), trailing.group(0).strip(), _numbers_cm(trailing.group(1), "in")))
            text = text[: trailing.start()]
    for _, span, values in sorted(found):
        sizes.spans.append(span)
        sizes.values_cm.extend(values)

    volume = _VOLUME.search(text)
    if volume:
        sizes.volume_l = round(float(volume.group(1).replace(",", ".")) * _LITRES[volume.group(2).lower()], 4)
        text = _VOLUME.sub(" ", text)
    return text, sizes


def size_class(dimensions_cm: Iterable[float]) -> str | None:
    """small / medium / large / xlarge from the largest dimension; None without dimensions."""
    largest = max(dimensions_cm, default=None)
    if largest is None:
        return None
    for name, limit in SIZE_CLASS_LIMITS_CM:
        if largest < limit:
            return name
    return "xlarge"
