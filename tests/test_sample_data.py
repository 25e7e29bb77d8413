"""Tests for the synthetic sample dataset generator (scene_assets.sample_data)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from scene_assets import sample_data
from scene_assets.sample_data import (
    DEFAULT_SEED,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    ensure_sample_dataset,
    generate_sample_dataset,
    is_sample_dataset_complete,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ROOM_TYPES = {
    "Bedroom", "Dining", "Living Room", "Kitchen", "Baby Children Room", "Outdoor", "Home Office",
    "Hallway", "Laundry",
}


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample_dataset(tmp_path_factory.mktemp("sample") / "data", seed=DEFAULT_SEED)


def test_generation_is_byte_identical(dataset: Path, tmp_path: Path) -> None:
    again = generate_sample_dataset(tmp_path / "again", seed=DEFAULT_SEED)
    first, second = _hashes(dataset), _hashes(again)
    assert first == second
    assert len(first) > 40


def test_other_seed_gives_other_data(dataset: Path, tmp_path: Path) -> None:
    other = generate_sample_dataset(tmp_path / "other", seed=DEFAULT_SEED + 1)
    assert (other / "products.csv").read_bytes() != (dataset / "products.csv").read_bytes()
    assert is_sample_dataset_complete(other, seed=DEFAULT_SEED + 1)
    assert not is_sample_dataset_complete(other, seed=DEFAULT_SEED)


def test_columns_match_the_labeled_format(dataset: Path) -> None:
    header, _ = _rows(dataset / "products.csv")
    assert header == ["product_id", "name", "type", "color", "size", "description", "image"]
    header, _ = _rows(dataset / "scenes.csv")
    assert header == ["scene_id", "image", "room_type", "caption"]
    header, _ = _rows(dataset / "scene_products.csv")
    assert header == ["scene_id", "product_id"]
    # polars reads every column as text, ids included (they look like "123.456.78")
    products = pl.read_csv(dataset / "products.csv", infer_schema=False)
    assert products.columns == list(sample_data.PRODUCT_COLUMNS)
    assert products["product_id"].is_unique().all()


def test_counts_and_room_types(dataset: Path) -> None:
    _, products = _rows(dataset / "products.csv")
    _, scenes = _rows(dataset / "scenes.csv")
    _, links = _rows(dataset / "scene_products.csv")
    assert 36 <= len(products) <= 48
    assert 8 <= len(scenes) <= 10
    assert {s["room_type"] for s in scenes} <= ROOM_TYPES
    assert len({s["room_type"] for s in scenes}) >= 7
    assert all(s["caption"] for s in scenes)
    per_scene: dict[str, int] = {}
    for link in links:
        per_scene[link["scene_id"]] = per_scene.get(link["scene_id"], 0) + 1
    assert set(per_scene) == {s["scene_id"] for s in scenes}
    assert all(4 <= n <= 7 for n in per_scene.values()), per_scene
    assert len(links) == len({(x["scene_id"], x["product_id"]) for x in links})


def test_every_link_points_to_existing_rows(dataset: Path) -> None:
    _, products = _rows(dataset / "products.csv")
    _, scenes = _rows(dataset / "scenes.csv")
    _, links = _rows(dataset / "scene_products.csv")
    product_ids = {p["product_id"] for p in products}
    scene_ids = {s["scene_id"] for s in scenes}
    for link in links:
        assert link["product_id"] in product_ids
        assert link["scene_id"] in scene_ids
    # not every catalog product is in a scene: the catalog has distractors
    assert len({x["product_id"] for x in links}) < len(product_ids)


def test_images_exist_open_and_have_declared_paths(dataset: Path) -> None:
    _, products = _rows(dataset / "products.csv")
    _, scenes = _rows(dataset / "scenes.csv")
    referenced = set()
    for p in products:
        if not p["image"]:
            continue
        assert p["image"] == f"images/products/{p['product_id']}.jpg"
        with Image.open(dataset / p["image"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.width == im.height and 256 <= im.width <= 320
            # product shots are on a white background
            assert im.getpixel((2, 2)) >= (245, 245, 245)
        referenced.add(p["image"])
    for s in scenes:
        assert s["image"] == f"images/scenes/{s['scene_id']}.jpg"
        assert s["scene_id"].startswith("scene_") and len(s["scene_id"]) == 16
        with Image.open(dataset / s["image"]) as im:
            assert im.format == "JPEG" and im.size == (640, 480)
        referenced.add(s["image"])
    on_disk = {p.relative_to(dataset).as_posix() for p in (dataset / "images").rglob("*") if p.is_file()}
    assert on_disk == referenced


def test_catalog_has_gaps_like_a_real_one(dataset: Path) -> None:
    _, products = _rows(dataset / "products.csv")
    _, links = _rows(dataset / "scene_products.csv")
    without_image = {p["product_id"] for p in products if not p["image"]}
    assert 2 <= len(without_image) <= 3
    assert not (dataset / "images" / "products" / f"{sorted(without_image)[0]}.jpg").exists()
    # a product without a catalog image still appears in a scene, as in the real data
    assert without_image & {x["product_id"] for x in links}
    assert any(not p["description"] for p in products)
    assert any(not p["size"] for p in products)
    assert any("x" in p["size"] and "," in p["size"] for p in products)  # "59,88,117x78 cm" style


def test_readme_and_manifest(dataset: Path) -> None:
    readme = (dataset / "README.md").read_text("utf-8")
    assert "synthetic" in readme.lower()
    assert "scene_assets.sample_data" in readme
    manifest = json.loads((dataset / MANIFEST_NAME).read_text("utf-8"))
    assert manifest["seed"] == DEFAULT_SEED
    assert manifest["version"] == GENERATOR_VERSION
    files = _hashes(dataset)
    files.pop(MANIFEST_NAME)
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == files
    assert is_sample_dataset_complete(dataset, verify_hashes=True)


def test_ensure_generates_once_and_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "sample"
    assert not is_sample_dataset_complete(dest)
    assert ensure_sample_dataset(dest) == dest
    assert is_sample_dataset_complete(dest, verify_hashes=True)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):  # a complete folder must not be regenerated
        raise AssertionError("regenerated a complete dataset")

    monkeypatch.setattr(sample_data, "generate_sample_dataset", boom)
    assert ensure_sample_dataset(dest) == dest
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == before


def test_ensure_repairs_incomplete_or_stale_folders(tmp_path: Path, dataset: Path) -> None:
    dest = tmp_path / "sample"
    ensure_sample_dataset(dest)
    victim = next((dest / "images" / "scenes").glob("*.jpg"))
    victim.unlink()
    assert not is_sample_dataset_complete(dest)
    ensure_sample_dataset(dest)
    assert victim.exists() and is_sample_dataset_complete(dest, verify_hashes=True)

    # truncated file (size differs from the manifest) is detected
    csv_path = dest / "scene_products.csv"
    csv_path.write_bytes(csv_path.read_bytes()[:-10])
    assert not is_sample_dataset_complete(dest)
    ensure_sample_dataset(dest)
    assert _hashes(dest) == _hashes(dataset)

    # a manifest of another generator version or a missing manifest forces regeneration
    manifest = json.loads((dest / MANIFEST_NAME).read_text("utf-8"))
    manifest["version"] = "0"
    (dest / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert not is_sample_dataset_complete(dest)
    ensure_sample_dataset(dest)
    assert is_sample_dataset_complete(dest)
    (dest / MANIFEST_NAME).unlink()
    assert not is_sample_dataset_complete(dest)
    ensure_sample_dataset(dest)
    assert _hashes(dest) == _hashes(dataset)


def test_regenerating_with_another_seed_removes_stale_files(tmp_path: Path) -> None:
    dest = tmp_path / "sample"
    generate_sample_dataset(dest, seed=1)
    unrelated = dest / "notes.txt"
    unrelated.write_text("keep me", encoding="utf-8")
    ensure_sample_dataset(dest, seed=2)
    manifest = json.loads((dest / MANIFEST_NAME).read_text("utf-8"))
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"]) | {MANIFEST_NAME, "notes.txt"}
    assert unrelated.read_text("utf-8") == "keep me"


def test_committed_sample_is_consistent() -> None:
    committed = REPO_ROOT / "data" / "sample"
    if not (committed / MANIFEST_NAME).exists():
        pytest.skip("data/sample not generated in this checkout")
    assert is_sample_dataset_complete(committed, seed=DEFAULT_SEED, verify_hashes=True), (
        "data/sample does not match its manifest or the generator version changed: regenerate it with "
        "scene_assets.sample_data.generate_sample_dataset(Path('data/sample'))"
    )
