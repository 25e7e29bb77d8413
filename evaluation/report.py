"""The evaluation report: headline metrics with intervals, baselines, per-room breakdown,
calibration and recall curves (:func:`summarize`), the printed table, and the out-of-fold results
stored for the weight sweep. No Dagster imports."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from evaluation.config import BASELINES, METRIC_KEYS, EvaluationConfig
from evaluation.dataset import EVALUATION_GROUPS, evaluation_group
from evaluation.folds import ServedFolds
from evaluation.metrics import bootstrap_interval, expected_calibration_error, reliability_curve
from evaluation.scoring import (
    SceneResult,
    group_hits,
    metrics_from_ranks,
    ranks_of,
    recall_curve,
    score_results,
    served_metrics,
)
from scene_assets.learned import LearnedScorer
from scene_assets.ranking import FACTORS, normalized_weights

__all__ = ["EvaluationReport", "format_table", "load_results", "save_results", "served_label", "summarize"]


@dataclass
class EvaluationReport:
    metrics: dict[str, Any]  # the flat headline keys (n_scenes, recall@10, ..., encoder, config)
    intervals: dict[str, tuple[float, float]]
    baselines: dict[str, dict[str, float]]
    per_room: dict[str, dict[str, float]]
    reliability: list[dict[str, float]]
    recall_curve: dict[str, list[float]]  # k -> recall@k for the system and each baseline
    per_scene: pl.DataFrame
    protocol: str
    dataset: dict[str, Any]
    train_dataset: dict[str, Any] | None
    timings_s: dict[str, float]
    skipped_scenes: list[tuple[str, str]]
    learned: LearnedScorer | None = None  # fitted on all training scenes (train mode only)
    results: list[SceneResult] = field(default_factory=list, repr=False)  # out-of-fold factor matrices
    product_ids: list[str] = field(default_factory=list, repr=False)  # catalog order of the matrices
    config: EvaluationConfig | None = None
    # the served path's recommender, prepared scenes and fold models (what the re-rank sweep re-serves with)
    serving: ServedFolds | None = field(default=None, repr=False)
    composite_pairs: int = 0  # synthetic (region, product) pairs the projection learned from, all scenes
    # served two-stage (config.served_index): share of the exact served top 10 the two-stage path keeps
    two_stage_overlap_at_10: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.metrics | {
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "baselines": self.baselines,
            "per_room": self.per_room,
            "reliability": self.reliability,
            "recall_curve": self.recall_curve,
            "protocol": self.protocol,
            "dataset": self.dataset,
            "train_dataset": self.train_dataset,
            "timings_s": self.timings_s,
            "skipped_scenes": [list(s) for s in self.skipped_scenes],
            "evaluation_config": None if self.config is None else self.config.to_dict(),
            "composite_pairs": self.composite_pairs,
        } | ({} if self.two_stage_overlap_at_10 is None else
             {"served_two_stage": {"index": self.config.served_index, "nprobe": self.config.served_nprobe,
                                   "overlap_at_10_vs_exact_served": self.two_stage_overlap_at_10}})


def summarize(results: Sequence[SceneResult], config: EvaluationConfig, products: pl.DataFrame,
              calibrators: Mapping[int, Any], encoder_fingerprint: str,
              served: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Headline metrics, intervals, baselines, per-room breakdown, calibration, recall curves.
    ``products``: product_id, product_type and category in the order of the factor matrices' rows.
    ``served``: scene id -> the product ids the served path listed (``evaluation.folds.serve_scenes``),
    reported as ``served.<metric>`` next to the whole-catalog ranking."""
    if not results:
        raise ValueError("no scene could be scored")
    w = normalized_weights(config.weights)
    per_scene = score_results(results, config.weights, system=True)
    system_scores = [r.system_scores(w) for r in results]
    groups = np.asarray([evaluation_group(t, c) for t, c in
                         zip(products["product_type"].to_list(), products["category"].to_list())], dtype=object)
    headline: dict[str, Any] = {"n_scenes": len(results)}
    for j, k in enumerate(METRIC_KEYS):
        headline[k] = round(float(per_scene[:, j].mean()), 4)
    system_hits = group_hits(results, system_scores, groups)
    for g in EVALUATION_GROUPS:
        headline[f"hit@10.{g}"] = round(float(np.mean(system_hits[g])), 4) if system_hits[g] else None
        headline[f"n_scenes.{g}"] = len(system_hits[g])
    room_ok = np.array([r.predicted_room == r.room_type for r in results], dtype=float)
    headline["room_type_accuracy"] = round(float(room_ok.mean()), 4)

    conf, outcome = [], []
    for r, s in zip(results, system_scores):
        top = np.argsort(-s, kind="stable")[: config.calibration_top_k]
        cal = calibrators.get(r.fold)
        conf.append(cal(s[top]) if cal is not None else np.full(top.size, np.nan))
        outcome.append(np.isin(top, r.relevant_rows).astype(float))
    conf_all, out_all = np.concatenate(conf), np.concatenate(outcome)
    ok = ~np.isnan(conf_all)
    headline["ece"] = round(expected_calibration_error(conf_all[ok], out_all[ok]), 4) if ok.any() else None
    reliability = [dataclasses.asdict(b) for b in reliability_curve(conf_all[ok], out_all[ok])] if ok.any() else []

    intervals = {k: tuple(round(v, 4) for v in bootstrap_interval(per_scene[:, j], n_resamples=config.bootstrap_resamples,
                                                                     seed=config.seed))
                 for j, k in enumerate(METRIC_KEYS)}
    intervals["room_type_accuracy"] = tuple(round(v, 4) for v in bootstrap_interval(
        room_ok, n_resamples=config.bootstrap_resamples, seed=config.seed))

    baselines: dict[str, dict[str, float]] = {}
    ks = [1, 5, 10, 20, 50, 100, 200]
    curves = {"system": recall_curve(results, system_scores, ks)}
    for name in BASELINES:
        rows = []
        scores = [r.baselines[name] for r in results]
        for r, s in zip(results, scores):
            m = metrics_from_ranks(ranks_of(s, r.relevant_rows), len(r.relevant_rows))
            rows.append([m[k] for k in METRIC_KEYS])
        arr = np.asarray(rows)
        baselines[name] = {k: round(float(arr[:, j].mean()), 4) for j, k in enumerate(METRIC_KEYS)}
        gh = group_hits(results, scores, groups)
        baselines[name] |= {f"hit@10.{g}": round(float(np.mean(gh[g])), 4) if gh[g] else None for g in EVALUATION_GROUPS}
        curves[name] = recall_curve(results, scores, ks)
    curves["k"] = ks

    per_room: dict[str, dict[str, float]] = {}
    rooms = np.asarray([r.room_type for r in results])
    for room in sorted(set(rooms)):
        mask = rooms == room
        per_room[room] = {"n_scenes": int(mask.sum())} | {
            k: round(float(per_scene[mask, j].mean()), 4) for j, k in enumerate(METRIC_KEYS)
        } | {"room_type_accuracy": round(float(room_ok[mask].mean()), 4)}

    scene_rows = pl.DataFrame({
        "scene_id": [r.scene_id for r in results], "room_type": [r.room_type for r in results],
        "predicted_room": [r.predicted_room for r in results], "fold": [r.fold for r in results],
        "n_relevant": [len(r.relevant_rows) for r in results],
    } | {k: per_scene[:, j] for j, k in enumerate(METRIC_KEYS)})
    if served is not None:
        served_scene, served_hits = served_metrics(results, served, products["product_id"].to_list(), groups)
        for j, k in enumerate(METRIC_KEYS):
            headline[f"served.{k}"] = round(float(served_scene[:, j].mean()), 4)
            intervals[f"served.{k}"] = tuple(round(v, 4) for v in bootstrap_interval(
                served_scene[:, j], n_resamples=config.bootstrap_resamples, seed=config.seed))
        for g in EVALUATION_GROUPS:
            headline[f"served.hit@10.{g}"] = round(float(np.mean(served_hits[g])), 4) if served_hits[g] else None
    headline["encoder"] = encoder_fingerprint
    headline["config"] = config.weights.to_dict()
    headline["fusion"] = config.fusion
    return {"headline": headline, "intervals": intervals, "baselines": baselines, "per_room": per_room,
            "reliability": reliability, "recall_curve": curves, "per_scene": scene_rows}


def save_results(path: Path, results: Sequence[SceneResult], product_ids: Sequence[str]) -> Path:
    """Out-of-fold factor matrices and baselines of every scene in one ``.npz`` (for the sweep)."""
    from scene_assets.indexes.store import write_atomic

    names = list(BASELINES)
    rel = [r.relevant_rows for r in results]
    arrays = {
        "scene_ids": np.asarray([r.scene_id for r in results]),
        "room_types": np.asarray([r.room_type for r in results]),
        "folds": np.asarray([r.fold for r in results]),
        "factors": np.stack([r.factors for r in results]).astype(np.float32),
        "relevant_rows": np.concatenate(rel),
        "relevant_offsets": np.cumsum([0] + [len(x) for x in rel]),
        "room_probs": np.stack([r.room_probs for r in results]),
        "baselines": np.stack([np.stack([r.baselines[n] for n in names]) for r in results]).astype(np.float32),
        "baseline_names": np.asarray(names),
        "product_ids": np.asarray([str(p) for p in product_ids]),
        "factor_names": np.asarray(FACTORS),
    }
    if results and all(r.scores is not None for r in results):
        arrays["scores"] = np.stack([r.scores for r in results]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return path


def load_results(path: Path) -> tuple[list[SceneResult], list[str]]:
    with np.load(path, allow_pickle=False) as z:
        if list(z["factor_names"]) != list(FACTORS):
            raise ValueError(f"{path}: factors {list(z['factor_names'])} differ from this version's {list(FACTORS)}")
        off = z["relevant_offsets"]
        names = [str(n) for n in z["baseline_names"]]
        scores = z["scores"] if "scores" in z.files else None
        results = [
            SceneResult(str(z["scene_ids"][i]), str(z["room_types"][i]), int(z["folds"][i]),
                        z["factors"][i].astype(np.float32), z["relevant_rows"][off[i]: off[i + 1]],
                        z["room_probs"][i], {n: z["baselines"][i, j].astype(np.float32) for j, n in enumerate(names)},
                        None if scores is None else scores[i].astype(np.float32))
            for i in range(len(z["scene_ids"]))
        ]
        return results, [str(p) for p in z["product_ids"]]


def served_label(config: EvaluationConfig) -> str:
    """The served row's name: its list length and re-rank options."""
    r = config.ranking
    diversity = {"mmr": f"mmr {r.mmr_lambda:g}", "category_cap": f"cap {r.category_cap}", None: "no diversity"}
    return (f"served path (k={config.served_k}, {diversity[r.diversity]}, "
            f"{'collapse' if r.collapse_variants else 'no collapse'})")


def format_table(report: EvaluationReport) -> str:
    """The readable table the CLI prints."""
    m = report.metrics
    cols = list(METRIC_KEYS) + [f"hit@10.{g}" for g in EVALUATION_GROUPS]
    lines = [f"scene-matcher evaluation: {m['n_scenes']} scenes, {report.dataset['products']} products ranked per scene",
             f"protocol: {report.protocol}", f"encoder: {m['encoder']}", ""]
    served = served_label(report.config) if "served.recall@10" in m and report.config is not None else None
    width = max(26, len(served or "") + 2)
    head = f"{'method':<{width}}" + "".join(f"{c:>13}" for c in cols)
    lines += [head, "-" * len(head)]

    def fmt(v):
        return f"{v:13.3f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>13}"

    def interval_row(prefix: str) -> str:
        return f"{'  95% interval':<{width}}" + "".join(
            f"{f'{report.intervals[prefix + c][0]:.3f}-{report.intervals[prefix + c][1]:.3f}':>13}"
            if prefix + c in report.intervals else f"{'':>13}" for c in cols)

    for name, vals in report.baselines.items():
        lines.append(f"{name:<{width}}" + "".join(fmt(vals.get(c)) for c in cols))
    lines.append(f"{'scene-matcher':<{width}}" + "".join(fmt(m.get(c)) for c in cols))
    lines.append(interval_row(""))
    if served is not None:
        lines.append(f"{served:<{width}}" + "".join(fmt(m.get(f"served.{c}")) for c in cols))
        lines.append(interval_row("served."))
    lines.append("")
    lines.append(f"room-type accuracy {m['room_type_accuracy']:.3f} "
                 f"(95% {report.intervals['room_type_accuracy'][0]:.3f}-{report.intervals['room_type_accuracy'][1]:.3f}); "
                 f"ECE of the top-10 confidence {m['ece'] if m['ece'] is None else format(m['ece'], '.3f')}; "
                 + ", ".join(f"{g}: {m[f'n_scenes.{g}']} scenes" for g in EVALUATION_GROUPS))
    lines.append("")
    lines.append(f"{'room type':<22}{'n':>4}" + "".join(f"{c:>11}" for c in METRIC_KEYS) + f"{'room acc':>11}")
    for room, vals in report.per_room.items():
        lines.append(f"{room:<22}{vals['n_scenes']:>4}" + "".join(f"{vals[c]:11.3f}" for c in METRIC_KEYS)
                     + f"{vals['room_type_accuracy']:11.3f}")
    lines.append("")
    if report.config is not None and report.config.ranker is not None:
        r = report.config.ranker
        lines.append(f"fusion: learned ranker ({r.model}, {r.negatives} negatives, fitted per fold on "
                     f"{r.inner_folds}-fold inner out-of-fold scores)"
                     + (f", without {', '.join(r.exclude)}" if r.exclude else ""))
    else:
        lines.append("weights: " + ", ".join(f"{k}={v:g}" for k, v in m["config"].items() if v))
    if report.skipped_scenes:
        lines.append(f"skipped {len(report.skipped_scenes)} scene(s), e.g. {report.skipped_scenes[0][0]}: "
                     f"{report.skipped_scenes[0][1]}")
    return "\n".join(lines)
