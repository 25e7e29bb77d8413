"""Export domain: top-k recommendations for a batch of scene photos as Parquet, CSV and an HTML gallery."""


import dagster as dg
from pydantic import Field

from pipelines.export.partitions import scene_batches
from pipelines.export.resources import SceneInbox
from pipelines.metadata import markdown_table
from pipelines.resources import ProjectStorage
from pipelines.serving import latest_learned_dir
from scene_assets.export import export_batch, read_batch_manifest
from scene_assets.ranking import RankingConfig, ScoringWeights
from scene_assets.recommender_bundle import load_served


class ExportConfig(dg.Config):
    k: int = Field(default=10, description="Products per scene.")
    weights_path: str = Field(default="", description="Scoring weights JSON (e.g. the sweep's best); empty: defaults.")
    fusion: str = Field(**RankingConfig.field_help("fusion"))
    diversity: str = Field(**RankingConfig.field_help("diversity"))
    mmr_lambda: float = Field(**RankingConfig.field_help("mmr_lambda"))
    category_cap: int = Field(**RankingConfig.field_help("category_cap"))
    collapse_variants: bool = Field(**RankingConfig.field_help("collapse_variants"))
    gallery: bool = Field(default=True, description="Also write the static HTML gallery with thumbnails.")
    use_learned: bool = Field(default=True, description="Attach the latest learned_scorer materialization, if any, "
                              "as `scene-matcher recommend` and `serve` do (pipelines/serving.py: one policy); a "
                              "scorer fitted on another encoder fails the run. false: rank without one.")

    def ranking(self) -> RankingConfig:
        """The ranking these settings ask for (validated against RankingConfig's limits)."""
        return RankingConfig(weights=ScoringWeights.from_file(self.weights_path) if self.weights_path else None,
                             fusion=self.fusion, diversity=self.diversity, mmr_lambda=self.mmr_lambda,
                             category_cap=self.category_cap, collapse_variants=self.collapse_variants)


@dg.asset(
    group_name="export",
    partitions_def=scene_batches,
    ins={"scene_index": dg.AssetIn(input_manager_key="model_io_manager")},
    description="Top-k products per scene photo of one export batch (the batch's scene list is fixed in its "
    "manifest): recommendations.parquet / .csv (scene, rank, product, score, confidence, factors), failures.csv "
    "for scenes that could not be read, and gallery/index.html to look at. Uses the scene_index this run "
    "depends on and the latest learned_scorer (as `recommend` and `serve` do), so each export records which "
    "index version and scorer produced it.",
    kinds={"parquet", "csv", "html"},
)
def scene_recommendations(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    scene_index: dict,
    storage: ProjectStorage,
    scene_inbox: SceneInbox,
) -> dg.MaterializeResult:
    batch = context.partition_key
    manifest = read_batch_manifest(scene_inbox.manifest_path(batch))
    ranking = config.ranking()
    scorer = latest_learned_dir(context.instance) if config.use_learned else None
    loaded = load_served(scene_index["path"], weights=ranking.weights, learned=None if scorer is None else scorer[0],
                         learned_fingerprint=None if scorer is None else scorer[1])
    out_dir = storage.path("exports", "batches", batch)
    result = export_batch(
        loaded.recommender,
        batch=batch,
        inbox=manifest["inbox"],
        files=[f["name"] for f in manifest["files"]],
        out_dir=out_dir,
        k=config.k,
        index_version=loaded.version,
        gallery=config.gallery,
        recommend_kwargs=ranking.recommend_options(),
    )
    for failure in result.failures.iter_rows(named=True):
        context.log.warning(f"skipped {failure['scene_path']}: {failure['reason']}")
    latencies = sorted(result.latencies_ms)
    metadata = {
        "scenes": result.scenes,
        "scenes_exported": result.scenes - result.failures.height,
        "scenes_failed": result.failures.height,
        "rows": result.recommendations.height,
        "seconds": round(result.seconds, 2),
        "p50_ms_per_scene": round(latencies[len(latencies) // 2], 1) if latencies else 0.0,
        "index_version": loaded.version,
        "learned_scorer": loaded.info["learned_scorer"] or "none",
        "parquet": dg.MetadataValue.path(str(result.paths["parquet"])),
        "csv": dg.MetadataValue.path(str(result.paths["csv"])),
        "preview": markdown_table(result.recommendations.select("scene", "rank", "product_id", "title", "score", "confidence")),
    }
    if "gallery" in result.paths:
        metadata["gallery"] = dg.MetadataValue.url(result.paths["gallery"].as_uri())
    if result.failures.height:
        metadata["failures"] = markdown_table(result.failures.select("scene_path", "reason"))
    return dg.MaterializeResult(metadata=metadata)
