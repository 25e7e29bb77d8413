"""Colours and materials named in a segment's tokens."""

from __future__ import annotations

from scene_assets import vocabulary as vocab
from scene_assets.enrichment.phrases import (
    COLOR_PHRASES,
    FINISH_PHRASES,
    MATERIAL_PHRASES,
    PROSE_COLOR_PHRASES,
)


def find_colors(keys: list[str], source: str) -> tuple[list[str], set[int]]:
    """Canonical colours in order, and the token positions used by multi-word colour names."""
    table = PROSE_COLOR_PHRASES if source == "prose" else COLOR_PHRASES
    found: list[str] = []
    consumed: set[int] = set()
    i = 0
    while i < len(keys):
        if source == "color":
            length = FINISH_PHRASES.longest_at(keys, i)
            if length:
                found.extend(FINISH_PHRASES[tuple(keys[i : i + length])])
        length = table.longest_at(keys, i)
        if not length:
            i += 1
            continue
        phrase = tuple(keys[i : i + length])
        # "PEARL GRAY": pearl shades the colour after it; alone ("VASE, PEARL") it is a colour.
        if phrase == ("pearl",) and i + 1 < len(keys) and table.longest_at(keys, i + 1):
            i += 1
            continue
        found.extend(table[phrase])
        if length > 1:
            consumed.update(range(i, i + length))
        i += length
    return found, consumed


def find_materials(keys: list[str], skip: set[int]) -> tuple[list[str], list[str]]:
    """(materials the product is made of, materials it looks like).

    "Oak veneer" is both; "White stained oak effect" only looks like oak; "Felt-tip pen" is neither.
    """
    made_of: list[str] = []
    looks_like: list[str] = []
    i = 0
    while i < len(keys):
        length = 0 if i in skip else MATERIAL_PHRASES.longest_at(keys, i)
        if not length:
            i += 1
            continue
        after = keys[i + length] if i + length < len(keys) else ""
        phrase = " ".join(keys[i : i + length])
        material = MATERIAL_PHRASES[tuple(keys[i : i + length])]
        if f"{phrase} {after}".strip() not in vocab.NOT_MATERIAL_PHRASES:
            looks_like.append(material)
            if after not in vocab.NOT_MATERIAL_AFTER:
                made_of.append(material)
        i += length
    return made_of, looks_like
