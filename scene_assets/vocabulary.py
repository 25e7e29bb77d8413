"""The one shared vocabulary of colours, materials, product categories and room types.

Product enrichment (text → structured fields) and the scene colour palette (pixels → colour names)
both speak this vocabulary, so a product said to be "BLK/WHT" and a scene whose pixels are mostly
near-black meet on the same canonical name `black`.

Every lookup key here is *normalized text*: lower case, hyphens and slashes read as spaces, one space
between words (`"Black-brown"` → `"black brown"`, `"Chrome-plated"` → `"chrome plated"`).
Plain data only; the parsing logic lives in `scene_assets.enrichment`.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------------

# Canonical colour names, roughly in hue order. A product lists any number of these.
COLORS: tuple[str, ...] = (
    "black", "white", "grey", "silver", "ivory", "cream", "beige", "natural", "brown", "bronze",
    "copper", "gold", "yellow", "orange", "red", "pink", "purple", "blue", "turquoise", "green",
    "clear", "multicolour",
)

# A representative sRGB value per colour that has a pixel appearance; the scene palette maps each
# pixel cluster to the nearest of these. Metallics use the mid-tone of the metal; `natural` is a
# light wood tone.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (245, 245, 242),
    "grey": (128, 128, 128),
    "silver": (192, 192, 196),
    "ivory": (250, 246, 228),
    "cream": (238, 226, 196),
    "beige": (214, 196, 160),
    "natural": (196, 160, 112),
    "brown": (110, 72, 42),
    "bronze": (140, 100, 50),
    "copper": (184, 115, 51),
    "gold": (212, 175, 55),
    "yellow": (240, 205, 50),
    "orange": (235, 125, 40),
    "red": (190, 35, 45),
    "pink": (235, 160, 180),
    "purple": (120, 70, 150),
    "blue": (40, 80, 170),
    "turquoise": (40, 180, 175),
    "green": (70, 135, 70),
}

# Colour names that describe a product but have no pixel colour of their own: a clear glass shows the
# scene behind it, "multicolour" is many colours. They stay out of COLOR_RGB so the palette never
# assigns them to a pixel; they still match between products.
NON_PIXEL_COLORS: frozenset[str] = frozenset({"clear", "multicolour"})

# Spoken colour words → canonical colours. Multi-word keys are matched before single words, so
# "off white" → ivory wins over "white", and "gun metal" → grey over nothing.
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    # black
    "black": ("black",), "ebony": ("black",), "jet": ("black",), "onyx": ("black",),
    # white
    "white": ("white",), "snow": ("white",), "opal": ("white",), "pearl": ("white",),
    "bright white": ("white",), "chalk": ("white",),
    # grey (spelled grey in the vocabulary; merchants write GRAY)
    "grey": ("grey",), "gray": ("grey",), "charcoal": ("grey",), "anthracite": ("grey",),
    "gunmetal": ("grey",), "gun metal": ("grey",), "slate": ("grey",), "graphite": ("grey",),
    "pewter": ("grey",), "greige": ("grey", "beige"),
    # silver / metallic whites
    "silver": ("silver",),
    # off-whites
    "ivory": ("ivory",), "off white": ("ivory",), "eggshell": ("ivory",),
    "cream": ("cream",), "ecru": ("cream",), "vanilla": ("cream",),
    # beige / brown
    "beige": ("beige",), "tan": ("beige",), "taupe": ("beige",), "sand": ("beige",),
    "khaki": ("beige",), "camel": ("beige",), "oatmeal": ("beige",),
    "brown": ("brown",), "chocolate": ("brown",), "mocha": ("brown",),
    # wood tone
    "natural": ("natural",), "natural colour": ("natural",), "natural color": ("natural",),
    # metallics
    "bronze": ("bronze",), "copper": ("copper",), "rose gold": ("copper",),
    "gold": ("gold",), "golden": ("gold",),
    # warm hues
    "yellow": ("yellow",), "mustard": ("yellow",), "lemon": ("yellow",), "ochre": ("yellow",),
    "orange": ("orange",), "rust": ("orange",), "amber": ("orange",), "apricot": ("orange",),
    "red": ("red",), "burgundy": ("red",), "maroon": ("red",), "crimson": ("red",),
    "scarlet": ("red",),
    "pink": ("pink",), "blush": ("pink",), "fuchsia": ("pink",), "magenta": ("pink",),
    "salmon": ("pink",),
    "purple": ("purple",), "lilac": ("purple",), "lavender": ("purple",), "violet": ("purple",),
    "plum": ("purple",), "mauve": ("purple",), "aubergine": ("purple",),
    # cool hues
    "blue": ("blue",), "navy": ("blue",), "cobalt": ("blue",), "indigo": ("blue",),
    "denim": ("blue",), "azure": ("blue",),
    "turquoise": ("turquoise",), "teal": ("turquoise",), "aqua": ("turquoise",),
    "aquamarine": ("turquoise",), "cyan": ("turquoise",), "petrol": ("turquoise",),
    "green": ("green",), "olive": ("green",), "sage": ("green",), "mint": ("green",),
    "emerald": ("green",), "jade": ("green",), "lime": ("green",), "viridian": ("green",),
    # no single hue
    "clear": ("clear",), "transparent": ("clear",), "colourless": ("clear",),
    "colorless": ("clear",),
    "multicolour": ("multicolour",), "multicolor": ("multicolour",), "multi": ("multicolour",),
    "multi colour": ("multicolour",), "multi color": ("multicolour",),
    "assorted colours": ("multicolour",), "assorted colors": ("multicolour",),
    "rainbow": ("multicolour",),
}

# In long scraped prose many colour words mean something else ("natural material", "clear lines",
# "rust-resistant", "olive oil", "sand the surface", "opal white bulb"). Prose contributes colours only
# through these unambiguous words.
PROSE_COLOR_WORDS: frozenset[str] = frozenset({
    "black", "white", "grey", "gray", "silver", "ivory", "beige", "brown", "bronze", "copper", "gold",
    "yellow", "orange", "red", "pink", "purple", "lilac", "blue", "navy", "turquoise", "teal", "green",
    "multicolour", "multicolor", "anthracite", "off white",
})

# Words that shade a colour without changing its canonical name ("DARK GREY" → grey). "pearl" is a
# colour on its own ("CERAMIC VASE, PEARL" → white) but only a modifier before another colour
# ("PEARL GRAY" → grey).
COLOR_MODIFIERS: frozenset[str] = frozenset({
    "light", "dark", "pale", "bright", "deep", "medium", "baby", "dusty", "soft", "warm", "cool",
    "pearl", "antique", "distressed", "ombre", "high gloss", "gloss", "glossy", "matte", "matt",
    "metallic", "hammered", "brushed", "stained", "stain", "frosted",
})

# Metal finishes named in a *colour* field ("Stainless steel", "Chrome-plated") describe how the
# product looks, so in colour fields they also yield a colour. In free text they are materials only.
FINISH_COLORS: dict[str, tuple[str, ...]] = {
    "stainless steel": ("silver",),
    "steel": ("silver",),
    "chrome plated": ("silver",),
    "chrome": ("silver",),
    "nickel plated": ("silver",),
    "aluminium": ("silver",),
    "aluminum": ("silver",),
    "galvanised": ("grey",),
    "galvanized": ("grey",),
    "zinc": ("grey",),
    "brass": ("gold",),
    "mirror glass": ("silver",),
    "frosted glass": ("white",),
}

# The look of a material when a colour field names only the material ("Pine", "Bamboo,white"):
# untreated wood and plant fibres read as the `natural` wood tone, dark woods as brown.
MATERIAL_TONE: dict[str, str] = {
    "wood": "natural", "pine": "natural", "birch": "natural", "beech": "natural", "oak": "natural",
    "ash": "natural", "bamboo": "natural", "spruce": "natural", "larch": "natural",
    "softwood": "natural", "plywood": "natural", "eucalyptus": "natural", "acacia": "brown",
    "walnut": "brown", "teak": "brown", "mango wood": "brown", "rubberwood": "natural",
    "rattan": "natural", "seagrass": "natural", "water hyacinth": "natural", "jute": "natural",
    "sisal": "natural", "cork": "natural", "banana fibre": "natural", "wicker": "natural",
    "cane": "natural", "terracotta": "orange",
}

# ---------------------------------------------------------------------------------------------------
# Materials
# ---------------------------------------------------------------------------------------------------

# Spoken material words → canonical material.
MATERIAL_WORDS: dict[str, str] = {
    # resins and plastics
    "resin": "resin", "polyresin": "resin", "poly resin": "resin",
    "plastic": "plastic", "polypropylene": "plastic", "polyethylene": "plastic", "pvc": "plastic",
    "vinyl": "plastic", "melamine": "plastic", "acrylic": "plastic", "abs plastic": "plastic",
    "silicone": "silicone", "rubber": "rubber", "foam": "foam", "polyurethane foam": "foam",
    "memory foam": "foam",
    # ceramics
    "ceramic": "ceramic", "ceramics": "ceramic", "porcelain": "porcelain",
    "feldspar porcelain": "porcelain", "bone china": "porcelain", "stoneware": "stoneware",
    "earthenware": "earthenware", "terracotta": "terracotta", "clay": "clay",
    # glass and paper
    "glass": "glass", "tempered glass": "glass", "mirror glass": "glass",
    "paper mache": "paper mache", "papier mache": "paper mache", "paper": "paper",
    "cardboard": "paper",
    # wood and wood species
    "wood": "wood", "wooden": "wood", "solid wood": "wood", "timber": "wood", "hardwood": "wood",
    "softwood": "softwood", "plywood": "plywood", "particleboard": "particleboard",
    "fibreboard": "fibreboard", "fiberboard": "fibreboard", "mdf": "fibreboard",
    "oak": "oak", "pine": "pine", "birch": "birch", "beech": "beech", "bamboo": "bamboo",
    "acacia": "acacia", "walnut": "walnut", "teak": "teak", "ash": "ash", "spruce": "spruce",
    "larch": "larch", "eucalyptus": "eucalyptus", "mango wood": "mango wood",
    "rubberwood": "rubberwood",
    # plant fibres
    "rattan": "rattan", "wicker": "rattan", "cane": "rattan", "seagrass": "seagrass",
    "water hyacinth": "water hyacinth", "banana fibre": "banana fibre",
    "banana fiber": "banana fibre", "jute": "jute", "sisal": "sisal", "cork": "cork",
    # metals
    "metal": "metal", "steel": "steel", "stainless steel": "stainless steel",
    "galvanised": "steel", "galvanized": "steel", "iron": "iron", "cast iron": "iron",
    "wrought iron": "iron", "brass": "brass", "aluminium": "aluminium", "aluminum": "aluminium",
    "zinc": "zinc", "nickel plated": "nickel-plated", "chrome plated": "chrome-plated",
    "chrome": "chrome-plated",
    # textiles and skins
    "textile": "textile", "fabric": "textile", "cotton": "cotton", "linen": "linen",
    "wool": "wool", "polyester": "polyester", "velvet": "velvet", "leather": "leather",
    "faux leather": "faux leather", "sheepskin": "sheepskin", "lyocell": "lyocell",
    "viscose": "viscose", "nylon": "polyamide", "polyamide": "polyamide", "silk": "silk",
    "felt": "felt", "hemp": "hemp", "microfibre": "polyester", "chenille": "chenille",
    # stone and mineral
    "marble": "marble", "stone": "stone", "granite": "granite", "concrete": "concrete",
    "cement": "concrete", "travertine": "stone", "quartz": "stone",
}

# Broad family of each canonical material, for coarse matching ("oak" and "pine" are both wood).
MATERIAL_FAMILY: dict[str, str] = {
    **{m: "wood" for m in ("wood", "softwood", "plywood", "particleboard", "fibreboard", "oak",
                           "pine", "birch", "beech", "bamboo", "acacia", "walnut", "teak", "ash",
                           "spruce", "larch", "eucalyptus", "mango wood", "rubberwood")},
    **{m: "natural fibre" for m in ("rattan", "seagrass", "water hyacinth", "banana fibre", "jute",
                                    "sisal", "cork")},
    **{m: "metal" for m in ("metal", "steel", "stainless steel", "iron", "brass", "aluminium",
                            "zinc", "nickel-plated", "chrome-plated")},
    **{m: "ceramic" for m in ("ceramic", "porcelain", "stoneware", "earthenware", "terracotta",
                              "clay")},
    **{m: "textile" for m in ("textile", "cotton", "linen", "wool", "polyester", "velvet",
                              "lyocell", "viscose", "polyamide", "silk", "felt", "hemp",
                              "chenille")},
    **{m: "leather" for m in ("leather", "faux leather", "sheepskin")},
    **{m: "stone" for m in ("marble", "stone", "granite", "concrete")},
    **{m: "plastic" for m in ("plastic", "resin", "silicone", "rubber", "foam")},
    "glass": "glass",
    "paper": "paper",
    "paper mache": "paper",
}

# A material word followed by one of these names an imitation or a colour, not the material:
# "White stained oak effect", "Black stone effect", "Copper-colour", "Stainless steel colour".
NOT_MATERIAL_AFTER: frozenset[str] = frozenset({"effect", "colour", "color", "coloured", "colored", "look"})
# Phrases where a material word is part of another noun ("Felt-tip pen", "paper napkin" is fine).
NOT_MATERIAL_PHRASES: frozenset[str] = frozenset({"felt tip", "ash tray", "iron board"})

# ---------------------------------------------------------------------------------------------------
# Abbreviations
# ---------------------------------------------------------------------------------------------------

# Merchant abbreviations → the words they stand for. Expansion is the only way enrichment may put a
# word into the embedding text that the source did not spell out.
ABBREVIATIONS: dict[str, str] = {
    # colours
    "blk": "black", "bk": "black", "wht": "white", "wh": "white", "gry": "grey", "gra": "grey",
    "gy": "grey", "nat": "natural", "natl": "natural", "gld": "gold", "slv": "silver",
    "slvr": "silver", "sil": "silver", "brn": "brown", "brz": "bronze", "brnz": "bronze",
    "ivy": "ivory", "ivry": "ivory", "ivo": "ivory", "grn": "green", "blu": "blue", "crm": "cream",
    "bge": "beige", "pnk": "pink", "prpl": "purple", "pur": "purple", "orng": "orange",
    "org": "orange", "ylw": "yellow", "yel": "yellow", "turq": "turquoise", "cpr": "copper",
    "clr": "clear", "mlt": "multicolour",
    # materials
    "rsn": "resin", "cer": "ceramic", "mtl": "metal", "met": "metal", "wd": "wood", "gls": "glass",
    "porc": "porcelain", "alum": "aluminium", "stl": "steel", "ss": "stainless steel",
    "polyres": "polyresin",
    # shapes, sizes and joiners
    "w": "with", "asst": "assorted", "ast": "assorted", "pr": "pair", "pc": "piece",
    "pcs": "pieces", "sm": "small", "lg": "large", "lrg": "large", "med": "medium",
    "rect": "rectangular", "rnd": "round", "sq": "square", "dia": "diameter", "deco": "decorative",
    "dec": "decorative",
    # IKEA's shortened type names ("Wsh-stnd w countertop", "Stor baskets changing tbl")
    "wsh": "wash", "stnd": "stand", "tbl": "table", "stor": "storage", "cab": "cabinet",
    "ext": "extendable", "frm": "frame", "bd": "bed", "drs": "doors",
}

# Abbreviations that are also ordinary words: expanded only in all-caps merchant strings, where
# "IVY" means ivory; in mixed-case text "Ivy" is the plant.
UPPERCASE_ONLY_ABBREVIATIONS: frozenset[str] = frozenset({
    "ivy", "nat", "org", "met", "dec", "pur", "sil", "ss", "med", "gra", "wh", "bk", "gy", "ast",
    "pr", "sm", "lg", "sq", "dia", "deco", "cer", "stl", "stor",
})

# Merchant bookkeeping codes that carry no product meaning ("EC, S/2 BLACK ALLIGATOR BOOKENDS",
# "SILVER CERAMIC PUG DOG DS"); dropped from all-caps merchant strings.
MERCHANT_CODES: frozenset[str] = frozenset({"ec", "ds"})

# Spelled-out numbers in set expressions ("set of two").
NUMBER_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "twelve": 12,
}

# ---------------------------------------------------------------------------------------------------
# Style words (shape, finish, pattern): hints, never part of the product type.
# ---------------------------------------------------------------------------------------------------

STYLE_WORDS: frozenset[str] = frozenset({
    "geo", "geometric", "tri", "modern", "contemporary", "rustic", "vintage", "antique", "industrial",
    "minimalist", "scandinavian", "boho", "bohemian", "coastal", "farmhouse", "traditional", "classic",
    "decorative", "sleek", "dimpled", "hammered", "distressed", "ribbed", "scalloped", "beaded",
    "banded", "tribal", "floral", "cutout", "cutouts", "ombre", "striped", "stripe", "stripes",
    "snakeskin", "metallic", "gloss", "glossy", "matte", "handmade", "handwoven", "zig", "zag",
    "swirl", "flared", "textured", "woven", "braided", "flatwoven", "quilted", "patterned",
    "check", "checked", "chequered", "dotted", "round", "square", "rectangular", "oval", "hexagon",
    "circular", "curve", "curved", "wide", "bubble", "feathered", "eared", "marbled",
    "tufted", "fringed", "pleated", "sculptural", "abstract", "glazed", "crackle", "mirrored",
    "carved", "twisted", "faceted", "fluted", "embossed", "perforated", "slatted", "upholstered",
    "wall mounted", "foldable", "stackable", "extendable", "adjustable", "high gloss",
})

# ---------------------------------------------------------------------------------------------------
# Rooms and categories
# ---------------------------------------------------------------------------------------------------

# The room types of the labeled scene format (scenes.csv `room_type`), plus Bathroom.
ROOM_TYPES: tuple[str, ...] = (
    "Bedroom", "Dining", "Living Room", "Kitchen", "Baby Children Room", "Outdoor", "Home Office",
    "Hallway", "Laundry", "Bathroom",
)

# Words in product text that name the room a product is meant for ("Table, outdoor",
# "Children's chair", "Bath towel").
ROOM_HINT_WORDS: dict[str, str] = {
    "outdoor": "Outdoor", "outdoors": "Outdoor", "patio": "Outdoor", "balcony": "Outdoor",
    "bathroom": "Bathroom", "bath": "Bathroom", "shower": "Bathroom", "toilet": "Bathroom",
    "kitchen": "Kitchen",
    "children": "Baby Children Room", "childrens": "Baby Children Room",
    "child": "Baby Children Room", "junior": "Baby Children Room", "baby": "Baby Children Room",
    "kids": "Baby Children Room", "nursery": "Baby Children Room", "toddler": "Baby Children Room",
    "cot": "Baby Children Room",
    "office": "Home Office", "hallway": "Hallway", "hall": "Hallway", "entrance": "Hallway",
    "laundry": "Laundry", "dining": "Dining", "living room": "Living Room",
    "bedroom": "Bedroom", "bedside": "Bedroom",
}

_ALL_ROOMS = ROOM_TYPES
_INDOOR = tuple(room for room in ROOM_TYPES if room != "Outdoor")

# Category key → (what it covers, coarse group, rooms it fits). The fine keys keep room fit precise
# (bedding belongs in a bedroom, towels in a bathroom); the group gives the coarse taxonomy.
_CATEGORY_TABLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "vases": ("vases, decorative jars and bottles", "decor",
              ("Living Room", "Dining", "Bedroom", "Hallway", "Home Office", "Kitchen", "Bathroom")),
    "figurines": ("figurines, sculptures and decorative objects", "decor",
                  ("Living Room", "Bedroom", "Home Office", "Hallway", "Dining", "Baby Children Room")),
    "candles": ("candles, candle holders and lanterns", "decor",
                ("Living Room", "Dining", "Bedroom", "Bathroom", "Outdoor")),
    "bookends": ("bookends", "decor", ("Living Room", "Home Office", "Bedroom", "Baby Children Room")),
    "plants_pots": ("plants, plant pots and planters", "decor",
                    ("Living Room", "Bedroom", "Kitchen", "Dining", "Outdoor", "Home Office",
                     "Bathroom", "Hallway")),
    "lighting": ("lamps, shades and light fittings", "lighting", _ALL_ROOMS),
    "seating": ("chairs, stools, sofas, benches", "furniture",
                ("Living Room", "Dining", "Bedroom", "Home Office", "Kitchen", "Hallway", "Outdoor",
                 "Baby Children Room")),
    "tables": ("tables and desks", "furniture",
               ("Living Room", "Dining", "Bedroom", "Home Office", "Kitchen", "Outdoor",
                "Baby Children Room")),
    "storage": ("cabinets, shelving, wardrobes, racks and trolleys", "furniture", _ALL_ROOMS),
    "beds": ("beds, cots and mattresses", "furniture", ("Bedroom", "Baby Children Room")),
    "bedding": ("quilt covers, sheets, pillows and duvets", "textiles", ("Bedroom", "Baby Children Room")),
    "cushions": ("cushions, cushion covers and seat pads", "textiles",
                 ("Living Room", "Bedroom", "Dining", "Outdoor", "Baby Children Room")),
    "throws": ("throws and blankets", "textiles", ("Living Room", "Bedroom", "Baby Children Room")),
    "curtains": ("curtains and blinds", "textiles",
                 ("Living Room", "Bedroom", "Dining", "Kitchen", "Home Office", "Baby Children Room",
                  "Bathroom")),
    "towels": ("towels and washcloths", "textiles", ("Bathroom", "Kitchen", "Laundry", "Baby Children Room")),
    "fabrics": ("fabric by the metre", "textiles", ("Living Room", "Bedroom", "Baby Children Room")),
    "rugs": ("rugs and mats", "textiles",
             ("Living Room", "Bedroom", "Dining", "Hallway", "Home Office", "Baby Children Room",
              "Bathroom", "Kitchen")),
    "frames": ("photo frames and picture ledges", "wall_decor",
               ("Living Room", "Bedroom", "Hallway", "Home Office", "Dining", "Baby Children Room")),
    "mirrors": ("mirrors", "wall_decor", ("Bathroom", "Hallway", "Bedroom", "Living Room")),
    "clocks": ("clocks", "wall_decor", ("Living Room", "Kitchen", "Home Office", "Bedroom", "Dining", "Hallway")),
    "wall_art": ("wall art, pictures and posters", "wall_decor",
                 ("Living Room", "Bedroom", "Dining", "Hallway", "Home Office", "Baby Children Room")),
    "kitchenware": ("cookware, kitchen tools and food storage", "kitchen_tableware", ("Kitchen", "Dining")),
    "tableware": ("bowls, plates, glasses, trays and serving ware", "kitchen_tableware",
                  ("Dining", "Kitchen", "Living Room", "Outdoor")),
    "boxes_baskets": ("boxes, baskets and crates", "storage_accessories", _INDOOR),
    "hardware": ("handles, knobs, hooks, rails and brackets", "fittings",
                 ("Kitchen", "Bathroom", "Hallway", "Bedroom", "Laundry", "Living Room")),
    "doors_fronts": ("doors, drawer fronts, panels and worktops of fitted furniture", "fittings",
                     ("Kitchen", "Bathroom", "Laundry", "Bedroom", "Hallway")),
    "fixtures": ("taps, sinks and wash-basins", "fittings", ("Bathroom", "Kitchen", "Laundry")),
    "bath_accessories": ("soap dishes, dispensers, holders and towel rails", "fittings", ("Bathroom",)),
    "appliances": ("ovens, hobs, hoods, fridges", "appliances", ("Kitchen", "Laundry")),
    "household": ("laundry, cleaning and utility items", "household",
                  ("Laundry", "Kitchen", "Bathroom", "Hallway")),
    "office": ("boards, desk accessories and chargers", "office", ("Home Office", "Baby Children Room", "Kitchen")),
    "toys": ("toys, games and children's crafts", "toys", ("Baby Children Room", "Living Room", "Outdoor")),
    "garden": ("parasols, gazebos, greenhouses and decking", "outdoor", ("Outdoor",)),
    "other": ("anything the rules do not recognize", "other", _ALL_ROOMS),
}

CATEGORIES: tuple[str, ...] = tuple(_CATEGORY_TABLE)
OTHER_CATEGORY = "other"
CATEGORY_DESCRIPTIONS: dict[str, str] = {key: value[0] for key, value in _CATEGORY_TABLE.items()}
CATEGORY_GROUP: dict[str, str] = {key: value[1] for key, value in _CATEGORY_TABLE.items()}
CATEGORY_ROOMS: dict[str, tuple[str, ...]] = {key: value[2] for key, value in _CATEGORY_TABLE.items()}

# Keyword phrases (normalized, singular) → category. A product's category comes from the keyword that
# is its head noun: the *rightmost* keyword of the noun phrase before any "with/for/and/in/on"
# ("Mirror cabinet with 2 doors" → cabinet → storage; "Table lamp" → lamp → lighting), the longest
# keyword on ties ("bed frame" beats "frame"). Plurals are derived automatically.
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "vases": (
        "vase", "bud vase", "jug vase", "bottle vase", "jar", "covered jar", "temple jar",
        "ginger jar", "urn", "amphora", "bottle", "decorative bottle",
    ),
    "figurines": (
        "figurine", "figure", "sculpture", "statue", "statuette", "bust", "ornament", "decor",
        "decoration", "hanging decoration", "decoration ball", "decorative object", "object", "orb",
        "sphere", "egg", "skull", "shell", "seashell", "sea urchin", "starfish", "seahorse", "coral",
        "elephant", "monkey", "horse", "horse head", "dog", "foo dog", "pug", "pig", "owl", "cat",
        "fish", "blowfish", "puffer fish", "whale", "turtle", "spider", "rhino", "peacock", "bird",
        "alligator", "lion", "deer", "stag", "giraffe", "zebra", "rabbit", "frog", "crab", "octopus",
        "buddha", "buddha head", "anchor", "sailboat", "boat", "pineapple", "apple", "pear",
        "chess piece", "eiffel tower", "phone booth", "fire hydrant", "ampersand", "symbol", "knot",
        "rope knot", "antler", "binoculars", "shoe",
    ),
    "candles": (
        "candle", "scented candle", "block candle", "candle holder", "candleholder", "candlestick",
        "tealight", "tealight holder", "votive", "votive holder", "block candle holder", "lantern",
        "hurricane", "candle lantern",
    ),
    "bookends": ("bookend", "book end"),
    "plants_pots": (
        "plant", "potted plant", "artificial plant", "artificial potted plant", "plant pot",
        "self watering plant pot", "planter", "flower pot", "plant stand", "watering can",
        "succulent", "artificial flower", "bouquet", "terrarium", "window box", "flower box",
    ),
    "lighting": (
        "lamp", "table lamp", "floor lamp", "pendant lamp", "wall lamp", "work lamp", "lamp shade",
        "shade", "lamp base", "spotlight", "downlighter", "pendant downlighter", "chandelier",
        "sconce", "lighting", "light chain", "lighting chain", "lighting strip", "lighting box",
        "lights", "light bulb", "bulb", "cord set", "ceiling track", "night light",
    ),
    "seating": (
        "chair", "armchair", "easy chair", "rocking chair", "swivel chair", "folding chair",
        "desk chair", "highchair", "stool", "garden stool", "footstool", "bar stool", "sofa",
        "sofa bed", "couch", "loveseat", "chaise longue", "bench", "storage bench", "pouffe", "pouf",
        "ottoman", "seat module", "stool section", "conversation set", "sun lounger", "lounger", "towel rack chair",
    ),
    "tables": (
        "table", "coffee table", "side table", "bedside table", "console table", "dining table",
        "nest of tables", "desk", "standing desk", "workstation", "work bench", "bureau",
        "tray table", "laptop table", "laptop station", "standing laptop station", "leg frame",
        "table top", "dressing table", "nightstand", "changing table", "trestle",
    ),
    "storage": (
        "cabinet", "cupboard", "wardrobe", "chest", "dresser", "sideboard", "bookcase", "bookshelf",
        "shelf", "wall shelf", "shelving unit", "shelf unit", "storage", "wall storage",
        "storage combination", "storage unit", "tv bench", "tv unit", "unit", "drawer unit", "section",
        "wash stand", "mirror cabinet", "organiser", "organizer", "wall organizer", "hanging storage",
        "rack", "clothes rack", "hat rack", "coat rack", "shoe rack", "magazine rack",
        "newspaper rack", "wall newspaper rack", "wine rack", "coat stand", "hat and coat stand",
        "umbrella stand", "clothes stand", "hanger", "valet hanger", "knob hanger", "magazine file",
        "box file", "trolley", "kitchen trolley", "cart", "serving cart", "bar cart", "bed pocket",
        "wall pockets", "shoe cabinet", "insert", "trunk", "storage bag", "book display",
        "wall upright", "clothes bar", "kitchen island", "wardrobe frame", "underbed", "valet stand",
    ),
    "beds": (
        "bed", "bed frame", "loft bed", "bunk bed", "cot", "crib", "divan bed", "daybed", "mattress",
        "bed base", "slatted bed base", "bedbase", "headboard", "extendable bed", "reversible bed",
    ),
    "bedding": (
        "quilt cover", "duvet cover", "quilt", "duvet", "pillowcase", "pillow", "sheet",
        "fitted sheet", "flat sheet", "bedspread", "bedlinen", "bed linen", "bedlinen set",
        "sleeping bag", "bed canopy", "canopy", "bed runner", "muslin square", "babycare mat",
        "mattress protector", "cot skirt",
    ),
    "cushions": (
        "cushion", "cushion cover", "cushion pad", "chair cushion", "back cushion", "seat cushion",
        "chair pad", "seat pad", "bench pad", "stool cover", "bench cover", "floor cushion",
    ),
    "throws": ("throw", "blanket", "plaid", "comfort blanket"),
    "curtains": (
        "curtain", "curtains", "sheer curtains", "shower curtain", "drape", "blind", "roller blind",
        "roman blind", "pleated blind", "cellular blind", "valance",
    ),
    "towels": (
        "towel", "bath towel", "hand towel", "tea towel", "guest towel", "baby towel", "beach towel",
        "bath sheet", "washcloth",
    ),
    "fabrics": ("fabric", "plastic coated fabric"),
    "rugs": (
        "rug", "carpet", "runner", "mat", "door mat", "doormat", "bath mat", "bath rug", "sheepskin",
        "play mat", "cow hide", "cowhide",
    ),
    "frames": ("frame", "photo frame", "picture frame", "collage frame", "wall collage frames",
               "picture ledge"),
    "mirrors": ("mirror", "table mirror", "wall mirror", "floor mirror"),
    "clocks": ("clock", "wall clock", "alarm clock"),
    "wall_art": (
        "wall art", "wall decor", "picture", "poster", "print", "canvas", "painting", "artwork",
        "art card", "door tag", "wall hanging", "wall sculpture", "tapestry", "art", "sticker",
    ),
    "kitchenware": (
        "pot", "pot with lid", "saucepan", "saucepan with lid", "pan", "frying pan", "casserole",
        "casserole with lid", "wok", "kettle", "chopping board", "cutting board", "knife",
        "cook knife", "knife holder", "knife rack", "magnetic knife rack", "utensil", "kitchen utensil",
        "spice mill", "spice rack", "mill", "grinder", "pestle", "pestle and mortar", "mortar",
        "jar with lid", "storage jar", "canister", "container", "food container", "colander", "sieve",
        "whisk", "ladle", "spatula", "apron", "oven glove", "espresso maker", "coffee maker",
        "cafetiere", "tea maker", "stockpot", "oil vinegar set", "grater", "holder for containers",
    ),
    "tableware": (
        "bowl", "serving bowl", "salad bowl", "plate", "side plate", "deep plate", "serving plate",
        "dish", "platter", "mug", "cup", "egg cup", "glass", "wine glass", "red wine glass",
        "whiskey glass", "tumbler", "beaker", "training beaker", "carafe", "carafe with stopper",
        "jug", "pitcher", "teapot", "serving stand", "cake stand", "tray", "serving tray", "coaster",
        "place mat", "placemat", "napkin", "paper napkin", "table runner", "cutlery", "cutlery set",
        "cutlery stand", "fork", "spoon", "fruit basket", "butter dish", "sugar bowl", "tea set",
        "coffee set", "shaker", "salt shaker", "pepper shaker",
    ),
    "boxes_baskets": (
        "box", "storage box", "box with lid", "box with compartments", "box with handle", "shoe box",
        "basket", "storage basket", "wall basket", "crate", "storage crate", "case", "storage case",
        "hamper", "tin", "jewellery box", "bed storage box",
    ),
    "hardware": (
        "handle", "knob", "hook", "s hook", "double hook", "wall hook", "bracket", "hinge", "rail",
        "wall rail", "rod", "curtain rod", "curtain rod set", "shower curtain rod", "finial",
        "curtain ring", "shower curtain ring", "trunking", "cable trunking", "castor",
        "window catch", "supporting leg", "leg", "knob rack",
    ),
    "doors_fronts": (
        "door", "glass door", "sliding door", "drawer front", "front", "cover panel", "wall panel",
        "panel", "plinth", "worktop", "countertop",
    ),
    "appliances": (
        "oven", "microwave oven", "microwave", "microwave combi", "hob", "induction hob", "gas hob",
        "glass ceramic hob", "extractor hood", "hood", "fridge", "refrigerator", "freezer",
        "dishwasher", "washing machine", "dryer", "toaster",
    ),
    "fixtures": (
        "tap", "mixer tap", "kitchen mixer tap", "faucet", "sink", "inset sink", "basin",
        "wash basin", "sink bowl", "bathtub", "toilet seat", "shower head",
    ),
    "bath_accessories": (
        "soap dish", "soap dispenser", "dispenser", "toothbrush holder", "tooth mug",
        "toilet roll holder", "toilet roll stand", "toilet brush", "towel rail", "towel rack",
        "towel hanger", "towel holder", "shower shelf", "shower caddy", "baby bath", "bathroom set",
    ),
    "household": (
        "ironing board", "ironingboard", "step stool", "stepladder", "ladder", "drying rack",
        "laundry basket", "clothes basket", "waste bin", "waste sorting bin", "wastepaper basket",
        "bin", "dish drainer", "detergent dispenser", "shoehorn", "broom", "dustpan", "mop",
        "cleaning set", "hanging dryer", "clothes pegs", "peg basket",
    ),
    "office": (
        "noticeboard", "notice board", "whiteboard", "magnetic board", "writing board", "clipboard",
        "desk organiser", "desk organizer", "wireless charging", "charging pad", "pen", "tablet stand",
    ),
    "toys": (
        "toy", "soft toy", "squeaky toy", "toy vehicle", "game", "board game", "puzzle", "rattle",
        "doll", "puppet", "glove puppet", "blocks", "building blocks", "train set", "truck",
        "shape sorter", "dice", "juggling set", "easel", "playbook", "crane", "roller coaster",
        "bead roller coaster", "tunnel", "play tunnel", "tent", "bed tent", "mini kitchen",
        "cash register", "paint", "felt tip pen", "crayon", "watercolour box", "balancing bench",
        "gym mat", "swing", "cupcakes set", "pencil", "drawing paper", "play kitchen", "costume",
        "mobile", "baby gym",
    ),
    "garden": (
        "parasol", "gazebo", "greenhouse", "decking", "floor decking", "wood stain", "hammock", "barbecue",
        "potting bench", "trellis",
    ),
}
