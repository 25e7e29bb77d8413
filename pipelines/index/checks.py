"""Consistency check between the image features and the scene index as saved on disk, evaluated in
the index asset's step; blocking: a wrong index must not serve."""


import dagster as dg
import polars as pl

from scene_assets.indexes import flat_files
from scene_assets.indexes.errors import VectorIndexError
from scene_assets.indexes.vectors import vector_matrix

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
        index, manifest = flat_files.load_index(index_dir)
        count = int(index.ntotal)
        if manifest["index_sha256"] != bundle["index_sha256"]:
            problems.append("bundle.json names another index than the one saved")
        features = features.sort("product_id")
        mean = np.asarray(manifest.get("catalog_mean") or [], dtype=np.float32)
        matrix = vector_matrix(features)
        centred = center_and_normalize(matrix, mean if mean.size else None) if features.height else matrix
        problems += flat_files.check_index(
            index, manifest, centred, features["product_id"].to_list(),
            expected_fingerprint=bundle["encoder_fingerprint"],
        )
    except (BundleError, VectorIndexError, OSError) as exc:
        problems.append(str(exc))
    return _result("scene_index_consistent", problems, count)
