"""Stateless replicas: two `scene-matcher serve` processes on one Dagster instance and data folder
answer identically, and a new scene_index materialization reaches both without a restart while they
take traffic (no failed request). Fake encoder, tiny catalog, real processes on loopback ports."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import httpx
from PIL import Image

from pipelines.instance_config import write_instance_yaml
from pipelines.runner import run_main_job
from scene_assets.settings import PROJECT_ROOT
from tests.pipeline_fakes import COLORS, defs_with_fakes, tiny_catalog_rows, write_tiny_catalog

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from serving_process import free_port  # noqa: E402


def _scene_jpeg() -> bytes:
    scene = Image.new("RGB", (320, 240), (230, 228, 220))
    for n, colour in enumerate(COLORS[:4]):
        scene.paste(Image.new("RGB", (60, 60), colour), (20 + 75 * n, 90))
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@contextlib.contextmanager
def _replica(home: Path, data: Path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SCENE_MATCHER_DATA_DIR": str(data), "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "faces.cli", "serve", "--port", str(port), "--device", "cpu", "--reload-interval", "0.5"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _ready_version(client: httpx.Client, base: str) -> str | None:
    with contextlib.suppress(httpx.TransportError):
        response = client.get(f"{base}/ready")
        if response.status_code == 200:
            return response.json()["version"]
    return None


def _wait(predicate, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        for process in processes:
            assert process.poll() is None, f"a replica exited: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
    return value


def _answer(client: httpx.Client, base: str, scene: bytes) -> list[tuple[str, float]]:
    response = client.post(f"{base}/match", files={"image": ("scene.jpg", scene, "image/jpeg")}, data={"k": "5"})
    assert response.status_code == 200, response.text
    return [(item["product_id"], round(item["score"], 6)) for item in response.json()["items"]]


def test_two_replicas_answer_alike_and_both_pick_up_a_new_index_under_load(tmp_path: Path, monkeypatch):
    catalog_dir, data, home = tmp_path / "catalog", tmp_path / "data", tmp_path / "dagster_home"
    rows = tiny_catalog_rows()
    catalog = write_tiny_catalog(catalog_dir, rows)
    home.mkdir()
    write_instance_yaml(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert run_main_job(instance=instance, defs=defs_with_fakes(data, catalog))["success"]
    scene = _scene_jpeg()
    with (_replica(home, data) as (a, base_a), _replica(home, data) as (b, base_b),
          httpx.Client(timeout=60, trust_env=False) as client):
        first = _wait(lambda: _ready_version(client, base_a) and _ready_version(client, base_b), 240,
                      "both replicas ready", (a, b))
        assert _ready_version(client, base_a) == _ready_version(client, base_b) == first
        before = _answer(client, base_a, scene)
        assert _answer(client, base_b, scene) == before

        statuses: list[int] = []
        stop = threading.Event()

        def load():
            with httpx.Client(timeout=60, trust_env=False) as own:
                i = 0
                while not stop.is_set():
                    base = (base_a, base_b)[i % 2]
                    data_ = {"k": str(1 + i % 7)}  # varied parameters: most requests are computed
                    statuses.append(own.post(f"{base}/match", files={"image": ("s.jpg", scene, "image/jpeg")},
                                             data=data_).status_code)
                    i += 1

        loader = threading.Thread(target=load)
        loader.start()
        try:
            # a changed catalog: two products get new photos, one is new -> a new scene_index version
            changed = [(pid, name, kind, desc, COLORS[(i + 3) % 6] if i in (0, 1) else colour)
                       for i, (pid, name, kind, desc, colour) in enumerate(rows)]
            changed.append(("p12", "NEWCHAIR", "Chair", "A chair added later", (120, 60, 30)))
            write_tiny_catalog(catalog_dir, changed)
            with dg.DagsterInstance.get() as instance:
                assert run_main_job(instance=instance, defs=defs_with_fakes(data, catalog))["success"]
            second = _wait(lambda: (va := _ready_version(client, base_a)) != first and va == _ready_version(client, base_b)
                           and va, 60, "both replicas on the new index", (a, b))
        finally:
            stop.set()
            loader.join(60)
        assert second != first
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        after = _answer(client, base_a, scene)
        assert _answer(client, base_b, scene) == after
        assert client.get(f"{base_a}/ready").json()["products"] == len(changed) - 1  # the one without a photo
