"""The project's Definitions with fakes in a temp folder: a tiny catalog writer, the Definitions
writing under one folder with the fake encoder, the main job materialized once on the embedded
sample, and the main job in a subprocess slowed down. Plain functions, so module-scoped fixtures
and child processes use them too; tests/conftest.py turns them into fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from PIL import Image

from pipelines.definitions import build_defs
from pipelines.embeddings.resources import EncoderResource
from pipelines.io_managers import PolarsParquetIOManager
from pipelines.resources import CatalogSource, ProjectStorage
from pipelines.runner import run_main_job
from scene_assets import settings

SAMPLE_CATALOG = settings.sample_dataset_dir() / "products.csv"
HEADER = "product_id,name,type,color,size,description,image\n"
COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200), (200, 40, 200)]


def write_tiny_catalog(root: Path, rows: list[tuple]) -> Path:
    """`root/products.csv` of `rows` (product_id, name, type, description, colour or None), each
    coloured product with a 48×48 JPEG under `root/images`."""
    lines = [HEADER]
    for product_id, name, kind, description, color in rows:
        image = ""
        if color is not None:
            image = f"images/{product_id}.jpg"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 48), color).save(root / image, "JPEG")
        lines.append(f'{product_id},{name},"{kind}",White,40 cm,"{description}",{image}\n')
    path = root / "products.csv"
    path.write_text("".join(lines))
    return path


def tiny_catalog_rows() -> list[tuple]:
    """Eleven products of six kinds with an image each, and one without."""
    kinds = ["Chair", "Table", "Vase", "Pendant lamp", "Rug, low pile", "Three-seat sofa"]
    rows = [(f"p{i:02d}", f"NAME{i}", kinds[i % 6], f"A {kinds[i % 6].lower()} number {i}", COLORS[i % 6]) for i in range(11)]
    rows.append(("p11", "NOIMG", "Cushion", "A cushion with no photo", None))
    return rows


def fake_encoder(**fields: object) -> EncoderResource:
    """The 16-d fake encoder's resource; `fields` replace or add to its own (batch_size, ...)."""
    return EncoderResource(**{"kind": "fake", "dim": 16, **fields})


def defs_with_fakes(data: Path, catalog: Path, **resources: object) -> dg.Definitions:
    """The project's Definitions writing everything under `data`, reading `catalog` (local images
    only), with the 16-d fake encoder; `resources` replace or add to these (another encoder, an
    inbox, MLflow tracking)."""
    return build_defs(
        {
            "storage": ProjectStorage(data_dir=str(data)),
            "catalog_source": CatalogSource(path=str(catalog), fetch_remote_images=False),
            "encoder": fake_encoder(),
            "io_manager": PolarsParquetIOManager(base_dir=str(data / "warehouse")),
            "model_io_manager": dg.FilesystemIOManager(base_dir=str(data / "models_io")),
            **resources,
        }
    )


@dataclass(frozen=True)
class MaterializedSample:
    """The main job's outputs on the embedded sample with the fake encoder: `data/` and the Dagster
    instance's home `dagster_home/` under `root`."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def defs(self, **resources: object) -> dg.Definitions:
        """The Definitions the main job ran with; `resources` replace or add to them."""
        return defs_with_fakes(self.data, SAMPLE_CATALOG, **resources)

    def instance(self) -> AbstractContextManager[dg.DagsterInstance]:
        """The instance holding the main job's runs (DAGSTER_HOME points at it while open)."""
        return dg.instance_for_test(temp_dir=str(self.home))

    def copy_to(self, root: Path) -> MaterializedSample:
        """A copy to run more jobs on. Paths recorded by the main job (the index and bundle folders in
        its materializations and stored outputs) still name the original's files, which are only read."""
        shutil.copytree(self.root, root)
        return MaterializedSample(root)


def materialize_sample(root: Path) -> MaterializedSample:
    """The main job on the embedded sample with the fake encoder, into `root`."""
    sample = MaterializedSample(root)
    sample.home.mkdir(parents=True)
    with sample.instance() as instance:
        summary = run_main_job(instance=instance, defs=sample.defs())
    assert summary["success"], summary["lines"]
    return sample


SLOW_MAIN_JOB = """
import json, sys, time
from pathlib import Path
import dagster as dg
from scene_assets.encoders import FakeEncoder
from pipelines.runner import run_main_job
from tests.pipeline_fakes import defs_with_fakes, fake_encoder

root, seconds_per_image, encoder = Path(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
fast = FakeEncoder.encode_image_tensors
def slow(self, batch):  # a model at work
    time.sleep(seconds_per_image * len(batch))
    return fast(self, batch)
FakeEncoder.encode_image_tensors = slow
defs = defs_with_fakes(root / "data", root / "catalog" / "products.csv",
                       encoder=fake_encoder(**encoder))
with dg.DagsterInstance.get() as instance:
    summary = run_main_job(instance=instance, defs=defs)
print("SUMMARY " + json.dumps(summary))
"""


def start_slow_main_job(root: Path, dagster_home: Path, seconds_per_image: float, **encoder: object) -> subprocess.Popen:
    """The main job in its own process (and process group) on `root` (catalog/products.csv, data/) and
    `dagster_home`, with the 16-d fake encoder (`encoder`: other fields of its resource) slowed to
    `seconds_per_image`; it prints `SUMMARY {json}` last."""
    env = {**os.environ, "PYTHONPATH": str(settings.PROJECT_ROOT), "DAGSTER_HOME": str(dagster_home)}
    return subprocess.Popen([sys.executable, "-c", SLOW_MAIN_JOB, str(root), str(seconds_per_image), json.dumps(encoder)],
                            cwd=settings.PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
