"""One evaluation workflow for every face: evaluate, keep the artifacts, log to MLflow, sweep the
weights, sweep the re-rank options. The CLI (``scene-matcher evaluate``) and the Dagster assets
(``scene_evaluation``, ``weight_sweep``, ``rerank_sweep``) call these instead of each wiring the steps. No Dagster imports."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.config import EvaluationConfig
from evaluation.dataset import LabeledDataset
from evaluation.protocol import evaluate
from evaluation.report import EvaluationReport, format_table, save_results
from evaluation.reporting import write_gallery, write_plots
from evaluation.rerank_sweep import RerankSweep, sweep_rerank
from evaluation.scoring import SceneResult
from evaluation.sweep import SweepResult, random_weight_grid, run_sweep
from scene_assets.matching import Recommender
from scene_assets.ranking import ScoringWeights

if TYPE_CHECKING:  # mlflow loads only where a run is logged
    from evaluation.tracking import MlflowLogger

__all__ = ["EvaluationRun", "RerankSweepRun", "WeightSweepRun", "run_evaluation", "run_rerank_sweep",
           "run_weight_sweep"]


@dataclass
class EvaluationRun:
    report: EvaluationReport
    artifacts: list[Path] = field(default_factory=list)  # plots, gallery folder, table.txt
    results_path: Path | None = None  # the out-of-fold results (.npz) for the weight sweep
    mlflow_run_id: str | None = None


def run_evaluation(
    dataset: LabeledDataset,
    *,
    config: EvaluationConfig,
    train: LabeledDataset | None = None,
    recommender: Recommender | None = None,
    cache_dir: str | os.PathLike,
    out_dir: Path | None = None,
    tracking: MlflowLogger | None = None,
    run_name: str = "evaluation",
    extra_params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    gallery_scenes: int = 4,
    allow_same_dataset: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvaluationRun:
    """:func:`~evaluation.protocol.evaluate`, then - with ``out_dir`` - the results, plots, gallery
    and table written there, and - with ``tracking`` - one MLflow run holding the report and those
    artifacts."""
    report = evaluate(dataset, train=train, config=config, recommender=recommender, cache_dir=cache_dir,
                      allow_same_dataset=allow_same_dataset, progress=progress)
    run = EvaluationRun(report)
    if out_dir is not None:
        run.results_path = save_results(out_dir / "results.npz", report.results, report.product_ids)
        run.artifacts = write_plots(report, out_dir)
        run.artifacts.append(write_gallery(report, dataset, out_dir / "gallery", n=gallery_scenes).parent)
        (out_dir / "table.txt").write_text(format_table(report) + "\n", encoding="utf-8")
        run.artifacts.append(out_dir / "table.txt")
    if tracking is not None:
        run.mlflow_run_id = tracking.log_evaluation(report, run_name=run_name, artifacts=run.artifacts,
                                                    extra_params=extra_params, tags=tags)
    return run


@dataclass
class WeightSweepRun:
    sweep: SweepResult
    mlflow_parent_run_id: str | None = None
    mlflow_child_run_ids: list[str] = field(default_factory=list)


def run_weight_sweep(results: Sequence[SceneResult], base: ScoringWeights, *, size: int, seed: int,
                     objective: str = "ndcg@10", tracking: MlflowLogger | None = None, run_name: str = "weight-sweep",
                     base_params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None
                     ) -> WeightSweepRun:
    """``base`` and ``size - 1`` random weight configurations scored on the out-of-fold ``results``
    (:mod:`evaluation.sweep`), logged with ``tracking`` as a parent run with one child per configuration."""
    sweep = run_sweep(results, random_weight_grid(base, size, seed), objective=objective)
    run = WeightSweepRun(sweep)
    if tracking is not None:
        run.mlflow_parent_run_id, run.mlflow_child_run_ids = tracking.log_sweep(
            sweep, run_name=run_name, base_params=dict(base_params or {}) | {"objective": objective}, tags=tags)
    return run


@dataclass
class RerankSweepRun:
    sweep: RerankSweep
    mlflow_parent_run_id: str | None = None
    mlflow_child_run_ids: list[str] = field(default_factory=list)


def run_rerank_sweep(report: EvaluationReport, *, tracking: MlflowLogger | None = None,
                     run_name: str = "rerank-sweep", base_params: Mapping[str, Any] | None = None,
                     tags: Mapping[str, str] | None = None) -> RerankSweepRun:
    """:func:`~evaluation.rerank_sweep.sweep_rerank` over the default grid on ``report``'s served
    path, logged with ``tracking`` as a parent run with one child per re-rank configuration."""
    sweep = sweep_rerank(report)
    run = RerankSweepRun(sweep)
    if tracking is not None:
        run.mlflow_parent_run_id, run.mlflow_child_run_ids = tracking.log_rerank_sweep(
            sweep, run_name=run_name, base_params=dict(base_params or {}), tags=tags)
    return run
