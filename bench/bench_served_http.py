"""The served-path row of the evaluation against a real `scene-matcher serve` process, on a real dataset (issue #22).

  .venv/bin/python bench/bench_served_http.py                          # $SCENE_MATCHER_IKEA_DIR or ../shared/ikea
  .venv/bin/python bench/bench_served_http.py --dataset DIR --work /tmp/served --json /tmp/served.json

tests/test_served_http.py proves the procedure on the embedded sample with the fake encoder; this runs it on
any labeled dataset folder with the real default encoder:

1. the scenes are split by a seeded shuffle into a training (4/5) and a scored (1/5) dataset folder; both
   link the dataset's products.csv and images (nothing is copied; everything is written under --work or a
   temporary folder);
2. the main job (`python -m faces.cli materialize --catalog <scored>/products.csv`, its own DAGSTER_HOME and
   data folder) builds the catalog's scene_index bundle;
3. ``evaluate(scored, train=training, recommender=<that bundle>)`` gives the served-path row (``served.*``)
   and the fitted scorer, which is saved;
4. `scene-matcher serve --index BUNDLE --learned SCORER` is started on a free loopback port and every scored
   scene's image is POSTed to /match with k = served_k; recall@10/50, ndcg@10 and mrr are computed from its
   answers with evaluation.metrics.

The table shows both rows, their difference (the issue's bar: 0.005) and how many scenes' lists are
identical to the served path's own (serve_scenes with the fitted scorer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serving_process import match_answers  # noqa: E402

HEADLINE = ("recall@10", "recall@50", "ndcg@10", "mrr")
TOLERANCE = 0.005  # issue #22's bar


def split_dataset(dataset: Path, root: Path, seed: int, scenes_fraction: float, labeled_products_only: bool) -> tuple[Path, Path]:
    """Training (4/5 of the shuffled scenes) and scored (1/5) dataset folders under `root`, sharing the
    dataset's images (symlink) and products.csv (symlink, or a filtered copy with only labeled products)."""
    scenes = pl.read_csv(dataset / "scenes.csv", infer_schema=False)
    pairs = pl.read_csv(dataset / "scene_products.csv", infer_schema=False)
    ids = scenes["scene_id"].to_list()
    random.Random(seed).shuffle(ids)
    ids = ids[: max(5, round(len(ids) * scenes_fraction))]
    n_scored = max(1, len(ids) // 5)
    parts = {"training": ids[n_scored:], "scored": ids[:n_scored]}
    root.mkdir(parents=True)
    products = root / "products.csv"
    if labeled_products_only:
        labeled = set(pairs.filter(pl.col("scene_id").is_in(ids))["product_id"].to_list())
        (pl.read_csv(dataset / "products.csv", infer_schema=False)
           .filter(pl.col("product_id").is_in(labeled)).write_csv(products))
    else:
        products.symlink_to(dataset / "products.csv")
    folders = []
    for name, part in parts.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "products.csv").symlink_to(products)
        (folder / "images").symlink_to(dataset / "images", target_is_directory=True)
        scenes.filter(pl.col("scene_id").is_in(part)).write_csv(folder / "scenes.csv")
        pairs.filter(pl.col("scene_id").is_in(part)).write_csv(folder / "scene_products.csv")
        folders.append(folder)
    return folders[0], folders[1]


def materialize(catalog: Path, work: Path) -> Path:
    """The project's main job on `catalog` in its own Dagster instance and data folder; the bundle folder."""
    home, data = work / "dagster_home", work / "data"
    home.mkdir(parents=True, exist_ok=True)
    env = {"DAGSTER_HOME": str(home), "SCENE_MATCHER_DATA_DIR": str(data)}
    subprocess.run([sys.executable, "-m", "faces.cli", "materialize", "--catalog", str(catalog)],
                   cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, check=True)
    os.environ.update(env)  # this process reads the same instance (and later the server inherits it)
    import dagster as dg

    from pipelines.serving import latest_bundle_dir

    with dg.DagsterInstance.get() as instance:
        return latest_bundle_dir(instance)[0]


def main() -> int:
    from scene_assets.settings import ikea_dataset_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ikea_dataset_dir(),
                        help="labeled dataset folder (default: $SCENE_MATCHER_IKEA_DIR or ../shared/ikea)")
    parser.add_argument("--work", type=Path, help="folder for the split, Dagster instance, bundle and caches "
                                                  "(default: a temporary folder, removed afterwards)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene shuffle")
    parser.add_argument("--scenes-fraction", type=float, default=1.0, help="use only this fraction of the scenes")
    parser.add_argument("--labeled-products-only", action="store_true",
                        help="catalog = the products labeled in the used scenes (a smaller, faster main job)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the rows as JSON")
    args = parser.parse_args()
    if args.dataset is None or not (args.dataset / "scenes.csv").is_file():
        parser.error(f"no labeled dataset at {args.dataset}")

    from evaluation.config import EvaluationConfig
    from evaluation.dataset import load_labeled_dataset
    from evaluation.folds import prepare_scenes, serve_scenes
    from evaluation.metrics import mean_metrics, ranking_metrics
    from evaluation.protocol import evaluate
    from scene_assets.recommender_bundle import load_recommender

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-served-http-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        training_dir, scored_dir = split_dataset(args.dataset.resolve(), work / "datasets", args.seed,
                                                 args.scenes_fraction, args.labeled_products_only)
        training, scored = load_labeled_dataset(training_dir), load_labeled_dataset(scored_dir)
        print(f"scenes: {len(training.scene_ids)} training, {len(scored.scene_ids)} scored; "
              f"catalog {pl.read_csv(scored_dir / 'products.csv', infer_schema=False).height} products", flush=True)

        t = time.perf_counter()
        bundle = materialize(scored_dir / "products.csv", work)
        timings = {"main_job_s": time.perf_counter() - t}
        recommender, _ = load_recommender(bundle)

        config = EvaluationConfig()
        t = time.perf_counter()
        report = evaluate(scored, train=training, recommender=recommender, config=config, cache_dir=work / "cache")
        timings["evaluate_s"] = time.perf_counter() - t
        scorer_dir = work / "scorer"
        report.learned.save(scorer_dir)

        t = time.perf_counter()
        answers = match_answers(bundle, list(scored.scenes.select("scene_id", "image_path").iter_rows()),
                                "--learned", str(scorer_dir), k=config.served_k, ready_timeout_s=600)
        timings["http_s"] = time.perf_counter() - t
        in_process = serve_scenes(recommender, prepare_scenes(recommender, scored, config.use_captions),
                                  scored.scene_ids, report.learned, config)

    # A relevant product the server did not list counts as not retrieved (the metrics' definitions).
    http = mean_metrics([ranking_metrics(answers[sid], scored.relevant[sid]) for sid in scored.scene_ids])
    served = {k: report.metrics[f"served.{k}"] for k in HEADLINE}
    diff = {k: http[k] - served[k] for k in HEADLINE}
    identical = sum(answers[sid] == in_process[sid] for sid in scored.scene_ids)
    timings["total_s"] = time.perf_counter() - started

    print(f"\nserved path vs HTTP /match (k={config.served_k}) on {len(scored.scene_ids)} scored scenes of {args.dataset}")
    print(f"{'row':<22}" + "".join(f"{k:>11}" for k in HEADLINE))
    for name, row in (("evaluate served.*", served), ("HTTP /match", http), ("HTTP - served", diff)):
        print(f"{name:<22}" + "".join(f"{row[k]:>+11.4f}" if row is diff else f"{row[k]:>11.4f}" for k in HEADLINE))
    agree = all(abs(d) <= TOLERANCE for d in diff.values())
    print(f"identical lists: {identical}/{len(scored.scene_ids)} scenes; "
          f"agree to {TOLERANCE}: {'yes' if agree else 'NO'}")
    print("timings: " + ", ".join(f"{k}={v:.0f}" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps({
            "dataset": str(args.dataset), "seed": args.seed, "scenes_fraction": args.scenes_fraction,
            "labeled_products_only": args.labeled_products_only, "served_k": config.served_k,
            "scenes": {"training": len(training.scene_ids), "scored": len(scored.scene_ids)},
            "served": served, "http": http, "difference": diff, "identical_lists": identical,
            "agree": agree, "tolerance": TOLERANCE, "timings_s": timings,
        }, indent=2))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
