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
    return _result("index_matches_vectors", problems, int(index.ntotal))


def _result(check_name: str, problems: list[str], count: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"), "count": count},
    )


SCENE_INDEX_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "scene_index_consistent",
        asset="scene_index",
        blocking=True,
        description="The saved bundle loads (index sha matches bundle.json), holds exactly the products with image "
        "features, with finite non-zero vectors.",
    )
]


def scene_index_consistent(index_dir: str, features: pl.DataFrame) -> dg.AssetCheckResult:
    """Reload the bundle as a server would and compare it with the centred image features."""
    import numpy as np

    from scene_assets.recommender_bundle import BundleError, read_bundle
    from scene_assets.regions import center_and_normalize

    problems: list[str] = []
    count = 0
    try:
        bundle = read_bundle(index_dir)
        index, manifest = vector_index.load_index(index_dir)
        count = int(index.ntotal)
        if manifest["index_sha256"] != bundle["index_sha256"]:
            problems.append("bundle.json names another index than the one saved")
        features = features.sort("product_id")
        mean = np.asarray(manifest.get("catalog_mean") or [], dtype=np.float32)
        matrix = vector_matrix(features)
        centred = center_and_normalize(matrix, mean if mean.size else None) if features.height else matrix
        problems += vector_index.check_index(
            index, manifest, centred, features["product_id"].to_list(),
            expected_fingerprint=bundle["encoder_fingerprint"],
        )
    except (BundleError, vector_index.VectorIndexError, OSError) as exc:
        problems.append(str(exc))
    return _result("scene_index_consistent", problems, count)
