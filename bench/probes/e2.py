from h import *
from scene_assets.learned import ProjectionConfig, fit_region_projection
prod, regs, glob = base_features()
stored, mean = catalog_space(prod)
Q = {s: center_and_normalize(r, mean) for s, r in zip(SIDS, regs)}
import os; C = np.load(os.environ.get("COMP", PROBE_DIR + "/composites_20.npz")); Cv = center_and_normalize(C["vecs"], mean); Crow = C["rows"]; Csrc = C["src"]
print("zero-shot composite R@1:", np.mean((Cv @ stored.T).argmax(1) == Crow), "R@10:", np.mean([(r in np.argsort(-v)[:10]) for v, r in zip(Cv @ stored.T, Crow)]))
def run(name, **kw):
    use_comp = kw.pop("comp", False)
    cfg = ProjectionConfig(**kw)  # e.g. shared_map=False, composite_weight=3, composite_batch=256, temperature=0.03
    def fit(train):
        tr = set(train); sel = np.array([s in tr for s in Csrc])
        return fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, cfg,
                                     pair_queries=Cv[sel] if use_comp else None, pair_products=Crow[sel] if use_comp else None)
    def score(m, test):
        pp = m.transform_products(stored); return {s: m.scores(Q[s], pp) for s in test}
    t = time.time(); r = cv(fit, score, say=False); print(fmt(name, metrics(r)), f"{time.time()-t:.0f}s", flush=True); return r
import sys
for spec in sys.argv[1:]:
    kw = eval(f"dict({spec})"); run(spec, **kw)
