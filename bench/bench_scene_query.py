"""Scene query benchmark on a labeled dataset: latency per stage and a quick retrieval quality check.

Builds the product index on the fly from the dataset's products (every product image through the
default encoder's trunk once; pooled 1280-d features cached as .npy under ``--cache-dir`` keyed by
the trunk fingerprint and the product list), then over the dataset's scenes:

* **latency**: ``Recommender.recommend`` end to end (decode -> regions -> analysis -> search ->
  rerank), p50 / p95 per stage, without and with the scene caption; plus, for comparison, the old way
  (26 crops encoded separately) on a few scenes;
* **quality**: Recall@10 / Recall@50 / MRR of ``rank_all`` (relevant = scene_products.csv) for
  (a) whole image only, (b) max over regions, (c) max over regions + centring on the catalog mean,
  in the trunk space (1280-d pooled features, no projection) and in the joint space (the default
  encoder's 384-d projection, untrained unless ``--projection`` is given); then the full re-rank
  on top of the best visual variant, with and without captions; and the room-type accuracy of the
  scene analysis.

Numbers are for the dataset given; the held-out split is elsewhere - do not tune to these scenes.

    .venv/bin/python bench/bench_scene_query.py --dataset ../shared/ikea --json /tmp/scene_query.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.folds import product_features as product_trunk_features  # noqa: E402
from evaluation.folds import product_text_vectors  # noqa: E402
from scene_assets.catalog import load_catalog  # noqa: E402
from scene_assets.encoders import DefaultOptions, EncoderSpec, build_encoder  # noqa: E402
from scene_assets.enrichment import enrich_catalog  # noqa: E402
from scene_assets.images import open_rgb  # noqa: E402
from scene_assets.matching import Recommender, catalog_mean  # noqa: E402
from scene_assets.regions import RegionConfig, center_and_normalize, compute_regions  # noqa: E402

STAGES = ("decode", "regions", "analysis", "search", "rerank", "total")


# --------------------------------------------------------------------------------------------
# data


def load_dataset(root: Path):
    res = load_catalog(root / "products.csv", "labeled")
    products = enrich_catalog(res.products)
    products = products.filter(pl.col("image_status") == "ok").sort("product_id")
    scenes = pl.read_csv(root / "scenes.csv", infer_schema=False)
    pairs = pl.read_csv(root / "scene_products.csv", infer_schema=False)
    return products, scenes, pairs


# product features and text vectors: the evaluation's cached computations (one cache format)


# --------------------------------------------------------------------------------------------
# metrics


def ranking_metrics(ranked_ids: np.ndarray, relevant: set[str]) -> dict[str, float]:
    hits = np.fromiter((pid in relevant for pid in ranked_ids), dtype=bool, count=len(ranked_ids))
    first = int(np.argmax(hits)) if hits.any() else None
    return {
        "R@10": float(hits[:10].sum() / len(relevant)),
        "R@50": float(hits[:50].sum() / len(relevant)),
        "MRR": 0.0 if first is None else 1.0 / (first + 1),
    }


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


# --------------------------------------------------------------------------------------------


def quality_table(per_variant: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Print mean R@10 / R@50 / MRR per variant; return them (rounded) for the JSON report."""
    print(f"{'variant':<62}{'R@10':>7}{'R@50':>7}{'MRR':>7}")
    table = {}
    for name, rows in per_variant.items():
        m = mean_metrics(rows)
        table[name] = {k: round(v, 4) for k, v in m.items()}
        print(f"{name:<62}{m['R@10']:7.3f}{m['R@50']:7.3f}{m['MRR']:7.3f}")
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/bench"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--projection", type=Path, default=None, help="trained projection head for the joint space")
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--crop-scenes", type=int, default=10, help="scenes for the 26-separate-crops comparison")
    ap.add_argument("--short-sides", type=int, nargs="*", default=[320, 384, 448],
                    help="trunk input short sides to compare for quality (trunk space, centred)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--latency-only", action="store_true", help="skip the quality part")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = build_encoder(EncoderSpec(options=DefaultOptions(projection_path=str(args.projection) if args.projection else None)))
    t0 = time.perf_counter()
    encoder.model  # noqa: B018 - load now so timings exclude it
    load_s = time.perf_counter() - t0

    products, scenes, pairs = load_dataset(args.dataset)
    if args.max_scenes:
        scenes = scenes.head(args.max_scenes)
    pids = products["product_id"].to_list()
    indexed = set(pids)
    relevant: dict[str, set[str]] = {}
    for sid, pid in pairs.iter_rows():
        if pid in indexed:
            relevant.setdefault(sid, set()).add(pid)
    scene_rows = [r for r in scenes.iter_rows(named=True) if r["scene_id"] in relevant]
    print(f"dataset {args.dataset}: {len(pids)} products with images, {len(scene_rows)} scenes with "
          f"indexed labeled products; torch threads {torch.get_num_threads()}; model load {load_s:.1f}s")

    trunk = product_trunk_features(encoder, products, args.cache_dir)
    joint = encoder.project_trunk_features(trunk)
    text = product_text_vectors(encoder, products, args.cache_dir)
    text_map = (pids, text)

    recs = {
        ("trunk", True): Recommender.from_vectors(encoder, products, pids, trunk, space="trunk", center=True,
                                                  text_vectors=text_map),
        ("trunk", False): Recommender.from_vectors(encoder, products, pids, trunk, space="trunk", center=False,
                                                   text_vectors=text_map),
        ("joint", True): Recommender.from_vectors(encoder, products, pids, joint, space="joint", center=True,
                                                  text_vectors=text_map),
        ("joint", False): Recommender.from_vectors(encoder, products, pids, joint, space="joint", center=False,
                                                   text_vectors=text_map),
    }
    main_rec = recs[("trunk", True)]
    images = {r["scene_id"]: args.dataset / r["image"] for r in scene_rows}
    report: dict = {
        "dataset": str(args.dataset), "products": len(pids), "scenes": len(scene_rows),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version()},
        "region_config": main_rec.region_config.to_dict(),
        "weights": main_rec.weights.to_dict(),
        "projection_trained": bool(encoder.projection_trained),
    }

    # ---------------- latency ----------------
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    warm = scene_rows[0]
    for _ in range(3):
        main_rec.recommend(images[warm["scene_id"]], k=10)
        main_rec.recommend(images[warm["scene_id"]], k=10, caption=warm["caption"])
    lat: dict[str, dict[str, list[float]]] = {"image only": {s: [] for s in STAGES},
                                              "with caption": {s: [] for s in STAGES}}
    for r in scene_rows:
        for mode, cap in (("image only", None), ("with caption", r["caption"])):
            res = main_rec.recommend(images[r["scene_id"]], k=10, caption=cap)
            for s in STAGES:
                lat[mode][s].append(res.timings_ms[s])
    rc = main_rec.region_config
    print(f"\nscene query latency (ms) over {len(scene_rows)} scenes; trunk space, centred, k=10, MMR, "
          f"{len(main_rec.prepare_scene(images[warm['scene_id']]).regions)} regions (grids {list(rc.grids)}, "
          f"GeM p={rc.pool_power:g}), short side {rc.short_side}:")
    print(f"{'mode':<14}" + "".join(f"{s:>16}" for s in STAGES))
    report["latency_ms"] = {}
    for mode, d in lat.items():
        cells = []
        report["latency_ms"][mode] = {}
        for s in STAGES:
            p50, p95 = percentiles(d[s])
            report["latency_ms"][mode][s] = {"p50": round(p50, 1), "p95": round(p95, 1)}
            cells.append(f"{p50:7.1f} /{p95:7.1f}")
        print(f"{mode:<14}" + "".join(f"{c:>16}" for c in cells))
    print("(cells: p50 / p95)")

    if args.crop_scenes:
        times = []
        for r in scene_rows[: args.crop_scenes]:
            t0 = time.perf_counter()
            img = open_rgb(images[r["scene_id"]])
            w, h = img.size
            boxes = [(0, 0, w, h)]
            for g in (3, 4):
                for i in range(g):
                    for j in range(g):
                        boxes.append((j * w // g, i * h // g, (j + 1) * w // g, (i + 1) * h // g))
            feats = encoder.encode_image_trunk_features([img.crop(b) for b in boxes], batch_size=len(boxes))
            times.append((time.perf_counter() - t0) * 1000)
        p50, p95 = percentiles(times)
        report["latency_ms"]["26 separate crops (decode + encode only)"] = {"p50": round(p50, 1), "p95": round(p95, 1)}
        print(f"for comparison, 26 crops encoded separately (decode + trunk only): p50 {p50:.0f} ms, "
              f"p95 {p95:.0f} ms over {len(times)} scenes")

    report["load_average_after_latency"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average (1/5/15 min) after the latency runs: {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs (includes this "
          f"benchmark's own {torch.get_num_threads()} threads; more than that means shared CPUs and "
          "inflated timings)")
    if args.latency_only:
        _write(report, args.json)
        return 0

    # ---------------- quality: visual variants ----------------
    means = {space: catalog_mean(mat) for space, mat in (("trunk", trunk), ("joint", joint))}
    stored = {
        (space, centred): center_and_normalize(mat, means[space] if centred else None)
        for space, mat in (("trunk", trunk), ("joint", joint)) for centred in (True, False)
    }
    pid_arr = np.asarray(pids, dtype=object)

    def visual_rank(q: np.ndarray, P: np.ndarray) -> np.ndarray:
        return pid_arr[np.argsort(-(q @ P.T).max(axis=0), kind="stable")]

    default_cfg = main_rec.region_config
    configs = {f"short{s}": RegionConfig(short_side=s, max_long_side=2 * s) for s in args.short_sides
               if s != default_cfg.short_side}
    configs["default"] = default_cfg
    configs["default+windows"] = RegionConfig(short_side=default_cfg.short_side,
                                              max_long_side=default_cfg.max_long_side,
                                              grids=default_cfg.grids, windows=((0.5, 0.25),))
    configs["default, average pooling"] = RegionConfig(short_side=default_cfg.short_side,
                                                       max_long_side=default_cfg.max_long_side,
                                                       grids=default_cfg.grids, pool_power=1.0)
    configs["whole224"] = RegionConfig.whole_only(224, 448)
    per_variant: dict[str, list[dict[str, float]]] = {}
    n_regions: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for r in scene_rows:
        img = open_rgb(images[r["scene_id"]])
        rel = relevant[r["scene_id"]]
        for cname, cfg in configs.items():
            regs = compute_regions(img, encoder, cfg, project=True)
            whole = [regs.labels.index("whole")]
            spaces = (("trunk", "joint") if cname in ("default", "whole224") else ("trunk",))
            for space in spaces:
                if cname == "default":
                    for centred in (False, True):
                        P = stored[(space, centred)]
                        m = means[space] if centred else None
                        q_all = regs.vectors(space, m)
                        per_variant.setdefault(f"{space} (a) whole map {cfg.short_side}px"
                                               f"{' + centred' if centred else ''}", []).append(
                            ranking_metrics(visual_rank(q_all[whole], P), rel))
                        per_variant.setdefault(f"{space} (b/c) regions max{' + centred' if centred else ''}",
                                               []).append(ranking_metrics(visual_rank(q_all, P), rel))
                        if centred:
                            per_variant.setdefault(f"{space} regions mean + centred", []).append(
                                ranking_metrics(pid_arr[np.argsort(-(q_all @ P.T).mean(axis=0))], rel))
                elif cname == "whole224":
                    for centred in (False, True):
                        P = stored[(space, centred)]
                        q = regs.vectors(space, means[space] if centred else None)
                        per_variant.setdefault(f"{space} (a) whole image 224px avg-pooled{' + centred' if centred else ''}",
                                               []).append(ranking_metrics(visual_rank(q, P), rel))
                else:
                    q = regs.vectors(space, means[space])
                    n_regions.setdefault(cname, []).append(len(regs))
                    per_variant.setdefault(f"{space} regions max + centred [{cname}]",
                                           []).append(ranking_metrics(visual_rank(q, stored[(space, True)]), rel))
    print(f"\nvisual-only quality over {len(scene_rows)} scenes ({time.perf_counter() - t0:.0f}s); regions per "
          "scene: " + ", ".join(f"{k} {np.mean(v):.0f}" for k, v in n_regions.items()))
    report["quality_visual"] = quality_table(per_variant)

    # ---------------- quality: full re-rank ----------------
    variants = {
        "visual only (rerank off)": dict(rerank=False),
        "rerank, default weights": dict(rerank=True),
        "rerank + caption": dict(rerank=True, caption=True),
        "rerank + true room (oracle)": dict(rerank=True, room=True),
    }
    rr: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    image_label = ("image (zero-shot)" if encoder.projection_trained
                   else "image (untrained head -> uniform, no room named)")
    room_hits = {"caption": 0, image_label: 0, "image zero-shot forced": 0}
    top_scores: list[float] = []
    top_hits: list[bool] = []
    from scene_assets.scene_analysis import analyze_scene

    for r in scene_rows:
        rel = relevant[r["scene_id"]]
        img = open_rgb(images[r["scene_id"]])
        base = main_rec.prepare_scene(img)
        cap_scene = main_rec.prepare_scene(img, caption=r["caption"])
        for name, opt in variants.items():
            scene = cap_scene if opt.get("caption") else base
            if opt.get("room"):
                scene = main_rec.prepare_scene(img, room=r["room_type"])
            cs = main_rec.score_catalog(img, rerank=opt["rerank"], scene=scene)
            ranked_ids, ranked_scores = cs.ranked()
            rr[name].append(ranking_metrics(ranked_ids, rel))
            if name == "rerank, default weights":
                top_scores.extend(ranked_scores[:10].tolist())
                top_hits.extend(pid in rel for pid in ranked_ids[:10])
        room_hits["caption"] += cap_scene.analysis.room_type == r["room_type"]
        room_hits[image_label] += base.analysis.room_type == r["room_type"]
        whole_joint = encoder.project_trunk_features(base.regions.trunk[:1])[0]
        forced = analyze_scene(img, encoder, image_vector=whole_joint, image_weight=1.0)
        room_hits["image zero-shot forced"] += forced.room_type == r["room_type"]
    print(f"\nfull scoring, trunk space + centred, regions max ({len(scene_rows)} scenes), weights "
          + ", ".join(f"{k}={v:g}" for k, v in main_rec.weights.to_dict().items()) + ":")
    report["quality_rerank"] = quality_table(rr)
    conf = main_rec.confidence(np.asarray(top_scores))
    report["top10_calibration"] = {
        "mean_score": round(float(np.mean(top_scores)), 4), "precision": round(float(np.mean(top_hits)), 4),
        "mean_uncalibrated_confidence": round(float(conf.mean()), 4),
    }
    print(f"top-10 (rerank, default weights): mean score {np.mean(top_scores):.3f}, precision "
          f"{np.mean(top_hits):.3f}, mean uncalibrated confidence {conf.mean():.3f}")
    n = len(scene_rows)
    report["room_accuracy"] = {k: round(v / n, 4) for k, v in room_hits.items()}
    print("room-type accuracy of the scene analysis: " + ", ".join(f"{k} {v / n:.3f}" for k, v in room_hits.items())
          + f"  (chance ~{1 / 9:.3f}; projection trained: {encoder.projection_trained})")

    _write(report, args.json)
    return 0


def _write(report: dict, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
