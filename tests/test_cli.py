from __future__ import annotations

import json
from pathlib import Path

import pytest

from scene_assets.ranking import FACTORS

from faces.cli import build_parser, main


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
        return subprocess.run([sys.executable, "-m", "faces.cli", *args], env=env, capture_output=True, text=True, timeout=600)

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


# --------------------------------------------------------------------------------------------
# `_provider`: which bundle and which learned scorer `recommend` / `serve` use


@pytest.fixture()
def dagster_home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture()
def scorer_dir(tmp_path: Path) -> Path:
    from scene_assets.learned import LearnedScorer

    return LearnedScorer(trunk_fingerprint="trunk-abc", info={"made_by": "test"}).save(tmp_path / "learned")


def _provider_for(*args: str):
    from faces.cli import _provider

    return _provider(build_parser().parse_args(["recommend", "scene.jpg", *args]))


def _report_learned_scorer(directory: Path) -> str:
    """Record a learned_scorer materialization in the instance at $DAGSTER_HOME; its fingerprint."""
    import dagster as dg

    from faces.cli import ensure_dagster_home
    from scene_assets.learned import LearnedScorer

    ensure_dagster_home()
    fingerprint = LearnedScorer.load(directory).fingerprint()
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "learned_scorer", metadata={"learned_dir": dg.MetadataValue.path(str(directory)),
                                        "learned_fingerprint": fingerprint}))
    return fingerprint


def test_provider_learned_without_index_uses_the_latest_bundle(dagster_home: Path, scorer_dir: Path):
    from faces.providers import MaterializedBundleProvider
    from scene_assets.learned import LearnedScorer

    provider = _provider_for("--learned", str(scorer_dir))
    assert isinstance(provider, MaterializedBundleProvider)
    assert provider.scorer_fingerprint() == LearnedScorer.load(scorer_dir).fingerprint()
    assert provider.version() is None  # nothing materialized in this instance yet


@pytest.mark.parametrize("with_weights", [False, True], ids=["default-weights", "weights-file"])
@pytest.mark.parametrize("branch", ["index", "index+learned", "index+no-learned", "learned", "neither", "no-learned"])
def test_every_provider_branch(branch: str, with_weights: bool, tmp_path: Path, dagster_home: Path, scorer_dir: Path):
    """Which bundle and which scorer each combination of --index / --learned / --no-learned / --weights
    picks (pipelines/serving.py states the policy)."""
    from faces.providers import DirectoryBundleProvider, MaterializedBundleProvider
    from scene_assets.learned import LearnedScorer
    from scene_assets.ranking import ScoringWeights

    named = LearnedScorer.load(scorer_dir).fingerprint()
    # A scorer materialized in the instance: what the default picks, and what the other branches must not.
    other = LearnedScorer(trunk_fingerprint="trunk-xyz").save(tmp_path / "materialized-scorer")
    latest = _report_learned_scorer(other)
    bundle = tmp_path / "bundle"
    args = {"index": ["--index", str(bundle)], "index+learned": ["--index", str(bundle), "--learned", str(scorer_dir)],
            "index+no-learned": ["--index", str(bundle), "--no-learned"], "learned": ["--learned", str(scorer_dir)],
            "neither": [], "no-learned": ["--no-learned"]}[branch]
    weights_file = tmp_path / "weights.json"
    ScoringWeights(visual=0.7, color=0.3).save(weights_file)
    provider = _provider_for(*args, *(["--weights", str(weights_file)] if with_weights else []))

    if branch.startswith("index"):
        assert isinstance(provider, DirectoryBundleProvider) and provider.directory == bundle
    else:
        assert isinstance(provider, MaterializedBundleProvider)
    expected_scorer = {"index": None, "index+learned": named, "index+no-learned": None, "learned": named,
                       "neither": latest, "no-learned": None}[branch]
    assert provider.scorer_fingerprint() == expected_scorer
    assert (expected_scorer or "no learned scorer") in provider.describe()
    assert provider.weights == (ScoringWeights(visual=0.7, color=0.3) if with_weights else None)
    assert provider.version() is None  # no bundle yet, in either place


def test_learned_and_no_learned_exclude_each_other(scorer_dir: Path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["recommend", "x.jpg", "--learned", str(scorer_dir), "--no-learned"])
    assert "not allowed with" in capsys.readouterr().err


def test_a_missing_scorer_folder_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["recommend", "scene.jpg", "--index", str(tmp_path), "--learned", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "learned scorer" in err and "nope" in err and "Traceback" not in err


def test_ui_without_a_dagster_script_beside_the_interpreter(tmp_path: Path, dagster_home: Path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # no dagster beside it
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, **kwargs: calls.append(command) or 0)
    assert main(["ui", "--port", "3999"]) == 0
    (command,) = calls
    assert command[1:] == ["dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", "3999"]


def test_recommend_ranking_options_reach_the_engine(tmp_path: Path, monkeypatch, capsys):
    """--fusion / --diversity / --mmr-lambda / --category-cap / --no-collapse-variants become one
    RankingConfig (the export job's and /match's) and reach Recommender.recommend unchanged."""
    from types import SimpleNamespace

    from PIL import Image

    from faces import cli

    image = tmp_path / "scene.png"
    Image.new("RGB", (32, 24), (200, 180, 160)).save(image)
    seen: dict = {}

    class RecordingRecommender:
        def recommend(self, img, **kwargs):
            seen.update(kwargs)
            return SimpleNamespace(to_dict=lambda: {"items": []})

    provider = SimpleNamespace(load=lambda: SimpleNamespace(recommender=RecordingRecommender(), info={}, version="v"))
    monkeypatch.setattr(cli, "_provider", lambda args: provider)
    assert main(["recommend", str(image), "--json", "--diversity", "category_cap", "--category-cap", "2",
                 "--mmr-lambda", "0.4", "--fusion", "weights", "--no-collapse-variants"]) == 0
    assert {k: seen[k] for k in ("fusion", "diversity", "mmr_lambda", "category_cap", "collapse_variants")} == {
        "fusion": "weights", "diversity": "category_cap", "mmr_lambda": 0.4, "category_cap": 2,
        "collapse_variants": False}
    assert json.loads(capsys.readouterr().out)["index"]["version"] == "v"


@pytest.mark.parametrize("option, value", [("--mmr-lambda", "1.5"), ("--category-cap", "0")])
def test_recommend_ranking_options_outside_their_limits_are_one_line_errors(option: str, value: str, capsys):
    assert main(["recommend", "scene.jpg", option, value]) == 2
    err = capsys.readouterr().err
    assert option.lstrip("-").replace("-", "_") in err and "Traceback" not in err


def test_bundle_asset_picks_which_materialized_bundle_is_served(dagster_home: Path):
    """--bundle-asset two_stage_bundle: the latest two_stage_bundle materialization instead of scene_index."""
    from faces.providers import MaterializedBundleProvider

    provider = _provider_for("--bundle-asset", "two_stage_bundle", "--no-learned")
    assert isinstance(provider, MaterializedBundleProvider) and provider.bundle_asset == "two_stage_bundle"
    assert "latest two_stage_bundle materialization" in provider.describe() and provider.version() is None
    assert _provider_for("--no-learned").bundle_asset == "scene_index"
    with pytest.raises(SystemExit):
        _provider_for("--bundle-asset", "no_such_asset")
