"""The Dagster UI, walked through in headless Chromium (Playwright driving the system browser).

`dagster dev` runs on a temporary DAGSTER_HOME and data folder after the main job has materialized the
embedded sample (fake encoder, so it takes seconds). The test fails unless the pages show the project:
every asset group and asset in the global lineage graph and the asset list, the metadata of the latest
`cleaned_catalog` materialization (each value next to its label), every sensor and schedule on the
Automation page, and — after the `evaluation_job` on the sample — the `scene_evaluation` materialization's
link into a real `mlflow ui`, followed to the run page, which must show the run and its metrics; then shopper
feedback on the sample (two A/B variants), the feedback sensor's run and `feedback_retrain_job`: the `ab_report`
and `feedback_scorer` materializations with their metadata, the scorer's blocking check on its Checks tab, and
the A/B report's link to the control variant's MLflow run. Screenshots go to the test's tmp folder and, when set, to $SCENE_MATCHER_UI_SHOTS.

Without Playwright or Chromium the test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests import ui_walkthrough as ui

pytestmark = pytest.mark.slow

ENV_SHOTS = "SCENE_MATCHER_UI_SHOTS"
# The groups of pipelines/*/assets.py; the UI must show these (and any group added later).
EXPECTED_GROUPS = {"catalog", "enrichment", "embeddings", "index", "evaluation", "export", "feedback"}
METADATA_ASSET = "cleaned_catalog"
LIST_VIEWPORT = {"width": 1600, "height": 1300}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return ui.require_browser()
    except ui.BrowserUnavailable as exc:
        if _in_ci():
            pytest.fail(f"UI test cannot run in CI: {exc}")
        pytest.skip(f"UI test needs a browser: {exc}")


@pytest.fixture()
def shots(tmp_path: Path):
    folder = tmp_path / "shots"
    folder.mkdir()
    yield folder
    target = os.environ.get(ENV_SHOTS)
    if target:  # copied even when the test failed: the screenshots show what the page looked like
        shutil.copytree(folder, Path(target), dirs_exist_ok=True)


def test_ui_shows_assets_materialization_metadata_and_automation(chromium: str, tmp_path: Path, shots: Path):
    project = ui.project_catalog()
    assert EXPECTED_GROUPS <= set(project["groups"]), project["groups"]
    assert {"catalog_file_sensor", "scene_inbox_sensor", "feedback_sensor"} <= set(project["sensors"])
    assert {"nightly_full_export", "weekly_full_export"} <= set(project["schedules"])

    sandbox = ui.Sandbox.create(tmp_path / "sandbox")
    summary = ui.materialize_main_job(sandbox)
    assert "main job finished" in summary and "(ok)" in summary, summary
    with sandbox.instance() as instance:
        record = instance.fetch_materializations(dg.AssetKey(METADATA_ASSET), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert {"dagster/row_count", "preview"} <= set(metadata)
    assert {METADATA_ASSET, "scene_index"} <= set(project["main_job_unpartitioned"])
    summary = ui.materialize_main_job(sandbox, "evaluation_job")
    assert "evaluation_job finished" in summary and "(ok)" in summary, summary
    import mlflow

    runs = mlflow.MlflowClient(sandbox.mlflow_store).search_runs(
        [mlflow.MlflowClient(sandbox.mlflow_store).get_experiment_by_name("scene-matcher").experiment_id],
        filter_string="tags.kind = 'evaluation'")
    assert len(runs) == 1, runs
    evaluation_run = runs[0]
    # shoppers on the sample (two variants) recorded as a server would, the feedback sensor's tick and run, then
    # the retrain job: feedback_pairs, ab_report, feedback_scorer and its blocking check
    done = subprocess.run([sys.executable, "-m", "tests.feedback_shoppers", "control", "colour-only"], cwd=ui.REPO,
                          env=sandbox.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = ui.materialize_main_job(sandbox, "feedback_retrain_job")
    assert "feedback_retrain_job finished" in summary and "(ok)" in summary, summary
    with sandbox.instance() as instance:
        feedback_metadata = {key: instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
                             .asset_materialization.metadata for key in ("feedback_scorer", "ab_report")}
    assert feedback_metadata["ab_report"]["leader"].value == "control"

    with ui.dagster_ui(sandbox) as base_url, ui.mlflow_ui(sandbox) as mlflow_url, \
            ui.browser_page(project["groups"]) as page:
        step = "start"
        try:
            step = "asset-graph"
            ui.open_asset_graph(page, base_url, project["groups"], project["assets"],
                                materialized=project["main_job_unpartitioned"])
            page.screenshot(path=str(shots / "01-asset-graph.png"))

            page.set_viewport_size(LIST_VIEWPORT)
            step = "asset-list"
            ui.open_asset_list(page, base_url, project["groups"], project["assets"])
            page.screenshot(path=str(shots / "02-asset-list.png"), full_page=True)

            step = "materialization"
            ui.open_materialization(page, base_url, METADATA_ASSET, metadata)
            page.screenshot(path=str(shots / f"03-{METADATA_ASSET}-materialization.png"), full_page=True)

            step = "automation"
            ui.open_automation(page, base_url, project["sensors"], project["schedules"])
            page.screenshot(path=str(shots / "04-automation.png"), full_page=True)

            step = "evaluation-to-mlflow"
            href = ui.follow_mlflow_link(page, base_url, "scene_evaluation", "mlflow_run", mlflow_url,
                                         [evaluation_run.info.run_name, "ndcg_at_10", "recall_at_10"])
            assert evaluation_run.info.run_id in href, href
            page.screenshot(path=str(shots / "05-mlflow-evaluation-run.png"))

            step = "feedback"
            page.set_viewport_size(LIST_VIEWPORT)
            ui.open_materialization(page, base_url, "ab_report", feedback_metadata["ab_report"])
            page.screenshot(path=str(shots / "06-ab-report.png"), full_page=True)
            ui.open_materialization(page, base_url, "feedback_scorer", feedback_metadata["feedback_scorer"])
            ui.open_check(page, base_url, "feedback_scorer", "feedback_scorer_holds_on_labels")
            page.screenshot(path=str(shots / "07-feedback-scorer-check.png"), full_page=True)
            href = ui.follow_mlflow_link(page, base_url, "ab_report", "mlflow_run_control", mlflow_url,
                                         ["ab-control", "ctr"])
            page.screenshot(path=str(shots / "08-mlflow-ab-control.png"))
        except Exception:
            page.screenshot(path=str(shots / f"failed-at-{step}.png"), full_page=True)
            raise

    expected = ["01-asset-graph.png", "02-asset-list.png", f"03-{METADATA_ASSET}-materialization.png", "04-automation.png",
                "05-mlflow-evaluation-run.png", "06-ab-report.png", "07-feedback-scorer-check.png",
                "08-mlflow-ab-control.png"]
    assert sorted(p.name for p in shots.iterdir()) == expected
    assert all((shots / name).stat().st_size > 10_000 for name in expected)
