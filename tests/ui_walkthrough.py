"""Start the Dagster UI on a throw-away instance and drive it with headless Chromium (Playwright).

Shared by ``tests/test_ui_browser.py`` (the UI walkthrough test) and ``scripts/screenshots.py`` (the
README picture of the asset graph). Nothing here touches the project's own ``data/`` or
``data/dagster_home``: a :class:`Sandbox` keeps DAGSTER_HOME, the pipeline's data folder, the scene
inbox and MLflow's store under one temporary folder.

Steps, each usable alone::

    sandbox = Sandbox.create(tmp)                 # DAGSTER_HOME with the repo's dagster.yaml, env for children
    materialize_main_job(sandbox)                 # `scene-matcher materialize` on the embedded sample
    materialize_main_job(sandbox, "evaluation_job")  # + the evaluation, logged to the sandbox's MLflow store
    with dagster_ui(sandbox) as base_url, mlflow_ui(sandbox), browser_page(groups) as page:
        open_asset_graph(page, base_url, groups, assets)   # asserts what the page shows
        capture_asset_graph(page, "graph.png")
        follow_mlflow_link(page, base_url, "scene_evaluation", "mlflow_run", sandbox.mlflow_url, [run_name])
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # Playwright is only imported when a browser is actually driven
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
ENV_CHROMIUM = "SCENE_MATCHER_CHROMIUM"
# Settings that would point the sandboxed pipeline at the user's own catalog, inbox or stores.
_PROJECT_ENV = (
    "SCENE_MATCHER_CATALOG", "SCENE_MATCHER_CATALOG_MAPPING", "SCENE_MATCHER_SCENES_INBOX", "SCENE_MATCHER_EVAL_DATASET",
    "SCENE_MATCHER_TRAIN_DATASET", "SCENE_MATCHER_SHARDS", "MLFLOW_TRACKING_URI",
)
# Big enough that the global graph fits at a zoom that draws detailed nodes (full names, status); the UI does
# not draw nodes outside the viewport, so a taller graph needs a taller viewport.
GRAPH_VIEWPORT = (3000, 2800)
EXPECT_TIMEOUT_MS = 30_000


class BrowserUnavailable(RuntimeError):
    """Playwright's Python package or a Chromium binary is missing."""


def chromium_executable() -> str:
    """The system Chromium Playwright drives (its own browser download is not used): $SCENE_MATCHER_CHROMIUM
    when set, else the first of /usr/bin/chromium, chromium, chromium-browser, google-chrome on PATH."""
    configured = os.environ.get(ENV_CHROMIUM)
    for candidate in [configured] if configured else CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise BrowserUnavailable(
        f"no Chromium found (tried {configured or ', '.join(CHROMIUM_CANDIDATES)}); install it "
        f"(apt-get install chromium) or set {ENV_CHROMIUM}"
    )


def require_browser() -> str:
    """The Chromium path, after checking that Playwright's Python package imports."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise BrowserUnavailable(f"Playwright's Python package is not installed ({exc}); pip install playwright") from exc
    return chromium_executable()


def _tool(name: str) -> str:
    """A console script of this environment (beside the running Python), else the one on PATH."""
    beside = VENV_BIN / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found beside {sys.executable} or on PATH (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# the sandboxed instance and the main job


@dataclass(frozen=True)
class Sandbox:
    root: Path
    home: Path  # DAGSTER_HOME
    data: Path  # SCENE_MATCHER_DATA_DIR
    env: dict[str, str]
    mlflow_port: int  # where mlflow_ui() serves the sandbox's tracking store (the metadata links point there)

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def mlflow_store(self) -> str:
        return f"sqlite:///{self.data / 'mlflow' / 'mlflow.db'}"

    @classmethod
    def create(cls, root: Path, encoder: str = "fake") -> "Sandbox":
        """A DAGSTER_HOME holding the repo's dagster.yaml plus a data folder, both under ``root``; the
        embedded sample catalog; ``encoder`` = fake (seeded vectors, seconds) or default (the real models)."""
        root = Path(root).resolve()
        home, data = root / "dagster_home", root / "data"
        home.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {key: value for key, value in os.environ.items() if key not in _PROJECT_ENV}
        mlflow_port = free_port()
        env.update(
            SCENE_MATCHER_MLFLOW_UI_URL=f"http://127.0.0.1:{mlflow_port}",
            DAGSTER_HOME=str(home),
            SCENE_MATCHER_DATA_DIR=str(data),
            SCENE_MATCHER_ENCODER=encoder,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        return cls(root=root, home=home, data=data, env=env, mlflow_port=mlflow_port)

    def instance(self):
        """The sandbox's Dagster instance, opened from this process (the UI may be running on it)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))


def materialize_main_job(sandbox: Sandbox, job: str = "main", timeout_s: float = 600) -> str:
    """`scene-matcher materialize` (catalog → enrichment → vectors → index on the embedded sample) into the
    sandbox's instance, or `--job JOB` (e.g. evaluation_job); returns its printed summary, raises with the
    output when it fails."""
    command = [_tool("scene-matcher"), "materialize", "--job", job]
    done = subprocess.run(command, cwd=REPO, env=sandbox.env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


# --------------------------------------------------------------------------------------------
# the server


def _reset_signals() -> None:
    # A process started in the background by a non-interactive shell inherits SIGINT (and sometimes SIGTERM)
    # as ignored, and Python then installs no KeyboardInterrupt handler: `dagster dev` could not be stopped
    # gracefully. Runs in the child before exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _graphql(base_url: str, query: str, timeout_s: float = 5) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def wait_until_loaded(base_url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    """Until the webserver answers GraphQL with the code location's asset nodes (the server answering is not
    enough: the code location loads after it)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode} before the UI was up:\n{_log_tail(log)}")
        try:
            nodes = _graphql(base_url, "{ assetNodes { assetKey { path } } }").get("data", {}).get("assetNodes") or []
            if nodes:
                return
            last = "code location not loaded yet"
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"Dagster UI at {base_url} not ready after {timeout_s:.0f} s ({last}):\n{_log_tail(log)}")


def stop_process_group(process: subprocess.Popen, grace_s: float = 15) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code servers, runs): they share the
    process group the server was started in. SIGINT first (its graceful path), then SIGTERM, then SIGKILL."""
    pgid = process.pid
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # whatever is left of the group (children outliving the leader included)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def dagster_ui(sandbox: Sandbox, port: int | None = None, timeout_s: float = 180) -> Iterator[str]:
    """`dagster dev -m pipelines.definitions` on the sandbox's instance, in its own process group; yields the
    base URL once the code location is loaded, and always stops the whole group on exit."""
    port = port or free_port()
    log = sandbox.root / "dagster-dev.log"
    command = [_tool("dagster"), "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=sandbox.env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_signals,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_loaded(base_url, process, log, timeout_s)
        yield base_url
    finally:
        stop_process_group(process)


def _wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} not answering after {timeout_s:.0f} s ({last}):\n{_log_tail(log)}")


@contextmanager
def mlflow_ui(sandbox: Sandbox, timeout_s: float = 120) -> Iterator[str]:
    """`mlflow ui` on the sandbox's tracking store and port, in its own process group; yields its URL once
    /health answers, and always stops it."""
    log = sandbox.root / "mlflow-ui.log"
    command = [_tool("mlflow"), "ui", "--backend-store-uri", sandbox.mlflow_store,
               "-h", "127.0.0.1", "-p", str(sandbox.mlflow_port)]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=sandbox.root, env=sandbox.env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_signals,
        )
    try:
        _wait_for_http(f"{sandbox.mlflow_url}/health", process, log, timeout_s)
        yield sandbox.mlflow_url
    finally:
        stop_process_group(process)


# --------------------------------------------------------------------------------------------
# the browser


def _init_script(expanded_groups: list[str]) -> str:
    expanded = json.dumps({"expanded": ",".join(f"global@global:{group}" for group in expanded_groups)})
    return (
        # no "join the community" dialog over the page, navigation collapsed to icons,
        "localStorage.setItem('communityNux', '\"1\"');"
        "localStorage.setItem('dagster-nav-collapsed', 'true');"
        # every group of the global asset graph expanded (the UI keeps this per browser in localStorage).
        f"localStorage.setItem('asset-graph-open-graph-nodes-global-__GLOBAL__', {json.dumps(expanded)});"
    )


@contextmanager
def browser_page(expanded_groups: list[str], viewport: tuple[int, int] = GRAPH_VIEWPORT, scale: float = 1.0) -> Iterator["Page"]:
    """A page of headless system Chromium (``--no-sandbox``: it runs as root in containers)."""
    executable = require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=scale)
            context.add_init_script(_init_script(expanded_groups))
            context.set_default_timeout(EXPECT_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _graph(page: "Page"):
    return page.locator("svg:has(foreignObject)").first


def open_asset_graph(
    page: "Page", base_url: str, groups: list[str], assets: list[str], materialized: list[str] = ()
) -> None:
    """The global asset lineage with every group expanded; fails unless every group box and every asset node
    is drawn in the graph itself (the sidebar's group list does not count), and each asset of
    ``materialized`` shows that status in its node."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    graph = _graph(page)
    for name in [*groups, *assets]:
        expect(graph.get_by_text(name, exact=True).first).to_be_visible()
    for name in materialized:
        node = graph.locator("foreignObject").filter(has=page.get_by_text(name, exact=True)).last
        expect(node).to_contain_text("Materialized")
    # Node statuses arrive after the nodes: wait until none is still "Loading…".
    expect(graph.get_by_text(re.compile(r"^\s*Loading"))).to_have_count(0)
    # The graph pans and zooms in after the first paint; screenshots wait for it to settle.
    page.wait_for_timeout(1000)


def capture_asset_graph(page: "Page", path: Path, padding: int = 24) -> Path:
    """Screenshot of the asset graph cropped to its nodes and group boxes (the graph page must be open)."""
    sidebar_toggle = page.get_by_role("button", name="panel_show_right", exact=True)
    if sidebar_toggle.count():
        sidebar_toggle.click()  # hide the asset tree beside the graph
        page.wait_for_timeout(800)
    box = _graph(page).evaluate(
        """svg => {
          const rects = Array.from(svg.querySelectorAll('foreignObject')).map(e => e.getBoundingClientRect())
            .filter(r => r.width > 0 && r.height > 0);
          return {left: Math.min(...rects.map(r => r.left)), top: Math.min(...rects.map(r => r.top)),
                  right: Math.max(...rects.map(r => r.right)), bottom: Math.max(...rects.map(r => r.bottom))};
        }"""
    )
    viewport = page.viewport_size
    left, top = max(box["left"] - padding, 0), max(box["top"] - padding, 0)
    right, bottom = min(box["right"] + padding, viewport["width"]), min(box["bottom"] + padding, viewport["height"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
    return path


def open_asset_list(page: "Page", base_url: str, groups: list[str], assets: list[str]) -> None:
    """The asset catalog list: a link to every asset, and every group named."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/assets")
    for name in assets:
        expect(page.locator(f'a[href="/assets/{name}"]').first).to_be_visible()
    for group in groups:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()


def metadata_expectations(metadata: dict) -> dict[str, re.Pattern | str]:
    """What the UI must show for each metadata entry of a materialization: its label with, in the same table
    row, the number, the path, or a markdown table's header and first cell."""
    import dagster as dg

    expected: dict[str, re.Pattern | str] = {}
    for label, value in metadata.items():
        if isinstance(value, dg.IntMetadataValue):
            expected[label] = re.compile(rf"(^|\D)({value.value}|{value.value:,})(\D|$)")
        elif isinstance(value, dg.FloatMetadataValue):
            number = float(value.value)
            expected[label] = str(int(number)) if number.is_integer() else repr(number)
        elif isinstance(value, dg.PathMetadataValue):
            expected[label] = str(value.value)
        elif isinstance(value, dg.MarkdownMetadataValue):
            lines = [line for line in value.value.splitlines() if line.startswith("|")]
            if len(lines) >= 3:  # header, separator, first row
                expected[label] = lines[2].strip("| ").split(" | ")[0]
            else:
                expected[label] = ""
        else:
            expected[label] = ""
    return expected


def open_materialization(page: "Page", base_url: str, asset: str, metadata: dict) -> None:
    """The asset's Events tab on its latest materialization; fails unless each metadata entry shows its
    value next to its label."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/assets/{asset}?view=events")
    expect(page.get_by_text("Metadata", exact=True).first).to_be_visible()
    for label, value in metadata_expectations(metadata).items():
        row = page.locator("tr").filter(has=page.get_by_text(label, exact=True)).first
        expect(row).to_be_visible()
        if value:
            expect(row).to_contain_text(value)


def open_check(page: "Page", base_url: str, asset: str, check: str) -> None:
    """The asset's Checks tab: the check shown as blocking, with its latest evaluation's result (passed or failed:
    both are verdicts)."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/assets/{asset}?view=checks")
    expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("blocking", exact=True).first).to_be_visible()  # "This is a blocking asset check."
    expect(page.get_by_text("Evaluation result", exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile("^(Passed|Failed)$")).first).to_be_visible()


def follow_mlflow_link(page: "Page", base_url: str, asset: str, label: str, mlflow_url: str,
                       expected_texts: list[str]) -> str:
    """The asset's latest materialization shows a ``label`` row linking into the MLflow UI; the link is
    followed and the MLflow run page must show each of ``expected_texts`` (run name, metric names).
    Returns the link."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/assets/{asset}?view=events")
    row = page.locator("tr").filter(has=page.get_by_text(label, exact=True)).first
    expect(row).to_be_visible()
    link = row.locator(f'a[href^="{mlflow_url}/"]').first
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    page.goto(href)
    for text in expected_texts:
        expect(page.get_by_text(text, exact=True).first).to_be_visible()
    close_assistant = page.get_by_role("button", name="Close")
    if close_assistant.count():  # MLflow 3 opens an assistant panel beside the run; not part of the picture
        close_assistant.first.click()
    return href


def open_automation(page: "Page", base_url: str, sensors: list[str], schedules: list[str]) -> None:
    """The Automation page: a row for every sensor and every schedule (with its cron in words)."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/automation")
    for kind, names, says in (("sensors", sensors, "sensor"), ("schedules", schedules, "Scheduled")):
        for name in names:
            link = page.locator(f'a[href$="/{kind}/{name}"]').first
            expect(link).to_be_visible()
            expect(link).to_contain_text(name)
            expect(link).to_contain_text(says)


def project_catalog() -> dict[str, list[str]]:
    """Groups, assets, sensors and schedules of the project's Definitions, as the UI should list them, and the
    unpartitioned assets of the main job."""
    from pipelines.definitions import defs

    from pipelines.jobs import MAIN_JOB_STEPS

    specs = list(defs.resolve_all_asset_specs())
    graph = defs.resolve_asset_graph()
    main_job = set().union(*(step.selection.resolve(graph) for step in MAIN_JOB_STEPS))
    return {
        "groups": sorted({spec.group_name for spec in specs}),
        "assets": sorted(spec.key.to_user_string() for spec in specs),
        # what the main job leaves marked "Materialized" (its sharded assets show partition counts instead)
        "main_job_unpartitioned": sorted(key.to_user_string() for key in main_job if not graph.get(key).is_partitioned),
        "sensors": sorted(sensor.name for sensor in defs.sensors or []),
        "schedules": sorted(schedule.name for schedule in defs.schedules or []),
    }
