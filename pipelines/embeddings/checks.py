"""Consistency of the stored vectors with the catalog, evaluated in each vector asset's own step;
blocking: an index built from stale or duplicated vectors would serve removed products."""

import dagster as dg
import polars as pl

from scene_assets.embeddings import vector_set_problems


def vectors_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "vectors_match_catalog",
        asset=asset,
        blocking=True,
        description="Each catalog product has exactly one vector (or a recorded reason it has none), no vector of "
        "a removed product, every vector from the current encoder (fingerprint), finite and non-zero.",
    )


def vectors_match_catalog(
    asset: str, shards: dict[str, tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]], fingerprint: str
) -> dg.AssetCheckResult:
    """`shards`: shard key -> (stored vectors, wanted products, skipped products with reasons)."""
    problems: list[str] = []
    total = 0
    for shard, (vectors, wanted, skipped) in shards.items():
        total += vectors.height
        problems += [f"{shard}: {p}" for p in vector_set_problems(
            vectors, wanted["product_id"].to_list(), skipped["product_id"].to_list(), fingerprint)]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="vectors_match_catalog",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"), "vectors": total},
    )
