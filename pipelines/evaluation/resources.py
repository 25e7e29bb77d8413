"""Resources of the evaluation domain: the MLflow tracking store and the labeled datasets."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from evaluation.tracking import MlflowLogger
from scene_assets import settings


class MlflowTracking(dg.ConfigurableResource):
    """An MLflow tracking store shared by Dagster workers, the CLI and ``mlflow ui`` (a thin wrapper of our
    own: the dagster-mlflow package lags both libraries and sets process-global MLflow state)."""

    tracking_uri: str = Field(
        default="",
        description="MLflow tracking URI. Empty: $MLFLOW_TRACKING_URI, else sqlite:///<data_dir>/mlflow/mlflow.db.",
    )
    experiment: str = Field(default="scene-matcher", description="Experiment the runs are logged to.")
    artifact_root: str = Field(default="", description="Artifact folder for a new experiment. Empty: <data_dir>/mlflow/artifacts.")
    ui_url: str = Field(
        default="",
        description="Base URL of `mlflow ui`, for the links in Dagster metadata. Empty: $SCENE_MATCHER_MLFLOW_UI_URL, "
        "else http://127.0.0.1:5000.",
    )

    def uri(self) -> str:
        return self.tracking_uri or settings.mlflow_tracking_uri()

    def logger(self, experiment: str | None = None) -> MlflowLogger:
        """A logger for ``experiment`` (default: this resource's) in this tracking store."""
        root = Path(self.artifact_root) if self.artifact_root else settings.mlflow_artifact_root()
        return MlflowLogger.local(self.uri(), experiment or self.experiment, root)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        base = self.ui_url.rstrip("/") or settings.mlflow_ui_url()
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


class LabeledData(dg.ConfigurableResource):
    """Labeled scene/product datasets (the format of ../shared/ikea/README.md)."""

    dataset: str = Field(
        default="",
        description="Folder scored by the evaluation. Empty: $SCENE_MATCHER_EVAL_DATASET, else the folder of the "
        "configured catalog when it holds scenes.csv, else ../shared/ikea, else the embedded sample.",
    )
    train_dataset: str = Field(
        default="",
        description="Folder whose labels the learned parts are fitted on. Empty: $SCENE_MATCHER_TRAIN_DATASET, "
        "else cross-validation folds over the evaluated dataset's scenes.",
    )

    def dataset_dir(self, catalog_path: Path | None = None) -> Path:
        import os

        if self.dataset:
            return Path(self.dataset).expanduser().resolve()
        if os.environ.get(settings.ENV_EVAL_DATASET):
            return settings.evaluation_dataset_dir()
        if catalog_path is not None and (catalog_path.parent / "scenes.csv").is_file():
            return catalog_path.parent.resolve()
        return settings.evaluation_dataset_dir()

    def train_dir(self) -> Path | None:
        if self.train_dataset:
            return Path(self.train_dataset).expanduser().resolve()
        return settings.training_dataset_dir()
