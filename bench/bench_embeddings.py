"""Embedding throughput and incremental cost on a real labeled catalog (default: ../shared/ikea).

  .venv/bin/python bench/bench_embeddings.py                       # both parts, printed tables
  .venv/bin/python bench/bench_embeddings.py --json out.json --part throughput

Part 1, throughput: images/s end to end (JPEG decode on threads + EfficientNet-Lite0 trunk, the
expensive cached stage) and texts/s (MiniLM), default encoder, CPU.
Part 2, incremental: the real main job (three Dagster runs) on a private copy of the catalog, then
1 % of products get a new image and a new description and the job runs again. Both runs are
measured in this one process, so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402

from scene_assets import settings  # noqa: E402


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)] + [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def throughput(dataset: Path, limit: int | None, batch_size: int, trunk_runtime: str = "auto") -> dict:
    from scene_assets.catalog import load_catalog
    from scene_assets.embeddings import ImageFeatureStage, encode_image_rows
    from scene_assets.encoders import DefaultOptions, EncoderSpec, build_encoder
    from scene_assets.enrichment import enrich_catalog

    catalog = enrich_catalog(load_catalog(dataset / "products.csv", "labeled").products)
    with_image = catalog.filter(pl.col("image_status") == "ok")
    if limit:
        with_image = with_image.head(limit)
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu", batch_size=batch_size,
                                        options=DefaultOptions(trunk_runtime=trunk_runtime)))
    stage = ImageFeatureStage.of(encoder)
    started = time.perf_counter()
    encoder.encode_texts(["warm up"])
    encode_image_rows(with_image.head(batch_size), encoder.preprocess_image, stage.encode_batch, batch_size=batch_size)
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    positions, vectors, skipped = encode_image_rows(
        with_image, encoder.preprocess_image, stage.encode_batch, batch_size=batch_size, decode_workers=2
    )
    image_seconds = time.perf_counter() - started
    texts = catalog["embedding_text"].to_list()
    if limit:
        texts = texts[:limit]
    started = time.perf_counter()
    encoder.encode_texts(texts, batch_size=32)
    text_seconds = time.perf_counter() - started
    return {
        "images": len(positions),
        "images_skipped": len(skipped),
        "image_seconds": round(image_seconds, 2),
        "images_per_second": round(len(positions) / image_seconds, 1),
        "texts": len(texts),
        "text_seconds": round(text_seconds, 2),
        "texts_per_second": round(len(texts) / text_seconds, 1),
        "batch_size": batch_size,
        "model_load_and_warmup_seconds": round(load_seconds, 2),
        "torch_threads": __import__("torch").get_num_threads(),
        "trunk_runtime": encoder.trunk_runtime["trunk_runtime"],
    }


def _copy_dataset(dataset: Path, dest: Path, limit: int | None) -> Path:
    products = pl.read_csv(dataset / "products.csv", infer_schema=False)
    if limit:
        products = products.head(limit)
    (dest / "images" / "products").mkdir(parents=True)
    for image in products["image"].drop_nulls():
        if image:
            shutil.copyfile(dataset / image, dest / image)
    products.write_csv(dest / "products.csv")
    return dest / "products.csv"


def _change_products(catalog_csv: Path, share: float, seed: int = 0) -> list[str]:
    from PIL import Image, ImageEnhance

    products = pl.read_csv(catalog_csv, infer_schema=False)
    with_image = products.filter(pl.col("image").is_not_null() & (pl.col("image") != ""))
    rng = random.Random(seed)
    chosen = set(rng.sample(with_image["product_id"].to_list(), max(1, round(products.height * share))))
    for row in with_image.filter(pl.col("product_id").is_in(chosen)).iter_rows(named=True):
        path = catalog_csv.parent / row["image"]
        with Image.open(path) as image:
            ImageEnhance.Brightness(image.convert("RGB")).enhance(0.9).save(path, "JPEG", quality=90)
    products = products.with_columns(
        description=pl.when(pl.col("product_id").is_in(chosen))
        .then(pl.col("description").fill_null("") + " (new edition)")
        .otherwise(pl.col("description"))
    )
    products.write_csv(catalog_csv)
    return sorted(chosen)


def incremental(dataset: Path, limit: int | None, share: float) -> dict:
    import dagster as dg

    from pipelines.definitions import build_defs
    from pipelines.embeddings.resources import EncoderResource
    from pipelines.io_managers import PolarsParquetIOManager
    from pipelines.resources import CatalogSource, ProjectStorage
    from pipelines.runner import run_main_job

    work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    try:
        catalog_csv = _copy_dataset(dataset, work / "catalog", limit)
        data = work / "data"
        os.environ[settings.ENV_DATA_DIR] = str(data)  # caches (image checks) live beside the outputs
        defs = build_defs(
            {
                "storage": ProjectStorage(data_dir=str(data)),
                "catalog_source": CatalogSource(path=str(catalog_csv), fetch_remote_images=False),
                "encoder": EncoderResource(kind="default", device="cpu"),
                "io_manager": PolarsParquetIOManager(base_dir=str(data / "warehouse")),
                "model_io_manager": dg.FilesystemIOManager(base_dir=str(data / "models_io")),
            }
        )
        with dg.instance_for_test() as instance:

            def step_seconds(summary: dict) -> float:
                # Time inside the steps (asset code + IO), without Dagster's per-run start-up.
                return sum(
                    (stat.end_time or 0) - (stat.start_time or 0)
                    for run_id in summary["run_ids"]
                    for stat in instance.get_run_step_stats(run_id)
                )

            started = time.perf_counter()
            full = run_main_job(instance=instance, defs=defs)
            full_seconds = time.perf_counter() - started
            changed = _change_products(catalog_csv, share)
            started = time.perf_counter()
            again = run_main_job(instance=instance, defs=defs)
            incremental_seconds = time.perf_counter() - started
            full_steps, incremental_steps = step_seconds(full), step_seconds(again)
            incremental_by_step = {
                stat.step_key: round((stat.end_time or 0) - (stat.start_time or 0), 3)
                for run_id in again["run_ids"]
                for stat in instance.get_run_step_stats(run_id)
            }
        if not (full["success"] and again["success"]):
            raise SystemExit("main job failed:\n" + "\n".join(full["lines"] + again["lines"]))
        return {
            "products": pl.read_csv(catalog_csv, infer_schema=False).height,
            "changed_products": len(changed),
            "full_seconds": round(full_seconds, 2),
            "incremental_seconds": round(incremental_seconds, 2),
            "ratio": round(incremental_seconds / full_seconds, 4),
            "full_step_seconds": round(full_steps, 2),
            "incremental_step_seconds": round(incremental_steps, 2),
            "step_ratio": round(incremental_steps / full_steps, 4),
            "incremental_seconds_by_step": incremental_by_step,
            "incremental_run_lines": again["lines"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=settings.ikea_dataset_dir())
    parser.add_argument("--part", choices=["throughput", "incremental", "all"], default="all")
    parser.add_argument("--limit", type=int, help="use only the first N products")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--changed-share", type=float, default=0.01)
    parser.add_argument("--runtimes", default="torch,onnxruntime",
                        help="trunk runtimes to time one after the other in this process (throughput part)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.dataset is None or not (args.dataset / "products.csv").is_file():
        parser.error(f"no labeled dataset at {args.dataset}; pass --dataset or set {settings.ENV_IKEA_DIR}")
    results: dict = {"dataset": str(args.dataset)}
    if args.part in ("throughput", "all"):
        results["throughput"] = runs = {
            runtime: throughput(args.dataset, args.limit, args.batch_size, runtime)
            for runtime in args.runtimes.split(",")
        }
        first = next(iter(runs.values()))
        title = (f"Embedding throughput (default encoder, CPU, JPEG decode on threads included), "
                 f"{os.cpu_count()} cores, torch threads {first['torch_threads']}")
        print(title + "\n" + "-" * len(title))
        print(f"{'trunk runtime':<14} {'images':>7} {'images/s':>9} {'texts/s':>8} {'load + warm-up s':>17}")
        for t in runs.values():
            print(f"{t['trunk_runtime']:<14} {t['images']:>7} {t['images_per_second']:>9} "
                  f"{t['texts_per_second']:>8} {t['model_load_and_warmup_seconds']:>17}")
        print(f"(images: batch {first['batch_size']}, {first['images_skipped']} skipped; texts: MiniLM, batch 32)")
        print()
    if args.part in ("incremental", "all"):
        results["incremental"] = inc = incremental(args.dataset, args.limit, args.changed_share)
        print(
            _table(
                "Incremental main job (3 Dagster runs each)",
                [
                    ("products", str(inc["products"])),
                    ("full build", f"{inc['full_seconds']} s"),
                    (f"after changing {inc['changed_products']} products", f"{inc['incremental_seconds']} s"),
                    ("ratio, wall clock", f"{inc['ratio']:.1%}"),
                    ("inside steps: full / after change", f"{inc['full_step_seconds']} s / {inc['incremental_step_seconds']} s"),
                    ("ratio, inside steps", f"{inc['step_ratio']:.1%}"),
                ],
            )
        )
        for step, seconds in inc["incremental_seconds_by_step"].items():
            print(f"  {step:<45} {seconds:7.3f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
