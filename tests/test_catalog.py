from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from scene_assets.catalog import CatalogError, CatalogOptions, ColumnMapping, load_catalog, sku_stem
from scene_assets.images import FetchPolicy

HEADER = "product_id,name,type,color,size,description,image\n"


def _jpeg(path: Path, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), color).save(path, "JPEG")
    return path


def _write(tmp_path: Path, body: str | bytes, name: str = "products.csv") -> Path:
    path = tmp_path / name
    data = body.encode("utf-8") if isinstance(body, str) else body
    path.write_bytes(data)
    return path


def _reasons(result, product_id=None) -> list[str]:
    issues = result.issues
    if product_id is not None:
        issues = issues.filter(pl.col("product_id") == product_id)
    return issues["reason"].to_list()


def test_real_ikea_catalog_loads(ikea_dir: Path):
    result = load_catalog(ikea_dir / "products.csv", "labeled")
    products = result.products
    assert products.height == 2191
    assert products["product_id"].n_unique() == 2191
    assert int((products["image_status"] == "ok").sum()) == 2042
    missing_image = result.issues.filter(pl.col("reason").str.starts_with("missing"))
    # The issues table lists exactly the 149 rows that have no image.
    assert missing_image.height == 149
    assert missing_image["row_number"].null_count() == 0
    # Boilerplate is stripped from descriptions.
    assert products.filter(pl.col("description").str.contains("View more product information")).height == 0
    assert products["content_hash"].n_unique() == products.height


def test_real_seed_catalog_loads_text_only_with_reasons(seed_catalog_csv: Path):
    policy = FetchPolicy(enabled=True, timeout_s=2)
    result = load_catalog(seed_catalog_csv, "merchant", CatalogOptions(fetch_policy=policy))
    assert result.products.height == 500
    # Nothing is reachable here: every product is kept text-only and the reason is recorded per row.
    assert int((result.products["image_status"] == "ok").sum()) == 0
    image_issues = result.issues.filter(pl.col("field") == "primary_image")
    assert image_issues.height == 500
    fetch_failed = image_issues.filter(pl.col("reason").str.starts_with("fetch_failed"))
    assert fetch_failed.height == 499  # one row has no URL at all
    assert fetch_failed["reason"].str.contains("fileserver-g-p.sourcerer.tech").all()
    # Variant SKUs 10483 / 10483D fall into one group.
    by_sku = {row["sku"]: row["variant_group"] for row in result.products.iter_rows(named=True)}
    assert by_sku["10483"] == by_sku["10483D"]
    # Without a title column the description doubles as the title.
    assert result.products.filter(pl.col("sku") == "00585-01")["title"].item().startswith("8X7X3 RSN")


def test_missing_mapped_column_names_it(tmp_path: Path):
    path = _write(tmp_path, "product_id,name,description\nA,Chair,Nice chair\n")
    with pytest.raises(CatalogError, match=r"image → 'image'"):
        load_catalog(path, "labeled")


def test_empty_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CatalogError, match="empty"):
        load_catalog(_write(tmp_path, ""), "labeled")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.csv", "labeled")


def test_broken_quoting_skips_only_that_row(tmp_path: Path):
    body = (
        HEADER
        + 'A,ALPHA,Chair,White,40 cm,"A good chair,\n'  # unclosed quote
        + "B,BETA,Table,Black,90x200 cm,A table,\n"
        + 'C,GAMMA,Lamp,Grey,20 cm,"A lamp, with ""quotes"" inside",\n'
    )
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products["product_id"].to_list() == ["B", "C"]
    assert result.products.filter(pl.col("product_id") == "C")["description"].item() == 'A lamp, with "quotes" inside'
    dropped = result.issues.filter(pl.col("severity") == "dropped")
    assert dropped.height == 1
    assert dropped["line"].item() == 2
    assert "unclosed quote" in dropped["reason"].item()


def test_wrong_field_count_is_reported(tmp_path: Path):
    body = HEADER + "A,ALPHA,Chair\nB,BETA,Table,Black,90x200 cm,A table,\n"
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products["product_id"].to_list() == ["B"]
    assert "expected 7 fields, found 3" in _reasons(result)[0]


def test_non_utf8_bytes_are_decoded_and_reported(tmp_path: Path):
    body = HEADER.encode() + "A,CAFÉ,Chair,Crème,40 cm,Pâle,\n".encode("cp1252") + b"B,BETA,Table,Black,1 cm,Ok,\n"
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products.height == 2
    row = result.products.filter(pl.col("product_id") == "A").row(0, named=True)
    assert row["title"] == "CAFÉ" and row["color_text"] == "Crème"
    encoding_issues = [r for r in _reasons(result, "A") if "UTF-8" in r]
    assert encoding_issues and "line 2" in encoding_issues[0]


def test_duplicate_ids_keep_first_and_report(tmp_path: Path):
    body = HEADER + "A,ALPHA,Chair,White,,First,\nA,ALPHA,Chair,White,,First,\nA,ALPHA,Chair,Red,,Other,\n"
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products.height == 1
    assert result.products["description"].item() == "First"
    reasons = _reasons(result, "A")
    assert any("identical to row 1" in r for r in reasons)
    assert any("different content; kept row 1" in r for r in reasons)


def test_bad_images_degrade_to_text_only(tmp_path: Path):
    _jpeg(tmp_path / "images" / "good.jpg")
    (tmp_path / "images" / "folder.jpg").mkdir()
    good = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 200, 10)).save(good, "JPEG")
    (tmp_path / "images" / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    body = (
        HEADER
        + "G,GOOD,Chair,White,,ok,images/good.jpg\n"
        + "D,DIR,Chair,White,,dir,images/folder.jpg\n"
        + "T,TRUNC,Chair,White,,trunc,images/truncated.jpg\n"
        + "M,MISSING,Chair,White,,missing,images/none.jpg\n"
    )
    result = load_catalog(_write(tmp_path, body), "labeled")
    status = dict(result.products.select("product_id", "image_status").iter_rows())
    assert status == {"G": "ok", "D": "unreadable", "T": "unreadable", "M": "missing"}
    assert all(result.products["title"].is_not_null())
    for product_id in "DTM":
        (reason,) = _reasons(result, product_id)
        assert "text-only" in reason
    assert "folder.jpg" in _reasons(result, "D")[0]


def test_row_without_text_or_image_is_dropped(tmp_path: Path):
    body = HEADER + "A,,,,,,\nB,BETA,Table,,,,\n"
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products["product_id"].to_list() == ["B"]
    assert "no text and no image" in _reasons(result, "A")[0]


def test_content_hash_tracks_embedding_fields(tmp_path: Path):
    _jpeg(tmp_path / "images" / "a.jpg")
    body = HEADER + "A,ALPHA,Chair,White,40 cm,Nice,images/a.jpg\n"
    first = load_catalog(_write(tmp_path, body), "labeled").products["content_hash"].item()
    again = load_catalog(_write(tmp_path, body), "labeled").products["content_hash"].item()
    assert first == again
    _jpeg(tmp_path / "images" / "a.jpg", color=(0, 0, 255))
    changed_image = load_catalog(_write(tmp_path, body), "labeled").products["content_hash"].item()
    assert changed_image != first
    changed_text = load_catalog(_write(tmp_path, body.replace("Nice", "Nicer")), "labeled").products["content_hash"].item()
    assert changed_text not in (first, changed_image)


def test_parquet_with_custom_mapping(tmp_path: Path):
    path = tmp_path / "catalog.parquet"
    pl.DataFrame({"sku_code": ["X1", "X1B"], "text": ["CERAMIC VASE 10\"", "CERAMIC VASE 10\" BLK"], "id": ["1", "2"]}).write_parquet(path)
    mapping = ColumnMapping(product_id="id", sku="sku_code", description="text")
    result = load_catalog(path, mapping)
    assert result.products["product_id"].to_list() == ["1", "2"]
    assert result.products["variant_group"].n_unique() == 1


@pytest.mark.parametrize(("sku", "stem"), [("10483D", "10483"), ("00585-01", "00585"), ("671", "671"), ("AB12", "AB12")])
def test_sku_stem(sku: str, stem: str):
    assert sku_stem(sku) == stem


def test_unicode_and_slash_ids_survive(tmp_path: Path):
    body = HEADER + "é/1,ÉLAN,Chair,White,,ok,\nüñî/../x,UNI,Chair,White,,ok,\n"
    result = load_catalog(_write(tmp_path, body), "labeled")
    assert result.products["product_id"].to_list() == ["é/1", "üñî/../x"]


def test_image_check_cache_skips_unchanged_files(tmp_path: Path, monkeypatch):
    _jpeg(tmp_path / "images" / "a.jpg")
    _jpeg(tmp_path / "images" / "b.jpg", color=(1, 2, 3))
    body = HEADER + "A,ALPHA,Chair,White,,x,images/a.jpg\nB,BETA,Chair,White,,y,images/b.jpg\n"
    path = _write(tmp_path, body)
    options = CatalogOptions(image_check_cache=tmp_path / "cache" / "checks.parquet")
    first = load_catalog(path, "labeled", options)

    import scene_assets.catalog as catalog_module

    decoded: list[str] = []
    real_resolve = catalog_module.resolve_image

    def counting_resolve(ref, **kwargs):
        decoded.append(ref)
        return real_resolve(ref, **kwargs)

    monkeypatch.setattr(catalog_module, "resolve_image", counting_resolve)
    second = load_catalog(path, "labeled", options)
    assert decoded == []
    assert second.products.equals(first.products)
    _jpeg(tmp_path / "images" / "b.jpg", color=(9, 9, 9))  # changed file: checked again
    third = load_catalog(path, "labeled", options)
    assert decoded == ["images/b.jpg"]
    assert third.products["content_hash"].to_list()[1] != first.products["content_hash"].to_list()[1]
