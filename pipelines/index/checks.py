"""Consistency checks between the vectors and the index; blocking: a wrong index must not serve."""


import dagster as dg
from pipelines.embeddings.assets import read_all_shards
from pipelines.resources import ProjectStorage
from scene_assets import vector_index
from scene_assets.embeddings import vector_matrix


@dg.asset_check(
    asset="product_index",
    blocking=True,
    description="Index count and ids equal the image vectors', no NaN/zero vectors, fingerprint matches the embeddings.",
)
def index_matches_vectors(product_index: dict, storage: ProjectStorage) -> dg.AssetCheckResult:
    vectors = read_all_shards(storage, "image").sort("product_id")
    index, manifest = vector_index.load_index(product_index["path"])
    problems = vector_index.check_index(
        index,
        manifest,
        vector_matrix(vectors),
        vectors["product_id"].to_list(),
        expected_fingerprint=vectors["fingerprint"].unique().item() if vectors["fingerprint"].n_unique() == 1 else None,
    )
    if vectors["fingerprint"].n_unique() != 1:
        problems.append(f"vectors carry {vectors['fingerprint'].n_unique()} fingerprints")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"), "count": int(index.ntotal)},
    )
