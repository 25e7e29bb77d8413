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
  ``--learned`` holds (often fitted on these very scenes): the recall figures then are NOT held out -
  they are only there to compare the served list with the evaluated one.

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
from evaluation.protocol import product_features, product_text_vectors  # noqa: E402
from scene_assets.encoders import build_encoder  # noqa: E402
from scene_assets.learned import LearnedScorer  # noqa: E402
from scene_assets.matching import LEARNED_DEFAULT_WEIGHTS, Recommender, ScoringWeights  # noqa: E402


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--learned", type=Path, required=True, help="a saved learned scorer (learned.json + learned.npz)")
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/evaluation"))
    ap.add_argument("--max-scenes", type=int, default=None)
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
    rows = list(ds.scenes.iter_rows(named=True))[: args.max_scenes]
    report: dict = {"dataset": str(args.dataset), "scenes": len(rows), "products": len(pids),
                    "learned": learned.fingerprint(), "ranker": learned.ranker.meta() | {"info": learned.ranker.info},
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    k = args.k
    for name, rec in recs.items():
        for _ in range(3):
            rec.recommend(rows[0]["image_path"], k=10)
        total, rerank, cands = [], [], []
        overlap10, overlapk, served_hits, eval_hits, n_rel = [], [], [], [], []
        for r in rows:
            res = rec.recommend(r["image_path"], k=10)
            total.append(res.timings_ms["total"])
            rerank.append(res.timings_ms["rerank"])
            cands.append(res.candidates)
            served = rec.recommend(r["image_path"], k=k, diversity=None, collapse_variants=False).product_ids
            ids, _ = rec.score_catalog(r["image_path"]).ranked()
            evaluated = [str(p) for p in ids[:k]]
            rel = ds.relevant[r["scene_id"]]
            overlap10.append(len(set(served[:10]) & set(evaluated[:10])) / 10)
            overlapk.append(len(set(served) & set(evaluated)) / k)
            served_hits.append(len(set(served) & rel))
            eval_hits.append(len(set(evaluated) & rel))
            n_rel.append(len(rel))
        (t50, t95), (r50, r95) = percentiles(total), percentiles(rerank)
        report[name] = {"total_ms": {"p50": round(t50, 1), "p95": round(t95, 1)},
                        "rerank_ms": {"p50": round(r50, 2), "p95": round(r95, 2)},
                        "candidates_mean": round(float(np.mean(cands)), 1),
                        "overlap@10": round(float(np.mean(overlap10)), 4), f"overlap@{k}": round(float(np.mean(overlapk)), 4),
                        f"served_recall@{k}": round(float(np.mean(np.divide(served_hits, n_rel))), 4),
                        f"evaluated_recall@{k}": round(float(np.mean(np.divide(eval_hits, n_rel))), 4)}
        print(f"{name:<8} recommend(k=10) total p50 {t50:6.1f} ms  p95 {t95:6.1f} ms | rerank p50 {r50:6.2f} ms  "
              f"p95 {r95:6.2f} ms | {np.mean(cands):5.0f} candidates | served vs evaluated top-{k}: overlap@10 "
              f"{np.mean(overlap10):.3f}, overlap@{k} {np.mean(overlapk):.3f}, recall@{k} served "
              f"{report[name][f'served_recall@{k}']:.3f} / evaluated {report[name][f'evaluated_recall@{k}']:.3f}",
              flush=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{len(rows)} scenes, {len(pids)} products; load average {report['load_average_before']} -> "
          f"{report['load_average_after']} on {os.cpu_count()} CPUs (timings inflate when it exceeds them)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
