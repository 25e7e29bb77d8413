from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main


def test_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("materialize", "catalog", "enrich", "data", "ui"):
        assert command in out
    assert "examples:" in out


def test_enrich_json(capsys):
    assert main(["enrich", "CERAMIC ELEPHANT 8X7X3 BLK/WHT S/2", "--json"]) == 0
    fields = json.loads(capsys.readouterr().out)
    for key in ("product_type", "category", "colors", "materials", "set_count", "dimensions_cm", "size_class"):
        assert key in fields
    assert fields["colors"] == ["black", "white"]
    assert fields["materials"] == ["ceramic"]
    assert fields["set_count"] == 2
    assert fields["dimensions_cm"] == pytest.approx([20.32, 17.78, 7.62])


def test_catalog_command_reports_issues(seed_catalog_csv: Path, capsys):
    assert main(["catalog", str(seed_catalog_csv), "--mapping", "merchant", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stats"]["products"] == 500
    assert len(report["issues"]) == 500  # every image is unreachable here (not fetched without --fetch)


def test_missing_catalog_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["catalog", str(tmp_path / "nope.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_data_sample_writes_a_labeled_dataset(tmp_path: Path):
    assert main(["data", "sample", str(tmp_path / "sample")]) == 0
    for name in ("products.csv", "scenes.csv", "scene_products.csv"):
        assert (tmp_path / "sample" / name).is_file()


def test_fetch_ikea_offline_says_so(tmp_path: Path, capsys):
    # No network here: the download fails with a clear message instead of pretending.
    code = main(["data", "fetch-ikea", str(tmp_path / "ikea"), "--url", "http://127.0.0.1:9/ikea.zip"])
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_parser_builds():
    assert build_parser().prog == "scene-matcher"
