from __future__ import annotations

import json
from pathlib import Path

import pytest

from scene_assets.ranking import FACTORS

from pipelines.cli import build_parser, main


def test_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("materialize", "catalog", "enrich", "data", "recommend", "serve", "export", "ui"):
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


@pytest.mark.slow
def test_materialize_recommend_export_on_the_sample(tmp_path: Path, shared_dir: Path):
    """The CLI as a user runs it (subprocesses, the persistent Dagster instance under the data dir)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SCENE_MATCHER_DATA_DIR": str(tmp_path / "data")}
    env.pop("DAGSTER_HOME", None)
    env.pop("SCENE_MATCHER_CATALOG", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=600)

    # Before anything is materialized: a clear one-line error, not a traceback.
    early = cli("recommend", str(shared_dir / "seed_catalog" / "scene-1.jpg"))
    assert early.returncode == 2 and "scene-matcher materialize" in early.stderr and "Traceback" not in early.stderr
    assert cli("materialize").returncode == 0
    scene = shared_dir / "seed_catalog" / "scene-1.jpg"
    done = cli("recommend", str(scene), "-k", "4", "--json", "--caption", "a bright bathroom")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    catalog_ids = set((Path(__file__).resolve().parents[1] / "data/sample/products.csv").read_text().split())
    assert len(result["items"]) == 4
    assert all(any(line.startswith(item["product_id"] + ",") for line in catalog_ids) for item in result["items"])
    assert result["calibrated"] is False and result["scene"]["caption"] == "a bright bathroom"
    assert set(result["items"][0]["factors"]) == set(FACTORS)
    human = cli("recommend", str(scene), "-k", "3")
    assert human.returncode == 0 and "UNCALIBRATED" in human.stdout and "room" in human.stdout
    bad = cli("recommend", str(tmp_path / "missing.jpg"))
    assert bad.returncode == 2 and "missing.jpg" in bad.stderr
    exported = cli("export", str(Path(__file__).resolve().parents[1] / "data/sample/images/scenes"), "-k", "3")
    assert exported.returncode == 0, exported.stderr
    assert "gallery" in exported.stdout and "9 scenes exported" in exported.stdout
