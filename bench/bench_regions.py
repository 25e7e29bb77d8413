"""The scene's CNN pass (the "regions" stage) under other runtimes and input sizes (#21).

  .venv/bin/python bench/bench_regions.py --scenes 25 [--cold] [--compile]
  (ONNX rows need onnxruntime and onnx, dependencies since #21; without them those rows say so.
  --compile adds torch.compile, which compiles per new input shape: minutes on 2 cores)

For each IKEA scene photo the default encoder's trunk runs on the same input the recommender gives it
(`regions.input_size_for`: short side 448, aspect kept), p50 / p95 ms over the scenes, after one warm-up
pass per input shape unless --cold; "max |Δ|" compares the pooled region vectors (GeM over the default
region layout, each normalised) with eager fp32 torch: ~1e-6 is the same result, anything larger
changes features and needs `scene-matcher evaluate` (within 0.005 nDCG@10) before it can ship.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_assets.encoders import build_encoder  # noqa: E402
from scene_assets.images import open_rgb  # noqa: E402
from scene_assets.regions import RegionConfig, input_size_for, pool_regions, region_layout  # noqa: E402


def scene_inputs(dataset: Path, n: int, config: RegionConfig, encoder):
    paths = sorted((dataset / "images" / "scenes").glob("*"))[:n]
    out = []
    for p in paths:
        im = open_rgb(p)
        ih, iw = input_size_for(*im.size, config)
        f = min(im.size[0] // iw, im.size[1] // ih)
        small = im.reduce(f) if f >= 2 else im
        out.append(encoder._full_image_transform((ih, iw))(small)[None].numpy())
    return out


def regions_of(fmap: np.ndarray, config: RegionConfig) -> np.ndarray:
    rects, _ = region_layout(fmap.shape[1], fmap.shape[2], config)
    v = pool_regions(fmap, rects, config.pool_power)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def timed(run, inputs, cold: bool):
    if not cold:
        for x in {x.shape: x for x in inputs}.values():
            run(x)
    times, maps = [], []
    for x in inputs:
        t0 = time.perf_counter()
        maps.append(run(x))
        times.append((time.perf_counter() - t0) * 1000)
    return times, maps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--scenes", type=int, default=25)
    ap.add_argument("--cold", action="store_true", help="no warm-up per input shape (every new shape pays setup)")
    ap.add_argument("--compile", action="store_true", help="add a torch.compile (inductor, dynamic shapes) row")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    config = RegionConfig()
    encoder = build_encoder()
    encoder._ensure_loaded()
    trunk = encoder.model.visual.trunk.eval()
    inputs = scene_inputs(args.dataset, args.scenes, config, encoder)

    def eager(memory_format):
        trunk.to(memory_format=memory_format)

        def run(x):
            with torch.inference_mode():
                return trunk.forward_features(torch.from_numpy(x).contiguous(memory_format=memory_format))[0].numpy()
        return run

    variants = {"eager fp32, channels_last (trunk_runtime=torch)": eager(torch.channels_last)}
    variants["eager fp32, NCHW"] = eager(torch.contiguous_format)
    rows = {}
    reference = None
    for name, run in variants.items():
        times, maps = timed(run, inputs, args.cold)
        regs = [regions_of(m, config) for m in maps]
        reference = reference or regs
        rows[name] = (times, max(float(np.abs(a - b).max()) for a, b in zip(regs, reference)))
    trunk.to(memory_format=torch.channels_last)
    if args.compile:
        compiled = torch.compile(trunk.forward_features, dynamic=True)
        started = time.perf_counter()
        with torch.inference_mode():
            compiled(torch.from_numpy(inputs[0]).contiguous(memory_format=torch.channels_last))
        compile_s = time.perf_counter() - started

        def run_compiled(x):
            with torch.inference_mode():
                return compiled(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))[0].numpy()
        times, maps = timed(run_compiled, inputs, args.cold)
        regs = [regions_of(m, config) for m in maps]
        rows[f"torch.compile, dynamic (first call {compile_s:.0f} s)"] = (
            times, max(float(np.abs(a - b).max()) for a, b in zip(regs, reference)))

    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        rows["ONNX Runtime"] = (None, f"not installed ({e})")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trunk.onnx"

            class Features(torch.nn.Module):
                def __init__(self, net):
                    super().__init__()
                    self.net = net

                def forward(self, x):
                    return self.net.forward_features(x)

            trunk.requires_grad_(False)
            torch.onnx.export(Features(trunk).eval(), torch.from_numpy(inputs[0]), str(path), input_names=["x"],
                              output_names=["map"], dynamic_axes={"x": {2: "h", 3: "w"}, "map": {2: "mh", 3: "mw"}},
                              opset_version=17, dynamo=False)
            qpath = Path(tmp) / "trunk.int8.onnx"
            quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
            for name, p in (("ONNX Runtime fp32 (trunk_runtime=auto)", path), ("ONNX Runtime int8 (dynamic)", qpath)):
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 2
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                times, maps = timed(lambda x: session.run(None, {"x": x})[0][0], inputs, args.cold)
                regs = [regions_of(m, config) for m in maps]
                rows[name] = (times, max(float(np.abs(a - b).max()) for a, b in zip(regs, reference)))

    small = RegionConfig(short_side=384, max_long_side=768)
    small_inputs = scene_inputs(args.dataset, args.scenes, small, encoder)
    times, _ = timed(eager(torch.channels_last), small_inputs, args.cold)
    rows["eager fp32, short side 384 (needs evaluate)"] = (times, "other input size")

    print(f"\nScene CNN pass, {len(inputs)} IKEA scenes, input short side 448, {os.cpu_count()} cores "
          f"({platform.machine()}), torch {torch.__version__}, {'cold' if args.cold else 'warm'} shapes (ms)")
    header = f"{'runtime':<44} {'p50':>7} {'p95':>7}  max |Δ| of region vectors"
    print(header + "\n" + "-" * len(header))
    for name, (times, diff) in rows.items():
        if times is None:
            print(f"{name:<44} {'-':>7} {'-':>7}  {diff}")
            continue
        d = f"{diff:.1e}" if isinstance(diff, float) else diff
        print(f"{name:<44} {np.percentile(times, 50):7.1f} {np.percentile(times, 95):7.1f}  {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
