from h import *
from scene_assets.learned import fit_region_projection, ProjectionConfig
import dataclasses, sys
P = Z["products"]
pc = np.concatenate([head_cells(P[s:s+256]) for s in range(0, len(P), 256)])  # N,1280,7,7
smaps = {s: head_cells(Z["scene_" + s][None])[0] for s in SIDS}
np.save(PROBE_DIR + "/prod_cells.npy", pc.astype(np.float16))
def gem(x, p, axes):
    return np.power(np.power(np.maximum(x, 0), p).mean(axis=axes), 1 / p) if p != 1 else x.mean(axis=axes)
def run(name, cfg, prod_pool=1.0, pcfg=ProjectionConfig()):
    prod = gem(pc, prod_pool, (2, 3))
    stored, mean = catalog_space(prod)
    Q = {}
    for s in SIDS:
        f = smaps[s]; rects, _ = region_layout(f.shape[1], f.shape[2], cfg)
        Q[s] = center_and_normalize(pool_regions(f, rects, cfg.pool_power), mean)
    zs = {s: (Q[s] @ stored.T).max(0) for s in SIDS}
    def fit(train): return fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, pcfg)
    def score(m, test):
        pp = m.transform_products(stored); return {s: m.scores(Q[s], pp) for s in test}
    r = cv(fit, score, say=False)
    print(fmt(name + " zs", metrics(zs)), "|", fmt("proj", metrics(r)), flush=True)
    return r
base = RegionConfig()
run("base", base)
run("prod gem3", base, 3.0)
run("grids 2-6", dataclasses.replace(base, grids=(2, 3, 4, 5, 6)))
run("grids 2-4 + win .5/.25", dataclasses.replace(base, windows=((0.5, 0.25),)))
run("grids 2-5 + win .5/.25 .33/.167", dataclasses.replace(base, grids=(2,3,4,5), windows=((0.5, 0.25),(0.34,0.17))))
run("proj T .1", base, pcfg=ProjectionConfig(temperature=0.1))
run("proj T .03", base, pcfg=ProjectionConfig(temperature=0.03))
run("proj 120ep", base, pcfg=ProjectionConfig(epochs=120))
run("proj wd 1e-2", base, pcfg=ProjectionConfig(weight_decay=1e-2))
