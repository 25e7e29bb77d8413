"""The re-rank sweep: diversity and variant collapse as measured choices (no Dagster imports).

Every held-out scene of an evaluation is ranked again through the served path
(:meth:`~evaluation.folds.ServedFolds.serve`: the same recommender, prepared scenes and fold models)
once per :class:`~scene_assets.ranking.RankingConfig` of a grid of re-rank options - diversity none /
MMR at several lambdas / a category cap, variant collapse on and off. Each configuration gets the
served ranking metrics, two diversity metrics of the top 10 (distinct categories; intra-list
similarity, the mean pairwise cosine of the listed products' stored vectors) and its nDCG@10 as a
share of the pure ranking's (the report's whole-catalog row). :func:`pick_default` recommends the
most diverse configuration that keeps at least 95 % of that nDCG@10.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.config import METRIC_KEYS
from evaluation.dataset import evaluation_group
from evaluation.metrics import distinct_categories_at_k, intra_list_similarity
from evaluation.report import EvaluationReport
from evaluation.scoring import served_metrics
from scene_assets.progress import track
from scene_assets.ranking import RankingConfig

__all__ = ["DIVERSITY_KEYS", "NDCG_KEEP", "RerankSweep", "format_rerank_table", "pick_default", "rerank_grid",
           "rerank_label", "rerank_options", "sweep_rerank"]

DIVERSITY_KEYS = ("categories@10", "ils@10")  # distinct categories in the top 10; intra-list similarity
SWEPT_METRICS = ("recall@10", "recall@50", "ndcg@10", "mrr")
NDCG_KEEP = 0.95  # the recommended default keeps at least this share of the pure ranking's nDCG@10
MMR_LAMBDAS = (1.0, 0.9, 0.8, 0.7, 0.5)
CATEGORY_CAPS = (2, 3)


def rerank_grid() -> list[RankingConfig]:
    """No diversity, MMR at each of :data:`MMR_LAMBDAS`, a cap of each of :data:`CATEGORY_CAPS` per
    category - each with variant collapse on and off."""
    out = []
    for collapse in (True, False):
        out.append(RankingConfig(diversity=None, collapse_variants=collapse))
        out += [RankingConfig(diversity="mmr", mmr_lambda=lam, collapse_variants=collapse) for lam in MMR_LAMBDAS]
        out += [RankingConfig(diversity="category_cap", category_cap=cap, collapse_variants=collapse)
                for cap in CATEGORY_CAPS]
    return out


def rerank_label(config: RankingConfig) -> str:
    """A short name of the re-rank options: ``mmr 0.7``, ``cap 3``, ``none``; ``, no collapse`` added."""
    div = {"mmr": f"mmr {config.mmr_lambda:g}", "category_cap": f"cap {config.category_cap}"}.get(
        config.diversity, "none")
    return div + ("" if config.collapse_variants else ", no collapse")


def rerank_options(config: RankingConfig) -> dict[str, Any]:
    """The re-rank options as table columns / MLflow params."""
    return {"diversity": config.diversity or "none", "mmr_lambda": config.mmr_lambda,
            "category_cap": config.category_cap, "collapse_variants": config.collapse_variants}


@dataclass
class RerankSweep:
    configs: list[RankingConfig]
    rows: list[dict[str, Any]]  # one per config: label, options, SWEPT_METRICS, DIVERSITY_KEYS, ndcg@10 share
    pure_ndcg: float  # nDCG@10 of the pure ranking (the report's whole-catalog row)
    chosen_index: int | None  # pick_default's choice (None: no configuration keeps NDCG_KEEP)
    served_k: int
    keep: float  # the share of pure_ndcg the chosen configuration had to keep

    @property
    def chosen(self) -> RankingConfig | None:
        return None if self.chosen_index is None else self.configs[self.chosen_index]


def pick_default(rows: Sequence[dict[str, Any]], pure_ndcg: float, keep: float = NDCG_KEEP) -> int | None:
    """Index of the most diverse row (most distinct categories@10; ties: the lower intra-list
    similarity, then the earlier row) whose served nDCG@10 is at least ``keep`` x ``pure_ndcg``;
    None when no row keeps that much."""
    eligible = [i for i, r in enumerate(rows) if r["ndcg@10"] >= keep * pure_ndcg]
    if not eligible:
        return None

    def ils(i: int) -> float:
        v = rows[i]["ils@10"]
        return math.inf if math.isnan(v) else v

    return min(eligible, key=lambda i: (-rows[i]["categories@10"], ils(i), i))


def sweep_rerank(report: EvaluationReport, configs: Sequence[RankingConfig] | None = None,
                     keep: float = NDCG_KEEP) -> RerankSweep:
    """Every held-out scene of ``report`` served once per re-rank configuration (default:
    :func:`rerank_grid`) and scored; the report must come from :func:`~evaluation.protocol.evaluate`
    (it keeps the served path's models)."""
    if report.serving is None or report.config is None:
        raise ValueError("the report keeps no served path to sweep: evaluate() it in this process")
    configs = list(configs if configs is not None else rerank_grid())
    if not configs:
        raise ValueError("no re-rank configurations to sweep")
    products = report.serving.rec.product_attributes()
    groups = np.asarray([evaluation_group(t, c) for t, c in
                         zip(products["product_type"].to_list(), products["category"].to_list())], dtype=object)
    categories = np.asarray(products["category"].to_list(), dtype=object)
    vectors = report.serving.rec.stored_vectors()  # None for an index that keeps no vectors: no ILS then
    row = {p: i for i, p in enumerate(report.product_ids)}
    pure = float(report.metrics["ndcg@10"])
    rows = []
    for cfg in track(configs, "re-rank sweep", unit="config"):
        served = report.serving.serve(dataclasses.replace(report.config, ranking=cfg))
        per_scene, _ = served_metrics(report.results, served, report.product_ids, groups)
        listed = [[row[p] for p in served[r.scene_id]] for r in report.results]
        ils = np.asarray([intra_list_similarity(top, vectors) if vectors is not None else np.nan for top in listed])
        metrics = {k: float(per_scene[:, METRIC_KEYS.index(k)].mean()) for k in SWEPT_METRICS}
        metrics |= {"categories@10": float(np.mean([distinct_categories_at_k(r, categories) for r in listed])),
                    "ils@10": float(np.nanmean(ils)) if not np.isnan(ils).all() else float("nan")}
        rows.append({"config": rerank_label(cfg), **rerank_options(cfg), **metrics,
                     "ndcg@10_share": metrics["ndcg@10"] / pure if pure > 0 else float("nan")})
    return RerankSweep(configs, rows, pure, pick_default(rows, pure, keep), report.config.served_k, keep)


def format_rerank_table(sweep: RerankSweep) -> str:
    """The sweep as a fixed-width table, the recommended configuration marked with ``*``."""
    cols = (*SWEPT_METRICS, *DIVERSITY_KEYS, "ndcg@10_share")
    head = f"  {'re-rank (served top ' + str(sweep.served_k) + ')':<26}" + "".join(f"{c:>14}" for c in cols)
    lines = [head]
    for i, r in enumerate(sweep.rows):
        mark = "*" if i == sweep.chosen_index else " "
        lines.append(f"{mark} {r['config']:<26}" + "".join(f"{r[c]:>14.3f}" for c in cols))
    choice = (f"recommended: {sweep.rows[sweep.chosen_index]['config']} (the most distinct categories@10 keeping "
              if sweep.chosen_index is not None else "no configuration keeps ")
    lines.append(f"\n{choice}>= {sweep.keep:.0%} of the pure ranking's nDCG@10 {sweep.pure_ndcg:.3f}"
                 + (")" if sweep.chosen_index is not None else ""))
    return "\n".join(lines)
