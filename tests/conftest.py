from __future__ import annotations

import os
from pathlib import Path

import pytest

from scene_assets import settings

# Tests never reach a model hub: the default encoders load from packaged weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = settings.shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set {settings.ENV_SHARED_DIR})")
    return path


@pytest.fixture(scope="session")
def ikea_dir() -> Path:
    path = settings.ikea_dataset_dir()
    if path is None:
        pytest.skip(f"IKEA dataset not found (set {settings.ENV_IKEA_DIR})")
    return path


@pytest.fixture(scope="session")
def seed_catalog_csv(shared_dir: Path) -> Path:
    path = shared_dir / "seed_catalog" / "product-catalog.csv"
    if not path.is_file():
        pytest.skip(f"seed catalog not found at {path}")
    return path
