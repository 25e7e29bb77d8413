"""The project's one Definitions: each domain folder contributes its own; shared wiring lives here."""

import os

import dagster as dg

from pipelines.catalog import definitions as catalog
from pipelines.embeddings import definitions as embeddings
from pipelines.embeddings.resources import EncoderResource
from pipelines.enrichment import definitions as enrichment
from pipelines.evaluation import definitions as evaluation
from pipelines.evaluation.resources import LabeledData, MlflowTracking
from pipelines.executors import executor_from_environment
from pipelines.export import definitions as export
from pipelines.export.resources import SceneInbox
from pipelines.feedback import definitions as feedback
from pipelines.feedback.resources import FeedbackDatabase
from pipelines.index import definitions as index
from pipelines.io_managers import PolarsParquetIOManager
from pipelines.jobs import ALL_JOBS
from pipelines.resources import CatalogSource, ProjectStorage
from scene_assets import settings


def default_resources() -> dict[str, object]:
    """Resources for the project's Definitions; environment variables override the defaults."""
    data_dir = (
        dg.EnvVar(settings.ENV_DATA_DIR) if os.environ.get(settings.ENV_DATA_DIR) else str(settings.data_dir())
    )
    catalog_path = dg.EnvVar(settings.ENV_CATALOG) if os.environ.get(settings.ENV_CATALOG) else ""
    mapping = os.environ.get(settings.ENV_CATALOG_MAPPING, "labeled")
    # The encoder by environment (the launchpad can override every field): kind, open_clip model name,
    # pretrained tag or local checkpoint path.
    encoder = EncoderResource(
        kind=os.environ.get("SCENE_MATCHER_ENCODER", "default"),
        model_name=os.environ.get("SCENE_MATCHER_ENCODER_MODEL", ""),
        pretrained=os.environ.get("SCENE_MATCHER_ENCODER_PRETRAINED", ""),
        device=os.environ.get("SCENE_MATCHER_DEVICE", "auto"),
    )
    return {
        "encoder": encoder,
        # Small Python objects (model heads' locations, index manifests) keyed by asset (and partition).
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(settings.data_dir() / "models_io")),
        "storage": ProjectStorage(data_dir=data_dir),
        "catalog_source": CatalogSource(path=catalog_path, mapping=mapping),
        "io_manager": PolarsParquetIOManager(base_dir=str(settings.data_dir() / "warehouse")),
        "scene_inbox": SceneInbox(),
        "labeled_data": LabeledData(),
        "mlflow_tracking": MlflowTracking(),
        "feedback_db": FeedbackDatabase(),
    }


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
        feedback.defs(),
        dg.Definitions(jobs=ALL_JOBS, resources=resources, executor=executor_from_environment()),
    )


defs = build_defs()
