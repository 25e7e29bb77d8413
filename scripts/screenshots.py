"""Screenshots for the README: the Dagster asset lineage graph (every group expanded) and the HTML
recommendation gallery of an export batch.

    .venv/bin/python scripts/screenshots.py --out docs/          # writes docs/dagster-asset-graph.png
    .venv/bin/python scripts/screenshots.py --out /tmp/ui --all  # + asset list, a materialization, automation
    .venv/bin/python scripts/screenshots.py --out docs/ --gallery --encoder default   # + docs/export-gallery.jpg

Runs the main job on the embedded sample into a throw-away DAGSTER_HOME (fake encoder unless
--encoder default: the graph looks the same, the run takes seconds), starts `dagster dev` on it and
drives headless system Chromium with Playwright: the same steps as tests/test_ui_browser.py, from
tests/ui_walkthrough.py. The project's own data/ and data/dagster_home are never touched.
Playwright comes with the project's `test` extra (`pip install -e '.[test]'`; scripts/test.sh
installs it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import ui_walkthrough as ui  # noqa: E402

GRAPH_FILE = "dagster-asset-graph.png"
GALLERY_FILE = "export-gallery.jpg"
SAMPLE_SCENES = REPO / "data" / "sample" / "images" / "scenes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNG files (default: docs/)")
    parser.add_argument("--encoder", default="fake", choices=["fake", "default"], help="encoder of the main job run")
    parser.add_argument("--scale", type=float, default=1.5, help="device pixels per CSS pixel (sharper text when > 1)")
    parser.add_argument("--all", action="store_true", help="also the asset list, a materialization's metadata and "
                        "the automation page")
    parser.add_argument("--gallery", action="store_true", help="also export the sample scenes and capture the "
                        "batch's HTML gallery (use --encoder default for real recommendations)")
    parser.add_argument("--workdir", type=Path, help="keep the sandbox (DAGSTER_HOME, data, server log) here")
    args = parser.parse_args(argv)

    try:
        ui.require_browser()
    except ui.BrowserUnavailable as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scene-matcher-ui-") as scratch:
        sandbox = ui.Sandbox.create(args.workdir or Path(scratch), encoder=args.encoder)
        started = time.perf_counter()
        print(f"main job on the embedded sample ({args.encoder} encoder) into {sandbox.home} ...", flush=True)
        ui.materialize_main_job(sandbox)
        project = ui.project_catalog()
        written = []
        with ui.dagster_ui(sandbox) as base_url:
            print(f"dagster dev up at {base_url}", flush=True)
            with ui.browser_page(project["groups"], scale=args.scale) as page:
                ui.open_asset_graph(page, base_url, project["groups"], project["assets"],
                                    materialized=project["main_job_unpartitioned"])
                written.append(ui.capture_asset_graph(page, out / GRAPH_FILE))
                if args.all:
                    import dagster as dg

                    page.set_viewport_size({"width": 1600, "height": 1100})
                    ui.open_asset_list(page, base_url, project["groups"], project["assets"])
                    written.append(_shot(page, out / "dagster-asset-list.png"))
                    with sandbox.instance() as instance:
                        record = instance.fetch_materializations(dg.AssetKey("cleaned_catalog"), limit=1).records[0]
                    ui.open_materialization(page, base_url, "cleaned_catalog", record.asset_materialization.metadata)
                    written.append(_shot(page, out / "dagster-materialization.png"))
                    ui.open_automation(page, base_url, project["sensors"], project["schedules"])
                    written.append(_shot(page, out / "dagster-automation.png"))
        if args.gallery:
            written.append(capture_gallery(sandbox, out / GALLERY_FILE, args.scale))
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def capture_gallery(sandbox, path: Path, scale: float, k: int = 6) -> Path:
    """`scene-matcher export` of the sample scenes into the sandbox, then the top of its gallery page."""
    import subprocess

    from playwright.sync_api import sync_playwright

    done = subprocess.run([ui._tool("scene-matcher"), "export", str(SAMPLE_SCENES), "-k", str(k)], cwd=REPO,
                          env=sandbox.env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"export failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    gallery = next(line.split(None, 1)[1].strip() for line in done.stdout.splitlines() if line.strip().startswith("gallery"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=ui.require_browser(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=scale)
        page.goto(gallery if gallery.startswith("file:") else Path(gallery).resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(path), type="jpeg", quality=85)
        browser.close()
    return path


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
