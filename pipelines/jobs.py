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
    selection=dg.AssetSelection.assets("image_text_alignment", "product_image_vectors", "scene_index"),
    description="Align (or reuse the head), project image features into the image/text space (the sharded "
    "index's input), build or update the recommender's scene index.",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.groups("evaluation"),
    description="Score the latest scene index on the labeled dataset, sweep the scoring weights, publish the best, "
    "sweep the re-rank options (all logged to MLflow).",
)

# Sharded IVF-PQ index for catalogs past memory (docs/sharded-index.md), not in the main job: run
# these three in order after the image vectors exist (the shard step is partitioned, so separate runs).
ivf_train_job = dg.define_asset_job(
    "ivf_train_job",
    selection=dg.AssetSelection.assets("ivf_trained_index"),
    description="Choose IVF-PQ parameters from the memory budget and latency target, train once on a sample.",
)
ivf_shards_job = dg.define_asset_job(
    "ivf_shards_job",
    selection=dg.AssetSelection.assets("ivf_shard_index"),
    partitions_def=catalog_shards,
    description="Add each selected shard's image vectors to a copy of the trained index (unchanged shards are kept).",
)
ivf_merge_job = dg.define_asset_job(
    "ivf_merge_job",
    selection=dg.AssetSelection.assets("ivf_merged_index", "two_stage_bundle"),
    description="Merge the shard indexes on disk into the memory-mapped serving index, and write the two-stage bundle "
    "that serves it (scene-matcher serve --index <two_stage_bundle path>).",
)
IVF_INDEX_STEPS = [ivf_train_job, ivf_shards_job, ivf_merge_job]

# The CLI's `scene-matcher materialize` runs these in order as one "main job".
feedback_retrain_job = dg.define_asset_job(
    "feedback_retrain_job",
    selection=dg.AssetSelection.assets("feedback_pairs", "ab_report", "feedback_scorer"),
    description="From every feedback_events partition read so far: the training pairs, the A/B report, and the learned "
    "scorer retrained on labels + feedback with its blocking check on the labeled held-out folds (needs "
    "evaluation_job's scene_evaluation). The feedback_sensor reads new events into feedback_events partitions.",
)

MAIN_JOB_STEPS = [catalog_job, embed_shards_job, index_job]
ALL_JOBS = [*MAIN_JOB_STEPS, alignment_job, evaluation_job, *IVF_INDEX_STEPS, feedback_retrain_job]
