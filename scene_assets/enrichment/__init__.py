"""Structured fields from raw merchant and scraped product text.

Two kinds of catalog text meet here:

* merchant strings, all capitals and abbreviated: ``8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT``,
  ``PAPER MACHE, 10" EARED VASE, IVORY``, ``S/2 EIFFEL TOWER BOOKENDS``;
* scraped catalog rows with separate columns: type ``Quilt cover and 4 pillowcases``, colour
  ``Black-brown`` / ``Softwood,white``, size ``59,88,117x78 cm``, and prose descriptions that start with
  ``View more product information``.

`parse_description` reads one piece of text, `enrich_product` combines a product's columns (a
structured column wins for the field it is about), `enrich_catalog` does that for a whole polars table.
Colours, materials and categories come from `scene_assets.vocabulary`, shared with the scene palette.

Decisions worth knowing:

* Bare numbers in an all-capitals merchant string are inches (``8X7X3``, ``VASE 15``): that is how
  these merchants write sizes, and metric catalogs always print their unit. Anything else needs a unit.
* ``set_count`` is the number of pieces sold together when the text states a count: ``S/2`` → 2,
  ``SET OF 3`` → 3, ``PAIR``/``1 pair`` → 2, ``24-piece`` → 24, ``Quilt cover and 4 pillowcases`` →
  5 (one cover plus four cases), ``3 pack`` → 3. ``2/A`` ("2 assorted": the item comes in two designs,
  sold as an assortment) also gives 2 and sets ``assorted``. No stated count → None, not 1.
* ``59,88,117x78 cm`` lists every number (59, 88, 117, 78): several widths of one height;
  ``150x200,50x80 cm`` (cover and pillowcase) likewise; a range ``60-90 cm`` gives both ends.
* Colours: a colour column wins; free text fills in. In a colour column a bare material shows its
  tone ("Pine" → natural, "Walnut veneer" → brown) and metal finishes their colour ("Stainless steel"
  → silver). "PEARL GRAY" is grey (pearl shades it), a lone "PEARL" is white. Prose yields colours only
  through unambiguous words ("natural material", "clear lines" are not colours).
* Sizes come from the size column, then the title or type; numbers in prose describe parts ("1.2 mm
  thick leather") and are not used for the product.
* The category is the head noun's: the rightmost keyword before "with/for/and/in/on"
  ("Mirror cabinet with 2 doors" → storage, "Table lamp" → lighting). With a type column, an
  unrecognized type stays "other" rather than guessing from prose.
* The embedding text only holds words the source said, lower-cased, with abbreviations expanded
  (``BLK`` → black, ``S/2`` → set of 2) and glued words split (``URCHINVASE`` → urchin vase). No
  category names, no inferred adjectives. `product_type` follows the same rule, so the elephant of
  ``8X7X3 RSN TRI GEO ELEPHANT`` is an "elephant", not an "elephant figurine".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import polars as pl

from scene_assets import vocabulary as vocab
from scene_assets.enrichment.category import choose_head, type_column_phrase, type_phrase
from scene_assets.enrichment.colours_materials import find_colors, find_materials
from scene_assets.enrichment.counts import expand_slash_forms, set_count_from_tokens
from scene_assets.enrichment.dimensions import SIZE_CLASS_LIMITS_CM, extract_sizes, size_class
from scene_assets.enrichment.phrases import ROOM_PHRASES, STYLE_PHRASES, Token
from scene_assets.enrichment.tokens import clean_text, is_merchant_style, split_segments

__all__ = [
    "ENRICHED_SCHEMA",
    "ParsedText",
    "SIZE_CLASS_LIMITS_CM",
    "TEXT_SOURCES",
    "embedding_text",
    "enrich_catalog",
    "enrich_parsed",
    "enrich_product",
    "parse_description",
    "size_class",
]

# What kind of text is being parsed; each reads colours, sizes and head nouns a little differently.
#   text  – a title or merchant description line (the default)
#   type  – a product-type column ("Rug, flatwoven", "Floor,reading lamp")
#   color – a colour column ("Black-brown", "Softwood,white", "Stainless steel")
#   size  – a size column ("90x200 cm", "3 pack")
#   prose – scraped marketing description sentences
TEXT_SOURCES: tuple[str, ...] = ("text", "type", "color", "size", "prose")


@dataclass(frozen=True)
class ParsedText:
    """Fields extracted from product text. Tuples keep it hashable and safe to cache."""

    product_type: str | None = None
    category: str = vocab.OTHER_CATEGORY
    colors: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    set_count: int | None = None
    assorted: bool = False
    dimensions_cm: tuple[float, ...] = ()
    dimension_text: tuple[str, ...] = ()
    size_class: str | None = None
    volume_l: float | None = None
    style_words: tuple[str, ...] = ()
    room_hints: tuple[str, ...] = ()
    # The source text normalized for embedding: only source words and abbreviation expansions.
    normalized_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


_EMPTY = ParsedText()


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _segment_text(tokens: list[Token]) -> str:
    return re.sub(r"\s*/\s*", "/", " ".join(t.surface for t in tokens)).strip("/ ")


# ---------------------------------------------------------------------------------------------------
# Public parsing
# ---------------------------------------------------------------------------------------------------


def parse_description(text: str | None, *, source: str = "text") -> ParsedText:
    """Parse one piece of product text (by default a title or merchant description line).

    `source` says what the text is (see TEXT_SOURCES); it changes how sizes, colours and head nouns
    are read, e.g. a colour column turns "Stainless steel" into silver, prose ignores "natural".
    """
    if source not in TEXT_SOURCES:
        raise ValueError(f"unknown text source {source!r}; expected one of {TEXT_SOURCES}")
    if text is None or not text.strip():
        return _EMPTY
    return _parse_cached(text, source)


@lru_cache(maxsize=200_000)
def _parse_cached(text: str, source: str) -> ParsedText:
    cleaned = clean_text(text)
    merchant_style = source == "text" and is_merchant_style(cleaned)
    remaining, sizes = extract_sizes(cleaned, merchant_style)
    remaining, slash_count, assorted = expand_slash_forms(remaining)

    segments = split_segments(remaining, source, merchant_style)
    segment_keys = [[t.key for t in seg] for seg in segments]
    all_keys = [k for keys in segment_keys for k in keys]
    assorted = assorted or "assorted" in all_keys

    colors: list[str] = []
    materials: list[str] = []
    styles: list[str] = []
    rooms: list[str] = []
    for keys in segment_keys:
        segment_colors, consumed = find_colors(keys, source)
        segment_materials, segment_looks = find_materials(keys, consumed)
        if source == "color" and not segment_colors:
            # A colour column naming only a material ("Pine", "Softwood,white", "Oak effect") shows
            # the material's tone.
            segment_colors = [vocab.MATERIAL_TONE[m] for m in segment_looks if m in vocab.MATERIAL_TONE]
        colors += segment_colors
        materials += segment_materials
        if source != "prose":
            styles += [" ".join(keys[a:b]) for a, b in STYLE_PHRASES.spans(keys)]
        rooms += [ROOM_PHRASES[tuple(keys[a:b])] for a, b in ROOM_PHRASES.spans(keys)]

    category = vocab.OTHER_CATEGORY
    product_type: str | None = None
    if source in ("text", "type", "prose"):
        chosen = choose_head(segment_keys)
        if chosen is not None:
            index, head = chosen
            category = head.category
            product_type = type_phrase(segments[index], head)
        if source == "type" and segments:
            first_head = chosen[1] if chosen is not None and chosen[0] == 0 else None
            product_type = type_column_phrase(segments[0], first_head)

    set_count = slash_count
    if set_count is None:
        set_count = set_count_from_tokens(all_keys, allow_and_count=source in ("text", "type"))

    joiner = ". " if source == "prose" else ", "
    normalized = joiner.join(filter(None, (_segment_text(seg) for seg in segments)))
    return ParsedText(
        product_type=product_type,
        category=category,
        colors=_dedupe(colors),
        materials=_dedupe(materials),
        set_count=set_count,
        assorted=assorted,
        dimensions_cm=tuple(sizes.values_cm),
        dimension_text=tuple(sizes.spans),
        size_class=size_class(sizes.values_cm),
        volume_l=sizes.volume_l,
        style_words=_dedupe(styles),
        room_hints=_dedupe(rooms),
        normalized_text=normalized,
    )


def _is_informative(parsed: ParsedText) -> bool:
    return parsed.category != vocab.OTHER_CATEGORY or bool(parsed.colors or parsed.materials or parsed.style_words)


def enrich_parsed(
    *,
    title: str | None,
    product_type: str | None = None,
    description: str | None = None,
    color: str | None = None,
    size: str | None = None,
) -> ParsedText:
    """Like `enrich_product` but returns the merged `ParsedText`."""
    type_parsed = parse_description(product_type, source="type")
    title_parsed = parse_description(title, source="text")
    # Merchant catalogs repeat the description line as the title; read it once.
    same_as_title = (
        description is not None and title is not None and description.strip().casefold() == title.strip().casefold()
    )
    prose_parsed = _EMPTY if same_as_title else parse_description(description, source="prose")
    color_parsed = parse_description(color, source="color")
    size_parsed = parse_description(size, source="size")

    has_type = bool(product_type and product_type.strip())
    # A product name such as "GRUNDTAL" says nothing; a title such as "CERAMIC VASE, BLUE" does.
    title_counts = not has_type or _is_informative(title_parsed)
    short_texts = [p for p in (type_parsed, title_parsed if title_counts else _EMPTY) if p is not _EMPTY]
    # Prose names a product's category only when nothing else does: with a type column, an
    # unrecognized type stays "other" rather than trusting "…keeps the worktop clear".
    head_sources = short_texts if has_type else [*short_texts, prose_parsed]
    head = next((p for p in head_sources if p.category != vocab.OTHER_CATEGORY), None)
    category = head.category if head else vocab.OTHER_CATEGORY
    parsed_type = type_parsed.product_type if has_type else (head.product_type if head else None)

    colors = color_parsed.colors or _dedupe(c for p in short_texts for c in p.colors) or prose_parsed.colors
    # Numbers in prose describe parts ("1.2 mm thick leather", "track length 300 cm"): sizes come from
    # the size column, then the title and type only.
    sized = next((p for p in (size_parsed, *short_texts) if p.dimensions_cm), _EMPTY)
    volume_l = next((p.volume_l for p in (size_parsed, *short_texts) if p.volume_l is not None), None)
    set_count = next(
        (p.set_count for p in (type_parsed, size_parsed, *short_texts, prose_parsed) if p.set_count is not None),
        None,
    )
    said = (*short_texts, color_parsed, size_parsed, prose_parsed)

    parts = [type_parsed.normalized_text, title_parsed.normalized_text if title_counts else "",
             color_parsed.normalized_text, prose_parsed.normalized_text]
    # Never empty while the product has any text: an uninformative name is still better than nothing.
    normalized = ". ".join(_dedupe(p for p in parts if p)) or title_parsed.normalized_text

    return ParsedText(
        product_type=parsed_type,
        category=category,
        colors=colors,
        materials=_dedupe(m for p in said for m in p.materials),
        set_count=set_count,
        assorted=any(p.assorted for p in said),
        dimensions_cm=sized.dimensions_cm,
        dimension_text=sized.dimension_text,
        size_class=sized.size_class,
        volume_l=volume_l,
        style_words=_dedupe(s for p in said if p is not prose_parsed for s in p.style_words),
        room_hints=_dedupe(r for p in said for r in p.room_hints),
        normalized_text=normalized,
    )


def enrich_product(
    *,
    title: str | None,
    product_type: str | None = None,
    description: str | None = None,
    color: str | None = None,
    size: str | None = None,
) -> dict[str, Any]:
    """Structured fields of one product from its title, type, description, colour and size columns.

    A structured column wins for its own field: the colour column decides `colors` when it names
    any, the size column `dimensions_cm`, the type column `category` and `product_type`. Free text
    fills the gaps. The result is `ParsedText.to_dict()` plus `embedding_text`.
    """
    parsed = enrich_parsed(title=title, product_type=product_type, description=description, color=color, size=size)
    return {**parsed.to_dict(), "embedding_text": embedding_text(parsed)}


def embedding_text(parsed: ParsedText | Mapping[str, Any]) -> str:
    """The text to embed: the source words, normalized, abbreviations expanded, nothing invented."""
    if isinstance(parsed, ParsedText):
        return parsed.normalized_text
    return str(parsed.get("normalized_text") or parsed.get("embedding_text") or "")


# ---------------------------------------------------------------------------------------------------
# Whole catalogs
# ---------------------------------------------------------------------------------------------------

_INPUT_COLUMNS = ("product_id", "title", "product_type", "description", "color_text", "size_text")

ENRICHED_SCHEMA: dict[str, pl.DataType] = {
    "category": pl.String(),
    "colors": pl.List(pl.String()),
    "materials": pl.List(pl.String()),
    "set_count": pl.Int32(),
    "dimensions_cm": pl.List(pl.Float64()),
    "size_class": pl.String(),
    "parsed_product_type": pl.String(),
    "embedding_text": pl.String(),
    "style_words": pl.List(pl.String()),
    "room_hints": pl.List(pl.String()),
    "volume_l": pl.Float64(),
}


def enrich_catalog(df: pl.DataFrame) -> pl.DataFrame:
    """Add the enriched columns (ENRICHED_SCHEMA) to a catalog table.

    Input needs `product_id, title, product_type, description, color_text, size_text` (the last four
    may be null); other columns pass through. Each distinct text is parsed once (cached), so large
    catalogs with repeated types, colours and sizes cost little more than their distinct values.
    """
    missing = [c for c in _INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"enrich_catalog needs columns {missing}")
    text = df.select(
        pl.col(c).cast(pl.String) for c in ("title", "product_type", "description", "color_text", "size_text")
    )
    parsed_rows = [
        enrich_parsed(title=title, product_type=product_type, description=description, color=color, size=size)
        for title, product_type, description, color, size in text.iter_rows()
    ]
    added = pl.DataFrame(
        {
            "category": [p.category for p in parsed_rows],
            "colors": _list_column([p.colors for p in parsed_rows]),
            "materials": _list_column([p.materials for p in parsed_rows]),
            "set_count": pl.Series([p.set_count for p in parsed_rows], dtype=pl.Int32),
            "dimensions_cm": _list_column([tuple(map(repr, p.dimensions_cm)) for p in parsed_rows]).cast(
                pl.List(pl.Float64)
            ),
            "size_class": [p.size_class for p in parsed_rows],
            "parsed_product_type": [p.product_type for p in parsed_rows],
            "embedding_text": [p.normalized_text for p in parsed_rows],
            "style_words": _list_column([p.style_words for p in parsed_rows]),
            "room_hints": _list_column([p.room_hints for p in parsed_rows]),
            "volume_l": pl.Series([p.volume_l for p in parsed_rows], dtype=pl.Float64),
        },
        schema=ENRICHED_SCHEMA,
    )
    return df.drop([c for c in ENRICHED_SCHEMA if c in df.columns]).hstack(added)


_LIST_SEPARATOR = "\x1f"  # ASCII unit separator: never part of parsed words or numbers


def _list_column(values: list[tuple[str, ...]]) -> pl.Series:
    """list[str] column; joining and splitting in polars is ~25x faster than building nested lists."""
    joined = pl.Series([_LIST_SEPARATOR.join(v) for v in values], dtype=pl.String)
    return pl.select(
        pl.when(joined.str.len_bytes() > 0)
        .then(joined.str.split(_LIST_SEPARATOR))
        .otherwise(pl.lit([], dtype=pl.List(pl.String)))
    ).to_series()
