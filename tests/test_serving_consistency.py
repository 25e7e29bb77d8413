"""The server refuses an index it cannot trust — built by another encoder, a corrupted or half-written
index file, a bundle naming another index — and /ready says why; a good bundle written over the bad
one is then picked up without a restart."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from faces.providers import DirectoryBundleProvider
from scene_assets.indexes import flat_files
from scene_assets.settings import PROJECT_ROOT
from tests.test_serving import _settings, _wait_for, running

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from serving_process import fake_bundle  # noqa: E402


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory) -> tuple[Path, list[bytes]]:
    return fake_bundle(tmp_path_factory.mktemp("bundle") / "scene-fake")


def _copy(good: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "scene-served"
    shutil.copytree(good, directory)
    return directory


def _edit_bundle(directory: Path, **changes) -> None:
    path = directory / "bundle.json"
    bundle = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            bundle[key] = {**bundle[key], **value}
        else:
            bundle[key] = value
    path.write_text(json.dumps(bundle))


def _refused(client, *needles: str) -> str:
    response = _wait_for(lambda: (r := client.get("/ready")).status_code == 503 and r, what="/ready 503")
    reason = response.json()["reason"]
    for needle in needles:
        assert needle in reason, reason
    match = client.post("/match", files={"image": ("s.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert match.status_code == 503 and "not ready" in match.json()["detail"]
    return reason


def test_index_of_another_encoder_is_refused(good_bundle, tmp_path: Path):
    directory = _copy(good_bundle[0], tmp_path)
    # The bundle says its queries are encoded by a 32-d fake encoder; its index holds another's vectors.
    _edit_bundle(directory, encoder_spec={"dim": 32}, version="other-encoder")
    with running(DirectoryBundleProvider(directory), _settings()) as client:
        _refused(client, "index built with encoder", "re-materialize scene_index")


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_corrupt_index_file_is_refused_then_a_rebuilt_one_is_served(good_bundle, tmp_path: Path, damage: str):
    directory = _copy(good_bundle[0], tmp_path)
    index_file = directory / flat_files.INDEX_FILE
    data = bytearray(index_file.read_bytes())
    if damage == "truncated":  # a half-written file
        data = data[: len(data) // 2]
    else:  # one flipped bit in the vectors: same size, different checksum
        data[len(data) // 2] ^= 0x01
    index_file.write_bytes(bytes(data))
    with running(DirectoryBundleProvider(directory), _settings(reload_interval_s=0.1)) as client:
        _refused(client, "index.faiss")
        # The pipeline rewrites the folder; the poller notices the new version and serves it.
        shutil.rmtree(directory)
        shutil.copytree(good_bundle[0], directory)
        _edit_bundle(directory, version="rebuilt")
        ready = _wait_for(lambda: (r := client.get("/ready")).status_code == 200 and r, what="the rebuilt bundle")
        assert ready.json()["version"] == "rebuilt"
        answer = client.post("/match", files={"image": ("s.jpg", good_bundle[1][0], "image/jpeg")}, data={"k": "3"})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 3


def test_bundle_naming_another_index_is_refused(good_bundle, tmp_path: Path):
    directory = _copy(good_bundle[0], tmp_path)
    _edit_bundle(directory, index_sha256="0" * 64, version="mid-rebuild")
    with running(DirectoryBundleProvider(directory), _settings()) as client:
        _refused(client, "names index 000000000000")
