"""The re-rank sweep (issue #22): diversity metrics against naive versions, one served re-ranking per
configuration of the grid, the 95 % rule of the recommended default, and `evaluate --rerank-sweep`.
Offline, CPU, the fake encoder on the embedded sample dataset."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from evaluation.config import EvaluationConfig
from evaluation.dataset import load_labeled_dataset
from evaluation.metrics import distinct_categories_at_k, intra_list_similarity
from evaluation.protocol import evaluate
from evaluation.rerank_sweep import (
    format_rerank_table,
    pick_default,
    rerank_grid,
    rerank_label,
    sweep_rerank,
)
from scene_assets.encoders import FakeEncoder
from scene_assets.learned import ProjectionConfig
from scene_assets.ranking import RankingConfig

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FAST = {"projection": ProjectionConfig(epochs=3), "bootstrap_resamples": 50}
COLUMNS = ("recall@10", "recall@50", "ndcg@10", "mrr", "categories@10", "ils@10", "ndcg@10_share")


def test_diversity_metrics_equal_naive_versions():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(30, 8))
    categories = np.asarray([f"c{i % 7}" for i in range(30)], dtype=object)
    for n in (0, 1, 2, 5, 10, 14):
        ranked = list(rng.permutation(30)[:n])
        top = ranked[:10]
        assert distinct_categories_at_k(ranked, categories) == len({categories[i] for i in top})
        pairs = [(a, b) for a, b in itertools.permutations(top, 2)]
        naive = (sum(float(vectors[a] @ vectors[b]) / (np.linalg.norm(vectors[a]) * np.linalg.norm(vectors[b]))
                     for a, b in pairs) / len(pairs)) if pairs else math.nan
        got = intra_list_similarity(ranked, vectors)
        assert (math.isnan(got) and math.isnan(naive)) or got == pytest.approx(naive, abs=1e-12)
    same = np.tile(rng.normal(size=(1, 8)), (5, 1))
    assert intra_list_similarity([0, 1, 2, 3, 4], same) == pytest.approx(1.0)


def _row(ndcg, cats, ils):
    return {"ndcg@10": ndcg, "categories@10": cats, "ils@10": ils}


def test_pick_default_keeps_95_percent_then_prefers_diversity():
    rows = [_row(0.50, 3.0, 0.6),   # pure-like
            _row(0.47, 5.0, 0.4),   # below 95 % of 0.5 (0.475): never chosen however diverse
            _row(0.48, 4.0, 0.5),
            _row(0.49, 4.0, 0.3)]   # same categories as row 2, lower intra-list similarity
    assert pick_default(rows, 0.5) == 3
    assert pick_default(rows, 0.5, keep=0.9) == 1
    assert pick_default(rows, 0.6) is None
    assert pick_default([_row(0.5, 4.0, math.nan), _row(0.5, 4.0, 0.2)], 0.5) == 1


def test_grid_covers_diversity_and_collapse():
    grid = rerank_grid()
    labels = [rerank_label(c) for c in grid]
    assert len(set(labels)) == len(grid) == 16
    assert {"none", "mmr 0.7", "mmr 1", "cap 2", "cap 3", "none, no collapse", "cap 3, no collapse"} <= set(labels)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    config = EvaluationConfig(folds=3, **FAST)
    return evaluate(load_labeled_dataset(SAMPLE), config=config, encoder=FakeEncoder(dim=32),
                    cache_dir=tmp_path_factory.mktemp("cache"))


def test_sweep_has_one_row_per_configuration(report):
    configs = [RankingConfig(diversity=None), RankingConfig(), RankingConfig(diversity="category_cap", category_cap=2),
               RankingConfig(diversity=None, collapse_variants=False)]
    sweep = sweep_rerank(report, configs)
    assert [r["config"] for r in sweep.rows] == ["none", "mmr 0.9", "cap 2", "none, no collapse"]
    for r in sweep.rows:
        assert set(COLUMNS) <= set(r)
        assert 0.0 <= r["recall@10"] <= r["recall@50"] <= 1.0
        assert 1.0 <= r["categories@10"] <= 10.0
        assert r["ndcg@10_share"] == pytest.approx(r["ndcg@10"] / report.metrics["ndcg@10"])
    # the evaluation's own re-rank options (RankingConfig()) give the report's served row
    assert sweep.rows[1]["ndcg@10"] == pytest.approx(report.metrics["served.ndcg@10"], abs=1e-4)
    assert sweep.rows[1]["recall@10"] == pytest.approx(report.metrics["served.recall@10"], abs=1e-4)
    assert sweep.chosen_index == pick_default(sweep.rows, sweep.pure_ndcg)
    table = format_rerank_table(sweep)
    assert len([line for line in table.splitlines() if line[2:].startswith(("none", "mmr", "cap"))]) == 4


def test_cli_rerank_sweep_prints_the_table(tmp_path, monkeypatch, capsys):
    import scene_assets.encoders
    from faces.cli import main

    monkeypatch.setattr(scene_assets.encoders, "build_encoder", lambda *a, **k: FakeEncoder(dim=32))
    cfg = tmp_path / "config.json"
    cfg.write_text('{"folds": 2, "projection": {"epochs": 2}, "bootstrap_resamples": 20}', encoding="utf-8")
    assert main(["evaluate", "--dataset", str(SAMPLE), "--config", str(cfg), "--cache-dir", str(tmp_path / "cache"),
                 "--rerank-sweep"]) == 0
    out = capsys.readouterr().out
    assert "re-rank sweep" in out and "categories@10" in out and "ils@10" in out
    assert sum(line[2:].startswith(("none", "mmr", "cap")) for line in out.splitlines()) == len(rerank_grid())
    assert "of the pure ranking's nDCG@10" in out
