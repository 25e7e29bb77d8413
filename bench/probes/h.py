import os, sys, json, time, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from evaluation.folds import split_folds
from scene_assets.regions import RegionConfig, region_layout, pool_regions, center_and_normalize
torch.set_num_threads(2)
PROBE_DIR = os.environ.get("PROBE_DIR", "data/cache/probes")
os.makedirs(PROBE_DIR, exist_ok=True)
L = json.load(open(PROBE_DIR + "/labels.json"))
Z = np.load(PROBE_DIR + "/maps.npz")
PIDS = list(Z["product_ids"]); ROW = {p: i for i, p in enumerate(PIDS)}
CATS = np.array(Z["categories"])
SIDS = L["scene_ids"]
ROOMS = L["rooms"]
REL = {s: np.array(sorted(ROW[p] for p in L["relevant"][s] if p in ROW)) for s in SIDS}
FOLDS = split_folds(SIDS, 5, 0)
_enc = None
def trunk():
    global _enc
    if _enc is None:
        from scene_assets.encoders import build_encoder
        _enc = build_encoder(); _enc._ensure_loaded()
    return _enc.model.visual.trunk
def head_cells(x320):
    t = trunk()
    with torch.inference_mode():
        return t.bn2(t.conv_head(torch.from_numpy(np.asarray(x320, np.float32)))).numpy()
def l2(x): return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
def base_features(cfg=RegionConfig(), cache=PROBE_DIR + "/base.npz"):
    import os
    if cache and os.path.exists(cache):
        B = np.load(cache, allow_pickle=True); return B["prod"], list(B["regions"]), B["glob"]
    P = Z["products"]; prod = []
    for s in range(0, len(P), 128):
        prod.append(head_cells(P[s:s+128]).mean(axis=(2, 3)))
    prod = np.concatenate(prod)
    regs, glob = [], []
    for s in SIDS:
        f = head_cells(Z["scene_" + s][None])[0]
        rects, _ = region_layout(f.shape[1], f.shape[2], cfg)
        regs.append(pool_regions(f, rects, cfg.pool_power)); glob.append(f.mean(axis=(1, 2)))
    glob = np.stack(glob)
    if cache:
        np.savez(cache, prod=prod, regions=np.array(regs, dtype=object), glob=glob)
    return prod, regs, glob
def catalog_space(prod):
    m = l2(l2(prod).mean(axis=0, keepdims=True))[0]
    return center_and_normalize(prod, m), m
def metrics(scores_by_scene):
    out = {k: [] for k in ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10")}
    for s, sc in scores_by_scene.items():
        rel = REL[s]
        if not len(rel): continue
        order = np.argsort(-sc, kind="stable")
        rank = np.empty(len(sc), int); rank[order] = np.arange(len(sc))
        r = np.sort(rank[rel])
        out["recall@10"].append((r < 10).mean()); out["recall@50"].append((r < 50).mean())
        out["hit@10"].append(float((r < 10).any())); out["mrr"].append(1.0 / (r[0] + 1))
        dcg = (1 / np.log2(r[r < 10] + 2)).sum(); idcg = (1 / np.log2(np.arange(min(10, len(rel))) + 2)).sum()
        out["ndcg@10"].append(dcg / idcg)
    return {k: float(np.mean(v)) for k, v in out.items()}
def per_scene_ndcg(scores_by_scene):
    res = {}
    for s, sc in scores_by_scene.items():
        rel = REL[s]; order = np.argsort(-sc, kind="stable"); rank = np.empty(len(sc), int); rank[order] = np.arange(len(sc))
        r = np.sort(rank[rel]); res[s] = (1 / np.log2(r[r < 10] + 2)).sum() / (1 / np.log2(np.arange(min(10, len(rel))) + 2)).sum()
    return res
def cv(fit, score, say=True):
    """fit(train_ids) -> model; score(model, test_ids) -> {sid: scores}"""
    out = {}
    for f, test in enumerate(FOLDS):
        train = [s for g, part in enumerate(FOLDS) if g != f for s in part]
        t0 = time.time(); m = fit(train); t1 = time.time()
        out |= score(m, test)
        if say: print(f"  fold {f}: fit {t1-t0:.1f}s", flush=True)
    return out
def per_fold_cache(fit):
    """``fit`` memoised by its training scene ids: variants scored on the same fold models."""
    models = {}
    def cached(train):
        if tuple(train) not in models:
            models[tuple(train)] = fit(train)
        return models[tuple(train)]
    return cached
def fmt(name, m): return f"{name:45s} " + " ".join(f"{m[k]:.3f}" for k in ("recall@10", "recall@50", "ndcg@10", "mrr", "hit@10"))
def paired(a, b, n=2000, seed=0):
    """Mean per-scene nDCG@10 difference of score sets ``a`` - ``b`` with a paired 95 % bootstrap interval."""
    x, y = per_scene_ndcg(a), per_scene_ndcg(b)
    d = np.array([x[s] - y[s] for s in x]); rng = np.random.default_rng(seed)
    bs = [d[rng.integers(len(d), size=len(d))].mean() for _ in range(n)]
    return f"dnDCG@10 {d.mean():+.3f} ({np.percentile(bs, 2.5):+.3f}, {np.percentile(bs, 97.5):+.3f})"
