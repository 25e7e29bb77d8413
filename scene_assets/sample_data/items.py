"""The invented catalog of the sample dataset: one :class:`Item` per product."""

from __future__ import annotations

from dataclasses import dataclass

from scene_assets.sample_data.painter import RGB


@dataclass(frozen=True)
class Item:
    key: str
    kind: str
    name: str
    type: str
    color: str
    size: str
    description: str
    base: RGB
    accent: RGB = (200, 200, 200)
    detail: RGB = (60, 50, 45)
    pattern: str = "solid"
    variant: str = ""
    has_image: bool = True


_VMPI = "View more product information "

# Names are invented (checked not to be names of the real catalog). Series names repeat
# across products as in a real catalog; colours/sizes/descriptions sometimes missing.
CATALOG: tuple[Item, ...] = (
    # living room seating
    Item("sofa_grey", "sofa", "HOLMSVIK", "Three-seat sofa", "Grey", "228x88 cm",
         _VMPI + "The cover is easy to keep clean as it is removable and can be machine washed.",
         (150, 152, 158), detail=(45, 40, 36), variant="3"),
    Item("sofa_blue", "sofa", "FJÄLLBRO", "Two-seat sofa", "Dark blue", "176x88 cm",
         "Deep seat cushions with pocket springs give a firm and comfortable sit.",
         (40, 64, 112), detail=(176, 130, 84), variant="2"),
    Item("armchair_yellow", "armchair", "HOLMSVIK", "Armchair", "Yellow", "82x80 cm",
         _VMPI + "Matches the three-seat sofa in the same series.", (222, 168, 38), detail=(45, 40, 36)),
    Item("armchair_beige", "armchair", "VÅGSTRÖM", "Armchair", "Beige,birch", "66x83 cm",
         "Layer-glued bent birch frame with a soft, removable cushion.",
         (214, 194, 160), detail=(196, 154, 104), variant="wood"),
    # tables
    Item("ctable_round", "coffee_table", "TRINDELUND", "Coffee table", "White", "75 cm",
         "Rounded edges and a smooth surface that is easy to wipe clean.", (246, 246, 243),
         detail=(190, 150, 105), variant="round"),
    Item("ctable_rect", "coffee_table", "SKOGSLIND", "Coffee table", "Black-brown", "118x58 cm",
         _VMPI + "A separate shelf under the top keeps magazines and remotes out of sight.",
         (64, 48, 40), variant="rect"),
    Item("dining_oak", "dining_table", "MATSLUND", "Table", "Oak", "180x90 cm",
         "Solid oak top that seats six; the surface gets a richer tone over time.",
         (196, 156, 108), accent=(170, 128, 84), pattern="grain", variant="rect"),
    Item("dining_round", "dining_table", "RUNDHAGA", "Table", "White", "105 cm",
         "A round pedestal table gives everyone plenty of leg room.", (244, 244, 240),
         detail=(150, 150, 150), variant="round"),
    Item("desk_white", "desk", "SKRIVLIDEN", "Desk", "White", "120x60 cm",
         _VMPI + "The drawer unit can be placed to the left or to the right.", (245, 245, 242),
         detail=(120, 120, 120)),
    Item("outdoor_table", "outdoor_table", "ALTANVIK", "Table, outdoor", "Grey", "140x78 cm",
         "Slatted acacia top, stained grey, that lets rain drain away.", (150, 148, 140)),
    # chairs and stools
    Item("chair_black", "chair", "SITTBO", "Chair", "Black", "", "",
         (38, 38, 40), variant="slats"),
    Item("chair_white", "chair", "SITTBO", "Chair", "White,birch", "",
         "Moulded seat shell on solid birch legs.", (244, 244, 240), detail=(200, 160, 110),
         variant="shell"),
    Item("bar_stool", "bar_stool", "PALLHULT", "Bar stool", "Stainless steel", "63 cm",
         _VMPI + "The footrest makes it comfortable to sit for a long time.", (168, 172, 178)),
    Item("swivel_chair", "swivel_chair", "SNURRVIK", "Swivel chair", "Dark grey", "",
         "Adjustable seat height and a backrest that follows your movements.", (72, 74, 80),
         detail=(30, 30, 32)),
    Item("outdoor_chair", "outdoor_chair", "ALTANVIK", "Chair, outdoor", "Brown stained", "",
         "Slatted chair in solid acacia; can be stacked to save space.", (128, 86, 56)),
    # beds and storage
    Item("bed_white", "bed", "SOVMARK", "Bed frame", "White", "160x200 cm",
         _VMPI + "Adjustable bed sides allow you to use mattresses of different thicknesses.",
         (244, 244, 241), accent=(172, 176, 184), detail=(150, 154, 162)),
    Item("bed_darkwood", "bed", "DRÖMSTA", "Bed frame", "Black-brown", "140x200 cm",
         "Headboard in solid wood with a clean, simple look.", (70, 52, 42),
         accent=(170, 200, 226), detail=(240, 244, 248), pattern="stripes"),
    Item("cot_white", "cot", "VAGGSTA", "Cot", "White", "60x120 cm",
         "The bed base can be placed at two heights.", (246, 246, 244), accent=(250, 228, 160)),
    Item("wardrobe_white", "wardrobe", "GARDEVIK", "Wardrobe", "White", "100x58x201 cm",
         _VMPI + "Adjustable hinges ensure that the doors hang straight.", (243, 243, 240),
         detail=(150, 150, 150)),
    Item("chest_pine", "chest", "LÅDBERGA", "Chest of 3 drawers", "Pine", "59,88,117x78 cm",
         "Solid pine, a natural material that ages beautifully.", (220, 184, 132),
         detail=(120, 84, 50)),
    Item("shoe_cabinet", "shoe_cabinet", "SKOSTRAND", "Shoe cabinet with 2 compartments",
         "Grey-green", "80x127 cm", "Holds at least 8 pairs of shoes on little floor space.",
         (132, 150, 136), detail=(60, 60, 60)),
    Item("bookcase_white", "bookcase", "BOKVALLA", "Bookcase", "White", "80x202 cm",
         _VMPI + "Adjustable shelves; adapt the space between the shelves to your needs.",
         (244, 244, 241)),
    Item("cube_shelf", "cube_shelf", "RUTHYLLA", "Shelving unit", "Black-brown", "77,147x147 cm",
         "Use it as a room divider or against the wall; add boxes to hide the clutter.",
         (66, 50, 42), accent=(214, 196, 164)),
    Item("wall_shelf_oak", "wall_shelf", "PLANKEBO", "Wall shelf", "Oak veneer", "80 cm",
         "Hidden mounting hardware makes the shelf appear to float.", (200, 160, 112),
         detail=(40, 40, 40)),
    Item("trolley_turquoise", "trolley", "RULLEBY", "Kitchen trolley", "Turquoise", "",
         "Extra storage that you can move to wherever you need it.", (64, 170, 168)),
    Item("toybox_pink", "toy_box", "TOVSKRIN", "Box with lid", "Pink", "42x35x33 cm",
         "Keeps toys tidy; the hole in the lid is also a handle.", (238, 160, 182),
         accent=(252, 236, 242), pattern="dots"),
    Item("coat_stand", "coat_stand", "HÄNGLUND", "Hat and coat stand", "Black", "181 cm", "",
         (36, 36, 38), accent=(176, 64, 56)),
    # textiles
    Item("rug_stripes", "rug", "RANDVIK", "Rug, flatwoven", "Multicolour", "170x240 cm",
         _VMPI + "The rug is reversible, so it lasts longer.", (232, 222, 200),
         accent=(186, 72, 58), detail=(150, 130, 110), pattern="stripes"),
    Item("rug_dots", "rug", "MOSSKULLA", "Rug, low pile", "Grey", "133x195 cm",
         "Dense, thick pile dampens sound and is soft to walk on.", (176, 176, 178),
         accent=(120, 120, 126), detail=(140, 140, 144), pattern="dots"),
    Item("rug_round", "rug", "SNÖFJUN", "Rug, high pile", "Off-white", "130 cm",
         "The thick pile dampens sound and provides a soft surface to play on.",
         (240, 234, 222), accent=(222, 214, 198), variant="round", has_image=False),
    Item("rug_runner", "rug", "KNOPPSTA", "Rug, flatwoven", "Blue,white", "80x250 cm",
         "A long runner for the hallway.", (246, 246, 246), accent=(52, 86, 150),
         detail=(52, 86, 150), pattern="check", variant="runner"),
    Item("cushion_check", "cushion", "RUTEBO", "Cushion cover", "Red,white", "50x50 cm",
         _VMPI + "The zip makes the cover easy to remove.", (250, 250, 248),
         accent=(196, 44, 48), pattern="check"),
    Item("cushion_stripes", "cushion", "SOLSKÄR", "Cushion cover", "Yellow", "50x50 cm",
         "Cotton cover with woven stripes.", (246, 214, 90), accent=(252, 244, 214),
         pattern="vstripes"),
    Item("cushion_dots", "cushion", "PRICKEBO", "Cushion", "Turquoise", "40x58 cm", "",
         (48, 160, 170), accent=(236, 248, 248), pattern="dots", variant="lumbar"),
    Item("soft_toy", "soft_toy", "NALLEBY", "Soft toy", "", "30 cm",
         "Tested for safety and suitable for all ages.", (152, 102, 62), accent=(214, 176, 132)),
    # lighting
    Item("floor_lamp", "floor_lamp", "LJUSMARK", "Floor lamp", "Black", "150 cm",
         _VMPI + "Gives a soft, mood-creating light in your room.", (34, 34, 36),
         accent=(236, 228, 210)),
    Item("table_lamp", "table_lamp", "LJUSMARK", "Table lamp", "White", "36 cm",
         "Gives a soft, mood-creating light.", (248, 248, 244), accent=(120, 150, 170)),
    Item("pendant_dome", "pendant_dome", "BRASSVIK", "Pendant lamp", "Brass-colour", "38 cm",
         _VMPI + "Gives a directed light; good over a dining table.", (196, 156, 72),
         accent=(255, 236, 170)),
    Item("pendant_globe", "pendant_globe", "GLOBERUD", "Pendant lamp", "White", "40 cm",
         "Gives a diffused light that is pleasant to the eye.", (247, 247, 244)),
    # decoration
    Item("vase_blue", "vase", "BLÅSKVIK", "Vase", "Blue", "21 cm", "",
         (80, 130, 196), accent=(140, 180, 226)),
    Item("vase_green", "vase", "GRÖNSKVIK", "Vase", "Green", "30 cm",
         "Mouth-blown glass; each vase is unique.", (70, 140, 90), accent=(130, 190, 140),
         variant="tall", has_image=False),
    Item("pot_terracotta", "plant_pot", "KRUKELID", "Plant pot", "Terracotta", "15 cm",
         "Glazed inside, so it holds water.", (188, 98, 60), accent=(60, 130, 60)),
    Item("pot_white", "plant_pot", "KRUKELID", "Plant pot", "White", "12 cm",
         "Glazed inside, so it holds water.", (246, 246, 244), accent=(84, 150, 70),
         variant="small"),
    Item("mirror_round", "mirror", "SPEGLUND", "Mirror", "Black", "50 cm",
         _VMPI + "Safety film reduces damage if the glass is broken.", (34, 34, 36),
         accent=(200, 212, 222), variant="round"),
    Item("mirror_tall", "mirror", "GLANSVIK", "Mirror", "Gold-colour", "40x150 cm",
         "Full-length mirror to see your whole outfit.", (200, 166, 80),
         accent=(198, 210, 220), variant="tall"),
    Item("frame_landscape", "frame", "RAMSLÖV", "Frame", "White", "40x50 cm",
         "The picture is included; replace it with your own.", (246, 246, 244),
         accent=(150, 196, 232), variant="landscape"),
    Item("frame_abstract", "frame", "RAMSLÖV", "Frame", "Black", "30x40 cm", "",
         (30, 30, 30), accent=(226, 120, 70), variant="abstract", has_image=False),
)
