"""Index domain, large catalogs: a sharded IVF-PQ index of the product image features (the vectors
the scene index holds: pooled CNN features for the default encoder, centred on the catalog mean) that
is built past memory (train once → one index per catalog shard → lists merged on disk → served
memory-mapped). The logic is in scene_assets/indexes/ (sharded_*.py); docs/sharded-index.md says
when to use it. Not part of the main job."""


import time

import dagster as dg
import polars as pl
from pydantic import Field

from pipelines.embeddings.assets import product_image_features, product_text_vectors, read_all_shards, vector_path
from pipelines.embeddings.resources import EncoderResource
from pipelines.embeddings.partitions import catalog_shards
from pipelines.resources import ProjectStorage
from scene_assets.indexes import sharded_build, sharded_files, sharded_params, sharded_serving
from scene_assets.indexes.errors import VectorIndexError
from scene_assets.indexes.vector_sources import ParquetVectorSource, parquet_sources, vector_dim
from scene_assets.locking import exclusive
from scene_assets.embeddings import ImageFeatureStage
from scene_assets.two_stage_bundle import chained, write_two_stage_bundle

GROUP = "index"
SHARD_ASSET = dg.AssetKey("ivf_shard_index")


class IvfIndexConfig(dg.Config):
    memory_budget_gb: float = Field(
        default=4.0,
        description="Memory the serving index may use, GiB: the inverted lists (n × (PQ code + 8 B id)) plus the "
        "quantizers must fit, so that the page cache can hold all of them. The largest PQ code that fits is chosen.",
    )
    latency_target_ms: float = Field(
        default=5.0,
        description="Target for one query on one thread, ms: nprobe is the largest setting whose latency, measured on "
        "the training sample and extrapolated to the catalog size, meets it (fewer if recall has already saturated).",
    )
    sample_size: int = Field(
        default=0,
        description="Vectors sampled (seeded, over all shards) to train the coarse quantizer and the PQ codebooks. "
        "0: 50 per inverted list, at most 1,000,000.",
    )
    nlist: int = Field(default=0, description="Inverted lists. 0: about 4·sqrt(n), a power of two.")
    max_code_bytes: int = Field(default=0, description="Upper bound on the PQ code size in bytes. 0: dim / 2.")
    opq: bool = Field(default=False, description="Learn an OPQ rotation before PQ (slower training, better codes on some data).")
    coarse: str = Field(default="auto", description="Coarse quantizer: flat, hnsw (HNSW32) or auto (hnsw above 16,384 lists).")
    seed: int = Field(default=0, description="Seed for the training sample and k-means.")
    retrain_growth: float = Field(
        default=4.0,
        description="Keep the trained index while the catalog stays within this factor of the size it was trained for "
        "(retraining re-adds every shard).",
    )
    force_retrain: bool = Field(default=False, description="Train a new index even if the previous one still fits.")


def _root(storage: ProjectStorage, fingerprint: str):
    return storage.path("index", f"ivf-{fingerprint[:16]}")


# The sharded index holds what the scene index holds (product_image_features, centred on the catalog
# mean), so a learned scorer fitted for the scene index serves a two-stage bundle too.
FEATURES = "image_features"


def _feature_sources(storage: ProjectStorage) -> tuple[list[ParquetVectorSource], str]:
    files = {key: vector_path(storage, FEATURES, key) for key in catalog_shards.get_partition_keys()}
    try:
        return parquet_sources(files)
    except VectorIndexError as e:
        raise dg.Failure(f"{e} (product_image_features)") from None



def _trained_from_input(ivf_trained_index: dict) -> sharded_build.TrainedIndex:
    trained = sharded_build.load_trained(ivf_trained_index["path"])
    if trained.sha256 != ivf_trained_index["sha256"]:
        raise dg.Failure(
            f"{trained.path} was replaced since ivf_trained_index was materialized (sha256 {trained.sha256[:16]}..., "
            f"recorded {ivf_trained_index['sha256'][:16]}...); re-materialize ivf_trained_index"
        )
    return trained


def _previous_trained(context: dg.AssetExecutionContext, wanted_config: dict) -> sharded_build.TrainedIndex | None:
    """The trained index this asset produced last time (from Dagster's event log), if it was made
    with the same config and its files are still valid."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "trained_dir" not in metadata or "training_config" not in metadata:
        return None
    if metadata["training_config"].value != wanted_config:
        return None
    try:
        trained = sharded_build.load_trained(metadata["trained_dir"].value)
        trained.load()
    except VectorIndexError:
        return None
    return trained


@dg.asset(
    group_name=GROUP,
    deps=[product_image_features],
    io_manager_key="model_io_manager",
    description="Trained, empty IVF-PQ index for the sharded image index: parameters chosen from a memory budget "
    "and a latency target (recorded with the rationale), trained once on a seeded sample of the image features "
    "centred on the catalog mean (computed over every shard and saved with it, as the scene index centres them). "
    "Reused while the catalog stays near the size it was trained for.",
    kinds={"faiss"},
)
def ivf_trained_index(context: dg.AssetExecutionContext, config: IvfIndexConfig, encoder: EncoderResource,
                      storage: ProjectStorage) -> dg.Output[dict]:
    started = time.perf_counter()
    sources, fingerprint = _feature_sources(storage)
    space = ImageFeatureStage.of(encoder.encoder()).vector_space
    n = sum(s.count() for s in sources)
    dim = vector_dim(sources)
    budget = int(config.memory_budget_gb * 2**30)
    training_config = config.model_dump(exclude={"force_retrain", "retrain_growth"})
    previous = None if config.force_retrain else _previous_trained(context, training_config)
    reason = "force_retrain" if config.force_retrain else "no previous trained index with this config"
    if previous is not None:
        reason = sharded_build.reuse_reason(previous, n, dim, fingerprint, memory_budget_bytes=budget,
                                            latency_target_ms=config.latency_target_ms, growth=config.retrain_growth,
                                            centre=True)
    if previous is not None and reason is None:
        trained = previous
    else:
        try:
            params = sharded_params.choose_params(
                n, dim, memory_budget_bytes=budget, latency_target_ms=config.latency_target_ms,
                nlist=config.nlist or None, max_code_bytes=config.max_code_bytes or None, opq=config.opq,
                coarse=config.coarse, seed=config.seed, train_size=config.sample_size or None,
            )
        except ValueError as e:
            raise dg.Failure(str(e)) from None
        trained = sharded_build.train_index(sources, _root(storage, fingerprint), params, fingerprint=fingerprint,
                                            force=config.force_retrain, centre=True, vector_space=space)
    p = trained.params
    context.log.info(f"{p.factory} nprobe={p.nprobe}: {p.rationale}")
    return dg.Output(
        {"path": str(trained.directory), "sha256": trained.sha256, "fingerprint": fingerprint, "factory": p.factory,
         "nprobe": p.nprobe, "root": str(_root(storage, fingerprint))},
        metadata={
            "trained_dir": dg.MetadataValue.path(str(trained.directory)),
            "trained": trained.trained,
            "retrain_reason": reason or "",
            "vectors": n,
            "dim": dim,
            "vector_space": space,
            "centred": trained.centred,
            "factory": p.factory,
            "nlist": p.nlist,
            "pq_m": p.m,
            "nprobe": p.nprobe,
            "nprobe_source": p.nprobe_source,
            "bytes_per_vector": p.bytes_per_vector,
            "estimated_index_bytes": p.estimated_index_bytes,
            "estimated_latency_ms": p.estimated_latency_ms,
            "rationale": dg.MetadataValue.md("\n".join(f"- {line}" for line in p.rationale.split("; "))),
            "sample_size": int(trained.manifest.get("sample_size", 0)),
            "train_seconds": float(trained.manifest.get("train_seconds", 0.0)),
            "seconds": round(time.perf_counter() - started, 3),
            "bytes": int(trained.manifest["files"][sharded_files.TRAINED_FILE]["bytes"]),
            "sha256": trained.sha256,
            "fingerprint": fingerprint,
            "training_config": dg.MetadataValue.json(training_config),
        },
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=catalog_shards,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[product_image_features],
    ins={"ivf_trained_index": dg.AssetIn(input_manager_key="model_io_manager")},
    description="One catalog shard's image features (centred on the trained index's catalog mean) added to a copy of the trained IVF-PQ index, saved in a folder "
    "keyed by the shard and named by (trained index, shard content): an unchanged shard is kept as it is, a "
    "retrained index re-adds every shard.",
    kinds={"faiss"},
)
def ivf_shard_index(context: dg.AssetExecutionContext, ivf_trained_index: dict, storage: ProjectStorage) -> dg.MaterializeResult:
    started = time.perf_counter()
    trained = _trained_from_input(ivf_trained_index)
    fingerprint = trained.manifest["encoder_fingerprint"]
    shards = {}
    for key in context.partition_keys:
        source = ParquetVectorSource(vector_path(storage, FEATURES, key), key, fingerprint=fingerprint)
        try:
            shards[key] = sharded_build.add_shard(trained, source, ivf_trained_index["root"])
        except VectorIndexError as e:
            raise dg.Failure(f"shard {key}: {e}") from None
    # One ranged run materializes several shards with the same metadata: the per-shard table is keyed
    # by shard, and ivf_merged_index reads its own shard's row.
    table = {
        key: {"dir": str(s.directory), "count": s.count, "index_sha256": s.manifest["index_sha256"], "added": s.added,
              "seconds": round(s.seconds, 3), "bytes": sum(e["bytes"] for e in s.manifest["files"].values())}
        for key, s in shards.items()
    }
    return dg.MaterializeResult(
        metadata={
            "shards": dg.MetadataValue.json(table),
            "count": sum(s.count for s in shards.values()),
            "shards_added": sum(s.added for s in shards.values()),
            "shards_kept": sum(not s.added for s in shards.values()),
            "bytes": sum(row["bytes"] for row in table.values()),
            "seconds": round(time.perf_counter() - started, 3),
            "factory": trained.params.factory,
            "trained_sha256": trained.sha256,
        }
    )


def _shard_from_lineage(context: dg.AssetExecutionContext, key: str) -> sharded_build.ShardIndex:
    """The shard index recorded by the latest materialization of ``ivf_shard_index`` for ``key``."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SHARD_ASSET, asset_partitions=[key]), limit=1
    ).records
    if not records:
        raise dg.Failure(f"shard {key}: ivf_shard_index was never materialized for it; materialize that partition")
    table = records[0].asset_materialization.metadata["shards"].value
    row = table.get(key)
    if row is None:
        raise dg.Failure(f"shard {key}: its ivf_shard_index materialization records no shard folder")
    try:
        shard = sharded_build.load_shard(row["dir"])
    except VectorIndexError as e:
        raise dg.Failure(f"shard {key}: {e}; re-materialize ivf_shard_index for it") from None
    if shard.manifest["index_sha256"] != row["index_sha256"]:
        raise dg.Failure(f"shard {key}: {shard.directory} no longer holds the index its materialization recorded")
    return shard


@dg.asset(
    group_name=GROUP,
    deps=[ivf_shard_index],
    ins={"ivf_trained_index": dg.AssetIn(input_manager_key="model_io_manager")},
    io_manager_key="model_io_manager",
    description="The serving index: every shard's inverted lists merged into one on-disk file (OnDiskInvertedLists, "
    "index.ivfdata) beside the quantizers and an id lookup, written to a temp folder renamed into place; opened "
    "memory-mapped (scene_assets.indexes.sharded_serving.open_merged). Shards are found through each partition's "
    "materialization, not by listing folders.",
    kinds={"faiss"},
)
def ivf_merged_index(context: dg.AssetExecutionContext, ivf_trained_index: dict, storage: ProjectStorage) -> dg.Output[dict]:
    started = time.perf_counter()
    trained = _trained_from_input(ivf_trained_index)
    shards = [_shard_from_lineage(context, key) for key in catalog_shards.get_partition_keys()]
    stale = [s.key for s in shards if s.manifest["trained_sha256"] != trained.sha256]
    if stale:
        raise dg.Failure(f"shards {stale} were built on another trained index; re-materialize ivf_shard_index for them")
    try:
        merged = sharded_build.merge_shards(trained, shards, ivf_trained_index["root"])
        serving = sharded_serving.open_merged(merged.directory, verify="size")  # what a server opens; sha256 checked by the merge
    except VectorIndexError as e:
        raise dg.Failure(str(e)) from None
    manifest = merged.manifest
    return dg.Output(
        {"path": str(merged.directory), "version": manifest["version"], "count": manifest["count"],
         "nprobe": manifest["nprobe"], "factory": manifest["factory"], "fingerprint": manifest["encoder_fingerprint"]},
        metadata={
            "index_dir": dg.MetadataValue.path(str(merged.directory)),
            "merged": merged.merged,
            "count": manifest["count"],
            "shards": len(shards),
            "factory": manifest["factory"],
            "nprobe": manifest["nprobe"],
            "rationale": dg.MetadataValue.md("\n".join(f"- {line}" for line in trained.params.rationale.split("; "))),
            "bytes": merged.bytes,
            "bytes_per_product": manifest["bytes_per_product"],
            "ivfdata_bytes": manifest["files"][sharded_files.IVFDATA_FILE]["bytes"],
            "merge_seconds": manifest["merge_seconds"],
            "seconds": round(time.perf_counter() - started, 3),
            "serving_ntotal": serving.ntotal,
            "fingerprint": manifest["encoder_fingerprint"],
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[product_text_vectors],
    ins={
        "ivf_merged_index": dg.AssetIn(input_manager_key="model_io_manager"),
        "enriched_catalog": dg.AssetIn(),
        "image_text_alignment": dg.AssetIn(input_manager_key="model_io_manager"),
    },
    io_manager_key="model_io_manager",
    description="A recommender bundle served two-stage from the merged index (#19): stage 1 searches the memory-mapped "
    "IVF-PQ lists, stage 2 re-scores the candidates from the exact image features (centred as indexed, float16, in the "
    "index's lookup order) and ranks them with the per-product columns and the learned scorer (its projection computed "
    "for the candidates only); vectors, columns, attributes and ids are all memory-mapped, so a "
    "replica holds no Python object per product. Serve it with `scene-matcher serve --bundle-asset two_stage_bundle` "
    "(or `--index <path>`). Written in row "
    "chunks (scene_assets.two_stage_bundle).",
    kinds={"faiss"},
)
def two_stage_bundle(context: dg.AssetExecutionContext, ivf_merged_index: dict, enriched_catalog: pl.DataFrame,
                     image_text_alignment: dict, encoder: EncoderResource, storage: ProjectStorage) -> dg.Output[dict]:
    started = time.perf_counter()
    model = encoder.encoder()
    sources, fingerprint = _feature_sources(storage)
    stage = ImageFeatureStage.of(model)
    if fingerprint != ivf_merged_index["fingerprint"] or fingerprint != stage.fingerprint:
        raise dg.Failure(f"the merged index ({ivf_merged_index['fingerprint'][:16]}), the image features ({fingerprint[:16]}) "
                         f"and the encoder ({stage.fingerprint[:16]}) must agree: re-materialize product_image_features "
                         "and the ivf_* assets with the current encoder")
    texts = read_all_shards(storage, "text", ["product_id", "fingerprint", "vector"])
    texts = texts.filter(pl.col("fingerprint") == model.text_fingerprint()).select("product_id", "vector")
    directory = storage.path("index", f"two-stage-{fingerprint[:16]}")
    with exclusive(directory) as lock_wait_seconds:
        try:
            bundle = write_two_stage_bundle(
                directory, ivf_merged_index["path"], catalog=enriched_catalog,
                vector_chunks=chained(source.chunks() for source in sources), encoder=model,
                encoder_spec=encoder.spec(projection_path=image_text_alignment.get("path")),
                text_vectors=texts if texts.height else None)
        except (VectorIndexError, ValueError) as e:
            raise dg.Failure(str(e)) from None
    columns = bundle["product_columns"]
    return dg.Output(
        {"path": str(directory), "version": bundle["version"], "count": bundle["count"], "fingerprint": fingerprint},
        metadata={
            "index_dir": dg.MetadataValue.path(str(directory)),
            "serves": dg.MetadataValue.path(ivf_merged_index["path"]),
            "bundle_version": bundle["version"],
            "count": bundle["count"],
            "product_columns": len(columns["files"]),
            "text_vectors": texts.height,
            "vector_space": bundle["vector_space"],
            "bytes_on_disk": sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()),
            "write_seconds": bundle["write_seconds"],
            "seconds": round(time.perf_counter() - started, 3),
            "lock_wait_seconds": round(lock_wait_seconds, 3),
            "encoder_fingerprint": fingerprint,
        },
    )
