"""Weight sweeps over the re-ranking factors, on out-of-fold factor matrices (no Dagster imports).

Every configuration is scored from the cross-validated :class:`~evaluation.scoring.SceneResult`
factor matrices (no scene is recomputed). Selection is honest: for each fold f, the configuration
with the best mean objective on the *other* folds is picked and its fold-f metrics are reported
(``nested``), so the sweep's own number is a held-out estimate of "sweep, then use the winner".
The configuration recommended for use is the best on all folds together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.config import METRIC_KEYS
from evaluation.scoring import SceneResult, score_results
from scene_assets.ranking import ScoringWeights
from scene_assets.progress import track

__all__ = ["SweepResult", "random_weight_grid", "run_sweep"]

# Factors the sweep varies; the rest stay at their base value (they only break ties on the IKEA data).
SWEPT_FACTORS = ("visual", "learned", "prior", "room_fit", "text", "color")
_CHOICES: dict[str, tuple[float, ...]] = {
    "visual": (0.0, 0.25, 0.5, 1.0),
    "learned": (0.5, 1.0, 2.0),
    "prior": (0.0, 0.1, 0.3, 0.6),
    "room_fit": (0.0, 0.05, 0.2),
    "text": (0.0, 0.1),
    "color": (0.0, 0.02),
}


def random_weight_grid(base: ScoringWeights, size: int, seed: int = 0) -> list[ScoringWeights]:
    """``base`` plus up to ``size - 1`` distinct random configurations over a small grid of the swept
    factors (bounded: the full grid has 576 points)."""
    if size < 1:
        raise ValueError("sweep size must be >= 1")
    rng = np.random.default_rng(seed)
    seen = {tuple(base.vector())}
    out = [base]
    attempts = 0
    while len(out) < size and attempts < 50 * size:
        attempts += 1
        d = base.to_dict() | {f: float(rng.choice(_CHOICES[f])) for f in SWEPT_FACTORS}
        if sum(d.values()) <= 0:
            continue
        w = ScoringWeights(**d)
        key = tuple(w.vector())
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


@dataclass
class SweepResult:
    configs: list[ScoringWeights]
    mean: np.ndarray  # configs x metrics, over all scenes
    per_fold: np.ndarray  # configs x folds x metrics
    folds: list[int]
    objective: str
    best_index: int  # best on all folds (the one to use)
    nested: dict[str, float]  # held-out metrics of selecting on the other folds
    nested_choices: list[int]  # per fold, the config chosen on the other folds

    @property
    def best(self) -> ScoringWeights:
        return self.configs[self.best_index]

    def rows(self) -> list[dict]:
        return [{"config": i, **c.to_dict(), **{k: float(self.mean[i, j]) for j, k in enumerate(METRIC_KEYS)}}
                for i, c in enumerate(self.configs)]


def run_sweep(results: Sequence[SceneResult], configs: Sequence[ScoringWeights], objective: str = "ndcg@10") -> SweepResult:
    if objective not in METRIC_KEYS:
        raise ValueError(f"objective must be one of {METRIC_KEYS}")
    if not configs:
        raise ValueError("no configurations to sweep")
    folds = sorted({r.fold for r in results})
    fold_of = np.asarray([r.fold for r in results])
    per_scene = np.stack([score_results(results, w) for w in track(configs, "weight sweep", unit="config")])  # C x S x M
    mean = per_scene.mean(axis=1)
    per_fold = np.stack([per_scene[:, fold_of == f].mean(axis=1) for f in folds], axis=1)  # C x F x M
    j = METRIC_KEYS.index(objective)
    best = int(np.argmax(mean[:, j]))
    chosen: list[int] = []
    nested_rows = []
    if len(folds) > 1:
        for fi, f in enumerate(folds):
            other = fold_of != f
            pick = int(np.argmax(per_scene[:, other, j].mean(axis=1)))
            chosen.append(pick)
            nested_rows.append(per_scene[pick, fold_of == f])
        nested_all = np.concatenate(nested_rows)
        nested = {k: float(nested_all[:, m].mean()) for m, k in enumerate(METRIC_KEYS)}
    else:
        nested = {}
    return SweepResult(list(configs), mean, per_fold, folds, objective, best, nested, chosen)

