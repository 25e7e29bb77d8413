"""Direction 4, product views: the product's stored vector from the photo as is (today), its mirror image, a
tight crop on the object (the white-background cut-out's box, as the composites paste it), and means of them;
scenes and composites unchanged. Projection trained on labels + composites (``dump_lite2.py`` first)."""
import sys
from pathlib import Path
from h import *
import h
from evaluation.dataset import load_labeled_dataset
from scene_assets.composites import product_cutout
from scene_assets.images import open_rgb
from scene_assets.learned import fit_region_projection

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
out = Path(PROBE_DIR) / "product_views.npz"
if not out.exists():
    ds = load_labeled_dataset(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea"))
    paths = dict(zip(ds.products["product_id"].to_list(), ds.products["image_path"].to_list()))
    trunk(); enc = h._enc
    views = {"flip": [], "tight": []}
    t0 = time.time()
    for i in range(0, len(PIDS), 32):
        ims = [open_rgb(Path(paths[p])) for p in PIDS[i:i + 32]]
        views["flip"].append(enc.encode_image_trunk_features([im.transpose(0) for im in ims]))
        tight = []
        for im in ims:
            c = product_cutout(im)
            if c is None:
                tight.append(im)
                continue
            obj, _ = c
            side = max(obj.size)  # square canvas on white, object centred: the centre crop keeps all of it
            sq = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (side, side), (255, 255, 255))
            sq.paste(obj, ((side - obj.size[0]) // 2, (side - obj.size[1]) // 2))
            tight.append(sq)
        views["tight"].append(enc.encode_image_trunk_features(tight))
    np.savez(out, **{k: np.concatenate(v) for k, v in views.items()})
    print("views", f"{time.time() - t0:.0f}s", flush=True)
V = np.load(out)
prod, regs, _ = base_features()
C = np.load(f"{PROBE_DIR}/composites_dual_{N}.npz")
Crow, Csrc = C["rows"], C["src"]
variants = {"as is (today)": prod, "mirror": V["flip"], "tight crop": V["tight"],
            "mean(as is, mirror)": (prod + V["flip"]) / 2, "mean(as is, tight)": (prod + V["tight"]) / 2,
            "mean(all three)": (prod + V["flip"] + V["tight"]) / 3}
for name, P in variants.items():
    stored, mean = catalog_space(P)
    Q = {s: center_and_normalize(np.asarray(r, np.float32), mean) for s, r in zip(SIDS, regs)}
    Cv = center_and_normalize(C["v0"].astype(np.float32), mean)

    def fit(train):
        tr = set(train); sel = np.array([s in tr for s in Csrc])
        return fit_region_projection([Q[s] for s in train], [REL[s] for s in train], stored, pair_queries=Cv[sel],
                                     pair_products=Crow[sel])

    def score(m, test):
        pp = m.transform_products(stored); return {s: m.scores(Q[s], pp) for s in test}

    print(fmt(name, metrics(cv(fit, score, say=False))), flush=True)
