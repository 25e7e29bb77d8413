"""Incremental vector files: only new/changed products are encoded, removed ones dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from scene_assets.embeddings import (
    plan_update,
    read_vectors,
    select_shard,
    shard_keys,
    shard_of,
    update_vector_file,
    vector_matrix,
)


def _catalog(n: int, changed: dict[str, str] | None = None) -> pl.DataFrame:
    ids = [f"p{i:03d}" for i in range(n)]
    hashes = [(changed or {}).get(pid, f"h-{pid}") for pid in ids]
    return pl.DataFrame({"product_id": ids, "content_hash": hashes, "text": [f"text {h}" for h in hashes]})


class CountingEncoder:
    def __init__(self, dim: int = 8):
        self.dim = dim
        self.encoded: list[str] = []

    def __call__(self, rows: pl.DataFrame):
        self.encoded.extend(rows["product_id"].to_list())
        rng = np.random.default_rng(len(self.encoded))
        vectors = rng.standard_normal((rows.height, self.dim)).astype(np.float32)
        return list(range(rows.height)), vectors, []


def test_shards_are_stable_and_cover_everything():
    catalog = _catalog(200)
    keys = shard_keys(4)
    parts = [select_shard(catalog, key) for key in keys]
    assert sum(p.height for p in parts) == 200
    assert set().union(*(set(p["product_id"]) for p in parts)) == set(catalog["product_id"])
    # blake2b, not Python's salted hash(): the same in every process.
    assert shard_of("p001", 4) == shard_of("p001", 4)
    assert [shard_of(f"p{i:03d}", 4) for i in range(5)] == [shard_of(f"p{i:03d}", 4) for i in range(5)]


def test_incremental_update_encodes_only_changes(tmp_path: Path):
    path = tmp_path / "vectors" / "shard.parquet"
    encoder = CountingEncoder()
    first, stats = update_vector_file(path, _catalog(50), "fp1", encoder, dim=8)
    assert stats.encoded == 50 and first.height == 50
    before = dict(zip(first["product_id"], vector_matrix(first).tolist()))

    encoder.encoded.clear()
    again, stats = update_vector_file(path, _catalog(50), "fp1", encoder, dim=8)
    assert stats.encoded == 0 and encoder.encoded == [] and again.height == 50

    # One product changed, one deleted.
    catalog = _catalog(50, changed={"p007": "new"}).filter(pl.col("product_id") != "p010")
    updated, stats = update_vector_file(path, catalog, "fp1", encoder, dim=8)
    assert encoder.encoded == ["p007"]
    assert stats.dropped == 1 and stats.kept == 48
    assert "p010" not in set(updated["product_id"])
    assert updated["product_id"].n_unique() == updated.height == 49
    after = dict(zip(updated["product_id"], vector_matrix(updated).tolist()))
    assert after["p000"] == before["p000"] and after["p007"] != before["p007"]
    # What is on disk is what was returned.
    assert read_vectors(path).equals(updated)


def test_encoder_change_re_encodes_everything(tmp_path: Path):
    path = tmp_path / "shard.parquet"
    update_vector_file(path, _catalog(10), "fp1", CountingEncoder(), dim=8)
    encoder = CountingEncoder()
    result, stats = update_vector_file(path, _catalog(10), "fp2", encoder, dim=8)
    assert stats.encoded == 10 and set(result["fingerprint"]) == {"fp2"}


def test_skipped_products_are_reported_not_fatal(tmp_path: Path):
    def encode(rows: pl.DataFrame):
        keep = [i for i, pid in enumerate(rows["product_id"]) if pid != "p003"]
        return keep, np.ones((len(keep), 4), dtype=np.float32), [("p003", "image: truncated")]

    result, stats = update_vector_file(tmp_path / "s.parquet", _catalog(6), "fp", encode, dim=4)
    assert result.height == 5 and stats.skipped == 1
    assert stats.skipped_reasons.row(0) == ("p003", "image: truncated")


def test_progress_survives_a_crash_between_chunks(tmp_path: Path):
    """Chunks are committed as they finish: a crash keeps earlier chunks, a re-run does the rest."""
    path = tmp_path / "s.parquet"
    calls = {"n": 0}

    def flaky(rows: pl.DataFrame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # stands in for a kill between chunks
        return list(range(rows.height)), np.ones((rows.height, 4), dtype=np.float32), []

    with pytest.raises(KeyboardInterrupt):
        update_vector_file(path, _catalog(100), "fp", flaky, dim=4, chunk_size=20)
    partial = read_vectors(path)
    assert partial.height == 40 and partial["product_id"].n_unique() == 40
    encoder = CountingEncoder(dim=4)
    result, stats = update_vector_file(path, _catalog(100), "fp", encoder, dim=4, chunk_size=20)
    assert stats.encoded == 60 and len(encoder.encoded) == 60
    assert result.height == 100 and result["product_id"].n_unique() == 100
    assert not list(tmp_path.glob(".*.tmp"))


def test_plan_update_with_nothing_on_disk():
    plan = plan_update(_catalog(3), None, "fp")
    assert plan.to_encode.height == 3 and plan.dropped_ids == []


def test_vector_set_problems_names_each_kind_of_inconsistency():
    from scene_assets.embeddings import vector_set_problems, vectors_frame

    good = vectors_frame(["a", "b"], ["h", "h"], "fp", np.ones((2, 4), np.float32))
    assert vector_set_problems(good, ["a", "b", "c"], ["c"], "fp") == []  # c skipped with a reason
    broken = pl.concat([
        good,
        vectors_frame(["a"], ["h2"], "fp", np.ones((1, 4), np.float32)),  # a twice
        vectors_frame(["gone"], ["h"], "old-encoder", np.zeros((1, 4), np.float32)),  # removed, stale, zero
    ])
    problems = " | ".join(vector_set_problems(broken, ["a", "b", "c"], [], "fp"))
    assert "1 products have more than one vector: a" in problems
    assert "1 catalog products have no vector and no recorded reason: c" in problems
    assert "1 vectors belong to products no longer in the catalog: gone" in problems
    assert "1 vectors were made by another encoder than fp: gone" in problems
    assert "1 vectors are NaN/inf or all zero: gone" in problems
