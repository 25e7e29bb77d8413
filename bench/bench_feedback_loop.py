"""Simulated shoppers on a real server, and the A/B report picking the better variant (#20).

  .venv/bin/python bench/bench_feedback_loop.py                     # the IKEA bundle of bench_serving.py
  .venv/bin/python bench/bench_feedback_loop.py --index DIR --sessions 1000 --json out.json

A real `scene-matcher serve --index DIR --variants PLAN` (feedback recorded in a SQLite file under a work
folder) serves two variants half and half: `control` (the served weights) and `colour-only` (the colour
match alone, a deliberately weaker configuration). Each simulated shopper (one session id) opens a labeled scene of the dataset, gets its
`/match` answer and looks down the list with the examination model of click logs (rank r is looked at with
probability 1 / log2(r + 1)); a looked-at product is an impression; one labeled in the scene is clicked with
probability .7 (then added to the cart .4, then bought .5), any other with .03. Every event is POSTed to
`/feedback`. Then the pipeline's assets run in-process on that database: `feedback_events` (one partition),
`feedback_pairs` and `ab_report`. Printed: per variant the recommendations served, click-through, add-to-cart
and purchase rates with 95 % intervals, the report's leader and whether it is decided, next to each variant's
recall@10 of the labeled products in the lists it served (the truth the shoppers were simulated from).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serving_process import serve  # noqa: E402

PLAN = {"salt": "bench", "variants": [
    {"name": "control", "share": 0.5},
    # the colour match alone: a deliberately weaker configuration, so that the report has something to find
    {"name": "colour-only", "share": 0.5,
     "weights": {"visual": 0.0, "text": 0.0, "room_fit": 0.0, "style": 0.0, "color": 1.0, "material": 0.0, "size": 0.0,
                 "learned": 0.0, "prior": 0.0}},
]}


def default_index() -> Path:
    found = sorted((ROOT / "data" / "cache" / "bench").glob("bundle-real-*"))
    if not found:
        raise SystemExit("no IKEA bundle: run `.venv/bin/python bench/bench_serving.py --sizes 20000` once (it builds "
                         "data/cache/bench/bundle-real-*), or pass --index DIR")
    return found[-1]


def shopper(answer: dict, relevant: set[str], rng: random.Random) -> list[tuple[str, str]]:
    """(product id, event) of one simulated shopper looking at one answer."""
    events = []
    for rank, item in enumerate(answer["items"], start=1):
        if rng.random() >= 1.0 / np.log2(rank + 1):
            continue  # not looked at
        product = item["product_id"]
        events.append((product, "impression"))
        if rng.random() < (0.7 if product in relevant else 0.03):
            events.append((product, "click"))
            if product in relevant and rng.random() < 0.4:
                events.append((product, "add_to_cart"))
                if rng.random() < 0.5:
                    events.append((product, "purchase"))
    return events


def run_pipeline(work: Path, url: str) -> dict:
    """feedback_events (one partition holding every event), feedback_pairs and ab_report, in-process."""
    import dagster as dg

    from pipelines.evaluation.resources import MlflowTracking
    from pipelines.feedback.assets import ab_report, feedback_events, feedback_pairs
    from pipelines.feedback.partitions import range_key
    from pipelines.feedback.resources import FeedbackDatabase
    from pipelines.io_managers import PolarsParquetIOManager
    from pipelines.resources import ProjectStorage
    from scene_assets.feedback import FeedbackStore

    store = FeedbackStore(url)
    last = store.max_event_id()
    store.close()
    resources = {"feedback_db": FeedbackDatabase(url=url), "io_manager": PolarsParquetIOManager(base_dir=str(work / "wh")),
                 "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", experiment="bench",
                                                   artifact_root=str(work / "artifacts")),
                 "storage": ProjectStorage(data_dir=str(work / "data"))}
    (work / "dagster_home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(work / "dagster_home")) as instance:
        key = range_key(1, last)
        instance.add_dynamic_partitions("feedback_event_ranges", [key])
        dg.materialize([feedback_events], partition_key=key, instance=instance, resources=resources)
        result = dg.materialize([feedback_events, feedback_pairs, ab_report], selection=[feedback_pairs, ab_report],
                                instance=instance, resources=resources)
        pairs_meta = result.asset_materializations_for_node("feedback_pairs")[0].metadata
        report_meta = result.asset_materializations_for_node("ab_report")[0].metadata
        rates = result.output_for_node("ab_report")
    return {"rates": rates.to_dicts(), "leader": report_meta["leader"].value, "decided": report_meta["decided"].value,
            "pairs": pairs_meta["pairs"].value, "positives": pairs_meta["positives"].value,
            "negatives": pairs_meta["negatives"].value, "plot": report_meta["plot"].value}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, help="a bundle of the dataset's catalog (default: bench_serving's IKEA bundle)")
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--sessions", type=int, default=600)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="folder for the database, MLflow and Dagster (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import httpx

    index = args.index or default_index()
    scenes = pl.read_csv(args.dataset / "scenes.csv", infer_schema=False)
    pairs = pl.read_csv(args.dataset / "scene_products.csv", infer_schema=False)
    relevant = {s: set(g["product_id"].to_list()) for (s,), g in pairs.group_by("scene_id")}
    scenes = scenes.filter(pl.col("scene_id").is_in(list(relevant)))
    photos = {sid: (args.dataset / image).read_bytes() for sid, image in scenes.select("scene_id", "image").iter_rows()}
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "plan.json").write_text(json.dumps(PLAN))
        url = f"sqlite:///{work / 'feedback.db'}"
        served_recall: dict[str, list[float]] = {}
        started = time.perf_counter()
        with (serve(index, "--variants", str(work / "plan.json"), "--feedback-db-url", url) as (_, base),
              httpx.Client(base_url=base, timeout=300, trust_env=False) as client):
            ids = list(photos)
            posted = 0
            for i in range(args.sessions):
                scene = rng.choice(ids)
                answer = client.post("/match", files={"image": ("scene.jpg", photos[scene], "image/jpeg")},
                                     data={"k": str(args.k), "session_id": f"shopper-{i}"})
                answer.raise_for_status()
                body = answer.json()
                listed = [item["product_id"] for item in body["items"]]
                served_recall.setdefault(body["variant"], []).append(
                    len(set(listed[:10]) & relevant[scene]) / len(relevant[scene]))
                for product, event in shopper(body, relevant[scene], rng):
                    response = client.post("/feedback", json={"recommendation_id": body["recommendation_id"],
                                                              "product_id": product, "event": event})
                    if response.status_code != 202:
                        raise SystemExit(f"/feedback answered {response.status_code}: {response.text}")
                    posted += 1
        serving_s = time.perf_counter() - started
        report = run_pipeline(work, url)
    print(f"\n{args.sessions} simulated shoppers on {index.name} ({len(ids)} labeled scenes), {posted} events, "
          f"{serving_s:.0f} s serving; 2 CPU cores, x86_64")
    header = f"{'variant':<12} {'served':>6} {'recall@10 served':>16} {'click-through':>22} {'add to cart':>22} {'purchase':>22}"
    print(header + "\n" + "-" * len(header))

    def rate(row, name):
        return f"{row[name]:.3f} [{row[name + '_low']:.3f}, {row[name + '_high']:.3f}]"

    for row in report["rates"]:
        recall = float(np.mean(served_recall.get(row["variant"], [float("nan")])))
        print(f"{row['variant']:<12} {row['served']:>6} {recall:>16.3f} {rate(row, 'ctr'):>22} "
              f"{rate(row, 'add_to_cart_rate'):>22} {rate(row, 'purchase_rate'):>22}")
    truth = max(served_recall, key=lambda v: np.mean(served_recall[v]))
    print(f"ab_report leader: {report['leader']} (decided: {report['decided']}); the variant with the better served "
          f"recall@10: {truth}; feedback_pairs: {report['pairs']} ({report['positives']} positive, "
          f"{report['negatives']} negative)")
    if args.json:
        args.json.write_text(json.dumps({**report, "served_recall": {k: float(np.mean(v)) for k, v in served_recall.items()},
                                         "events": posted, "sessions": args.sessions}, indent=2, default=str))
    return 0 if report["leader"] == truth else 1


if __name__ == "__main__":
    sys.exit(main())
