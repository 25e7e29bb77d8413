import dagster as dg

main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.groups("catalog", "enrichment"),
    description="Everything from the raw catalog to the searchable index, on the configured catalog.",
)
