"""Embedding throughput of embed_shards_job (image features + text vectors, every catalog shard) on
the Dask executor with 1 and 2 workers, against the multiprocess executor, measured in one run.

  nice -n 10 .venv/bin/python bench/bench_dask.py                      # 400 IKEA products, default encoder
  .venv/bin/python bench/bench_dask.py --encoder fake --products 200    # quick check of the wiring

Each mode runs the job in the same way: `dagster job execute` of the project's Definitions, with the
executor chosen by environment (SCENE_MATCHER_EXECUTOR) and the shards split over `--runs`
concurrent runs, as a backfill would launch them. Catalog and enrichment are materialized
beforehand. Time: first run start to last run end, from the Dagster instance (the CLI's own
start-up is excluded). Each mode runs twice on the same storage, with the vectors deleted in
between. The first run is cold: new processes import the project and load the model. In the second,
Dask workers are still alive and keep the loaded model, while the multiprocess executor starts new
processes again. Dask workers get one thread each (the executor refuses more). The nanny also sets
OMP_NUM_THREADS=1, so torch computes on one core per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_embeddings import _copy_dataset, _table  # noqa: E402

from scene_assets import settings  # noqa: E402
from scene_assets.settings import PROJECT_ROOT  # noqa: E402

DAGSTER = str(Path(sys.executable).parent / "dagster")
MODES = {"multiprocess": 0, "dask, 1 worker": 1, "dask, 2 workers": 2}  # mode -> Dask workers (0: no cluster)


def _materialize_catalog(data: Path, catalog: Path, encoder: str) -> None:
    """Cleaned and enriched catalog, in process, into `data` (the runs measured start from there)."""
    import dagster as dg

    from pipelines.definitions import build_defs
    from pipelines.embeddings.resources import EncoderResource
    from pipelines.io_managers import PolarsParquetIOManager
    from pipelines.resources import CatalogSource, ProjectStorage

    os.environ[settings.ENV_DATA_DIR] = str(data)
    defs = build_defs(
        {
            "storage": ProjectStorage(data_dir=str(data)),
            "catalog_source": CatalogSource(path=str(catalog), fetch_remote_images=False),
            "encoder": EncoderResource(kind=encoder),
            "io_manager": PolarsParquetIOManager(base_dir=str(data / "warehouse")),
            "model_io_manager": dg.FilesystemIOManager(base_dir=str(data / "models_io")),
        }
    )
    with dg.instance_for_test() as instance:
        if not defs.resolve_job_def("catalog_job").execute_in_process(instance=instance).success:
            raise SystemExit("catalog_job failed")


def _run_embed_job(env: dict[str, str], shard_ranges: list[list[str]], label: str) -> None:
    """embed_shards_job as concurrent `dagster job execute` processes, one per shard range."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    processes = []
    for keys in shard_ranges:
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1], "bench": label}
        command = [DAGSTER, "job", "execute", "-m", "pipelines.definitions", "-a", "defs",
                   "-j", "embed_shards_job", "--tags", json.dumps(tags)]
        processes.append(subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    for process in processes:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{label}: embed_shards_job failed:\n{output[-4000:]}")


def _measure(instance, label: str) -> dict:
    """Wall time of the runs tagged `label` (first start to last end) and the products they encoded."""
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(tags={"bench": label}))
    seconds = max(r.end_time for r in records) - min(r.start_time for r in records)
    encoded = {}
    for asset in ("product_image_features", "product_text_vectors"):
        events = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
        run_ids = {r.dagster_run.run_id for r in records}
        # A ranged run writes the same run-wide metadata on each of its shards: count each run once.
        per_run = {e.run_id: e.asset_materialization.metadata["encoded"].value for e in events if e.run_id in run_ids}
        encoded[asset] = sum(per_run.values())
    return {
        "seconds": round(seconds, 2),
        "images": encoded["product_image_features"],
        "texts": encoded["product_text_vectors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=settings.ikea_dataset_dir() or settings.sample_dataset_dir())
    parser.add_argument("--products", type=int, default=400, help="first N products of the dataset")
    parser.add_argument("--encoder", choices=["default", "fake"], default="default")
    parser.add_argument("--runs", type=int, default=2, help="concurrent runs the shards are split over")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import dagster as dg
    import polars as pl

    from pipelines.embeddings.partitions import catalog_shards
    from scene_assets.dask_cluster import local_cluster

    keys = catalog_shards.get_partition_keys()
    runs = max(1, min(args.runs, len(keys)))
    shard_ranges = [keys[i * len(keys) // runs : (i + 1) * len(keys) // runs] for i in range(runs)]
    work = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    results: dict = {"dataset": str(args.dataset), "encoder": args.encoder, "runs": runs, "modes": {}}
    results["load_average_before"] = round(os.getloadavg()[0], 1)
    try:
        catalog = _copy_dataset(args.dataset, work / "catalog", args.products)
        products = pl.read_csv(catalog, infer_schema=False).height
        home = work / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        base = work / "base"
        _materialize_catalog(base, catalog, args.encoder)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for mode, workers in MODES.items():
                data = work / mode.replace(" ", "").replace(",", "-") / "data"
                shutil.copytree(base, data)
                env = {
                    **os.environ,
                    "PYTHONPATH": str(PROJECT_ROOT),
                    "DAGSTER_HOME": str(home),
                    settings.ENV_DATA_DIR: str(data),
                    settings.ENV_CATALOG: str(catalog),
                    "SCENE_MATCHER_ENCODER": args.encoder,
                    "SCENE_MATCHER_EXECUTOR": "dask" if workers else "multiprocess",
                    "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1",
                }
                results["modes"][mode] = {}
                cluster = local_cluster(workers, env=env, cwd=PROJECT_ROOT, log_dir=data.parent)
                with cluster if workers else nullcontext("") as address:
                    for attempt in ("cold", "warm"):
                        shutil.rmtree(data / "vectors", ignore_errors=True)
                        label = f"{mode} {attempt}"
                        print(f"running {label} ...", file=sys.stderr, flush=True)
                        _run_embed_job({**env, "SCENE_MATCHER_DASK_ADDRESS": address}, shard_ranges, label)
                        results["modes"][mode][attempt] = _measure(instance, label)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["load_average_after"] = round(os.getloadavg()[0], 1)
    baseline = {attempt: results["modes"]["multiprocess"][attempt]["seconds"] for attempt in ("cold", "warm")}
    rows = []
    for mode, by_attempt in results["modes"].items():
        for attempt, m in by_attempt.items():
            rate = products / m["seconds"]
            m["products_per_second"] = round(rate, 1)
            m["vs_multiprocess"] = round(baseline[attempt] / m["seconds"], 2)
            rows.append((f"{mode}, {attempt}", f"{m['seconds']:6.1f} s  {rate:6.1f} products/s  "
                         f"x{m['vs_multiprocess']:.2f} vs multiprocess  "
                         f"({m['images']} images, {m['texts']} texts encoded)"))
    title = (f"embed_shards_job, {products} products, encoder {args.encoder}, {len(keys)} shards in {runs} concurrent "
             f"run(s), {os.cpu_count()} cores")
    # The machine may be shared: a busy one slows every mode, but not equally.
    load = f"{results['load_average_before']} before, {results['load_average_after']} after"
    rows.append(("load average (1 min)", load))
    print(_table(title, rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
