"""Two materializations of the same assets at once (a schedule and a manual run) on one storage and
one Dagster instance: the write locks serialize them, so vectors and index stay whole and each
product is encoded once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from scene_assets.indexes import flat_files
from scene_assets.embeddings import read_vectors
from scene_assets.locking import LockTimeout, exclusive, lock_path
from tests.pipeline_fakes import start_slow_main_job, write_tiny_catalog

def _catalog_rows(n: int) -> list[tuple]:
    colors = [((i * 37) % 255, (i * 91) % 255, (i * 53) % 255) for i in range(n)]
    return [(f"p{i:02d}", f"NAME{i}", "Chair", f"A chair number {i}", colors[i]) for i in range(n)]


def test_lock_is_exclusive_across_threads_and_times_out_with_a_clear_message(tmp_path: Path):
    target = tmp_path / "vectors" / "shard.parquet"
    held = threading.Event()
    release = threading.Event()

    def holder():
        with exclusive(target):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    with pytest.raises(LockTimeout, match=r"shard\.parquet.*SCENE_MATCHER_LOCK_TIMEOUT_S"), exclusive(target, timeout_s=0.2):
        pass
    release.set()
    thread.join(10)
    with exclusive(target, timeout_s=5) as waited:
        assert waited < 5
    assert lock_path(target).name == ".shard.parquet.lock"


def test_two_main_job_runs_at_once_keep_vectors_and_index_whole(tmp_path: Path):
    n = 30
    write_tiny_catalog(tmp_path / "catalog", _catalog_rows(n))
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The instance exists before the runs collide (as for a schedule and a manual run): two processes
    # creating its SQLite schema at the same moment race inside alembic, which is not what is tested.
    dg.DagsterInstance.from_config(str(home)).dispose()
    # A slow model, so that both runs are inside the image step at the same time.
    processes = [start_slow_main_job(tmp_path, home, seconds_per_image=0.08) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    summaries = []
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
        line = next(line for line in output.splitlines() if line.startswith("SUMMARY "))
        summaries.append(json.loads(line.removeprefix("SUMMARY ")))
    assert all(s["success"] for s in summaries), summaries

    # Each product's image was encoded exactly once over both runs: the second waited for the lock,
    # then found every vector committed.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("product_image_features"), limit=100).records
        encoded_by_run = {r.run_id: r.asset_materialization.metadata["encoded"].value for r in records}
        assert len(encoded_by_run) == 2
        assert sorted(encoded_by_run.values()) == [0, n]
        scene_waits = [
            r.asset_materialization.metadata["lock_wait_seconds"].value
            for r in instance.fetch_materializations(dg.AssetKey("scene_index"), limit=10).records
        ]
        assert len(scene_waits) == 2

    vectors = pl.concat([read_vectors(p) for p in sorted((tmp_path / "data" / "vectors" / "image_features").glob("*.parquet"))])
    assert vectors.height == n and vectors["product_id"].n_unique() == n
    (directory,) = (tmp_path / "data" / "index").glob("scene-*")
    index, manifest = flat_files.load_index(directory)  # checksums verified
    assert index.ntotal == n and sorted(manifest["product_ids"]) == [f"p{i:02d}" for i in range(n)]
    leftovers = [p for p in (tmp_path / "data").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
