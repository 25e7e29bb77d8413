"""Ablation: the cross-validation with one direction turned off at a time (no Dagster imports).

Every variant is scored with the same folds, the same prepared scenes and - where the variant does
not change what is fitted - the same fitted projections, room classifiers and priors:

* factor variants ("- projection", "- colour", ...) only drop features from the fusion ranker (or
  zero the factor's weight without one): the fold models are reused, only the rankers are refitted;
* "- room classifier" rescores the same fold models with the zero-shot room posterior;
* "in-sample ranker rows" fits each fold's ranker on its training scenes scored by the fold's own
  models (what nested cross-validation avoids) - it shows the over-trust in in-sample scores;
* "whole image, no regions" fits its own folds (the projection learns from one query per scene,
  which is cheap).

:func:`visual_variants` (``evaluate --ablation visual``) is the table of the visual learning itself,
with the evaluation's own fusion: the projection trained with and without synthetic composites
(:mod:`scene_assets.composites`), with one shared map or two, and without it; each fits its own folds.

Each row carries the headline metrics with 95 % bootstrap intervals over scenes and the paired
difference to the first (reference) variant, also with a 95 % interval (the same scenes are scored
by both, so the paired interval is much tighter than the two separate ones).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from evaluation.dataset import LabeledDataset
from evaluation.metrics import bootstrap_interval
from evaluation.config import METRIC_KEYS, EvaluationConfig
from evaluation.folds import FoldRun, fit_fold, rank_fold, scenes_for, score_fold, split_folds, training_composites
from evaluation.report import summarize
from evaluation.scoring import SceneResult, fold_calibrators
from scene_assets.matching import Recommender
from scene_assets.progress import track
from scene_assets.ranking import FACTORS, RankerConfig, ScoringWeights
from scene_assets.prepared_scene import PreparedScene

__all__ = ["AblationResult", "Variant", "default_variants", "format_ablation", "run_ablation", "visual_variants"]

# columns of the table (headline keys of evaluation.report.summarize)
TABLE_KEYS = ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10", "hit@10.chair", "hit@10.sofa", "hit@10.table",
              "room_type_accuracy", "ece")
INTERVAL_KEYS = ("recall@10", "recall@50", "ndcg@10", "mrr", "room_type_accuracy")


@dataclass(frozen=True)
class Variant:
    """One row: ``config`` is the evaluation config it is scored under; ``in_sample``: the ranker
    learns from in-sample scores of the training scenes instead of the inner out-of-fold ones."""

    name: str
    config: EvaluationConfig
    description: str = ""
    in_sample: bool = False


def without_factors(config: EvaluationConfig, factors: Sequence[str]) -> EvaluationConfig:
    """``config`` with ``factors`` turned off: dropped from the ranker's features, or their weight zeroed."""
    unknown = set(factors) - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factors {sorted(unknown)}")
    weights = ScoringWeights(**config.weights.to_dict() | dict.fromkeys(factors, 0.0)) \
        if config.weights.total() > sum(getattr(config.weights, f) for f in factors) else config.weights
    ranker = None if config.ranker is None else dataclasses.replace(
        config.ranker, exclude=tuple(config.ranker.exclude) + tuple(factors))
    return dataclasses.replace(config, weights=weights, ranker=ranker)


def default_variants(config: EvaluationConfig) -> list[Variant]:
    """The reference (``config`` with the learned ranker, whatever ``config`` says) and one row per
    direction turned off."""
    ranked = config if config.ranker is not None else dataclasses.replace(config, ranker=RankerConfig())
    r = ranked.ranker
    rows = [
        Variant("learned ranker", ranked, f"{r.model} over the factors, {r.negatives} negatives, rows out of fold"),
        Variant("hand weights", dataclasses.replace(ranked, ranker=None),
                "weighted mean of the factors: " + ", ".join(f"{k}={v:g}" for k, v in ranked.weights.to_dict().items() if v)),
        Variant("ranker, in-sample rows", ranked, "ranker rows scored by the fold's own models (no inner CV)",
                in_sample=True),
        Variant("ranker, logistic", dataclasses.replace(ranked, ranker=dataclasses.replace(r, model="logistic")),
                "logistic regression instead of gradient boosting"),
        Variant("ranker, room-type hard negatives",
                dataclasses.replace(ranked, ranker=dataclasses.replace(r, negatives="room")),
                "half the negatives labeled in other scenes of the same room type"),
        Variant("- projection", without_factors(ranked, ["learned"]), "no region->product projection (learned factor)"),
        Variant("- zero-shot regions", without_factors(ranked, ["visual"]), "no zero-shot visual similarity"),
        Variant("- room classifier", dataclasses.replace(ranked, room_classifier=False),
                "zero-shot room posterior instead of the classifier fitted on labels"),
        Variant("- label prior", without_factors(ranked, ["prior"]), "no product/category-in-room prior"),
        Variant("- room fit", without_factors(ranked, ["room_fit"]), "no category-room membership factor"),
        Variant("- colour", without_factors(ranked, ["color"]), "no colour harmony factor"),
        Variant("- text, style, material, size", without_factors(ranked, ["text", "style", "material", "size"]),
                "no text / style / material / size factors"),
        Variant("whole image, no regions", dataclasses.replace(ranked, regions=False),
                "the whole image is the only query (projection refitted on it)"),
    ]
    return rows


def visual_variants(config: EvaluationConfig) -> list[Variant]:
    """The reference (``config``, its own fusion) and the visual learning turned off step by step."""
    labels_only = dataclasses.replace(config, composites=None)
    rows = [
        Variant("reference", config, "projection trained on labels + synthetic composites"
                + ("" if config.composites is None else f" ({config.composites.per_scene} per scene)")),
        Variant("- synthetic composites", labels_only, "projection trained on the labeled scenes only"),
        Variant("- composites, two maps", dataclasses.replace(
            labels_only, projection=dataclasses.replace(config.projection, shared_map=False)),
            "labels only, separate region and product maps (the projection before #18)"),
        Variant("- projection", without_factors(config, ["learned"]), "no region->product projection (learned factor)"),
    ]
    return rows


@dataclass
class AblationResult:
    rows: list[dict[str, Any]]  # one per variant: name, description, fusion, metrics, intervals, deltas
    summaries: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)  # variant -> summarize()
    protocol: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    encoder: str = ""

    def to_csv(self) -> str:
        buf = io.StringIO()
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k, v in r.items() if k not in keys and not isinstance(v, (dict, list))]
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow(r)
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = ["variant", *(_short(k) for k in TABLE_KEYS), "Δ nDCG@10 (95%)", "Δ MRR (95%)"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r["variant"]]
            for k in TABLE_KEYS:
                v = r.get(k)
                cell = "-" if v is None else f"{v:.3f}"
                if k in INTERVAL_KEYS and r.get(f"{k}.ci_low") is not None:
                    lo, hi = r[f"{k}.ci_low"], r[f"{k}.ci_high"]
                    cell += f" ({lo:.3f}-{hi:.3f})"
                cells.append(cell)
            for k in ("ndcg@10", "mrr"):
                cells.append(_delta_cell(r, k) or "reference")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _delta_cell(row: Mapping[str, Any], key: str) -> str | None:
    d = row.get(f"delta.{key}")
    if d is None:
        return None
    return f"{d:+.3f} ({row[f'delta.{key}.ci_low']:+.3f}, {row[f'delta.{key}.ci_high']:+.3f})"


def _short(key: str) -> str:
    return {"room_type_accuracy": "room acc", "recall@10": "R@10", "recall@50": "R@50", "ndcg@10": "nDCG@10",
            "mrr": "MRR", "hit@10": "hit@10", "ece": "ECE"}.get(key, key.replace("hit@10.", "hit@10 "))


def _paired_delta(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    lo, hi = bootstrap_interval(d, n_resamples=resamples, seed=seed)
    return float(d.mean()), float(lo), float(hi)


class _Scored:
    """Fold runs and their scored results, computed once per (regions, room classifier, in-sample)."""

    def __init__(self, rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                 say: Callable[[str], None], cache_dir: Path | None = None):
        self.rec, self.dataset, self.scenes, self.say, self.cache_dir = rec, dataset, scenes, say, cache_dir
        self.runs: dict[Any, list[FoldRun]] = {}
        self.scored: dict[Any, list[tuple[list[SceneResult], list[SceneResult]]]] = {}

    @staticmethod
    def _fitted(config: EvaluationConfig) -> tuple:
        """What decides the fitted fold models (variants equal in it share them)."""
        return (config.regions, repr(config.composites), repr(config.projection))

    def folds(self, config: EvaluationConfig) -> list[FoldRun]:
        key = self._fitted(config)
        inner = config.ranker is not None  # a ranker learns from inner out-of-fold rows; the weights need none
        if key not in self.runs or (inner and not self.runs[key][0].inner):
            scenes = scenes_for(config, self.scenes)
            composites = (None if self.cache_dir is None else
                          training_composites(self.rec, self.dataset, config, self.cache_dir, self.say))
            ids = self.dataset.scene_ids
            parts = split_folds(ids, config.folds, config.seed)
            runs = []
            for f, test in enumerate(track(parts, "ablation folds", unit="fold")):
                t0 = time.perf_counter()
                train = [s for g, part in enumerate(parts) if g != f for s in part]
                runs.append(fit_fold(self.rec, self.dataset, scenes, f, train, test, config, inner=inner,
                                     composites=composites))
                self.say(f"fold {f + 1}/{len(parts)}{'' if config.regions else ' (whole image only)'}: models and "
                         f"{len(runs[-1].inner)} inner models fitted ({time.perf_counter() - t0:.0f}s)")
            self.runs[key] = runs
        return self.runs[key]

    def results(self, config: EvaluationConfig, in_sample: bool) -> list[tuple[list[SceneResult], list[SceneResult]]]:
        key = (self._fitted(config), config.room_classifier, in_sample)
        if key not in self.scored:
            scenes = scenes_for(config, self.scenes)
            self.scored[key] = [score_fold(self.rec, self.dataset, scenes, run, config, inner=bool(run.inner),
                                           in_sample=in_sample)
                                for run in self.folds(config)]
        return self.scored[key]


def run_ablation(rec: Recommender, dataset: LabeledDataset, scenes: Mapping[str, PreparedScene],
                 variants: Sequence[Variant], encoder_fingerprint: str,
                 progress: Callable[[str], None] | None = None,
                 cache_dir: Path | None = None) -> AblationResult:
    """Score every variant (the first is the reference of the paired differences) on ``scenes``
    (prepared once, all regions; a variant's config decides what it uses). ``cache_dir``: where the
    synthetic composites a variant's config asks for are made and cached (None: labels only)."""
    say = progress or (lambda msg: None)
    cache = _Scored(rec, dataset, scenes, say, cache_dir)
    return score_variants(variants, lambda v: cache.results(v.config, v.in_sample), rec.product_attributes(),
                          encoder_fingerprint, say)


FoldResults = list[tuple[list[SceneResult], list[SceneResult]]]  # per fold: (held-out, ranker training rows)


def score_variants(variants: Sequence[Variant], fold_results: Callable[[Variant], FoldResults], products: pl.DataFrame,
                   encoder_fingerprint: str, progress: Callable[[str], None] | None = None) -> AblationResult:
    """The table from each variant's per-fold results (factor matrices; a variant with a ranker fits
    one per fold on that fold's training rows). ``products``: product_type and category in the
    order of the factor rows (for the chair/sofa/table columns)."""
    if not variants:
        raise ValueError("no ablation variants")
    say = progress or (lambda msg: None)
    rows: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {}
    per_scene_ref: dict[str, np.ndarray] | None = None
    timings: dict[str, float] = {}
    base = variants[0].config
    for v in variants:
        t0 = time.perf_counter()
        cfg = v.config
        if (cfg.folds, cfg.seed) != (base.folds, base.seed):
            raise ValueError(f"variant {v.name!r}: folds/seed differ from the reference's")
        results: list[SceneResult] = []
        for outer, train_rows in fold_results(v):
            if cfg.ranker is not None:
                _, outer = rank_fold(outer, train_rows, cfg.ranker)
            results += outer
        results.sort(key=lambda r: r.scene_id)
        summary = summarize(results, cfg, products, fold_calibrators(results, cfg), encoder_fingerprint)
        summary["config"] = cfg.to_dict() | {"in_sample_ranker_rows": v.in_sample}
        summaries[v.name] = summary
        head = summary["headline"]
        row: dict[str, Any] = {"variant": v.name, "description": v.description, "fusion": cfg.fusion,
                               "n_scenes": head["n_scenes"]}
        row |= {k: head.get(k) for k in TABLE_KEYS}
        for k in INTERVAL_KEYS:
            lo, hi = summary["intervals"][k]
            row[f"{k}.ci_low"], row[f"{k}.ci_high"] = lo, hi
        per_scene = {k: summary["per_scene"][k].to_numpy() for k in METRIC_KEYS}
        if per_scene_ref is None:
            per_scene_ref = per_scene
        else:
            for k in ("ndcg@10", "mrr", "recall@10", "recall@50"):
                d, lo, hi = _paired_delta(per_scene[k], per_scene_ref[k], cfg.bootstrap_resamples, cfg.seed)
                row[f"delta.{k}"], row[f"delta.{k}.ci_low"], row[f"delta.{k}.ci_high"] = (
                    round(d, 4), round(lo, 4), round(hi, 4))
        timings[v.name] = round(time.perf_counter() - t0, 2)
        row["seconds"] = timings[v.name]
        rows.append(row)
        say(f"variant {v.name!r}: nDCG@10 {row['ndcg@10']:.3f}, MRR {row['mrr']:.3f} ({timings[v.name]:.0f}s)")
    protocol = f"{base.folds}-fold cross-validation over scenes (seed {base.seed}), the same folds for every variant"
    return AblationResult(rows, summaries, protocol, timings, encoder_fingerprint)


def ablate(dataset: LabeledDataset, config: EvaluationConfig | None = None, *, variants: Sequence[Variant] | None = None,
           encoder=None, cache_dir: str | Path = "data/cache/evaluation",
           progress: Callable[[str], None] | None = None) -> AblationResult:
    """:func:`run_ablation` on ``dataset``'s own catalog (built like ``evaluate`` builds it), the
    scenes prepared once; ``variants`` default to :func:`default_variants` of ``config``."""
    from evaluation.folds import build_recommender, prepare_scenes
    from scene_assets.encoders import build_encoder

    config = config or EvaluationConfig()
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    encoder = encoder or build_encoder()
    rec = build_recommender(encoder, dataset, Path(cache_dir), config.weights)
    scenes = prepare_scenes(rec, dataset, config.use_captions)
    say(f"catalog of {len(rec.product_ids)} products, {len(scenes)} scenes prepared ({time.perf_counter() - t0:.0f}s)")
    result = run_ablation(rec, dataset, scenes, list(variants or default_variants(config)), encoder.fingerprint(), say,
                          Path(cache_dir))
    result.timings_s["total"] = round(time.perf_counter() - t0, 2)
    return result


def format_ablation(result: AblationResult) -> str:
    """The printed table: one row per variant, the paired difference to the reference on the right."""
    cols = ["R@10", "R@50", "nDCG@10", "MRR", "hit@10", "chair", "sofa", "table", "room", "ECE"]
    head = f"{'variant':<34}" + "".join(f"{c:>9}" for c in cols) + f"{'Δ nDCG@10 (95%)':>26}{'Δ MRR (95%)':>26}"
    lines = [f"ablation: {result.protocol}", "", head, "-" * len(head)]
    for r in result.rows:
        vals = "".join(f"{r[k]:9.3f}" if r.get(k) is not None else f"{'-':>9}" for k in TABLE_KEYS)
        deltas = "".join(f"{_delta_cell(r, k) or 'reference':>26}" for k in ("ndcg@10", "mrr"))
        lines.append(f"{r['variant']:<34}" + vals + deltas)
    ref = result.rows[0]
    spans = [f"{_short(k)} {ref[k + '.ci_low']:.3f}-{ref[k + '.ci_high']:.3f}" for k in INTERVAL_KEYS]
    lines += ["", f"95% intervals of the reference ({ref['variant']}): " + ", ".join(spans)]
    return "\n".join(lines)


def write_ablation(result: AblationResult, out_dir: Path) -> list[Path]:
    """``ablation.md`` and ``ablation.csv`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "ablation.md"
    md.write_text(f"# Ablation\n\n{result.protocol}\n\n{result.to_markdown()}\n\n"
                  + "\n".join(f"- **{r['variant']}**: {r['description']}" for r in result.rows) + "\n", encoding="utf-8")
    path = out_dir / "ablation.csv"
    path.write_text(result.to_csv(), encoding="utf-8")
    return [md, path]
