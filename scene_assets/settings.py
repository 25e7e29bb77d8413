"""Where things live. One place names every path and environment variable the project reads.

Every path is overridable by an environment variable so Dagster workers, the CLI and the API server
(possibly on other machines) agree on the same locations without process-global state.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_DATA_DIR = "SCENE_MATCHER_DATA_DIR"
ENV_CATALOG = "SCENE_MATCHER_CATALOG"
ENV_CATALOG_MAPPING = "SCENE_MATCHER_CATALOG_MAPPING"
ENV_IKEA_DIR = "SCENE_MATCHER_IKEA_DIR"
ENV_SHARED_DIR = "SCENE_MATCHER_SHARED_DIR"
ENV_SCENES_INBOX = "SCENE_MATCHER_SCENES_INBOX"
ENV_EVAL_DATASET = "SCENE_MATCHER_EVAL_DATASET"
ENV_TRAIN_DATASET = "SCENE_MATCHER_TRAIN_DATASET"
ENV_MLFLOW_URI = "MLFLOW_TRACKING_URI"
ENV_MLFLOW_UI_URL = "SCENE_MATCHER_MLFLOW_UI_URL"


def data_dir() -> Path:
    """Root of everything the pipeline writes (git-ignored), default `<repo>/data`."""
    return Path(os.environ.get(ENV_DATA_DIR, PROJECT_ROOT / "data")).resolve()


def sample_dataset_dir() -> Path:
    """The embedded synthetic labeled dataset shipped with the repo."""
    return PROJECT_ROOT / "data" / "sample"


def shared_dir() -> Path:
    return Path(os.environ.get(ENV_SHARED_DIR, PROJECT_ROOT.parent / "shared")).resolve()


def ikea_dataset_dir() -> Path | None:
    """The real labeled IKEA dataset, if present (never part of the repo: non-commercial licence)."""
    configured = os.environ.get(ENV_IKEA_DIR)
    candidate = Path(configured) if configured else shared_dir() / "ikea"
    return candidate.resolve() if (candidate / "products.csv").is_file() else None


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", data_dir() / "dagster_home")).resolve()


def evaluation_dataset_dir() -> Path:
    """The labeled dataset the evaluation assets score: ``SCENE_MATCHER_EVAL_DATASET``, else the IKEA
    folder when present, else the embedded sample."""
    configured = os.environ.get(ENV_EVAL_DATASET)
    if configured:
        return Path(configured).expanduser().resolve()
    return ikea_dataset_dir() or sample_dataset_dir()


def training_dataset_dir() -> Path | None:
    """A separate labeled dataset to fit learned parts on (``SCENE_MATCHER_TRAIN_DATASET``); None
    means cross-validation within the evaluation dataset."""
    configured = os.environ.get(ENV_TRAIN_DATASET)
    return Path(configured).expanduser().resolve() if configured else None


def mlflow_tracking_uri() -> str:
    """One tracking store for Dagster workers, the CLI and ``mlflow ui``: ``MLFLOW_TRACKING_URI``, else a
    SQLite database under the data folder."""
    return os.environ.get(ENV_MLFLOW_URI) or f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    return data_dir() / "mlflow" / "artifacts"


def mlflow_ui_url() -> str:
    """Where users open `mlflow ui` (the links in Dagster metadata point there)."""
    return (os.environ.get(ENV_MLFLOW_UI_URL) or "http://127.0.0.1:5000").rstrip("/")
