"""A/B variants of the scoring configuration (#20): which share of shoppers each variant serves, and
which variant a shopper gets.

A plan is a JSON or YAML file::

    salt: winter-test          # changing it reshuffles every shopper
    variants:
      - name: control          # the first variant also serves requests without a session id
        share: 0.5
      - name: colour-heavy
        share: 0.25
        weights: {color: 2.0, visual: 1.0}   # factors it sets; the others keep the served weights
      - name: retrained
        share: 0.25
        learned: ../models/learned/3f9c0a1b2c3d4e5f   # a learned scorer version (folder; relative: to this file)
        fusion: ranker                                # its fusion ranker (weights: the weighted mix)

A shopper (``session_id``) is assigned by a stable hash of the salt and the session id, so the same
shopper sees the same variant on every request and every replica, and the shares hold over many
shoppers. A variant with ``weights`` is scored with the hand-weighted mix (as request weights are);
one without serves the served configuration (its learned ranker, when it has one). A variant with ``learned``
serves that learned scorer version (a folder written by the learned_scorer or feedback_scorer asset) over
the same index instead of the served one - how a scorer retrained on feedback is tried on a share of
shoppers before it serves everyone. ``fusion`` (weights / ranker) picks how its factors are combined, as the
``fusion`` request field does (a request's own non-default choice wins). No Dagster imports.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scene_assets.ranking.factors import FACTORS

MAX_VARIANT_WEIGHT = 10.0


class VariantPlanError(ValueError):
    """A variant plan that cannot be served (the message names the file and what is wrong)."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    weights: Mapping[str, float] = field(default_factory=dict)
    learned: str | None = None  # folder of the learned scorer version it serves (None: the served one)
    fusion: str | None = None  # "weights" or "ranker": how its factors are combined (None: as served, "auto")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "share": self.share, "weights": dict(self.weights)} | (
            {"learned": self.learned} if self.learned is not None else {}) | (
            {"fusion": self.fusion} if self.fusion is not None else {})


@dataclass(frozen=True)
class VariantPlan:
    variants: tuple[Variant, ...]
    salt: str = ""

    def __post_init__(self) -> None:
        if not self.variants:
            raise VariantPlanError("a variant plan needs at least one variant")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise VariantPlanError(f"variant names repeat: {names}")
        for v in self.variants:
            if not v.name or not v.name.replace("-", "").replace("_", "").isalnum() or len(v.name) > 64:
                raise VariantPlanError(f"variant name {v.name!r}: letters, digits, '-' and '_' only, at most 64")
            if v.fusion not in (None, "weights", "ranker"):
                raise VariantPlanError(f"variant {v.name}: fusion {v.fusion!r} is not 'weights' or 'ranker'")
            if not (isinstance(v.share, (int, float)) and math.isfinite(v.share) and 0 <= v.share <= 1):
                raise VariantPlanError(f"variant {v.name}: share {v.share!r} is not in [0, 1]")
            unknown = sorted(set(v.weights) - set(FACTORS))
            if unknown:
                raise VariantPlanError(f"variant {v.name}: unknown factor(s) {unknown}; factors: {list(FACTORS)}")
            bad = {k: w for k, w in v.weights.items()
                   if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= MAX_VARIANT_WEIGHT}
            if bad:
                raise VariantPlanError(f"variant {v.name}: weights {bad} not numbers in [0, {MAX_VARIANT_WEIGHT:g}]")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise VariantPlanError(f"variant shares add up to {total:g}, not 1")

    @property
    def pinned_scorers(self) -> dict[str, str]:
        """variant name -> the learned scorer folder it serves, for the variants that name one."""
        return {v.name: v.learned for v in self.variants if v.learned is not None}

    @property
    def control(self) -> Variant:
        return self.variants[0]

    def bucket(self, session_id: str) -> float:
        """Where ``session_id`` falls in [0, 1): stable across processes, machines and Python versions."""
        digest = hashlib.sha256(f"{self.salt}\x1f{session_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, session_id: str | None) -> Variant:
        """The variant of a shopper; the control for a request without a session id."""
        if session_id is None:
            return self.control
        point, edge = self.bucket(session_id), 0.0
        for variant in self.variants:
            edge += variant.share
            if point < edge:
                return variant
        return self.variants[-1]  # shares summing to 1 - 1e-7: the last bucket takes the rounding

    def to_dict(self) -> dict[str, Any]:
        return {"salt": self.salt, "variants": [v.to_dict() for v in self.variants]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "variant plan", base_dir: Path | None = None
                  ) -> "VariantPlan":
        """``base_dir``: what a relative ``learned`` folder is relative to (the plan file's folder)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("variants"), list):
            raise VariantPlanError(f"{where}: expected a mapping with a 'variants' list")
        unknown = sorted(set(data) - {"salt", "variants"})
        if unknown:
            raise VariantPlanError(f"{where}: unknown key(s) {unknown}")
        variants = []
        for i, item in enumerate(data["variants"]):
            if not isinstance(item, Mapping) or set(item) - {"name", "share", "weights", "learned", "fusion"} or "name" not in item:
                raise VariantPlanError(f"{where}: variant {i + 1} must have 'name', 'share' and optional 'weights', "
                                       "'learned' and 'fusion' only")
            learned = item.get("learned")
            if learned is not None:
                folder = Path(str(learned)).expanduser()
                folder = folder if folder.is_absolute() or base_dir is None else (base_dir / folder)
                if not (folder / "learned.json").is_file():
                    raise VariantPlanError(f"{where}: variant {item['name']}: learned {learned!r} is not a learned "
                                           f"scorer folder ({folder} has no learned.json)")
                learned = str(folder.resolve())
            variants.append(Variant(str(item["name"]), item.get("share", 0.0), dict(item.get("weights") or {}), learned,
                                    item.get("fusion")))
        try:
            return cls(tuple(variants), str(data.get("salt", "")))
        except VariantPlanError as exc:
            raise VariantPlanError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "VariantPlan":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise VariantPlanError(f"{path}: cannot read the variant plan ({exc})") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except ValueError as exc:  # json.JSONDecodeError
            raise VariantPlanError(f"{path}: not valid JSON ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and its subclasses
            raise VariantPlanError(f"{path}: not valid YAML ({exc})") from None
        return cls.from_dict(data, str(path), path.resolve().parent)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
