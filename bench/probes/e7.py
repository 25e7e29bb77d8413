"""Direction 4 under the learned projection: Lite0 vs Lite2 vs Lite0+Lite2 (each centred and normalised in
its own catalog space, then concatenated), labels only and with composites (``dump_lite2.py`` first)."""
import sys
from h import *
from scene_assets.learned import fit_region_projection

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
prod0, regs0, _ = base_features()
L2 = np.load(PROBE_DIR + "/lite2.npz", allow_pickle=True)
prod2, regs2 = L2["prod"], list(L2["regions"])
C = np.load(f"{PROBE_DIR}/composites_dual_{N}.npz")
Crow, Csrc = C["rows"], C["src"]
spaces = {}
for name, prod, regs, cv_ in (("lite0", prod0, regs0, C["v0"]), ("lite2", prod2, regs2, C["v2"])):
    stored, mean = catalog_space(prod)
    spaces[name] = (stored, {s: center_and_normalize(np.asarray(r, np.float32), mean) for s, r in zip(SIDS, regs)},
                    center_and_normalize(cv_.astype(np.float32), mean))
a, b = spaces["lite0"], spaces["lite2"]
spaces["lite0+lite2"] = (np.hstack([a[0], b[0]]) / np.sqrt(2), {s: np.hstack([a[1][s], b[1][s]]) / np.sqrt(2) for s in SIDS},
                         np.hstack([a[2], b[2]]) / np.sqrt(2))


def run(name, comp):
    stored, Q, Cv = spaces[name]

    def fit(train):
        tr = set(train); sel = np.array([s in tr for s in Csrc])
        return fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored,
                                     pair_queries=Cv[sel] if comp else None, pair_products=Crow[sel] if comp else None)

    def score(m, test):
        pp = m.transform_products(stored); return {s: m.scores(Q[s], pp) for s in test}

    t = time.time(); r = cv(fit, score, say=False)
    print(fmt(f"{name} {'+ composites ' + str(N) if comp else 'labels only'}", metrics(r)), f"{time.time() - t:.0f}s", flush=True)
    return r


res = {}
for comp in (False, True):
    for name in ("lite0", "lite2", "lite0+lite2"):
        res[(name, comp)] = run(name, comp)
# paired bootstrap of nDCG@10, concatenation vs Lite0, same folds
rng = np.random.default_rng(0)
for comp in (False, True):
    x, y = per_scene_ndcg(res[("lite0+lite2", comp)]), per_scene_ndcg(res[("lite0", comp)])
    d = np.array([x[s] - y[s] for s in x])
    bs = [d[rng.integers(len(d), size=len(d))].mean() for _ in range(2000)]
    print(f"lite0+lite2 - lite0 ({'composites' if comp else 'labels'}): dnDCG {d.mean():+.3f} "
          f"({np.percentile(bs, 2.5):+.3f}, {np.percentile(bs, 97.5):+.3f})")
