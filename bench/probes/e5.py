"""Co-occurrence re-ranking over the projection's candidates (direction 5), on out-of-fold projection scores."""
from h import *
import os
from scene_assets.learned import fit_region_projection
prod, regs, glob = base_features()
stored, mean = catalog_space(prod)
Q = {s: center_and_normalize(np.asarray(r, np.float32), mean) for s, r in zip(SIDS, regs)}
C = np.load(os.environ.get("COMP", PROBE_DIR + "/composites_20.npz")); Cv = center_and_normalize(C["vecs"], mean); Crow = C["rows"]; Csrc = C["src"]
n = len(PIDS)
def fit(train):
    tr = set(train); sel = np.array([s in tr for s in Csrc])
    m = fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, pair_queries=Cv[sel], pair_products=Crow[sel])
    # co-occurrence counts among training scenes' labels
    A = np.zeros((n, n), np.float32); cnt = np.zeros(n, np.float32)
    for s in train:
        r = REL[s]; A[np.ix_(r, r)] += 1; cnt[r] += 1
    np.fill_diagonal(A, 0)
    return m, A, cnt, len(train)
base = {}
def score_with(beta, K, kind):
    def score(model, test):
        m, A, cnt, N = model
        pp = m.transform_products(stored); out = {}
        for s in test:
            sc = m.scores(Q[s], pp)
            if beta:
                top = np.argsort(-sc)[:K]
                w = np.exp((sc[top] - sc[top].max()) / 0.05)
                if kind == "pmi":
                    pj = (A[:, top] + 0.1) / (cnt[top][None, :] + 1)  # P(p | q)
                    pm = (cnt + 0.1) / (N + 1)
                    ev = (np.log(pj / pm[:, None]) * w).sum(1) / w.sum()
                else:
                    ev = (A[:, top] > 0).astype(np.float32) @ w / w.sum()
                sc = sc + beta * ev
            out[s] = sc
        return out
    return score
fit_cached = per_fold_cache(fit)
for beta, K, kind in [(0, 0, ""), (0.02, 10, "pmi"), (0.05, 10, "pmi"), (0.1, 10, "bin"), (0.2, 10, "bin"), (0.05, 20, "bin")]:
    r = cv(fit_cached, score_with(beta, K, kind), say=False)
    print(fmt(f"cooc {kind} beta={beta} K={K}", metrics(r)), flush=True)
