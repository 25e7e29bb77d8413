"""Logging evaluations and weight sweeps to MLflow (no Dagster imports).

Uses an explicit :class:`mlflow.MlflowClient` bound to one tracking URI - never ``mlflow.set_tracking_uri``
- so two runs in one process (or a Dagster worker next to a test) cannot log into each other's store.
A nested child run is a run tagged ``mlflow.parentRunId``, which is what the MLflow UI groups by.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from scene_assets.database_urls import check_postgres_driver

__all__ = ["MlflowLogger", "mlflow_key"]

PARENT_TAG = "mlflow.parentRunId"
_MAX_PARAM_LEN = 6000


def mlflow_key(name: str) -> str:
    """MLflow names allow alphanumerics, ``_ - . space : /``; the report's ``recall@10`` becomes
    ``recall_at_10``, anything else disallowed becomes ``_``."""
    name = name.replace("@", "_at_")
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:_MAX_PARAM_LEN]


class MlflowLogger:
    """Thin wrapper: one tracking URI, one experiment."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None):
        check_postgres_driver(tracking_uri, "MLflow tracking URI")  # postgresql+psycopg2://, see docs/postgres.md
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            # the experiment-kind tag opens it in the UI's "Model training" view (runs, metrics), not GenAI traces
            exp_id = self.client.create_experiment(experiment, artifact_location=artifact_location,
                                                   tags={"mlflow.experimentKind": "custom_model_development"})
        else:
            exp_id = exp.experiment_id
        self.experiment_id = exp_id
        self.experiment_name = experiment

    @classmethod
    def local(cls, tracking_uri: str, experiment: str, artifact_root: Path) -> "MlflowLogger":
        """A logger whose SQLite database folder and artifact folder are created if missing (the
        project's own store; a server URI is used as it is)."""
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        artifact_root.mkdir(parents=True, exist_ok=True)
        return cls(tracking_uri, experiment, artifact_location=artifact_root.as_uri())

    # -- primitives -------------------------------------------------------------------------
    def start_run(self, run_name: str, *, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        t = dict(tags or {})
        if parent_run_id:
            t[PARENT_TAG] = parent_run_id
        return self.client.create_run(self.experiment_id, run_name=run_name, tags=t).info.run_id

    def log(self, run_id: str, *, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float | None] | None = None,
            tags: Mapping[str, str] | None = None, step: int = 0) -> None:
        flat: dict[str, str] = {}
        _flatten("", dict(params or {}), flat)
        now = int(time.time() * 1000)
        ms = [Metric(mlflow_key(k), float(v), now, step) for k, v in (metrics or {}).items() if v is not None]
        ps = [Param(mlflow_key(k), v) for k, v in flat.items()]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        # log_batch takes at most 100 params / 1000 metrics per call
        for i in range(0, max(len(ps), 1), 100):
            self.client.log_batch(run_id, metrics=ms if i == 0 else [], params=ps[i : i + 100], tags=ts if i == 0 else [])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            # a folder keeps its name in the run (gallery/index.html, not index.html)
            self.client.log_artifacts(run_id, str(path), artifact_path or path.name)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_json(self, run_id: str, name: str, data: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            p.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
            self.client.log_artifact(run_id, str(p))

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def run_url(self, run_id: str, ui_base: str = "http://127.0.0.1:5000") -> str:
        return f"{ui_base}/#/experiments/{self.experiment_id}/runs/{run_id}"

    # -- evaluation ---------------------------------------------------------------------------
    def log_evaluation(self, report, *, run_name: str, artifacts: Sequence[Path] = (), extra_params: Mapping[str, Any] | None = None,
                       tags: Mapping[str, str] | None = None) -> str:
        """One run per evaluation: params (encoder fingerprint, weights, dataset hash, protocol),
        headline metrics, baselines and per-room metrics (prefixed), the report JSON and ``artifacts``."""
        run_id = self.start_run(run_name, tags={"kind": "evaluation"} | dict(tags or {}))
        try:
            m = report.metrics
            params = {"encoder": m["encoder"], "weights": m["config"], "dataset_hash": report.dataset["fingerprint"],
                      "dataset": report.dataset["root"], "protocol": report.protocol,
                      "train_dataset_hash": (report.train_dataset or {}).get("fingerprint", "cross-validation")}
            if report.config is not None:
                params |= {"folds": report.config.folds, "seed": report.config.seed,
                           "use_captions": report.config.use_captions, "projection": report.config.projection.to_dict(),
                           "fusion": report.config.fusion, "room_classifier": report.config.room_classifier,
                           "regions": report.config.regions, "served_k": report.config.served_k,
                           "ranking": report.config.to_dict()["ranking"]}
                if report.config.ranker is not None:
                    params["ranker"] = report.config.ranker.to_dict()
            metrics = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for name, vals in report.baselines.items():
                for k, v in vals.items():
                    metrics[f"baseline.{name.replace(' ', '_').replace('(', '').replace(')', '')}.{k}"] = v
            for room, vals in report.per_room.items():
                for k, v in vals.items():
                    metrics[f"room.{room.replace(' ', '_')}.{k}"] = v
            for k, (lo, hi) in report.intervals.items():
                metrics[f"{k}.ci_low"], metrics[f"{k}.ci_high"] = lo, hi
            self.log(run_id, params=params | dict(extra_params or {}), metrics=metrics)
            self.log_json(run_id, "evaluation.json", report.to_dict())
            for a in artifacts:
                self.log_artifact(run_id, a)
        except Exception:
            self.finish(run_id, "FAILED")
            raise
        self.finish(run_id)
        return run_id

    def log_sweep(self, sweep, *, run_name: str, base_params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
        """Parent run (best configuration, nested held-out estimate) with one child per configuration;
        ``base_params`` (encoder, dataset hash, protocol) are repeated on every child."""
        from evaluation.config import METRIC_KEYS

        parent = self.start_run(run_name, tags={"kind": "weight_sweep"} | dict(tags or {}))
        children = []
        try:
            for i, cfg in enumerate(sweep.configs):
                child = self.start_run(f"{run_name}-config-{i:03d}", parent_run_id=parent,
                                       tags={"kind": "weight_sweep_child"} | dict(tags or {}))
                metrics = {k: float(sweep.mean[i, j]) for j, k in enumerate(METRIC_KEYS)}
                for fi, f in enumerate(sweep.folds):
                    metrics |= {f"fold{f}.{k}": float(sweep.per_fold[i, fi, j]) for j, k in enumerate(METRIC_KEYS)}
                self.log(child, params=dict(base_params) | {"config_index": i} | {f"weight.{k}": v for k, v in cfg.to_dict().items()},
                         metrics=metrics)
                self.finish(child)
                children.append(child)
            best = sweep.best
            self.log(parent, params=dict(base_params) | {"n_configs": len(sweep.configs), "objective": sweep.objective}
                     | {f"best.weight.{k}": v for k, v in best.to_dict().items()},
                     metrics={f"best.{k}": float(sweep.mean[sweep.best_index, j]) for j, k in enumerate(METRIC_KEYS)}
                     | {f"nested_heldout.{k}": v for k, v in sweep.nested.items()},
                     tags={"best_child_run_id": children[sweep.best_index]})
            self.log_json(parent, "best_weights.json", best.to_dict())
            self.log_json(parent, "sweep.json", {"rows": sweep.rows(), "nested_choices": sweep.nested_choices,
                                                 "nested_heldout": sweep.nested})
        except Exception:
            self.finish(parent, "FAILED")
            raise
        self.finish(parent)
        return parent, children

    # -- ablation -----------------------------------------------------------------------------
    def log_learned_scorer(self, scorer, directory: Path, *, params: Mapping[str, Any],
                           evaluation_metrics: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> str:
        """One run for a learned scorer fitted for serving: ``params`` plus the fusion ranker's features,
        the cross-validated ``evaluation_metrics`` it was chosen on and the ranker's own figures as
        metrics, and the saved scorer folder as the ``learned_scorer`` artifact."""
        run_id = self.start_run(f"learned-scorer-{scorer.fingerprint()[:8]}",
                                tags={"kind": "learned_scorer"} | dict(tags or {}))
        ranker = scorer.ranker
        numbers = {k: v for k, v in evaluation_metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        try:
            self.log(run_id, params=dict(params) | ({"ranker_features": ranker.feature_names} if ranker is not None else {}),
                     metrics=numbers | ({f"ranker.{k}": v for k, v in ranker.info.items() if isinstance(v, (int, float))}
                                        if ranker is not None else {}))
            self.log_artifact(run_id, directory, "learned_scorer")
        except Exception:
            self.finish(run_id, "FAILED")
            raise
        self.finish(run_id)
        return run_id

    def log_ablation(self, result, *, run_name: str, base_params: Mapping[str, Any], artifacts: Sequence[Path] = (),
                     tags: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
        """Parent run (the table as markdown + CSV artifacts, the reference's metrics) with one child
        per variant: its metrics with ``.ci_low`` / ``.ci_high`` and the paired ``delta.`` to the
        reference, its description and config as params (names through :func:`mlflow_key`)."""
        parent = self.start_run(run_name, tags={"kind": "ablation"} | dict(tags or {}))
        children = []
        try:
            for i, row in enumerate(result.rows):
                child = self.start_run(f"{run_name}-{i:02d}-{row['variant']}", parent_run_id=parent,
                                       tags={"kind": "ablation_variant", "variant": row["variant"]} | dict(tags or {}))
                metrics = {k: v for k, v in row.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n_scenes"}
                config = result.summaries.get(row["variant"], {}).get("config")
                self.log(child, params=dict(base_params) | {"variant": row["variant"], "variant_index": i,
                                                            "description": row["description"], "fusion": row["fusion"],
                                                            "n_scenes": row["n_scenes"]}
                         | ({"config": config} if config else {}),
                         metrics=metrics)
                self.finish(child)
                children.append(child)
            ref = result.rows[0]
            self.log(parent, params=dict(base_params) | {"n_variants": len(result.rows), "protocol": result.protocol,
                                                         "reference": ref["variant"]},
                     metrics={f"reference.{k}": v for k, v in ref.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for a in artifacts:
                self.log_artifact(parent, a)
            self.log_json(parent, "ablation.json", {"protocol": result.protocol, "rows": result.rows})
        except Exception:
            self.finish(parent, "FAILED")
            raise
        self.finish(parent)
        return parent, children

    def log_rerank_sweep(self, sweep, *, run_name: str, base_params: Mapping[str, Any],
                         tags: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
        """Parent run (the pure ranking's nDCG@10, the recommended re-rank options and their metrics,
        the table as JSON) with one child per re-rank configuration (:mod:`evaluation.rerank_sweep`):
        its options as params, its served and diversity metrics."""
        parent = self.start_run(run_name, tags={"kind": "rerank_sweep"} | dict(tags or {}))
        children = []

        def numbers(row: Mapping[str, Any]) -> dict[str, float]:
            # the metrics only (mmr_lambda is a param); NaN (a list without a pair) left out
            return {k: v for k, v in row.items() if isinstance(v, float) and not math.isnan(v) and k != "mmr_lambda"}

        try:
            for i, row in enumerate(sweep.rows):
                child = self.start_run(f"{run_name}-{i:02d}", parent_run_id=parent,
                                       tags={"kind": "rerank_sweep_child", "config": row["config"]} | dict(tags or {}))
                self.log(child, params=dict(base_params) | {"config_index": i, "config": row["config"],
                                                            "diversity": row["diversity"], "mmr_lambda": row["mmr_lambda"],
                                                            "category_cap": row["category_cap"],
                                                            "collapse_variants": row["collapse_variants"]},
                         metrics=numbers(row))
                self.finish(child)
                children.append(child)
            chosen = sweep.chosen_index
            self.log(parent, params=dict(base_params) | {"n_configs": len(sweep.rows), "ndcg_keep": sweep.keep,
                                                         "served_k": sweep.served_k,
                                                         "chosen": "none" if chosen is None else sweep.rows[chosen]["config"]},
                     metrics={"pure.ndcg@10": sweep.pure_ndcg}
                     | ({} if chosen is None else {f"chosen.{k}": v for k, v in numbers(sweep.rows[chosen]).items()}),
                     tags={} if chosen is None else {"chosen_child_run_id": children[chosen]})
            self.log_json(parent, "rerank_sweep.json", {"pure_ndcg@10": sweep.pure_ndcg, "keep": sweep.keep,
                                                        "chosen_index": chosen, "rows": sweep.rows})
        except Exception:
            self.finish(parent, "FAILED")
            raise
        self.finish(parent)
        return parent, children
