"""Artifacts of an evaluation run: plots and a small HTML gallery (no Dagster imports).

* ``reliability.png``: the top-10 confidence reliability diagram (calibrated confidence vs the observed
  share of labeled products, per bin, with the bin counts);
* ``recall_at_k.png``: recall@k of the system and every baseline;
* ``gallery/index.html``: the best and worst scenes by nDCG@10 - scene thumbnail, then its top-10
  products with a mark on the labeled ones and the labeled products that were missed.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["write_gallery", "write_plots", "write_variant_plot"]


def write_plots(report, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(5, 5))
    bins = [b for b in report.reliability if b["count"]]
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    if bins:
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label="scene-matcher")
        for b in bins:
            ax.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("confidence (top-10 of each scene)")
    ax.set_ylabel("share that are labeled in the scene")
    ece = report.metrics.get("ece")
    ax.set_title(f"Reliability (ECE {ece:.3f})" if ece is not None else "Reliability")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    fig.tight_layout()
    p = out_dir / "reliability.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ks = report.recall_curve["k"]
    for name, vals in report.recall_curve.items():
        if name == "k":
            continue
        ax.plot(ks, vals, "o-" if name == "system" else ".--", label="scene-matcher" if name == "system" else name,
                linewidth=2.5 if name == "system" else 1)
    ax.set_xscale("log")
    ax.set_xlabel("k (products shown)")
    ax.set_ylabel("recall@k")
    ax.set_title(f"Recall@k over {report.metrics['n_scenes']} scenes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / "recall_at_k.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths


def write_variant_plot(rates, path: Path) -> Path:
    """Bar chart of each A/B variant's click-through, add-to-cart and purchase rates with their 95 %
    intervals (``scene_assets.feedback.variant_rates``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [("ctr", "click-through"), ("add_to_cart_rate", "add to cart"), ("purchase_rate", "purchase")]
    variants = rates["variant"].to_list()
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(names))
    for i, variant in enumerate(variants):
        row = rates.row(i, named=True)
        values = np.array([row[n] for n, _ in names])
        errors = np.array([[row[n] - row[f"{n}_low"] for n, _ in names], [row[f"{n}_high"] - row[n] for n, _ in names]])
        ax.bar(x + i * width - 0.4 + width / 2, values, width, yerr=errors, capsize=3,
               label=f"{variant} ({row['served']} served)")
    ax.set_xticks(x, [label for _, label in names])
    ax.set_ylabel("share of recommendations served")
    ax.set_title("A/B variants (95 % Wilson intervals)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _thumb_data_uri(path: str | None, size: int) -> str | None:
    import base64

    from PIL import Image

    if not path:
        return None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_gallery(report, dataset, out_dir: Path, n: int = 4, k: int = 10) -> Path:
    """Best and worst ``n`` scenes by nDCG@10. Thumbnails are embedded (data URIs), so the one HTML
    file can be opened anywhere - including as an MLflow artifact."""
    out_dir.mkdir(parents=True, exist_ok=True)
    w = report.config.weights.vector()
    w = w / w.sum()
    by_id = {r.scene_id: r for r in report.results}
    images = dict(zip(dataset.scenes["scene_id"].to_list(), dataset.scenes["image_path"].to_list()))
    prod = dataset.products
    paths = dict(zip(prod["product_id"].to_list(), prod["image_path"].to_list()))
    titles = dict(zip(prod["product_id"].to_list(), prod["title"].to_list()))
    ranked = report.per_scene.sort("ndcg@10", descending=True)
    best = ranked.head(n)["scene_id"].to_list()
    worst = ranked.tail(n).reverse()["scene_id"].to_list()

    def card(pid: str, hit: bool, score: float | None) -> str:
        uri = _thumb_data_uri(paths.get(pid), 110)
        img = f'<img src="{uri}" alt="">' if uri else '<div class="noimg">no image</div>'
        cls = "hit" if hit else ""
        sc = "" if score is None else f"<br>{score:.3f}"
        return (f'<div class="p {cls}">{img}<div class="cap">{html.escape(str(titles.get(pid) or pid))[:40]}'
                f'<br><code>{html.escape(pid)}</code>{sc}</div></div>')

    sections = []
    for label, ids in (("Best scenes", best), ("Worst scenes", worst)):
        rows = []
        for sid in ids:
            r = by_id[sid]
            s = r.factors @ w
            top = np.argsort(-s, kind="stable")[:k]
            rel = set(r.relevant_rows.tolist())
            missed = [i for i in r.relevant_rows if i not in set(top.tolist())][:6]
            m = ranked.filter(pl.col("scene_id") == sid).row(0, named=True)
            scene_uri = _thumb_data_uri(images.get(sid), 260)
            cards = "".join(card(report.product_ids[i], i in rel, float(s[i])) for i in top)
            miss = "".join(card(report.product_ids[i], False, float(s[i])) for i in missed)
            rows.append(
                f'<div class="scene"><div class="s"><img src="{scene_uri}" alt=""><div class="cap"><b>'
                f'{html.escape(sid)}</b><br>{html.escape(r.room_type)} (predicted {html.escape(r.predicted_room)})'
                f'<br>nDCG@10 {m["ndcg@10"]:.3f} · recall@10 {m["recall@10"]:.3f} · {len(rel)} labeled</div></div>'
                f'<div class="row"><h4>top {k} (green = labeled in the photo)</h4>{cards}</div>'
                + (f'<div class="row"><h4>labeled but not in the top {k}</h4>{miss}</div>' if miss else "")
                + "</div>")
        sections.append(f"<h2>{label}</h2>" + "".join(rows))
    m = report.metrics
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>scene-matcher evaluation gallery</title>
<style>body{{font-family:sans-serif;margin:16px;background:#fafafa}} .scene{{background:#fff;border:1px solid #ddd;
margin:10px 0;padding:8px}} .s{{display:inline-block;vertical-align:top;width:270px}} .row{{margin:4px 0}}
.p{{display:inline-block;width:116px;vertical-align:top;margin:2px;border:3px solid transparent;font-size:10px}}
.p.hit{{border-color:#2a2}} .cap{{font-size:11px}} h4{{margin:2px 0;font-size:12px;color:#555}}
.noimg{{width:110px;height:80px;background:#eee}}</style></head><body>
<h1>scene-matcher evaluation</h1><p>{html.escape(report.protocol)} · {m['n_scenes']} scenes ·
recall@10 {m['recall@10']:.3f} · nDCG@10 {m['ndcg@10']:.3f} · MRR {m['mrr']:.3f} · encoder <code>{m['encoder']}</code></p>
{''.join(sections)}</body></html>"""
    path = out_dir / "index.html"
    path.write_text(doc, encoding="utf-8")
    return path


def table_rows(report) -> Sequence[dict]:
    """The baselines + system as rows (for metadata tables)."""
    rows = [{"method": k, **v} for k, v in report.baselines.items()]
    rows.append({"method": "scene-matcher", **{k: report.metrics.get(k) for k in rows[0] if k != "method"}})
    return rows
