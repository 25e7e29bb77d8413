"""Category-aware queries: per-category attention over the scene's cells, on top of the composite-trained projection."""
from h import *
import os, torch.nn.functional as F
from scene_assets.learned import fit_region_projection
prod, regs, glob = base_features()
stored, mean = catalog_space(prod)
Q = {s: center_and_normalize(np.asarray(r, np.float32), mean) for s, r in zip(SIDS, regs)}
C = np.load(os.environ.get("COMP", PROBE_DIR + "/composites_20.npz")); Cv = center_and_normalize(C["vecs"], mean); Crow = C["rows"]; Csrc = C["src"]
cells = {}
for s in SIDS:
    f = head_cells(Z["scene_" + s][None])[0]; cells[s] = center_and_normalize(f.reshape(1280, -1).T, mean)
cats = sorted(set(CATS)); cidx = np.array([cats.index(c) for c in CATS]); NC = len(cats)
print("categories", NC, flush=True)
def fit(train, steps=300, T=0.05, tau=0.1):
    tr = set(train); sel = np.array([s in tr for s in Csrc])
    m = fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, pair_queries=Cv[sel], pair_products=Crow[sel])
    P = torch.from_numpy(m.transform_products(stored))  # n x d
    E = {s: torch.from_numpy(l2(cells[s] @ m.query_map)) for s in train}
    A = torch.nn.Parameter(torch.zeros(NC, P.shape[1])); opt = torch.optim.Adam([A], lr=0.05)
    g = torch.Generator().manual_seed(0); ci = torch.from_numpy(cidx)
    for it in range(steps):
        b = [train[i] for i in torch.randint(len(train), (16,), generator=g).tolist()]
        loss = 0; cnt = 0
        for s in b:
            e = E[s]; att = torch.softmax((A @ e.T) / tau, 1)  # NC x cells
            q = F.normalize(att @ e, dim=1)  # NC x d
            logits = (q[ci] * P).sum(1) / T  # each product scored by its category's query
            lp = torch.log_softmax(logits, 0); loss = loss - lp[REL[s]].mean(); cnt += 1
        opt.zero_grad(); (loss / cnt).backward(); opt.step()
    return m, A.detach(), P
def score_with(gamma, tau=0.1):
    def score(model, test):
        m, A, P = model; pp = P.numpy(); out = {}
        for s in test:
            base = m.scores(Q[s], pp)
            e = l2(cells[s] @ m.query_map)
            att = np.exp((A.numpy() @ e.T) / tau); att /= att.sum(1, keepdims=True)
            q = l2(att @ e)
            cat = (q[cidx] * pp).sum(1)
            out[s] = base + gamma * cat
        return out
    return score
fc = per_fold_cache(fit)
for gamma in [0, 0.3, 1.0, 3.0]:
    print(fmt(f"category attention gamma={gamma}", metrics(cv(fc, score_with(gamma), say=False))), flush=True)
