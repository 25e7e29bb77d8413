"""Direction 3, category-aware regions learned from composites: a per-cell category head trained on the cells
of pasted boxes (their product's category is known exactly), then one query per category pooled from the
scene's cells weighted by that category's probability, scoring that category's products only; added to the
composite-trained projection's score with weight gamma, or max-combined."""
import sys
from h import *
from sklearn.linear_model import LogisticRegression
from scene_assets.learned import fit_region_projection

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
prod, regs, _ = base_features()
stored, mean = catalog_space(prod)
Q = {s: center_and_normalize(np.asarray(r, np.float32), mean) for s, r in zip(SIDS, regs)}
C = np.load(f"{PROBE_DIR}/composites_dual_{N}.npz")
Crow, Csrc, Coff = C["rows"], C["src"], C["offsets"]
Cv = center_and_normalize(C["v0"].astype(np.float32), mean)
cats = sorted(set(CATS)); cidx = np.array([cats.index(c) for c in CATS])
box_cells = head_cells(C["cells"].astype(np.float32).T[None, :, :, None])[0, :, :, 0].T  # M_cells x 1280
cell_src = np.repeat(Csrc, np.diff(Coff)); cell_cat = np.repeat(cidx[Crow], np.diff(Coff))
scene_cells = {s: head_cells(Z["scene_" + s][None])[0].reshape(1280, -1).T for s in SIDS}
print("box cells", box_cells.shape, flush=True)


def fit(train):
    tr = set(train); sel = np.array([s in tr for s in Csrc]); csel = np.array([s in tr for s in cell_src])
    m = fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, pair_queries=Cv[sel],
                              pair_products=Crow[sel])
    X = l2(center_and_normalize(box_cells[csel], mean) @ m.query_map)
    head = LogisticRegression(C=1.0, max_iter=300).fit(X, cell_cat[csel])
    return m, head


def scores(model, s):
    m, head = model
    pp = m.transform_products(stored)
    base = m.scores(Q[s], pp)
    cells = scene_cells[s]
    P = np.zeros((len(cells), len(cats)))
    P[:, head.classes_] = head.predict_proba(l2(center_and_normalize(cells, mean) @ m.query_map))
    W = P / np.maximum(P.sum(0, keepdims=True), 1e-12)  # cells x categories
    qc = np.cbrt(W.T @ np.maximum(cells, 0) ** 3)  # GeM per category
    qc = l2(center_and_normalize(qc, mean) @ m.query_map)
    cat = (qc[cidx] * pp).sum(1)
    return base, cat


fc = per_fold_cache(fit)
cache = {}
def variant(f):
    def score(model, test):
        out = {}
        for s in test:
            if s not in cache: cache[s] = scores(model, s)
            out[s] = f(*cache[s])
        return out
    return score


res = {}
for name, f in [("projection (labels + composites)", lambda b, c: b), ("category queries alone", lambda b, c: c),
                ("+ 0.3 x category", lambda b, c: b + 0.3 * c), ("+ 1 x category", lambda b, c: b + c),
                ("max(base, category)", lambda b, c: np.maximum(b, c))]:
    res[name] = cv(fc, variant(f), say=False)
    vs = "" if name.startswith("projection") else paired(res[name], res["projection (labels + composites)"])
    print(fmt(name, metrics(res[name])), vs, flush=True)
