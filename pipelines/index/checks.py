"""Consistency check between the vectors and the index as saved on disk, evaluated in the index
asset's step; blocking: a wrong index must not serve."""


import dagster as dg
import polars as pl

from scene_assets import vector_index
from scene_assets.embeddings import vector_matrix

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "index_matches_vectors",
        asset="product_index",
        blocking=True,
        description="Index count and ids equal the image vectors', no NaN/zero vectors, fingerprint matches the embeddings.",
    )
]


def index_matches_vectors(index_dir: str, vectors: pl.DataFrame) -> dg.AssetCheckResult:
    """Reload the index from `index_dir` (what a server would load) and compare it to `vectors`."""
    vectors = vectors.sort("product_id")
    index, manifest = vector_index.load_index(index_dir)
    fingerprints = vectors["fingerprint"].unique().to_list()
    problems = vector_index.check_index(
        index,
        manifest,
        vector_matrix(vectors),
        vectors["product_id"].to_list(),
        expected_fingerprint=fingerprints[0] if len(fingerprints) == 1 else None,
    )
    if len(fingerprints) != 1:
        problems.append(f"vectors carry {len(fingerprints)} fingerprints")
    return dg.AssetCheckResult(
        check_name="index_matches_vectors",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"), "count": int(index.ntotal)},
    )
