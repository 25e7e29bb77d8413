"""The project's one Definitions: each domain folder contributes its own; shared wiring lives here."""

import dagster as dg

from pipelines.catalog import definitions as catalog
from pipelines.embeddings import definitions as embeddings
from pipelines.enrichment import definitions as enrichment
from pipelines.evaluation import definitions as evaluation
from pipelines.executors import executor_from_environment
from pipelines.export import definitions as export
from pipelines.index import definitions as index
from pipelines.jobs import ALL_JOBS
from pipelines.resources import default_resources


def build_defs(resource_overrides: dict | None = None) -> dg.Definitions:
    """All domains with the default resources; tests pass overrides (temp folders, a fake encoder).
    The executor (multiprocess, or a Dask cluster) comes from the environment: pipelines/executors.py."""
    resources = {**default_resources(), **(resource_overrides or {})}
    return dg.Definitions.merge(
        catalog.defs(),
        enrichment.defs(),
        embeddings.defs(),
        index.defs(),
        export.defs(),
        evaluation.defs(),
        dg.Definitions(jobs=ALL_JOBS, resources=resources, executor=executor_from_environment()),
    )


defs = build_defs()
