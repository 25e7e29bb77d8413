"""The typed ranking configuration: factor weights, the fusion choice and the re-rank options.

:class:`ScoringWeights` (one weight per factor of :data:`~scene_assets.ranking.factors.FACTORS`) and
:class:`RankingConfig` (weights + fusion + re-rank options, with their limits) are what the CLI's
``--weights`` file, the evaluation config, the Dagster ``Config`` classes and the HTTP request
share. No Dagster imports.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scene_assets.ranking.factors import DEFAULT_WEIGHTS, FACTORS

__all__ = ["Diversity", "FusionChoice", "RankingConfig", "ScoringWeights", "read_mapping_file"]

Diversity = Literal["mmr", "category_cap"] | None
FusionChoice = Literal["auto", "weights", "ranker"]


def read_mapping_file(path: str | os.PathLike) -> Mapping[str, Any]:
    """A JSON or YAML (by suffix) file that must hold a mapping; errors name the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ScoringWeights:
    """Weights of the factors; the weighted fusion is their weighted mean (so it stays in [0, 1]).

    Defaults: :data:`~scene_assets.ranking.factors.DEFAULT_WEIGHTS` (why they are what they are is
    written there). Every weight is a finite number >= 0 and at least one is > 0."""

    visual: float = DEFAULT_WEIGHTS["visual"]
    text: float = DEFAULT_WEIGHTS["text"]
    room_fit: float = DEFAULT_WEIGHTS["room_fit"]
    style: float = DEFAULT_WEIGHTS["style"]
    color: float = DEFAULT_WEIGHTS["color"]
    material: float = DEFAULT_WEIGHTS["material"]
    size: float = DEFAULT_WEIGHTS["size"]
    learned: float = DEFAULT_WEIGHTS["learned"]
    prior: float = DEFAULT_WEIGHTS["prior"]

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"ScoringWeights.{f.name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        if self.total() <= 0:
            raise ValueError("ScoringWeights: at least one weight must be > 0")

    def total(self) -> float:
        return float(sum(getattr(self, f) for f in FACTORS))

    def vector(self) -> np.ndarray:
        """The weights in :data:`FACTORS` order."""
        return np.array([getattr(self, f) for f in FACTORS], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScoringWeights":
        d = dict(d)
        for key in ("scoring_weights", "weights"):
            if set(d) == {key} and isinstance(d[key], Mapping):
                d = dict(d[key])
        unknown = set(d) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown scoring weight(s) {sorted(unknown)}; known: {list(FACTORS)}")
        return cls(**{k: float(v) for k, v in d.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ScoringWeights":
        """JSON or YAML file holding the weights (flat, or under a ``weights`` / ``scoring_weights``
        key); weights it does not name keep their defaults."""
        return cls.from_dict(read_mapping_file(path))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


class RankingConfig(BaseModel):
    """How candidates are scored and re-ranked. The limits below are enforced here, so every face
    (CLI, Dagster config, HTTP request) gets the same errors; :meth:`field_help` hands a field's
    default, description and limits to a Dagster ``Config``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    weights: ScoringWeights | None = Field(
        default=None, description="Factor weights of the weighted fusion; None: the defaults (the learned "
        "defaults once a learned scorer is attached). Given weights choose the weighted fusion under fusion=auto.")
    fusion: FusionChoice = Field(
        default="auto", description="weights: the weighted mean of the factors; ranker: the learned scorer's "
        "fusion ranker (an error without one); auto: the ranker when the learned scorer has one and no weights "
        "were given, else the weights.")
    diversity: Diversity = Field(
        default="mmr", description="Diversity of the top k: mmr (maximal marginal relevance over the product "
        "vectors), category_cap (at most category_cap per category) or none.")
    # 0.9, measured: on ../shared/ikea (5-fold CV, `scene-matcher evaluate --rerank-sweep`) MMR at 0.9 keeps 97 %
    # of the pure ranking's nDCG@10 with 6.9 distinct categories in the top 10 (4.1 without MMR); 0.7 kept 78 %.
    mmr_lambda: float = Field(default=0.9, ge=0.0, le=1.0, description="MMR trade-off: 1 = relevance only, "
                              "0 = novelty only.")
    category_cap: int = Field(default=3, ge=1, le=100, description="Products per category with "
                              "diversity=category_cap (capped-out products fill the list when fewer than k remain).")
    collapse_variants: bool = Field(default=True, description="Keep the best product of each variant group; the "
                                    "others are listed as its variants.")

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        return ScoringWeights.from_dict(v) if isinstance(v, Mapping) else v

    @field_validator("diversity", mode="before")
    @classmethod
    def _diversity(cls, v: Any) -> Any:
        return None if v in ("none", "") else v

    @classmethod
    def field_help(cls, name: str) -> dict[str, Any]:
        """``default``, ``description`` and the numeric limits (``ge``/``le``) of a field, for
        ``pydantic.Field(**RankingConfig.field_help(name))`` in another config class."""
        info = cls.model_fields[name]
        out: dict[str, Any] = {"default": info.default, "description": info.description}
        for meta in info.metadata:
            for limit in ("ge", "le"):
                if getattr(meta, limit, None) is not None:
                    out[limit] = getattr(meta, limit)
        return out

    def recommend_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Recommender.recommend``: the fusion choice, the weights when given, and
        the re-rank options."""
        return {"fusion": self.fusion, "diversity": self.diversity, "mmr_lambda": self.mmr_lambda,
                "category_cap": self.category_cap, "collapse_variants": self.collapse_variants} | (
                    {"weights": self.weights} if self.weights is not None else {})
