"""A run killed mid-way (SIGKILL, for real) loses nothing that was committed and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl

from scene_assets.indexes import errors, flat, flat_files
from scene_assets.embeddings import read_vectors, update_vector_file, vectors_frame
from scene_assets.indexes.vectors import vector_matrix
from scene_assets.indexes.flat_build import build_or_update_index
from scene_assets.settings import PROJECT_ROOT

WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, polars as pl
    from scene_assets.embeddings import update_vector_file

    path = sys.argv[1]
    wanted = pl.DataFrame({"product_id": [f"p{i:03d}" for i in range(60)], "content_hash": ["h"] * 60})

    def slow_encode(rows):
        time.sleep(0.3)  # a model working; the parent kills us somewhere in here
        vectors = np.stack([np.full(4, int(pid[1:]), dtype=np.float32) for pid in rows["product_id"]])
        return list(range(rows.height)), vectors, []

    update_vector_file(__import__("pathlib").Path(path), wanted, "fp", slow_encode, dim=4, chunk_size=6)
    """
)


def test_sigkill_mid_encoding_then_rerun(tmp_path: Path):
    path = tmp_path / "vectors" / "shard.parquet"
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5 + np.random.default_rng().random())  # a random point after the first commit
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    partial = read_vectors(path)
    assert 0 < partial.height < 60 and partial["product_id"].n_unique() == partial.height

    wanted = pl.DataFrame({"product_id": [f"p{i:03d}" for i in range(60)], "content_hash": ["h"] * 60})
    encoded: list[str] = []

    def encode(rows):
        encoded.extend(rows["product_id"])
        vectors = np.stack([np.full(4, int(pid[1:]), dtype=np.float32) for pid in rows["product_id"]])
        return list(range(rows.height)), vectors, []

    result, stats = update_vector_file(path, wanted, "fp", encode, dim=4, chunk_size=6)
    assert stats.encoded == 60 - partial.height and len(encoded) == stats.encoded
    assert result.height == 60 and result["product_id"].n_unique() == 60
    # Every product holds its own vector exactly once.
    matrix = vector_matrix(result.sort("product_id"))
    assert np.array_equal(matrix[:, 0], np.arange(60, dtype=np.float32))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_index_is_detected_and_rebuilt(tmp_path: Path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    ids = [f"p{i:02d}" for i in range(40)]
    frame = vectors_frame(ids, ["h"] * 40, "fp", vectors)
    directory = tmp_path / "index"
    build_or_update_index(frame, directory, fingerprint="fp")
    index_file = directory / flat_files.INDEX_FILE
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])  # a half-written file
    try:
        flat_files.load_index(directory)
        raise AssertionError("a truncated index must not load")
    except errors.IndexCorruptError as exc:
        assert "index.faiss" in str(exc)
    report = build_or_update_index(frame, directory, fingerprint="fp")
    assert report.mode == "full"
    index, manifest = flat_files.load_index(directory)
    assert index.ntotal == 40 and manifest["count"] == 40


def test_sigkill_mid_embedding_step_of_a_real_run_then_rematerialize(tmp_path: Path, fake_defs):
    """The main job's image-feature step, killed for real at a random point after its first commit;
    the next materialization encodes only what was not committed, and the vectors and the scene
    index hold every product exactly once."""
    import dagster as dg

    from pipelines.runner import run_main_job
    from tests.pipeline_fakes import start_slow_main_job, write_tiny_catalog

    n = 40
    rows = [(f"p{i:02d}", f"NAME{i}", "Chair", f"A chair number {i}", ((i * 37) % 255, (i * 91) % 255, 60)) for i in range(n)]
    write_tiny_catalog(tmp_path / "catalog", rows)
    home = tmp_path / "dagster_home"
    home.mkdir()
    process = start_slow_main_job(tmp_path, home, seconds_per_image=0.1, batch_size=2, commit_every=2)
    shards = tmp_path / "data" / "vectors" / "image_features"
    deadline = time.monotonic() + 120
    while not list(shards.glob("*.parquet")):
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the run never committed a vector file"
        time.sleep(0.05)
    time.sleep(0.2 + np.random.default_rng().random())  # a random point while it encodes
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    committed = pl.concat([read_vectors(p) for p in shards.glob("*.parquet")])
    assert 0 < committed.height < n and committed["product_id"].n_unique() == committed.height
    assert not (tmp_path / "data" / "index").exists() or not list((tmp_path / "data" / "index").glob("scene-*/bundle.json"))

    with dg.DagsterInstance.from_config(str(home)) as instance:
        summary = run_main_job(instance=instance, defs=fake_defs(tmp_path / "catalog" / "products.csv"))
        assert summary["success"], summary["lines"]
        features_run = summary["run_ids"][1]
        records = instance.fetch_materializations(dg.AssetKey("product_image_features"), limit=20).records
        encoded = {r.asset_materialization.metadata["encoded"].value for r in records if r.run_id == features_run}
    assert encoded == {n - committed.height}  # only what the killed run had not committed

    vectors = pl.concat([read_vectors(p) for p in shards.glob("*.parquet")])
    assert vectors.height == n and vectors["product_id"].n_unique() == n
    (directory,) = (tmp_path / "data" / "index").glob("scene-*")
    index, manifest = flat_files.load_index(directory)
    assert index.ntotal == n and sorted(manifest["product_ids"]) == [f"p{i:02d}" for i in range(n)]
    assert len(set(flat.index_ids(index).tolist())) == n
    assert not [p for p in (tmp_path / "data").rglob("*") if p.name.endswith(".tmp")]
