"""Embeddings domain: per-shard, incremental vector files for product images and texts, and the
alignment head that maps image features into the text space."""


import time
from pathlib import Path

import dagster as dg
from pydantic import Field
import numpy as np
import polars as pl

from pipelines.embeddings import checks
from pipelines.embeddings.partitions import catalog_shards
from pipelines.embeddings.resources import EncoderResource
from pipelines.metadata import markdown_table
from pipelines.resources import ProjectStorage
from scene_assets.catalog import content_hash
from scene_assets.progress import progress_bar
from scene_assets.alignment import AlignmentResult, save_projection, train_alignment
from scene_assets.embeddings import (
    ImageFeatureStage,
    encode_image_rows,
    read_vectors,
    select_shard,
    update_vector_file,
    vector_matrix,
    vectors_frame,
)
from scene_assets.indexes.store import write_atomic_parquet

GROUP = "embeddings"
# Dagster runs that cover several shards (one ranged run) process them one after another in one
# step; a backfill with one run per shard spreads them over processes or cluster pods instead.
BACKFILL = dg.BackfillPolicy.single_run()


def vector_path(storage: ProjectStorage, name: str, shard_key: str) -> Path:
    return storage.path("vectors", name) / f"{shard_key}.parquet"


def _shard_metadata(stats_by_shard: dict[str, object], extra: dict | None = None) -> dict:
    totals: dict[str, float] = {}
    for stats in stats_by_shard.values():
        for key, value in stats.as_metadata().items():
            totals[key] = totals.get(key, 0) + value
    seconds = totals.get("seconds", 0.0)
    totals["encoded_per_second"] = round(totals.get("encoded", 0) / seconds, 1) if seconds else 0.0
    skipped = pl.concat([s.skipped_reasons for s in stats_by_shard.values()])
    metadata = {key: (int(v) if float(v).is_integer() and key != "seconds" else round(float(v), 2)) for key, v in totals.items()}
    metadata["shards"] = ", ".join(stats_by_shard)
    if skipped.height:
        metadata["skipped_products"] = markdown_table(skipped, limit=20, max_chars=120)
    return {**metadata, **(extra or {})}


def _update_shards(context: dg.AssetExecutionContext, storage: ProjectStorage, encoder: EncoderResource,
                   vector_set: str, asset_name: str, catalog: pl.DataFrame, fingerprint: str, dim: int,
                   encoder_for, extra_metadata=None) -> dg.MaterializeResult:
    """Bring each selected shard's vector file up to date with `catalog` (only new or changed rows are
    encoded, by `encoder_for(shard, rows) -> (encode, on_done)`), then report per-shard counts and the check."""
    stats, checked = {}, {}
    for shard in context.partition_keys:
        wanted = select_shard(catalog, shard)
        encode, on_done = encoder_for(shard, wanted)
        stored, stats[shard] = update_vector_file(
            vector_path(storage, vector_set, shard), wanted, fingerprint, encode, dim=dim,
            chunk_size=encoder.commit_every,
        )
        if on_done is not None:
            on_done()
        checked[shard] = (stored, wanted, stats[shard].skipped_reasons)
    return dg.MaterializeResult(
        # extra_metadata is read after encoding: e.g. what ran the model, known once it is loaded
        metadata=_shard_metadata(stats, {"fingerprint": fingerprint, "dim": dim, **(extra_metadata() if extra_metadata else {})}),
        check_results=[checks.vectors_match_catalog(asset_name, checked, fingerprint)],
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=catalog_shards,
    backfill_policy=BACKFILL,
    ins={"enriched_catalog": dg.AssetIn()},
    description="Cached image features per product (the CNN trunk for the default encoder, the final "
    "image vector otherwise). Incremental: only new or changed products, or a changed encoder, are "
    "encoded; removed products are dropped. Products without a readable image are skipped and listed.",
    kinds={"pytorch", "parquet"},
    check_specs=[checks.vectors_check_spec("product_image_features")],
)
def product_image_features(
    context: dg.AssetExecutionContext,
    enriched_catalog: pl.DataFrame,
    encoder: EncoderResource,
    storage: ProjectStorage,
) -> dg.MaterializeResult:
    model = encoder.encoder()
    stage = ImageFeatureStage.of(model)
    # Image features depend on the image bytes only: a text edit must not re-run the CNN.
    with_image = enriched_catalog.filter(pl.col("image_status") == "ok").with_columns(
        content_hash=pl.col("image_sha256")
    )

    def encoder_for(shard: str, rows: pl.DataFrame):
        bar = progress_bar(rows.height, f"image features {shard}", unit="img")

        def encode(batch: pl.DataFrame):
            return encode_image_rows(
                batch,
                model.preprocess_image,
                stage.encode_batch,
                batch_size=encoder.batch_size,
                decode_workers=encoder.decode_workers,
                progress=bar.update,
            )

        return encode, bar.close

    return _update_shards(
        context, storage, encoder, "image_features", "product_image_features", with_image, stage.fingerprint,
        stage.dim, encoder_for, extra_metadata=lambda: {"image_model_runtime": model.runtime_description()},
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=catalog_shards,
    backfill_policy=BACKFILL,
    ins={"enriched_catalog": dg.AssetIn()},
    description="Text vector per product from its enriched embedding text. Incremental like the image features.",
    kinds={"pytorch", "parquet"},
    check_specs=[checks.vectors_check_spec("product_text_vectors")],
)
def product_text_vectors(
    context: dg.AssetExecutionContext,
    enriched_catalog: pl.DataFrame,
    encoder: EncoderResource,
    storage: ProjectStorage,
) -> dg.MaterializeResult:
    model = encoder.encoder()
    # The text vector depends on the embedding text only. sha256, not polars' hash(), which may
    # change between polars releases and would silently re-encode everything.
    catalog = enriched_catalog.with_columns(
        content_hash=pl.Series([content_hash(text) for text in enriched_catalog["embedding_text"]], dtype=pl.String)
    )

    def encoder_for(shard: str, rows: pl.DataFrame):
        def encode(batch: pl.DataFrame):
            return list(range(batch.height)), model.encode_texts(batch["embedding_text"].to_list()), []

        return encode, None

    return _update_shards(
        context, storage, encoder, "text", "product_text_vectors", catalog, model.text_fingerprint(), model.dim,
        encoder_for,
    )


def read_all_shards(storage: ProjectStorage, name: str, columns: list[str] | None = None) -> pl.DataFrame:
    """All shards of a vector set; `columns` reads only those (Parquet column projection)."""
    paths = [vector_path(storage, name, key) for key in catalog_shards.get_partition_keys()]
    frames = [pl.read_parquet(path, columns=columns) for path in paths if path.is_file()]
    frames = [f for f in frames if f is not None and f.height]
    if not frames:
        raise dg.Failure(f"no {name} vectors found under {storage.path('vectors', name)}: materialize all shards first")
    return pl.concat(frames, how="vertical_relaxed").sort("product_id")


class AlignmentConfig(dg.Config):
    epochs: int = Field(default=40, description="Passes over the (image, text) pairs of the catalog.")
    learning_rate: float = Field(default=1e-3, description="AdamW learning rate of the projection head.")
    batch_size: int = Field(default=128, description="Pairs per contrastive batch (more negatives with more).")
    head: str = Field(default="mlp", description="mlp (measured better) or linear.")
    seed: int = Field(default=0, description="Seed for initialisation and batching.")
    retrain_changed_share: float = Field(
        default=0.05,
        description="Keep the previous head while fewer than this share of (image, text) pairs changed since "
        "it was trained; a new head changes every image vector and so rebuilds the whole index.",
    )
    force_retrain: bool = Field(default=False, description="Train a new head even if the pairs barely changed.")


def _previous_head(context: dg.AssetExecutionContext, trunk_fingerprint: str, config: AlignmentConfig):
    """The head this asset produced last time (found through Dagster's event log, not by listing
    files), if it was trained on the same trunk with the same settings and its files still exist."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "head_path" not in metadata:
        return None
    head_path = Path(metadata["head_path"].value)
    pairs_path = head_path.with_suffix(".pairs.parquet")
    if not head_path.is_file() or not pairs_path.is_file():
        return None
    output = {
        "kind": config.head,
        "path": str(head_path),
        "pairs_path": str(pairs_path),
        "sha256": str(metadata["head_sha256"].value) if "head_sha256" in metadata else "",
        "trunk_fingerprint": trunk_fingerprint,
        "config": config.model_dump(exclude={"force_retrain", "retrain_changed_share"}),
    }
    recorded = metadata.get("training_config")
    if recorded is None or recorded.value != {**output["config"], "trunk_fingerprint": trunk_fingerprint}:
        return None
    return output, pl.read_parquet(pairs_path)


@dg.asset(
    group_name=GROUP,
    deps=[product_image_features, product_text_vectors],
    io_manager_key="model_io_manager",
    description="Projection head (image trunk features → text space) trained contrastively (InfoNCE) on "
    "the catalog's own (product image, product text) pairs, both towers frozen. Only the default encoder "
    "needs one; other encoders already embed images and texts in one space.",
    kinds={"pytorch"},
)
def image_text_alignment(
    context: dg.AssetExecutionContext, config: AlignmentConfig, encoder: EncoderResource, storage: ProjectStorage
) -> dg.Output[dict]:
    model = encoder.encoder()
    stage = ImageFeatureStage.of(model)
    if stage.project is None:
        return dg.Output({"kind": "identity"}, metadata={"trained": False, "reason": f"encoder kind {encoder.kind} needs no alignment"})
    # Pairs are identified by (product, image bytes, text): the head's training set. Only the keys
    # are read to decide whether the previous head still fits; vectors only when training.
    key_columns = ["product_id", "content_hash", "fingerprint"]
    image_keys = read_all_shards(storage, "image_features", key_columns).filter(pl.col("fingerprint") == stage.fingerprint)
    text_keys = read_all_shards(storage, "text", key_columns)
    pair_keys = image_keys.select("product_id", pl.col("content_hash").alias("image_hash")).join(
        text_keys.select("product_id", pl.col("content_hash").alias("text_hash")), on="product_id"
    )
    if pair_keys.height < 8:
        raise dg.Failure(f"only {pair_keys.height} products have both an image and a text vector; alignment needs at least 8")
    previous = _previous_head(context, stage.fingerprint, config)
    if previous is not None and not config.force_retrain:
        previous_output, previous_keys = previous
        unchanged = pair_keys.join(previous_keys, on=["product_id", "image_hash", "text_hash"], how="semi").height
        changed_share = 1.0 - unchanged / max(pair_keys.height, 1)
        if changed_share < config.retrain_changed_share:
            return dg.Output(
                previous_output,
                metadata={
                    "head_path": dg.MetadataValue.path(previous_output["path"]),
                    "trained": False,
                    "reused": True,
                    "changed_share": round(changed_share, 4),
                    "pairs": pair_keys.height,
                    "head_sha256": previous_output["sha256"],
                    "training_config": dg.MetadataValue.json({**previous_output["config"], "trunk_fingerprint": stage.fingerprint}),
                },
            )
    features = read_all_shards(storage, "image_features").filter(pl.col("fingerprint") == stage.fingerprint)
    texts = read_all_shards(storage, "text")
    pairs = features.join(texts.select("product_id", pl.col("vector").alias("text_vector")), on="product_id")
    started = time.perf_counter()
    result: AlignmentResult = train_alignment(
        vector_matrix(pairs),
        pairs["text_vector"].to_numpy().astype(np.float32).reshape(pairs.height, -1),
        epochs=config.epochs,
        lr=config.learning_rate,
        batch_size=config.batch_size,
        seed=config.seed,
        head=config.head,
    )
    elapsed = time.perf_counter() - started
    for epoch, loss in enumerate(result.loss_curve):
        context.log.debug(f"epoch {epoch}: loss {loss:.4f}")
    curve = pl.DataFrame({"epoch": list(range(len(result.loss_curve))), "loss": result.loss_curve})
    # Content-addressed file: a new head never overwrites one that an index was built with.
    path = save_projection(result, storage.path("models", "alignment") / f"head-{result.sha256()[:16]}.pt")
    pairs_path = path.with_suffix(".pairs.parquet")
    write_atomic_parquet(pair_keys, pairs_path)
    return dg.Output(
        {
            "kind": config.head,
            "path": str(path),
            "pairs_path": str(pairs_path),
            "sha256": result.sha256(),
            "trunk_fingerprint": stage.fingerprint,
            "config": config.model_dump(exclude={"force_retrain", "retrain_changed_share"}),
        },
        metadata={
            "head_path": dg.MetadataValue.path(str(path)),
            "trained": True,
            "pairs": pairs.height,
            "initial_loss": round(result.initial_loss, 4),
            "final_loss": round(result.final_loss, 4),
            "seconds": round(elapsed, 2),
            "head_sha256": result.sha256(),
            "training_config": dg.MetadataValue.json({**config.model_dump(exclude={"force_retrain", "retrain_changed_share"}), "trunk_fingerprint": stage.fingerprint}),
            "loss_curve": markdown_table(curve, limit=len(result.loss_curve)),
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[product_image_features],
    ins={"image_text_alignment": dg.AssetIn(input_manager_key="model_io_manager")},
    description="Image vector per product in the shared image/text space: cached features passed through "
    "the trained alignment head (one matrix product, no CNN work, so one step for all shards; files "
    "stay per shard and unchanged shards are not rewritten). Fingerprint = encoder + head.",
    kinds={"numpy", "parquet"},
)
def product_image_vectors(
    context: dg.AssetExecutionContext,
    image_text_alignment: dict,
    encoder: EncoderResource,
    storage: ProjectStorage,
) -> dg.MaterializeResult:
    stage = ImageFeatureStage.of(encoder.encoder())
    model = encoder.encoder(projection_path=image_text_alignment.get("path"))
    projected = ImageFeatureStage.of(model)
    fingerprint = model.fingerprint()
    counts, rewritten = {}, 0
    started = time.perf_counter()
    for shard in catalog_shards.get_partition_keys():
        features = read_vectors(vector_path(storage, "image_features", shard))
        if features is None:
            raise dg.Failure(f"{shard}: image features missing; materialize product_image_features for it first")
        features = features.filter(pl.col("fingerprint") == stage.fingerprint)
        counts[shard] = features.height
        current = read_vectors(vector_path(storage, "image", shard))
        if (
            current is not None
            and current.height == features.height
            and (current.height == 0 or set(current["fingerprint"]) == {fingerprint})
            and current.select("product_id", "content_hash").equals(features.select("product_id", "content_hash"))
        ):
            continue  # same products, same images, same head: the file is already right
        matrix = vector_matrix(features)
        vectors = projected.project(matrix) if projected.project is not None and features.height else matrix
        frame = vectors_frame(features["product_id"], features["content_hash"], fingerprint, vectors) if features.height else features
        write_atomic_parquet(frame, vector_path(storage, "image", shard))
        rewritten += 1
    return dg.MaterializeResult(
        metadata={
            "vectors": sum(counts.values()),
            "shards_rewritten": rewritten,
            "per_shard": dg.MetadataValue.json(counts),
            "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
