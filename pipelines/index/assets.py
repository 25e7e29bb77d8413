"""Index domain: the FAISS index over product image vectors, saved on disk with its manifest."""


import dagster as dg
from pydantic import Field
import polars as pl

from pipelines.embeddings.assets import read_all_shards, product_image_vectors
from pipelines.index import checks
from pipelines.resources import ProjectStorage
from scene_assets.index_build import build_or_update_index


class IndexConfig(dg.Config):
    exact_threshold: int = Field(
        default=50_000, description="Up to this many products the index is exact (Flat); beyond, IVF with SQ8 codes."
    )
    incremental: bool = Field(default=True, description="Remove and re-add only changed products when the index type allows.")


@dg.asset(
    group_name="index",
    deps=[product_image_vectors],
    io_manager_key="model_io_manager",
    description="FAISS index (IndexIDMap2 / IVF with stable int64 ids from product_id) of the product image "
    "vectors, in a folder named by the encoder fingerprint, with a manifest (fingerprint, dim, count, "
    "factory string, build time, sha256).",
    kinds={"faiss"},
    check_specs=checks.CHECK_SPECS,
)
def product_index(context: dg.AssetExecutionContext, config: IndexConfig, storage: ProjectStorage):
    vectors = read_all_shards(storage, "image")
    fingerprints = vectors["fingerprint"].unique().to_list()
    if len(fingerprints) != 1:
        raise dg.Failure(f"image vectors carry {len(fingerprints)} encoder fingerprints {fingerprints}; re-materialize all shards")
    fingerprint = fingerprints[0]
    directory = storage.path("index", f"image-{fingerprint[:16]}")
    report = build_or_update_index(
        vectors, directory, fingerprint=fingerprint, exact_threshold=config.exact_threshold, incremental=config.incremental
    )
    manifest = report.manifest
    yield dg.Output(
        {"path": str(directory), "fingerprint": fingerprint, "count": manifest["count"], "index_sha256": manifest["index_sha256"]},
        metadata={
            "index_dir": dg.MetadataValue.path(str(directory)),
            "count": manifest["count"],
            "dim": manifest["dim"],
            "factory": manifest["index_factory"],
            "build_mode": report.mode,
            "added": report.added,
            "removed": report.removed,
            "seconds": round(report.seconds, 3),
            "bytes": manifest.get("index_bytes", 0),
            "fingerprint": fingerprint,
        },
    )
    yield checks.index_matches_vectors(str(directory), vectors)
