"""Shared fixtures: where the shared data lives, the project's Definitions with fakes in a temp
folder, the main job materialized once on the embedded sample, and the default encoder loaded once."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scene_assets import settings

if TYPE_CHECKING:  # Dagster and the models load only in the sessions whose tests use these fixtures
    import dagster as dg

    from scene_assets.encoders import Encoder
    from tests.pipeline_fakes import MaterializedSample

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


@pytest.fixture()
def fake_defs(tmp_path: Path) -> Callable[..., dg.Definitions]:
    """The project's Definitions with the fake encoder writing under `tmp_path / "data"`:
    `fake_defs(catalog, **resources)` (tests/pipeline_fakes.py: defs_with_fakes)."""
    from tests.pipeline_fakes import defs_with_fakes

    return functools.partial(defs_with_fakes, tmp_path / "data")


@pytest.fixture(scope="session")
def materialized_sample(tmp_path_factory: pytest.TempPathFactory) -> MaterializedSample:
    """The main job materialized once per session on the embedded sample (fake encoder), for tests
    that only read its outputs; a test that runs more jobs takes `materialized_sample_copy`."""
    from tests.pipeline_fakes import materialize_sample

    return materialize_sample(tmp_path_factory.mktemp("materialized-sample") / "sample")


@pytest.fixture()
def materialized_sample_copy(materialized_sample: MaterializedSample, tmp_path: Path) -> MaterializedSample:
    """This test's own copy of the materialized sample (data and Dagster instance) to run jobs on."""
    return materialized_sample.copy_to(tmp_path / "materialized-sample")


@pytest.fixture(scope="session")
def default_encoder() -> Encoder:
    """The default encoder (offline packaged weights, ~3 s to load) on the CPU, loaded once per session.
    A test that changes it (a projection head) puts it back before it ends."""
    from scene_assets.encoders import EncoderSpec, build_encoder

    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    encoder.model  # noqa: B018 (loads the weights)
    return encoder


@pytest.fixture
def one_torch_thread():
    """The toy fits are tiny: one thread avoids oversubscription stalls on small CI machines."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
