"""Synthetic composites: paste catalog product cut-outs into scene photos; pooled region of each paste."""
import sys, json, time, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from pathlib import Path
from PIL import Image, ImageFilter, ImageEnhance
from h import *
from evaluation.dataset import load_labeled_dataset
from scene_assets.images import open_rgb
from scene_assets.regions import input_size_for, pool_regions
N_PER_SCENE = int(sys.argv[1]) if len(sys.argv) > 1 else 6
PASTES = 3
ds = load_labeled_dataset(__import__("os").environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea"))
ppaths = dict(zip(ds.products["product_id"].to_list(), ds.products["image_path"].to_list()))
spaths = dict(zip(ds.scenes["scene_id"].to_list(), ds.scenes["image_path"].to_list()))
t = trunk(); from h import _enc as enc
def cutout(img):
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    bg = (a.min(axis=2) > 232)
    m = Image.fromarray(((~bg) * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(5))
    mm = np.asarray(m) > 127
    if mm.mean() < 0.02: return None
    ys, xs = np.nonzero(mm)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return img.crop(box), m.crop(box).filter(ImageFilter.GaussianBlur(1))
rng = np.random.default_rng(N_PER_SCENE)
cfg = RegionConfig()
out_vecs, out_rows, out_src = [], [], []
t0 = time.time()
for si, sid in enumerate(SIDS):
    scene = open_rgb(Path(spaths[sid]))
    w, h = scene.size
    ih, iw = input_size_for(w, h, cfg)
    base = scene.resize((iw, ih), Image.BICUBIC)
    for k in range(N_PER_SCENE):
        comp = base.copy(); pastes = []
        for j in range(PASTES):
            for _ in range(10):
                pid = PIDS[rng.integers(len(PIDS))]
                c = cutout(open_rgb(Path(ppaths[pid])))
                if c is not None: break
            img, mask = c
            side = rng.uniform(0.22, 0.5) * min(ih, iw)
            sc = side / max(img.size)
            nw, nh = max(8, int(img.size[0] * sc)), max(8, int(img.size[1] * sc))
            img = ImageEnhance.Brightness(img.resize((nw, nh), Image.BICUBIC)).enhance(rng.uniform(0.65, 1.15))
            img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.2))
            mask = mask.resize((nw, nh), Image.BILINEAR)
            # slot j of PASTES horizontal bands to limit overlap; random vertical position
            x0 = int(rng.uniform(j * iw / PASTES, max(j * iw / PASTES, (j + 1) * iw / PASTES - nw)))
            y0 = int(rng.uniform(0.15 * ih, max(0.15 * ih, ih - nh)))
            if rng.random() < 0.3:  # occlusion: cut part of the object's bottom
                cut = int(nh * rng.uniform(0.15, 0.4)); mask = mask.copy(); mask.paste(0, (0, nh - cut, nw, nh))
            comp.paste(img, (x0, y0), mask)
            pastes.append((ROW[pid], x0, y0, x0 + nw, y0 + nh))
        x = enc._full_image_transform((ih, iw))(comp).unsqueeze(0)
        with torch.inference_mode():
            x = x.contiguous(memory_format=torch.channels_last)
            f = t.forward_features(x)[0].float().numpy()
        H, W = f.shape[1:]
        rects = []
        for (row, a, b, c2, d) in pastes:
            r0, r1 = int(b / ih * H), max(int(b / ih * H) + 1, int(np.ceil(d / ih * H)))
            c0, c1 = int(a / iw * W), max(int(a / iw * W) + 1, int(np.ceil(c2 / iw * W)))
            rects.append((r0, min(r1, H), c0, min(c1, W)))
        v = pool_regions(f, np.array(rects), cfg.pool_power)
        out_vecs.append(v); out_rows += [p[0] for p in pastes]; out_src += [sid] * len(pastes)
    if si % 20 == 0: print(si, time.time() - t0, flush=True)
np.savez(f"{PROBE_DIR}/composites_{N_PER_SCENE}.npz", vecs=np.concatenate(out_vecs), rows=np.array(out_rows), src=np.array(out_src))
print("done", time.time() - t0)
