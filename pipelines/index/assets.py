"""Index domain: the recommender's scene index (the FAISS index over the products' image features
with the catalog columns and text vectors the re-ranker needs), saved on disk as a bundle."""


import time

import dagster as dg
import polars as pl
from pydantic import Field

from pipelines.embeddings.assets import product_image_features, product_text_vectors, read_all_shards
from pipelines.embeddings.resources import EncoderResource
from pipelines.index import checks
from pipelines.resources import ProjectStorage
from scene_assets.embeddings import ImageFeatureStage
from scene_assets.indexes.flat_choice import LatencyBudget
from scene_assets.locking import exclusive
from scene_assets.recommender_bundle import (
    build_scene_index,
    sample_region_queries,
    write_bundle_files,
    write_product_columns,
)
from scene_assets.settings import evaluation_dataset_dir


class SceneIndexConfig(dg.Config):
    search_budget_ms: float = Field(
        default=10.0,
        description="Stage-1 search budget of one scene (30 region queries x 100 candidates, one thread): at build "
        "time exact search is timed on the catalog; over budget, an IVF-SQ8 index (flat or HNSW coarse quantizer, "
        "whichever is faster) with the smallest nprobe reaching search_recall is built instead. The timings are in "
        "the metadata and the index manifest.",
    )
    search_recall: float = Field(
        default=0.98,
        description="Recall an approximate (IVF) index must reach against exact search: the share of a scene's 100 "
        "best candidates, merged over its regions as the re-ranker gets them, that it also finds. Lower is faster "
        "and changes more recommendations: at 1M synthetic products 0.965 (nprobe 2) kept 85 % of the exact "
        "search's top 10, nprobe 4 94 %, nprobe 8 98 % (bench/bench_serving.py).",
        gt=0.0,
        le=1.0,
    )
    exact_threshold: int | None = Field(
        default=None,
        description="Fixed rule instead of the measured choice: exact (Flat) up to this many products, IVF-SQ8 beyond.",
    )
    recentre_changed_share: float = Field(
        default=0.05,
        description="Keep the previous catalog mean (and update the index in place) while fewer than this share "
        "of products changed; a new mean moves every vector and rebuilds the index.",
    )


@dg.asset(
    group_name="index",
    deps=[product_image_features, product_text_vectors],
    ins={
        "enriched_catalog": dg.AssetIn(),
        "image_text_alignment": dg.AssetIn(input_manager_key="model_io_manager"),
    },
    io_manager_key="model_io_manager",
    description="The recommender's search index: product image features (pooled CNN features for the default "
    "encoder) centred on the catalog mean, queried by every region of a scene photo; saved with the catalog "
    "columns and text vectors the re-ranker needs and the encoder spec, so the CLI, the HTTP server and the "
    "export job load exactly this bundle (found through this asset's materializations, not by listing files).",
    kinds={"faiss"},
    check_specs=checks.SCENE_INDEX_CHECK_SPECS,
)
def scene_index(
    context: dg.AssetExecutionContext,
    config: SceneIndexConfig,
    enriched_catalog: pl.DataFrame,
    image_text_alignment: dict,
    encoder: EncoderResource,
    storage: ProjectStorage,
):
    started = time.perf_counter()
    model = encoder.encoder()
    stage = ImageFeatureStage.of(model)
    features = read_all_shards(storage, "image_features").filter(pl.col("fingerprint") == stage.fingerprint)
    if features.height == 0:
        raise dg.Failure("no image features with the current encoder's fingerprint; materialize product_image_features")
    space = stage.vector_space
    directory = storage.path("index", f"scene-{stage.fingerprint[:16]}")
    # The index kind is timed on real region queries: scene photos of the evaluation dataset (the labeled
    # scenes users score on; the embedded sample when none is configured), computed only when the kind is
    # measured (a small update keeps the previous kind)
    def sample_queries():
        return sample_region_queries(model, space, sorted((evaluation_dataset_dir() / "images" / "scenes").glob("*.jpg")))

    # Index, products and bundle.json change together: another run writing the same folder waits.
    with exclusive(directory) as lock_wait_seconds:
        report, recentred, changed_share = build_scene_index(
            features,
            directory,
            fingerprint=stage.fingerprint,
            space=space,
            exact_threshold=config.exact_threshold,
            latency_budget=LatencyBudget(search_ms=config.search_budget_ms, recall=config.search_recall),
            sample_queries=None if config.exact_threshold is not None else sample_queries,
            recentre_changed_share=config.recentre_changed_share,
        )
        texts = read_all_shards(storage, "text", ["product_id", "fingerprint", "vector"])
        head_path = image_text_alignment.get("path")
        bundle = write_bundle_files(
            directory,
            catalog=enriched_catalog,
            text_vectors=texts,
            encoder_spec=encoder.spec(projection_path=head_path),
            text_fingerprint=model.text_fingerprint(),
            extra={"alignment_head_sha256": image_text_alignment.get("sha256")},
        )
        # the re-ranker's per-product columns, computed once here: servers memory-map them (#19)
        bundle = write_product_columns(directory, model)
    manifest = report.manifest
    yield dg.Output(
        {"path": str(directory), "version": bundle["version"], "fingerprint": stage.fingerprint, "count": manifest["count"]},
        metadata={
            "index_dir": dg.MetadataValue.path(str(directory)),
            "bundle_version": bundle["version"],
            "count": manifest["count"],
            "dim": manifest["dim"],
            "vector_space": space,
            "factory": manifest["index_factory"],
            "build_mode": report.mode,
            "recentred": recentred,
            "changed_share": round(changed_share, 4),
            "added": report.added,
            "removed": report.removed,
            "bytes": manifest.get("index_bytes", 0),
            "seconds": round(time.perf_counter() - started, 3),
            "lock_wait_seconds": round(lock_wait_seconds, 3),
            "product_columns": len(bundle["product_columns"]["files"]),
            "encoder_fingerprint": stage.fingerprint,
            **_selection_metadata(manifest.get("selection")),
        },
    )
    yield checks.scene_index_consistent(str(directory), features)


def _selection_metadata(selection: dict | None) -> dict:
    """Why this index kind: the measured candidates (the choice is kept across small updates)."""
    if not selection:
        return {}
    return {
        "index_choice": selection["chosen"],
        "search_ms_measured": selection["search_ms"],
        "within_search_budget": selection["within_budget"],
        "search_timed_on": selection.get("queries", "synthetic"),
        **({"search_threads": selection["threads"]["chosen"],
            "search_ms_by_threads": dg.MetadataValue.json(selection["threads"]["search_ms_by_threads"])}
           if "threads" in selection else {}),
        "index_candidates": dg.MetadataValue.md(
            "| index | nprobe | efSearch | search ms | recall | per-region recall |\n|---|---|---|---|---|---|\n"
            + "\n".join(
                f"| {c['factory']} | {c.get('nprobe', '')} | {c.get('efSearch', '')} | {c['search_ms']} | {c['recall']} "
                f"| {c.get('region_recall', '')} |"
                for c in selection["candidates"])),
    }
