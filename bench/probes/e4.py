from h import *
from sklearn.linear_model import LogisticRegression
prod, regs, glob = base_features(); regs = [np.asarray(r, np.float32) for r in regs]
y = np.array([ROOMS[s] for s in SIDS]); idx = {s: i for i, s in enumerate(SIDS)}
stored, mean = catalog_space(prod)
def feats(kind):
    if kind == "glob": return l2(glob)
    if kind == "glob_c": return center_and_normalize(glob, mean)
    if kind == "regmax": return np.stack([l2(r).max(0) for r in regs])
    if kind == "glob+regmax": return np.hstack([l2(glob), np.stack([l2(r).max(0) for r in regs])])
    if kind == "grid2": return np.stack([l2(r[1:5]).reshape(-1) for r in regs])
    if kind == "glob+grid2": return np.hstack([l2(glob), np.stack([l2(r[1:5]).reshape(-1) for r in regs]) / 2])
    if kind == "glob+zs_prod": return np.hstack([l2(glob), np.stack([(center_and_normalize(r, mean) @ stored.T).max(0) for r in regs])])
for kind in ["glob", "glob_c", "regmax", "glob+regmax", "grid2", "glob+grid2", "glob+zs_prod"]:
    X = feats(kind)
    for C in [1, 10, 100]:
        acc = []
        for f, test in enumerate(FOLDS):
            tr = [idx[s] for g, p in enumerate(FOLDS) if g != f for s in p]; te = [idx[s] for s in test]
            clf = LogisticRegression(C=C, max_iter=3000).fit(X[tr], y[tr]); acc += list(clf.predict(X[te]) == y[te])
        print(f"{kind:14s} C={C:<4} acc {np.mean(acc):.3f}", flush=True)
