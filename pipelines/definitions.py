"""The project's one Definitions: each domain folder contributes its own; shared policy lives here."""

import dagster as dg

from pipelines.catalog import definitions as catalog
from pipelines.enrichment import definitions as enrichment
from pipelines.jobs import main_job
from pipelines.resources import default_resources

defs = dg.Definitions.merge(
    catalog.defs(),
    enrichment.defs(),
    dg.Definitions(jobs=[main_job], resources=default_resources()),
)
