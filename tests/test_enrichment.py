"""Enrichment parser: real merchant and IKEA strings, the shared vocabulary, and whole real catalogs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import polars as pl
import pytest

from scene_assets import enrichment, vocabulary
from scene_assets.enrichment import (
    ENRICHED_SCHEMA,
    ParsedText,
    embedding_text,
    enrich_catalog,
    enrich_product,
    parse_description,
    size_class,
)
from scene_assets.enrichment.category import build_keyword_table


def approx_list(values):
    return pytest.approx(values, abs=0.01)


# ---------------------------------------------------------------------------------------------------
# Merchant strings (seed catalog style)
# ---------------------------------------------------------------------------------------------------


def test_merchant_elephant_inches_resin_assorted_colour_abbreviations():
    parsed = parse_description("8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT")
    assert parsed.dimensions_cm == approx_list([20.32, 17.78, 7.62])  # bare merchant numbers are inches
    assert parsed.dimension_text == ("8X7X3",)
    assert parsed.size_class == "small"
    assert parsed.materials == ("resin",)
    assert parsed.colors == ("black", "white")
    assert parsed.set_count == 2
    assert parsed.assorted
    assert parsed.category == "figurines"
    assert parsed.product_type == "elephant"
    assert {"tri", "geo"} <= set(parsed.style_words)


def test_merchant_same_item_in_another_word_order():
    parsed = parse_description("CERAMIC ELEPHANT 8X7X3 BLK/WHT S/2")
    assert parsed.dimensions_cm == approx_list([20.32, 17.78, 7.62])
    assert parsed.colors == ("black", "white")
    assert parsed.materials == ("ceramic",)
    assert parsed.set_count == 2
    assert not parsed.assorted
    assert parsed.category == "figurines"


def test_paper_mache_vase_with_inch_mark():
    parsed = parse_description('PAPER MACHE, 10" EARED VASE, IVORY')
    assert parsed.dimensions_cm == approx_list([25.4])
    assert parsed.dimension_text == ('10"',)
    assert parsed.materials == ("paper mache",)
    assert parsed.colors == ("ivory",)
    assert parsed.category == "vases"
    assert parsed.product_type == "vase"


@pytest.mark.parametrize(
    ("text", "expected_cm"),
    [
        ('SNAKESKIN CERAMIC VASE, 32.5"', [82.55]),
        ('CERAMIC HAMMERED SILVER PLATE15.5"', [39.37]),  # glued to the word before it
        ('WHITE/BLUE CERAMIC CURVE VASE17.5"', [44.45]),
        ('10\u201d, NAVY BLUE CERAMIC SEATED BUDDHA', [25.4]),  # typographic inch mark
        ('White Basket Weave Jar 16"', [40.64]),
        ("TURQUOISE/GOLD HOLE VASE 15", [38.1]),  # trailing bare number in a merchant line
        ("CERAMIC HAMMERED SILVER PLATE12.5", [31.75]),
    ],
)
def test_inch_sizes(text, expected_cm):
    assert parse_description(text).dimensions_cm == approx_list(expected_cm)


def test_set_prefix_is_not_a_size():
    parsed = parse_description("S/2 EIFFEL TOWER BOOKENDS")
    assert parsed.set_count == 2
    assert parsed.dimensions_cm == ()
    assert parsed.size_class is None
    assert parsed.category == "bookends"
    assert parsed.product_type == "eiffel tower bookends"


def test_set_of_and_merchant_colour_abbreviations():
    parsed = parse_description("SET OF 3 GRY NAT GLD VASES")
    assert parsed.set_count == 3
    assert parsed.dimensions_cm == ()  # "3" after "SET OF" is a count
    assert parsed.colors == ("grey", "natural", "gold")
    assert parsed.category == "vases"


def test_pair():
    parsed = parse_description("PAIR OF BRASS CANDLESTICKS")
    assert parsed.set_count == 2
    assert parsed.materials == ("brass",)
    assert parsed.category == "candles"


def test_assorted_count():
    parsed = parse_description("3/ASST CERAMIC VOTIVE CANDLE HOLDERS")
    assert parsed.set_count == 3
    assert parsed.assorted
    assert parsed.category == "candles"
    assert parsed.product_type == "votive candle holders"


def test_slash_colours_and_metallics():
    parsed = parse_description("CERAMIC COVERED JAR, BLUE/BRONZE")
    assert parsed.colors == ("blue", "bronze")
    assert parsed.category == "vases"
    assert parsed.product_type == "covered jar"


def test_pearl_is_a_modifier_before_a_colour_and_a_colour_alone():
    assert parse_description("DECORATIVE CERAMIC PLATE, PEARL GRAY").colors == ("grey",)
    assert parse_description("CERAMIC VASE, PEARL").colors == ("white",)
    assert parse_description("DECORATIVE CERAMIC VASE, PEARL/BROWN SNAKE").colors == ("white", "brown")


def test_pearl_snake_garden_stool():
    parsed = parse_description("GARDEN STOOL, CERAMIC, PEARL SNAKE")
    assert parsed.category == "seating"
    assert parsed.product_type == "garden stool"
    assert parsed.materials == ("ceramic",)


def test_gun_metal_is_a_colour_not_a_material():
    parsed = parse_description("CERAMIC BOTTLE, GUN METAL")
    assert parsed.colors == ("grey",)
    assert parsed.materials == ("ceramic",)


def test_glued_merchant_words_are_split():
    parsed = parse_description("DECORATIVE CERAMIC SEA URCHINCOVERED JAR, BEIGE")
    assert parsed.category == "vases"
    assert parsed.product_type == "sea urchin covered jar"
    assert parse_description("DECORATIVE CERAMIC TRAY, LIGHTBLUE").colors == ("blue",)
    assert parse_description("EIFFEL TOWER COVERED JAR, GRAYGREEN").colors == ("grey", "green")
    gold_edge = parse_description("TURQUOISE CERAMIC TRAY W/ GOLDEDGE")
    assert gold_edge.colors == ("turquoise", "gold")
    assert "gold edge" in embedding_text(gold_edge)


def test_head_noun_comes_before_with():
    parsed = parse_description("CERAMIC MONKEY W/ TRAY FIGURINE, WHITE")
    assert parsed.category == "figurines"  # the tray belongs to the monkey
    assert parsed.product_type == "monkey"


def test_merchant_bookkeeping_codes_are_dropped():
    parsed = parse_description("EC, S/2 BLACK ALLIGATOR BOOKENDS")
    assert parsed.category == "bookends"
    assert "ec" not in embedding_text(parsed).split()


# ---------------------------------------------------------------------------------------------------
# IKEA-style columns
# ---------------------------------------------------------------------------------------------------


def test_quilt_cover_with_size():
    parsed = parse_description("Quilt cover, 150x200 cm")
    assert parsed.category == "bedding"
    assert parsed.product_type == "quilt cover"
    assert parsed.dimensions_cm == (150.0, 200.0)
    assert parsed.size_class == "xlarge"


def test_quilt_cover_and_pillowcases_counts_every_piece():
    parsed = parse_description("Quilt cover and 4 pillowcases", source="type")
    assert parsed.category == "bedding"
    assert parsed.product_type == "quilt cover"
    assert parsed.set_count == 5  # one cover and four pillowcases


@pytest.mark.parametrize(
    ("size", "expected_cm", "expected_class"),
    [
        ("90x200 cm", [90.0, 200.0], "xlarge"),
        ("59,88,117x78 cm", [59.0, 88.0, 117.0, 78.0], "large"),  # several widths, one height
        ("150x200,50x80 cm", [150.0, 200.0, 50.0, 80.0], "xlarge"),  # cover and pillowcase
        ("357 mm", [35.7], "medium"),
        ("186x2.8 cm", [186.0, 2.8], "xlarge"),
        ("60-90 cm", [60.0, 90.0], "large"),
        ("1.8 m", [180.0], "xlarge"),
        ("12 cm", [12.0], "small"),
    ],
)
def test_metric_sizes(size, expected_cm, expected_class):
    parsed = parse_description(size, source="size")
    assert parsed.dimensions_cm == approx_list(expected_cm)
    assert parsed.size_class == expected_class


@pytest.mark.parametrize("size", ["0.4 l", "30 cl", "Standard King", "70,80,90", "6-18"])
def test_sizes_without_a_length_unit_give_no_dimensions(size):
    parsed = parse_description(size, source="size")
    assert parsed.dimensions_cm == ()
    assert parsed.size_class is None


def test_volume():
    assert parse_description("0.4 l", source="size").volume_l == pytest.approx(0.4)
    assert parse_description("30 cl", source="size").volume_l == pytest.approx(0.3)
    assert parse_description("3 pack", source="size").set_count == 3


@pytest.mark.parametrize(
    ("color", "colors", "materials"),
    [
        ("Black-brown", ("black", "brown"), ()),
        ("Softwood,white", ("natural", "white"), ("softwood",)),  # bare wood shows its natural tone
        ("White stained oak effect", ("white",), ()),  # oak effect is a foil, not oak
        ("Oak effect", ("natural",), ()),
        ("Stainless steel", ("silver",), ("stainless steel",)),
        ("Stainless steel colour", ("silver",), ()),
        ("Off-white", ("ivory",), ()),
        ("Dark grey", ("grey",), ()),
        ("White,black", ("white", "black"), ()),
        ("Clear glass", ("clear",), ("glass",)),
        ("Chrome-plated", ("silver",), ("chrome-plated",)),
        ("Nickel-plated,white", ("silver", "white"), ("nickel-plated",)),
        ("Pine", ("natural",), ("pine",)),
        ("Multicolour", ("multicolour",), ()),
        ("Assorted colours", ("multicolour",), ()),
        ("Brass-colour", ("gold",), ()),
        ("Nolhaga dark grey,black,wood", ("grey", "black", "natural"), ("wood",)),
    ],
)
def test_ikea_colour_column(color, colors, materials):
    parsed = parse_description(color, source="color")
    assert parsed.colors == colors
    assert parsed.materials == materials


@pytest.mark.parametrize(
    ("product_type", "category", "parsed_type", "set_count"),
    [
        ("Rug, flatwoven", "rugs", "rug", None),
        ("Curtains, 1 pair", "curtains", "curtains", 2),
        ("Nest of tables, set of 2", "tables", "nest of tables", 2),
        ("Wall shelf", "storage", "wall shelf", None),
        ("Table lamp", "lighting", "table lamp", None),
        ("Floor,reading lamp", "lighting", "floor reading lamp", None),
        ("Mirror cabinet with 2 doors", "storage", "mirror cabinet", None),
        ("Bed frame", "beds", "bed frame", None),
        ("Plant pot with saucer", "plants_pots", "plant pot", None),
        ("Jar with lid", "kitchenware", "jar with lid", None),
        ("Hat and coat stand", "storage", "hat and coat stand", None),
        ("Three-seat sofa-bed", "seating", "three seat sofa bed", None),
        ("Add-on unit", "storage", "add on unit", None),
        ("Wsh-stnd w countertop 45 wsh-basin", "storage", "wash stand", None),
        ("Glass", "tableware", "glass", None),
        ("Table+4 reclining chairs, outdoor", "tables", "table", 5),
        ("24-piece cutlery set", "tableware", "24 piece cutlery set", 24),
    ],
)
def test_ikea_type_column(product_type, category, parsed_type, set_count):
    parsed = parse_description(product_type, source="type")
    assert parsed.category == category
    assert parsed.product_type == parsed_type
    assert parsed.set_count == set_count


def test_room_hints_from_type_words():
    assert parse_description("Table, outdoor", source="type").room_hints == ("Outdoor",)
    assert parse_description("Children's chair", source="type").room_hints == ("Baby Children Room",)
    assert parse_description("Bath towel", source="type").room_hints == ("Bathroom",)


def test_boilerplate_is_stripped():
    parsed = parse_description(
        "Light bulb sold separately. IKEA recommends LED bulb E27 600 lumen globe opal white. "
        "View more product information This lamp gives a pleasant light. 10 year guarantee. "
        "Read about the terms in the guarantee brochure.",
        source="prose",
    )
    text = embedding_text(parsed)
    assert "view more" not in text
    assert "guarantee" not in text
    assert "opal" not in text
    assert text == "this lamp gives a pleasant light"


def test_prose_ignores_ambiguous_colour_words():
    parsed = parse_description("Solid wood is a durable natural material. Clear lines.", source="prose")
    assert parsed.colors == ()
    assert parsed.materials == ("wood",)


def test_parse_description_rejects_unknown_source_and_handles_empty():
    with pytest.raises(ValueError):
        parse_description("x", source="nonsense")
    assert parse_description(None) == ParsedText()
    assert parse_description("   ").to_dict()["colors"] == []


def test_to_dict_has_the_documented_keys_and_plain_lists():
    as_dict = parse_description("8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT").to_dict()
    for key in ("product_type", "category", "colors", "materials", "set_count", "dimensions_cm",
                "dimension_text", "size_class"):
        assert key in as_dict
    assert isinstance(as_dict["colors"], list)
    assert isinstance(as_dict["dimensions_cm"], list)


def test_size_class_limits():
    assert size_class([]) is None
    assert size_class([29.9]) == "small"
    assert size_class([30.0, 5.0]) == "medium"
    assert size_class([120.0]) == "large"
    assert size_class([200.0, 90.0]) == "xlarge"


# ---------------------------------------------------------------------------------------------------
# enrich_product: structured columns win
# ---------------------------------------------------------------------------------------------------


def test_enrich_product_ikea_row():
    result = enrich_product(
        title="GRUNDTAL",
        product_type="Wall shelf",
        description="View more product information Saves space on the worktop.",
        color="Stainless steel",
        size="80 cm",
    )
    assert result["category"] == "storage"
    assert result["product_type"] == "wall shelf"
    assert result["colors"] == ["silver"]
    assert result["materials"] == ["stainless steel"]
    assert result["dimensions_cm"] == [80.0]
    assert result["size_class"] == "medium"
    # The series name says nothing about the product; the boilerplate is gone.
    assert result["embedding_text"] == "wall shelf. stainless steel. saves space on the worktop"


def test_structured_columns_win_over_free_text():
    result = enrich_product(title='BLUE CERAMIC VASE 10"', color="Red", size="20 cm")
    assert result["colors"] == ["red"]
    assert result["dimensions_cm"] == [20.0]
    assert result["category"] == "vases"
    assert result["materials"] == ["ceramic"]


def test_type_column_wins_for_category():
    result = enrich_product(title="CERAMIC VASE", product_type="Table lamp")
    assert result["category"] == "lighting"
    assert result["product_type"] == "table lamp"


def test_free_text_fills_gaps():
    result = enrich_product(title="KALLAX", product_type="Shelving unit", description="Made of solid pine.")
    assert result["colors"] == []  # prose "pine" is a material, not a colour
    assert result["materials"] == ["pine"]


def test_prose_numbers_are_not_product_dimensions():
    result = enrich_product(
        title="VIMLE",
        product_type="Footstool",
        description="Contact areas with soft, dyed-through 1.2 mm thick grain leather.",
    )
    assert result["dimensions_cm"] == []
    assert result["materials"] == ["leather"]


def test_merchant_row_with_description_equal_to_title_is_read_once():
    line = "CERAMIC VASE, BLUE"
    result = enrich_product(title=line, description=line)
    assert result["embedding_text"] == "ceramic vase, blue"


def test_unknown_type_stays_other_even_if_prose_mentions_a_keyword():
    result = enrich_product(title="LATTJO", product_type="Cone", description="Fits on the worktop.")
    assert result["category"] == "other"
    assert result["embedding_text"]  # never empty while the product has text


def test_embedding_text_accepts_the_dict_form():
    result = enrich_product(title="S/2 EIFFEL TOWER BOOKENDS")
    assert embedding_text(result) == result["embedding_text"] == "set of 2 eiffel tower bookends"


# ---------------------------------------------------------------------------------------------------
# The embedding text never invents words
# ---------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def _source_words(*sources: str | None) -> set[str]:
    return {w for s in sources if s for w in _WORD.findall(s.lower())}


def _expansion_words(*sources: str | None) -> set[str]:
    """Words that abbreviations present in the sources stand for."""
    words = _source_words(*sources)
    allowed = {w for abbreviation in words if abbreviation in vocabulary.ABBREVIATIONS
               for w in _WORD.findall(vocabulary.ABBREVIATIONS[abbreviation])}
    joined = " ".join(s for s in sources if s)
    if re.search(r"\bS\s*/\s*\d", joined, re.IGNORECASE):
        allowed |= {"set", "of"}
    if re.search(r"\d\s*/\s*A", joined, re.IGNORECASE):
        allowed |= {"assorted"}
    return allowed


def _invented_words(text: str, *sources: str | None) -> list[str]:
    said = _source_words(*sources)
    expansions = _expansion_words(*sources)
    invented = []
    for word in _WORD.findall(text):
        if word in said or word in expansions:
            continue
        # Glued merchant words are split ("URCHINVASE" → urchin vase): the piece is in the source.
        if len(word) >= 3 and any(word in source_word for source_word in said):
            continue
        invented.append(word)
    return invented


NO_INVENTION_CASES = [
    {"title": "8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT"},
    {"title": 'PAPER MACHE, 10" EARED VASE, IVORY'},
    {"title": "S/2 EIFFEL TOWER BOOKENDS"},
    {"title": "DECORATIVE CERAMIC SEA URCHINCOVERED JAR, BEIGE"},
    {"title": "TURQUOISE CERAMIC TRAY W/ GOLDEDGE"},
    {"title": "SET OF 3 GRY NAT GLD VASES"},
    {"title": "EC, S/2 BLACK ALLIGATOR BOOKENDS"},
    {"title": "GRUNDTAL", "product_type": "Wall shelf", "color": "Stainless steel", "size": "80 cm",
     "description": "View more product information Saves space on the worktop."},
    {"title": "MALM", "product_type": "Quilt cover and 4 pillowcases", "color": "Black-brown",
     "size": "150x200,50x80 cm"},
    {"title": "IVAR", "product_type": "Wsh-stnd w countertop 45 wsh-basin", "color": "Softwood,white"},
]


@pytest.mark.parametrize("columns", NO_INVENTION_CASES)
def test_embedding_text_only_holds_source_words(columns):
    result = enrich_product(**columns)
    assert result["embedding_text"]
    assert _invented_words(result["embedding_text"], *columns.values()) == []


def test_invention_check_catches_added_words():
    assert _invented_words("elephant figurine", "8X7X3 RSN TRI GEO ELEPHANT") == ["figurine"]
    assert _invented_words("resin elephant black", "8X7X3 RSN TRI GEO ELEPHANT BLK") == []


def test_ivy_means_ivory_only_in_merchant_capitals():
    assert parse_description("CERAMIC VASE, IVY").colors == ("ivory",)
    assert parse_description("CERAMIC VASE, IVRY").colors == ("ivory",)
    assert parse_description("Ivy", source="color").colors == ()  # IKEA pattern name


def test_embedding_text_adds_no_category_or_inferred_words():
    text = enrich_product(title="8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT")["embedding_text"]
    assert text == "resin tri geo elephant 2 assorted black/white"
    assert "figurine" not in text and "figurines" not in text


# ---------------------------------------------------------------------------------------------------
# enrich_catalog
# ---------------------------------------------------------------------------------------------------


def _catalog_frame(rows: list[dict]) -> pl.DataFrame:
    schema = {c: pl.String for c in ("product_id", "title", "product_type", "description", "color_text", "size_text")}
    return pl.DataFrame(rows, schema=schema)


def test_enrich_catalog_columns_types_and_nulls():
    frame = _catalog_frame([
        {"product_id": "1", "title": "8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT", "product_type": None,
         "description": "8X7X3 RSN TRI GEO ELEPHANT 2/A BLK/WHT", "color_text": None, "size_text": None},
        {"product_id": "2", "title": "GRUNDTAL", "product_type": "Wall shelf", "description": None,
         "color_text": "Stainless steel", "size_text": "80 cm"},
        {"product_id": "3", "title": "EMPTY", "product_type": None, "description": None,
         "color_text": None, "size_text": None},
    ]).with_columns(pl.lit("kept").alias("extra"))
    out = enrich_catalog(frame)
    assert out.height == 3
    assert out["extra"].to_list() == ["kept"] * 3
    for name, dtype in ENRICHED_SCHEMA.items():
        assert out.schema[name] == dtype, name
    first, second, third = out.iter_rows(named=True)
    assert first["colors"] == ["black", "white"]
    assert first["set_count"] == 2
    assert first["dimensions_cm"] == approx_list([20.32, 17.78, 7.62])
    assert first["parsed_product_type"] == "elephant"
    assert second["category"] == "storage"
    assert second["dimensions_cm"] == [80.0]
    assert third["colors"] == [] and third["dimensions_cm"] == [] and third["set_count"] is None
    assert third["embedding_text"] == "empty"


def test_enrich_catalog_requires_input_columns():
    with pytest.raises(ValueError, match="color_text"):
        enrich_catalog(pl.DataFrame({"product_id": ["1"], "title": ["x"], "product_type": [None],
                                     "description": [None], "size_text": [None]}))


# ---------------------------------------------------------------------------------------------------
# Vocabulary consistency
# ---------------------------------------------------------------------------------------------------


def test_colour_vocabulary_is_closed():
    colors = set(vocabulary.COLORS)
    assert set(vocabulary.COLOR_RGB) == colors - vocabulary.NON_PIXEL_COLORS
    assert all(0 <= c <= 255 for rgb in vocabulary.COLOR_RGB.values() for c in rgb)
    for table in (vocabulary.COLOR_WORDS, vocabulary.FINISH_COLORS):
        assert {c for names in table.values() for c in names} <= colors
    assert set(vocabulary.MATERIAL_TONE.values()) <= colors
    assert vocabulary.PROSE_COLOR_WORDS <= set(vocabulary.COLOR_WORDS)
    # Every colour abbreviation expands to a colour word.
    for abbreviation in ("blk", "wht", "gry", "nat", "gld", "slv", "brn", "brz", "ivy", "ivry", "grn", "blu", "crm"):
        assert vocabulary.ABBREVIATIONS[abbreviation] in vocabulary.COLOR_WORDS


def test_material_vocabulary_is_closed():
    assert set(vocabulary.MATERIAL_WORDS.values()) <= set(vocabulary.MATERIAL_FAMILY)
    assert set(vocabulary.MATERIAL_TONE) <= set(vocabulary.MATERIAL_WORDS) | set(vocabulary.MATERIAL_FAMILY)
    assert vocabulary.ABBREVIATIONS["rsn"] == "resin"


def test_category_taxonomy_is_closed():
    categories = set(vocabulary.CATEGORIES)
    assert vocabulary.OTHER_CATEGORY in categories
    assert set(vocabulary.CATEGORY_KEYWORDS) <= categories
    assert set(vocabulary.CATEGORY_ROOMS) == categories == set(vocabulary.CATEGORY_GROUP)
    for rooms in vocabulary.CATEGORY_ROOMS.values():
        assert rooms and set(rooms) <= set(vocabulary.ROOM_TYPES)
    assert set(vocabulary.ROOM_HINT_WORDS.values()) <= set(vocabulary.ROOM_TYPES)
    build_keyword_table()  # raises when a keyword maps to two categories


# ---------------------------------------------------------------------------------------------------
# Whole real catalogs (read where they lie; skipped without ../shared)
# ---------------------------------------------------------------------------------------------------


def _seed_frame(path: Path) -> pl.DataFrame:
    raw = pl.read_csv(path, infer_schema_length=0)
    return raw.select(
        pl.col("id").alias("product_id"),
        pl.col("description").alias("title"),
        pl.lit(None, pl.String).alias("product_type"),
        pl.col("description"),
        pl.lit(None, pl.String).alias("color_text"),
        pl.lit(None, pl.String).alias("size_text"),
    )


def _ikea_frame(folder: Path) -> pl.DataFrame:
    raw = pl.read_csv(folder / "products.csv", infer_schema_length=0)
    return raw.select(
        "product_id",
        pl.col("name").alias("title"),
        pl.col("type").alias("product_type"),
        "description",
        pl.col("color").alias("color_text"),
        pl.col("size").alias("size_text"),
    )


# Measured: seed 100 % categorized, 97 % with colours; IKEA 99.8 % categorized, 94 % with colours.
SEED_CATEGORY_FLOOR = 0.97
IKEA_CATEGORY_FLOOR = 0.97
COLOR_FLOOR = 0.90


def test_seed_catalog(seed_catalog_csv):
    out = enrich_catalog(_seed_frame(seed_catalog_csv))
    assert out.height == 500
    assert (out["category"] != "other").mean() >= SEED_CATEGORY_FLOOR
    assert (out["colors"].list.len() > 0).mean() >= COLOR_FLOOR
    # Every explicit size in a merchant line is read.
    sized = out.filter(pl.col("title").str.contains(r'\d+(?:\.\d+)?\s*[xX]\s*\d+|\d+(?:\.\d+)?\s*["\u201d]'))
    assert sized.height > 0
    assert (sized["dimensions_cm"].list.len() > 0).all()
    assert (out["embedding_text"].str.len_chars() > 0).all()
    for row in out.iter_rows(named=True):
        assert _invented_words(row["embedding_text"], row["title"]) == [], row["title"]


def test_ikea_catalog(ikea_dir):
    frame = _ikea_frame(ikea_dir)
    out = enrich_catalog(frame)
    assert out.height == frame.height
    assert (out["category"] != "other").mean() >= IKEA_CATEGORY_FLOOR
    assert (out["colors"].list.len() > 0).mean() >= COLOR_FLOOR
    with_unit = out.filter(pl.col("size_text").str.contains(r"\d\s*(?:cm|mm|m)$"))
    assert (with_unit["dimensions_cm"].list.len() > 0).all()
    assert (out["embedding_text"].str.len_chars() > 0).all()
    assert not out["embedding_text"].str.contains("view more product information").any()
    for row in out.iter_rows(named=True):
        sources = (row["title"], row["product_type"], row["description"], row["color_text"], row["size_text"])
        assert _invented_words(row["embedding_text"], *sources) == [], sources


def test_both_catalogs_are_fast(seed_catalog_csv, ikea_dir):
    frames = [_seed_frame(seed_catalog_csv), _ikea_frame(ikea_dir)]
    enrichment._parse_cached.cache_clear()
    started = time.perf_counter()
    for frame in frames:
        enrich_catalog(frame)
    # ~2.7k rows take about half a second cold; the bound leaves room for slow CI machines.
    assert time.perf_counter() - started < 5.0
