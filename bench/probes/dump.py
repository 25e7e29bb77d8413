"""Dump pre-head (320ch) feature maps of products and scenes + labels, for fast experiments."""
import sys, time, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from pathlib import Path
from evaluation.dataset import load_labeled_dataset
from scene_assets.encoders import build_encoder
from scene_assets.images import open_rgb
from scene_assets.regions import RegionConfig, input_size_for
torch.set_num_threads(2)
import os
PROBE_DIR = os.environ.get("PROBE_DIR", "data/cache/probes")
os.makedirs(PROBE_DIR, exist_ok=True)
ds = load_labeled_dataset(__import__("os").environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea"))
enc = build_encoder(); enc._ensure_loaded()
trunk = enc.model.visual.trunk
print(type(trunk), [n for n, _ in trunk.named_children()])
def prehead(x):
    with torch.inference_mode():
        x = x.contiguous(memory_format=torch.channels_last)
        x = trunk.conv_stem(x); x = trunk.bn1(x); x = trunk.blocks(x)
        return x.float()
prods = ds.products
print(prods.columns, prods.height)
paths = prods["image_path"].to_list()
tf = enc.image_transform
out = []
t0 = time.time()
for s in range(0, len(paths), 32):
    imgs = [open_rgb(Path(p)) for p in paths[s:s+32]]
    x = torch.stack([tf(im) for im in imgs])
    out.append(prehead(x).numpy().astype(np.float16))
    imgs_flip = None
P = np.concatenate(out); print("products", P.shape, time.time()-t0)
cfg = RegionConfig()
S = {}
for r in ds.scenes.iter_rows(named=True):
    im = open_rgb(Path(r["image_path"]))
    w, h = im.size
    ih, iw = input_size_for(w, h, cfg)
    f = min(w // iw, h // ih)
    small = im.reduce(f) if f >= 2 else im
    x = enc._full_image_transform((ih, iw))(small).unsqueeze(0)
    S[r["scene_id"]] = prehead(x)[0].numpy().astype(np.float16)
print("scenes", len(S), time.time()-t0)
rooms = ds.rooms()
np.savez(PROBE_DIR + "/maps.npz", products=P, product_ids=np.array(prods["product_id"].to_list()),
         categories=np.array([str(c) for c in prods["category"].to_list()]),
         scene_ids=np.array(list(S)), **{"scene_"+k: v for k, v in S.items()})
import json
json.dump({"rooms": rooms, "relevant": {s: sorted(v) for s, v in ds.relevant.items()}, "scene_ids": ds.scene_ids,
           "product_ids": prods["product_id"].to_list()}, open(PROBE_DIR + "/labels.json", "w"))
