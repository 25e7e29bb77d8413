"""Jobs. Assets with different partitioning cannot share one run, so the main job is a sequence of
three runs (see pipelines/runner.py): catalog → per-shard vectors → alignment, projection and index."""

import dagster as dg

from pipelines.embeddings.partitions import catalog_shards

catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=dg.AssetSelection.groups("catalog", "enrichment"),
    description="Clean the catalog and enrich its descriptions.",
)
embed_shards_job = dg.define_asset_job(
    "embed_shards_job",
    selection=dg.AssetSelection.assets("product_image_features", "product_text_vectors"),
    partitions_def=catalog_shards,
    description="Encode new or changed products of the selected catalog shards (images and texts).",
)
alignment_job = dg.define_asset_job(
    "alignment_job",
    selection=dg.AssetSelection.assets("image_text_alignment"),
    description="Train the image→text projection head on the catalog's (image, text) pairs.",
)
index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets("image_text_alignment", "product_image_vectors", "product_index", "scene_index"),
    description="Align (or reuse the head), project image features, build or update the FAISS indexes "
    "(image/text space and the recommender's scene index).",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.groups("evaluation"),
    description="Score the latest scene index on the labeled dataset, sweep the scoring weights, publish the best "
    "(all logged to MLflow).",
)

# The CLI's `scene-matcher materialize` runs these in order as one "main job".
MAIN_JOB_STEPS = [catalog_job, embed_shards_job, index_job]
ALL_JOBS = [*MAIN_JOB_STEPS, alignment_job, evaluation_job]
