"""Simulated shoppers on a real server: the feedback loop retrains the learned scorer, and the A/B report
picks the retrained variant (#20).

  .venv/bin/python bench/bench_feedback_loop.py                     # the IKEA catalog (bundle built once, cached)
  .venv/bin/python bench/bench_feedback_loop.py --sessions 600 --json out.json

The labeled IKEA scenes are split (seeded) three ways: **labeled** (40 %: the labels the first scorer is fitted
on), **shopped** (40 %: photos shoppers open in both rounds - a retailer's inspiration gallery is opened by many
shoppers) and **unseen** (20 %: opened only in round 2, so the retrain never saw them).

1. Scorer v0: the learned scorer (region->product projection, room classifier, label priors) fitted on the labeled
   scenes only.
2. Round 1: a real `scene-matcher serve --index DIR --variants PLAN` serves v0 to every shopper (variant `control`).
   Each simulated shopper (one session id) opens a shopped photo, gets its `/match` answer and looks down the list
   with the examination model of click logs (rank r is looked at with probability 1 / log2(r + 1)); a looked-at
   product is an impression; one labeled in the scene is clicked with probability .7 (then added to the cart .4,
   then bought .5), any other with .03. Every event is POSTed to `/feedback`; the server archives the photos.
3. The pipeline's assets run in-process on that database: `feedback_events` (one partition) and `feedback_pairs`.
   Retrain (what the `feedback_scorer` asset does): the archived photos with engagements become weighted training
   scenes next to the labeled ones -> scorer v1; its check on the labeled scenes' held-out folds
   (`feedback_check`, what the blocking asset check runs) is printed.
4. Round 2: a fresh server and database, variants `control` (v0) and `retrained` (v1) half and half (each pinned
   to its scorer folder), shoppers opening shopped and unseen photos; `feedback_events`, `feedback_pairs` and
   `ab_report` run, and the report's leader is compared with the truth (served recall@10 of the labeled products).

Both scorers use the same recipe without synthetic composites (they would only slow the bench). Printed: per
round and variant the recommendations served, click-through, add-to-cart and purchase rates with 95 % intervals,
and the served recall@10 on shopped and on unseen photos (every photo of the two groups queried once per variant
after the shoppers: exact, not sampled).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
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


def real_bundle(dataset_dir: Path, cache_dir: Path) -> Path:
    """The IKEA catalog's bundle of bench_serving.py (built once and cached under ``cache_dir``)."""
    from bench_scene_query import load_dataset, product_text_vectors, product_trunk_features
    from bench_serving import build_bundle

    from scene_assets.encoders import EncoderSpec, build_encoder

    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    directory = cache_dir / f"bundle-real-{encoder.trunk_fingerprint()[:12]}"
    if (directory / "bundle.json").is_file():
        return directory
    products, scenes, _ = load_dataset(dataset_dir)
    features = product_trunk_features(encoder, products, cache_dir)
    texts = product_text_vectors(encoder, products, cache_dir)
    sample = [dataset_dir / p for p in scenes["image"].to_list()[-8:]]
    return build_bundle(directory, encoder, products, features, texts, None, sample)


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


def split_scenes(scene_ids: list[str], seed: int) -> dict[str, list[str]]:
    order = list(scene_ids)
    random.Random(seed).shuffle(order)
    a, b = int(0.4 * len(order)), int(0.8 * len(order))
    return {"labeled": sorted(order[:a]), "shopped": sorted(order[a:b]), "unseen": sorted(order[b:])}


def shop(index: Path, work: Path, plan: dict, scenes: list[str], photos: dict[str, bytes], relevant: dict[str, set[str]],
         groups: dict[str, str], sessions: int, k: int, rng: random.Random, measure: list[str]) -> dict:
    """One round: a fresh server under ``work`` serving ``plan``; ``sessions`` shoppers open ``scenes``. Then every
    photo of ``measure`` is queried once per variant (a session id the plan assigns to it), on a second server that
    records nothing: the exact served recall@10 of each variant on each group of photos."""
    import httpx

    from scene_assets.ranking.variants import VariantPlan

    assigned = VariantPlan.from_dict(plan)
    probe = {v.name: next(f"probe-{i}" for i in range(10_000) if assigned.assign(f"probe-{i}").name == v.name)
             for v in assigned.variants}

    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.json").write_text(json.dumps(plan))
    url = f"sqlite:///{work / 'data' / 'feedback.db'}"
    (work / "data").mkdir(exist_ok=True)
    posted = 0
    started = time.perf_counter()
    with (serve(index, "--variants", str(work / "plan.json"), "--feedback-db-url", url, data_dir=work / "data") as (_, base),
          httpx.Client(base_url=base, timeout=300, trust_env=False) as client):
        for i in range(sessions):
            scene = rng.choice(scenes)
            answer = client.post("/match", files={"image": ("scene.jpg", photos[scene], "image/jpeg")},
                                 data={"k": str(k), "session_id": f"{work.name}-shopper-{i}"})
            answer.raise_for_status()
            body = answer.json()
            for product, event in shopper(body, relevant[scene], rng):
                response = client.post("/feedback", json={"recommendation_id": body["recommendation_id"],
                                                          "product_id": product, "event": event})
                if response.status_code != 202:
                    raise SystemExit(f"/feedback answered {response.status_code}: {response.text}")
                posted += 1
    serving_s = time.perf_counter() - started
    exact: dict[tuple[str, str], list[float]] = {}
    # the probes on a server that records nothing: they must not count as served recommendations in the report
    with (serve(index, "--variants", str(work / "plan.json"), "--feedback-db-url", "off", data_dir=work / "data")
          as (_, base), httpx.Client(base_url=base, timeout=300, trust_env=False) as client):
        for variant, session in probe.items():
            for scene in measure:
                body = client.post("/match", files={"image": ("scene.jpg", photos[scene], "image/jpeg")},
                                   data={"k": str(k), "session_id": session}).json()
                listed = [item["product_id"] for item in body["items"]]
                exact.setdefault((variant, groups[scene]), []).append(
                    len(set(listed[:10]) & relevant[scene]) / len(relevant[scene]))
    return {"url": url, "photos": work / "data" / "feedback" / "scenes", "events": posted, "serving_s": serving_s,
            "recall": {f"{v}|{g}": float(np.mean(r)) for (v, g), r in exact.items()}}


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
        meta = result.asset_materializations_for_node("ab_report")[0].metadata
        return {"pairs": result.output_for_node("feedback_pairs"), "rates": result.output_for_node("ab_report").to_dicts(),
                "leader": meta["leader"].value, "decided": meta["decided"].value, "plot": meta["plot"].value}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, help="a bundle of the dataset's catalog (default: bench_serving's IKEA bundle, "
                    "built here when missing)")
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "cache" / "bench")
    ap.add_argument("--sessions", type=int, default=600, help="shoppers per round")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="folder for the databases, photos, scorers, MLflow and Dagster "
                    "(default: a temporary one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from evaluation.config import EvaluationConfig
    from evaluation.dataset import load_labeled_dataset
    from evaluation.feedback_training import feedback_check, prepare_feedback_scenes
    from evaluation.folds import fit_learned, prepare_scenes, restrict_to_index
    from scene_assets.feedback import ScenePhotoArchive
    from scene_assets.recommender_bundle import load_recommender

    t_all = time.perf_counter()
    index = args.index or real_bundle(args.dataset, args.cache_dir)
    rec, _ = load_recommender(index)
    dataset = restrict_to_index(load_labeled_dataset(args.dataset), rec)
    parts = split_scenes(dataset.scene_ids, args.seed)
    groups = {s: g for g, ids in parts.items() for s in ids}
    labeled = dataclasses.replace(dataset, scenes=dataset.scenes.filter(pl.col("scene_id").is_in(parts["labeled"])),
                                  relevant={s: dataset.relevant[s] for s in parts["labeled"]})
    relevant = dataset.relevant
    photos = {sid: Path(path).read_bytes() for sid, path in dataset.scenes.select("scene_id", "image_path").iter_rows()}
    config = EvaluationConfig(composites=None)
    rng = random.Random(args.seed)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        scenes = prepare_scenes(rec, labeled, config.use_captions)
        v0 = fit_learned(rec, labeled, scenes, labeled.scene_ids, config)
        v0.save(work / "scorer-v0")
        timings["fit v0"] = time.perf_counter() - t0

        plan1 = {"salt": "round1", "variants": [{"name": "control", "share": 1.0, "learned": str(work / "scorer-v0")}]}
        pool = parts["shopped"] + parts["unseen"]
        round1 = shop(index, work / "round1", plan1, parts["shopped"], photos, relevant, groups, args.sessions, args.k, rng,
                      pool)
        timings["round 1 serving"] = round1["serving_s"]
        first = run_pipeline(work / "round1", round1["url"])
        pairs, round1_rates = first["pairs"], first["rates"]

        t0 = time.perf_counter()
        feedback = prepare_feedback_scenes(rec, pairs, ScenePhotoArchive(round1["photos"]).path_of, evaluation=config)
        v1 = fit_learned(rec, labeled, scenes, labeled.scene_ids, config, feedback=feedback)
        v1.save(work / "scorer-v1")
        timings["retrain v1"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        photo_sha = {sid: hashlib.sha256(data).hexdigest() for sid, data in photos.items()}
        check = feedback_check(rec, labeled, scenes, config, feedback, photos=photo_sha)
        timings["check"] = time.perf_counter() - t0

        plan2 = {"salt": "round2", "variants": [{"name": "control", "share": 0.5, "learned": str(work / "scorer-v0")},
                                                {"name": "retrained", "share": 0.5, "learned": str(work / "scorer-v1")}]}
        round2 = shop(index, work / "round2", plan2, pool, photos, relevant, groups, args.sessions, args.k, rng, pool)
        timings["round 2 serving"] = round2["serving_s"]
        report = run_pipeline(work / "round2", round2["url"])

    print(f"\nFeedback loop on {index.name}: {len(parts['labeled'])} labeled / {len(parts['shopped'])} shopped / "
          f"{len(parts['unseen'])} unseen scenes, {args.sessions} shoppers per round, k={args.k}; "
          f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU")
    print(f"feedback_pairs after round 1: {pairs.height} ({int((pairs['label'] == 1).sum())} positive) from "
          f"{round1['events']} events; {len(feedback)} photos became training scenes ({len(feedback.skipped)} skipped)")
    print(f"check on the labeled scenes' {check.folds} held-out folds ({check.scenes} scenes): nDCG@10 "
          f"{check.labels_only['ndcg@10']:.4f} labels only -> {check.with_feedback['ndcg@10']:.4f} with feedback "
          f"({check.difference['ndcg@10']:+.4f} ± {check.half_width['ndcg@10']:.4f}): "
          f"{'passed' if check.passed else 'FAILED'}")
    header = (f"{'round':<8} {'variant':<10} {'scorer':<6} {'served':>6} {'click-through':>22} {'add to cart':>22} "
              f"{'purchase':>22} {'R@10 shopped':>12} {'R@10 unseen':>11}")
    print(header + "\n" + "-" * len(header))

    def rate(row, name):
        return f"{row[name]:.3f} [{row[name + '_low']:.3f}, {row[name + '_high']:.3f}]"

    scorer_of = {"control": "v0", "retrained": "v1"}
    rows = []
    for label, rates, recall in (("1", round1_rates, round1["recall"]), ("2", report["rates"], round2["recall"])):
        for row in rates:
            shopped = recall.get(f"{row['variant']}|shopped", float("nan"))
            unseen = recall.get(f"{row['variant']}|unseen", float("nan"))
            print(f"{label:<8} {row['variant']:<10} {scorer_of[row['variant']]:<6} {row['served']:>6} "
                  f"{rate(row, 'ctr'):>22} {rate(row, 'add_to_cart_rate'):>22} {rate(row, 'purchase_rate'):>22} "
                  f"{shopped:>12.3f} {unseen:>11.3f}")
            rows.append({"round": int(label), **row, "recall@10_shopped": shopped, "recall@10_unseen": unseen})
    # the truth the shoppers were simulated from: each variant's exact served recall@10 over the round's photos
    truth = max(("control", "retrained"), key=lambda v: (
        len(parts["shopped"]) * round2["recall"][f"{v}|shopped"] + len(parts["unseen"]) * round2["recall"][f"{v}|unseen"]))
    print(f"ab_report leader (round 2): {report['leader']} (decided: {report['decided']}); the variant with the better "
          f"served recall@10: {truth}")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
          + f", total {time.perf_counter() - t_all:.0f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "leader": report["leader"], "decided": report["decided"],
                                         "check": check.to_dict(), "split": {k: len(v) for k, v in parts.items()},
                                         "timings_s": timings, "sessions": args.sessions}, indent=2, default=str))
    return 0 if report["leader"] == truth == "retrained" and check.passed else 1


if __name__ == "__main__":
    sys.exit(main())
