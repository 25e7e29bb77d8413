"""Scene query latency with a learned scorer attached, ranker vs weights, and whether serving ranks as
the evaluation does.

The evaluation scores EVERY product of the catalog for a scene (``Recommender.score_catalog``); a served
query (``Recommender.recommend``) scores only the candidates the index search returns. With the same
learned scorer attached, a product gets the same score both ways (the ranker's features are per
product), so the two rankings differ only where a product the evaluation ranks high is not a candidate.
Over the dataset's scenes this prints:

* **latency**: ``recommend(k=10)`` as served (MMR, variant collapse), p50 / p95 of the total and of the
  re-rank stage, with the learned scorer's ranker and with the learned default weights instead;
* **agreement**: ``recommend(k=K, no diversity, no collapse)`` against the top K of ``score_catalog``
  (overlap@10 / @K), and the labeled products each finds in its top K. The learned scorer is whatever
  ``--learned`` holds: fitted on these very scenes, the projection recalls their labeled products wherever
  they are in the index, so many are not among the served candidates - bench on scenes it was not fitted
  on (``--stride`` / ``--offset``) for the agreement serving has on new scenes.

    .venv/bin/python bench/bench_ranker.py --dataset ../shared/ikea --learned data/models/learned/<fp> --max-scenes 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.dataset import load_labeled_dataset  # noqa: E402
from evaluation.folds import product_features, product_text_vectors  # noqa: E402
from scene_assets.encoders import build_encoder  # noqa: E402
from scene_assets.learned import LearnedScorer  # noqa: E402
from scene_assets.matching import Recommender  # noqa: E402
from scene_assets.ranking import LEARNED_DEFAULT_WEIGHTS, ScoringWeights  # noqa: E402


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--learned", type=Path, required=True, help="a saved learned scorer (learned.json + learned.npz)")
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/evaluation"))
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--stride", type=int, default=1, help="score every STRIDE-th scene (with --offset: the scenes the "
                    "learned scorer was not fitted on, e.g. fitted on scenes[0::2], benched on --stride 2 --offset 1)")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("-k", type=int, default=50, help="list length compared for agreement")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    encoder = build_encoder()
    encoder.model  # noqa: B018 - load now so timings exclude it
    ds = load_labeled_dataset(args.dataset)
    learned = LearnedScorer.load(args.learned)
    if learned.ranker is None:
        print(f"{args.learned}: this learned scorer has no ranker", file=sys.stderr)
        return 2
    pids = ds.products["product_id"].to_list()
    feats = product_features(encoder, ds.products, args.cache_dir)
    text = product_text_vectors(encoder, ds.products, args.cache_dir)
    common = dict(space="trunk", center=True, text_vectors=(pids, text), learned=learned)
    recs = {
        "ranker": Recommender.from_vectors(encoder, ds.products, pids, feats, **common),
        "weights": Recommender.from_vectors(encoder, ds.products, pids, feats,
                                            weights=ScoringWeights(**LEARNED_DEFAULT_WEIGHTS), **common),
    }
    assert recs["ranker"].ranker is not None and recs["weights"].ranker is None
    rows = list(ds.scenes.iter_rows(named=True))[args.offset :: args.stride][: args.max_scenes]
    report: dict = {"dataset": str(args.dataset), "scenes": len(rows), "products": len(pids),
                    "learned": learned.fingerprint(), "ranker": learned.ranker.meta() | {"info": learned.ranker.info},
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    k = args.k
    for rec in recs.values():
        for _ in range(3):
            rec.recommend(rows[0]["image_path"], k=10)
    m: dict[str, dict[str, list[float]]] = {name: {} for name in recs}
    for r in rows:  # both recommenders on each scene in turn: the same machine load for both
        rel = ds.relevant[r["scene_id"]]
        for name, rec in recs.items():
            res = rec.recommend(r["image_path"], k=10)
            served = rec.recommend(r["image_path"], k=k, diversity=None, collapse_variants=False).product_ids
            evaluated = [str(p) for p in rec.score_catalog(r["image_path"]).ranked()[0][:k]]
            for key, v in (("total", res.timings_ms["total"]), ("rerank", res.timings_ms["rerank"]),
                           ("candidates", res.candidates),
                           ("overlap@10", len(set(served[:10]) & set(evaluated[:10])) / 10),
                           (f"overlap@{k}", len(set(served) & set(evaluated)) / k),
                           (f"served_recall@{k}", len(set(served) & rel) / len(rel)),
                           (f"evaluated_recall@{k}", len(set(evaluated) & rel) / len(rel))):
                m[name].setdefault(key, []).append(float(v))
    for name, vals in m.items():
        (t50, t95), (r50, r95) = percentiles(vals["total"]), percentiles(vals["rerank"])
        report[name] = {"total_ms": {"p50": round(t50, 1), "p95": round(t95, 1)},
                        "rerank_ms": {"p50": round(r50, 2), "p95": round(r95, 2)}} | {
            key: round(float(np.mean(v)), 4) for key, v in vals.items() if key not in ("total", "rerank")}
        q = report[name]
        print(f"{name:<8} recommend(k=10) total p50 {t50:6.1f} ms  p95 {t95:6.1f} ms | rerank p50 {r50:6.2f} ms  "
              f"p95 {r95:6.2f} ms | {q['candidates']:5.0f} candidates | served vs evaluated top-{k}: overlap@10 "
              f"{q['overlap@10']:.3f}, overlap@{k} {q[f'overlap@{k}']:.3f}, recall@{k} served "
              f"{q[f'served_recall@{k}']:.3f} / evaluated {q[f'evaluated_recall@{k}']:.3f}", flush=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{len(rows)} scenes, {len(pids)} products; load average {report['load_average_before']} -> "
          f"{report['load_average_after']} on {os.cpu_count()} CPUs (timings inflate when it exceeds them)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
