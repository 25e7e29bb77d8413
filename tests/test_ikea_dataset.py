"""Tests for the IKEA raw-layout converter (scene_assets.ikea_dataset).

The raw trees here are fabricated in tmp_path; the real download is not exercised (no internet),
only the archive handling through a file:// URL and the offline error.
"""

from __future__ import annotations

import csv
import json
import pickle
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from scene_assets import ikea_dataset
from scene_assets.ikea_dataset import (
    ConvertStats,
    IkeaDatasetError,
    IkeaDownloadError,
    convert_raw_ikea,
    download_ikea,
    extract_archive,
    room_type_from_name,
)

BED = "ikea-a-calm-bedroom-in-soft-greys__1364309611116-s4.jpg"
LIVING = "ikea-a-cosy-corner-for-reading__1364309000001-s4.jpg"
KITCHEN = "kitchen_a-small-kitchen-for-smart-chefs__1364309000002-s4.jpg"
BATH = "ikea-a-fresh-bathroom__1364309000003-s4.jpg"


def _jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=90)


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def make_raw_tree(root: Path, *, pickled: bool = False) -> Path:
    """A tiny tree in the assumed raw layout, with a few deliberately broken entries."""
    raw = root / "ikea-master"
    scenes = raw / "images" / "room_scenes"
    _jpeg(scenes / "bedroom" / BED, (200, 200, 210), (96, 96))
    _jpeg(scenes / "living_room" / LIVING, (210, 190, 160), (96, 96))
    _jpeg(scenes / KITCHEN, (230, 230, 230), (96, 96))  # flat: room type from the name prefix
    _jpeg(scenes / "bathroom" / BATH, (180, 220, 230), (96, 96))  # not one of the nine types
    objects = raw / "images" / "objects"
    _jpeg(objects / "bed" / "101.000.01.jpg", (240, 240, 240))
    Image.new("RGBA", (40, 40), (10, 120, 200, 255)).save(objects / "102.000.02.png")  # converted
    (objects / "104.000.04.jpg").write_bytes(b"this is not a jpeg")  # unreadable
    _jpeg(objects / "sofa" / "105.000.05.jpg", (90, 90, 140))
    mapping = {
        f"images/room_scenes/bedroom/{BED}": ["images/objects/bed/101.000.01.jpg", "103.000.03"],
        f"living_room/{LIVING}": ["102.000.02", "105.000.05", "images/objects/104.000.04.jpg"],
        KITCHEN: ["105.000.05", "106.000.06"],  # 106 has neither metadata nor image
        BATH: ["101.000.01"],
        "images/room_scenes/bedroom/ikea-this-photo-was-never-downloaded__1-s4.jpg": ["101.000.01"],
        "images/room_scenes/garbage.jpg": 42,  # malformed value
    }
    products = {
        "101.000.01": {"name": "TESTBÄDD", "type": "Bed frame", "colour": "White", "size": "90x200 cm",
                       "description": "View more product information  Adjustable   bed sides."},
        "images/objects/102.000.02.png": {"title": "TESTVAS", "category": "Vase", "color": "Blue",
                                          "dimensions": "21 cm", "desc": ""},
        "103.000.03": "A product with metadata but no picture.",
        "104.000.04": {"name": "BROKEN", "type": "Chair"},
        "105.000.05": {"name": "TESTSOFFA", "type": "Three-seat sofa", "color": "Dark blue",
                       "size": "59,88,117x78 cm", "description": None},
        "107.000.07": {"name": "UNUSED", "type": "Frame"},  # in the catalog but in no scene
    }
    text = raw / "text_data"
    text.mkdir(parents=True)
    if pickled:
        inverse: dict[str, list[str]] = {}
        for scene, items in mapping.items():
            if isinstance(items, list):
                for item in items:
                    inverse.setdefault(item, []).append(scene)
        (text / "item_to_room.p").write_bytes(pickle.dumps(inverse, protocol=2))
        (text / "products_dict.p").write_bytes(pickle.dumps(products, protocol=2))
    else:
        (text / "img_to_items.json").write_text(json.dumps(mapping), encoding="utf-8")
        (text / "products_dict.json").write_text(json.dumps(products), encoding="utf-8")
    return raw


@pytest.fixture()
def converted(tmp_path: Path) -> tuple[Path, Path, ConvertStats]:
    raw = make_raw_tree(tmp_path / "raw")
    dest = tmp_path / "out"
    return raw, dest, convert_raw_ikea(raw, dest)


def test_converter_writes_the_labeled_format(converted: tuple[Path, Path, ConvertStats]) -> None:
    _, dest, stats = converted
    header, products = _rows(dest / "products.csv")
    assert header == ["product_id", "name", "type", "color", "size", "description", "image"]
    header, scenes = _rows(dest / "scenes.csv")
    assert header == ["scene_id", "image", "room_type", "caption"]
    header, links = _rows(dest / "scene_products.csv")
    assert header == ["scene_id", "product_id"]
    assert stats.scenes == len(scenes) == 4
    assert stats.products == len(products) == 7
    assert stats.links == len(links)
    ids = {p["product_id"] for p in products}
    assert ids == {f"10{i}.000.0{i}" for i in range(1, 8)}
    assert {x["product_id"] for x in links} <= ids
    assert {x["scene_id"] for x in links} == {s["scene_id"] for s in scenes}
    for s in scenes:
        assert s["scene_id"].startswith("scene_") and len(s["scene_id"]) == 16
        assert s["image"] == f"images/scenes/{s['scene_id']}.jpg"
        with Image.open(dest / s["image"]) as im:
            assert im.format == "JPEG"
    assert "IKEA" in (dest / "README.md").read_text("utf-8")


def test_room_types_and_captions(converted: tuple[Path, Path, ConvertStats]) -> None:
    _, dest, stats = converted
    _, scenes = _rows(dest / "scenes.csv")
    by_caption = {s["caption"]: s["room_type"] for s in scenes}
    assert by_caption == {
        "a calm bedroom in soft greys": "Bedroom",
        "a cosy corner for reading": "Living Room",
        "a small kitchen for smart chefs": "Kitchen",
        "a fresh bathroom": "Bathroom",
    }
    assert stats.unknown_room_types == 1
    assert any("bathroom" in p and "room type" in p for p in stats.problems)


def test_product_fields_images_and_gaps(converted: tuple[Path, Path, ConvertStats]) -> None:
    raw, dest, stats = converted
    _, rows = _rows(dest / "products.csv")
    products = {p["product_id"]: p for p in rows}
    bed = products["101.000.01"]
    assert (bed["name"], bed["type"], bed["color"], bed["size"]) == ("TESTBÄDD", "Bed frame", "White", "90x200 cm")
    assert bed["description"] == "View more product information Adjustable bed sides."
    # JPEGs are copied byte for byte, other formats converted to JPEG
    assert (dest / bed["image"]).read_bytes() == (raw / "images/objects/bed/101.000.01.jpg").read_bytes()
    vase = products["102.000.02"]
    assert (vase["name"], vase["type"], vase["size"]) == ("TESTVAS", "Vase", "21 cm")
    with Image.open(dest / vase["image"]) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    assert products["103.000.03"]["description"] == "A product with metadata but no picture."
    assert products["105.000.05"]["size"] == "59,88,117x78 cm"
    assert products["105.000.05"]["description"] == ""
    # gaps: no picture (103, 107), unreadable picture (104), no metadata and no picture (106)
    assert {pid for pid, p in products.items() if not p["image"]} == {
        "103.000.03", "104.000.04", "106.000.06", "107.000.07"}
    assert stats.products_without_image == 4 and stats.products_with_image == 3
    assert products["107.000.07"]["name"] == "UNUSED"  # catalog-only products are kept
    assert not (dest / "images/products/104.000.04.jpg").exists()
    problems = "\n".join(stats.problems)
    assert "104.000.04" in problems and "unreadable" in problems
    assert "106.000.06" in problems


def test_malformed_entries_are_reported_not_fatal(converted: tuple[Path, Path, ConvertStats]) -> None:
    _, dest, stats = converted
    assert stats.scenes_skipped == 1
    problems = "\n".join(stats.problems)
    assert "never-downloaded" in problems and "image not found" in problems
    assert "garbage.jpg" in problems and "not a list" in problems
    _, scenes = _rows(dest / "scenes.csv")
    assert all("never downloaded" not in s["caption"] for s in scenes)


def test_scene_ids_are_stable(tmp_path: Path, converted: tuple[Path, Path, ConvertStats]) -> None:
    raw, dest, _ = converted
    again = tmp_path / "again"
    convert_raw_ikea(raw, again)
    for name in ("products.csv", "scenes.csv", "scene_products.csv"):
        assert (again / name).read_bytes() == (dest / name).read_bytes()


def test_pickled_inverse_mapping(tmp_path: Path) -> None:
    raw = make_raw_tree(tmp_path / "raw", pickled=True)
    stats = convert_raw_ikea(raw, tmp_path / "out")
    _, scenes = _rows(tmp_path / "out" / "scenes.csv")
    _, links = _rows(tmp_path / "out" / "scene_products.csv")
    assert stats.scenes == 4 and stats.scenes_skipped == 1
    bedroom = next(s["scene_id"] for s in scenes if s["room_type"] == "Bedroom")
    assert {x["product_id"] for x in links if x["scene_id"] == bedroom} == {"101.000.01", "103.000.03"}


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/should-not-exist-ikea-test"),))


def test_pickles_with_code_are_refused(tmp_path: Path) -> None:
    raw = make_raw_tree(tmp_path / "raw")
    (raw / "text_data" / "img_to_items.json").unlink()
    (raw / "text_data" / "img_to_items.p").write_bytes(pickle.dumps({"x.jpg": [_Evil()]}))
    with pytest.raises(IkeaDatasetError, match="refusing"):
        convert_raw_ikea(raw, tmp_path / "out")
    assert not Path("/tmp/should-not-exist-ikea-test").exists()


def test_missing_mapping_is_a_clear_error(tmp_path: Path) -> None:
    raw = make_raw_tree(tmp_path / "raw")
    (raw / "text_data" / "img_to_items.json").unlink()
    with pytest.raises(IkeaDatasetError, match="mapping"):
        convert_raw_ikea(raw, tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "room"),
    [("bedroom", "Bedroom"), ("living_room", "Living Room"), ("children_room", "Baby Children Room"),
     ("Baby Children Room", "Baby Children Room"), ("home-office", "Home Office"), ("dining", "Dining"),
     ("Outdoor", "Outdoor"), ("hallway", "Hallway"), ("laundry", "Laundry"), ("kitchen", "Kitchen"),
     ("bathroom", None)],
)
def test_room_type_from_name(name: str, room: str | None) -> None:
    assert room_type_from_name(name) == room


def _zip_tree(src_parent: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(src_parent.rglob("*")):
            zf.write(p, p.relative_to(src_parent).as_posix())


def test_extract_archive_returns_single_top_folder_and_refuses_traversal(tmp_path: Path) -> None:
    make_raw_tree(tmp_path / "raw")
    archive = tmp_path / "ikea.zip"
    _zip_tree(tmp_path / "raw", archive)
    root = extract_archive(archive, tmp_path / "x")
    assert root.name == "ikea-master" and (root / "text_data" / "img_to_items.json").exists()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", "nope")
    with pytest.raises(IkeaDownloadError, match="unsafe"):
        extract_archive(evil, tmp_path / "y")
    assert not (tmp_path / "escaped.txt").exists()


def test_download_pipeline_with_a_local_archive(tmp_path: Path) -> None:
    # exercises download -> extract -> convert through urllib's file:// handler (no network)
    make_raw_tree(tmp_path / "raw")
    archive = tmp_path / "ikea.zip"
    _zip_tree(tmp_path / "raw", archive)
    stats = download_ikea(tmp_path / "out", archive.as_uri(), timeout=5)
    assert stats.scenes == 4 and (tmp_path / "out" / "products.csv").exists()


def test_download_errors_are_clear(tmp_path: Path) -> None:
    not_zip = tmp_path / "page.html"
    not_zip.write_text("<html>rate limited</html>", encoding="utf-8")
    with pytest.raises(IkeaDownloadError, match="not a zip"):
        download_ikea(tmp_path / "out", not_zip.as_uri(), timeout=5)
    # nothing listens on port 9 of the loopback interface: behaves like being offline
    with pytest.raises(IkeaDownloadError, match="internet"):
        download_ikea(tmp_path / "out", "http://127.0.0.1:9/ikea.zip", timeout=5)
    with pytest.raises(IkeaDownloadError, match="internet"):
        download_ikea(tmp_path / "out", (tmp_path / "missing.zip").as_uri(), timeout=5)


def test_cli_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = make_raw_tree(tmp_path / "raw")
    assert ikea_dataset.main(["convert", str(raw), str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scenes"] == 4 and summary["scenes_skipped"] == 1
    assert ikea_dataset.main(["convert", str(tmp_path / "nope"), str(tmp_path / "out2")]) == 2
