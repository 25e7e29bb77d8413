"""Re-ranking apart from scoring: category / room filters, variant collapse and diversity (MMR or a
per-category cap). Functions of arrays in index order; no Dagster imports."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from scene_assets import vocabulary as vocab
from scene_assets.ranking.catalog import member_mask
from scene_assets.ranking.config import Diversity
from scene_assets.scene_analysis import ROOM_TYPES

log = logging.getLogger(__name__)

__all__ = ["allowed_mask", "category_cap", "collapse_variants", "mmr", "rerank"]


def allowed_mask(category: np.ndarray, group: np.ndarray, room_member: np.ndarray,
                 include_categories: Sequence[str] | str | None, exclude_categories: Sequence[str] | str | None,
                 room: str | None) -> np.ndarray | None:
    """Products passing the filters (None: all of them). Categories are vocabulary categories or
    their groups; ``room`` keeps the products that belong in that room."""
    def match(names) -> np.ndarray:
        names = {names} if isinstance(names, str) else set(names)
        unknown = names - set(vocab.CATEGORIES) - set(vocab.CATEGORY_GROUP.values())
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; use keys of vocabulary.CATEGORIES "
                             "or their groups")
        return member_mask(category, names) | member_mask(group, names)

    if not include_categories and not exclude_categories and room is None:
        return None  # no filter: nothing computed per product (10M products: ~5 ms a query)
    mask = np.ones(len(category), dtype=bool)
    if include_categories:
        mask &= match(include_categories)
    if exclude_categories:
        mask &= ~match(exclude_categories)
    if room is not None:
        mask &= room_member[:, ROOM_TYPES.index(room)] > 0
    return None if mask.all() else mask


def collapse_variants(order: np.ndarray, variant_group: np.ndarray) -> tuple[np.ndarray, dict[int, list[int]]]:
    """``order`` keeping the first (best) candidate of each variant group, and for each kept
    candidate the positions of the variants collapsed into it."""
    keep, seen = [], {}
    variants: dict[int, list[int]] = {}
    for j in order:
        g = variant_group[j]
        if g in seen:
            variants[seen[g]].append(int(j))
            continue
        seen[g] = int(j)
        variants[int(j)] = []
        keep.append(j)
    return np.asarray(keep, dtype=np.int64), variants


def category_cap(order: np.ndarray, score: np.ndarray, category: np.ndarray, k: int, cap: int) -> list[int]:
    """At most ``cap`` per category; if that leaves fewer than k (e.g. a filter keeps one category),
    the best capped-out candidates fill the remaining slots."""
    counts: dict[str, int] = {}
    keep, overflow = [], []
    for j in order:
        c = category[j]
        if counts.get(c, 0) < cap:
            counts[c] = counts.get(c, 0) + 1
            keep.append(j)
            if len(keep) >= k:
                break
        else:
            overflow.append(j)
    return sorted(keep + overflow[: max(0, k - len(keep))], key=lambda j: -score[j])


def mmr(order: np.ndarray, score: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray | None], k: int,
        lam: float) -> list[int]:
    """Maximal marginal relevance over the best ``max(5k, 50)`` candidates; ``vectors_of(positions)``
    gives their vectors (None: plain ranking)."""
    pool = np.asarray(order[: max(5 * k, 50)], dtype=np.int64)
    if pool.size <= 1:
        return list(pool[:k])
    V = vectors_of(pool)
    if V is None:
        log.warning("index cannot reconstruct vectors; MMR falls back to plain ranking")
        return list(pool[:k])
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    sim = V @ V.T
    rel = score[pool]
    chosen = [0]
    max_sim = sim[0].copy()
    available = np.ones(pool.size, dtype=bool)
    available[0] = False
    while len(chosen) < min(k, pool.size):
        gain = lam * rel - (1.0 - lam) * max_sim
        gain[~available] = -np.inf
        nxt = int(np.argmax(gain))
        chosen.append(nxt)
        available[nxt] = False
        max_sim = np.maximum(max_sim, sim[nxt])
    return [int(pool[i]) for i in chosen]


def rerank(score: np.ndarray, *, k: int, variant_group: np.ndarray, category: np.ndarray,
           vectors_of: Callable[[np.ndarray], np.ndarray | None], diversity: Diversity, collapse: bool,
           mmr_lambda: float, cap: int) -> tuple[list[int], dict[int, list[int]]]:
    """Positions (into the candidate arrays) of the top ``k`` after variant collapse and diversity,
    best first, and the variants collapsed into each."""
    order = np.argsort(-score, kind="stable")
    variants: dict[int, list[int]] = {}
    if collapse:
        order, variants = collapse_variants(order, variant_group)
    if diversity == "category_cap":
        chosen = category_cap(order, score, category, k, cap)
    elif diversity == "mmr":
        chosen = mmr(order, score, vectors_of, k, mmr_lambda)
    else:
        chosen = list(order[:k])
    return chosen, variants
