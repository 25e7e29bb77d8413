"""Load test of the real HTTP server on loopback: N requests at concurrency C, then it stops by itself.

  .venv/bin/python bench/bench_load.py                                  # IKEA bundle, default encoder, 2,000 requests
  .venv/bin/python bench/bench_load.py --fake --requests 300 --json out.json    # CI: tiny offline bundle

`scene-matcher serve --index DIR` is started as its own process. Every request POSTs a scene photo to
``/match``; each payload is made unique (bytes appended after the JPEG end marker, which decoders
ignore) so every request is a cache miss and does the full work. A warm-up pass runs first; the
server's resident memory (VmRSS) is read before and after the measured run, so memory growth across
the run shows. Prints a table: p50 / p95 / p99 latency, throughput, errors by kind, RSS before/after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_process import fake_bundle, rss_kib, serve  # noqa: E402


def unique_payloads(scenes: list[bytes]):
    """Endless distinct request bodies: scene i, then a counter after the JPEG's end-of-image marker."""
    for n in itertools.count():
        yield scenes[n % len(scenes)] + b"\xff\xfe" + n.to_bytes(8, "big")


def run_load(base_url: str, scenes: list[bytes], requests: int, concurrency: int, k: int = 10) -> dict:
    """POST `requests` unique scene photos to /match from `concurrency` threads; latency and errors."""
    import httpx

    payloads = unique_payloads(scenes)
    lock = threading.Lock()
    latencies: list[float] = []
    outcomes: Counter = Counter()
    local = threading.local()

    def one(_: int) -> None:
        with lock:
            body = next(payloads)
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=60, trust_env=False)
        started = time.perf_counter()
        try:
            response = client.post("/match", files={"image": ("scene.jpg", body, "image/jpeg")}, data={"k": str(k)})
            ok = response.status_code == 200 and len(response.json().get("items", [])) > 0
            outcome = "ok" if ok else f"http {response.status_code}"
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            outcomes[outcome] += 1
            if outcome == "ok":
                latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    errors = sum(v for key, v in outcomes.items() if key != "ok")
    p50, p95, p99 = (float(np.percentile(latencies, q)) if latencies else float("nan") for q in (50, 95, 99))
    return {
        "requests": requests, "concurrency": concurrency, "ok": outcomes["ok"], "errors": errors,
        "errors_by_kind": {key: v for key, v in outcomes.items() if key != "ok"},
        "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p99_ms": round(p99, 1),
        "throughput_rps": round(requests / wall, 2), "wall_s": round(wall, 1),
    }


def load_test(index_dir: Path, scenes: list[bytes], requests: int, concurrency: int, warmup: int) -> dict:
    with serve(index_dir) as (server, base):
        run_load(base, scenes, warmup, concurrency)
        before = rss_kib(server.pid)
        result = run_load(base, scenes, requests, concurrency)
        after = rss_kib(server.pid)
    result.update(
        rss_before_mib=round(before["VmRSS"] / 1024, 1),
        rss_after_mib=round(after["VmRSS"] / 1024, 1),
        rss_growth_mib=round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
        peak_rss_mib=round(after["VmHWM"] / 1024, 1),
        warmup=warmup,
    )
    return result


def ikea_bundle(dataset: Path, cache_dir: Path, scenes: int) -> tuple[Path, list[bytes]]:
    from bench_scene_query import load_dataset, product_text_vectors, product_trunk_features
    from bench_serving import build_bundle

    from scene_assets.encoders import EncoderSpec, build_encoder

    encoder = build_encoder(EncoderSpec(kind="default", device="cpu"))
    products, scene_rows, _pairs = load_dataset(dataset)
    features = product_trunk_features(encoder, products, cache_dir)
    texts = product_text_vectors(encoder, products, cache_dir)
    directory = cache_dir / f"bundle-real-{encoder.trunk_fingerprint()[:12]}"
    build_bundle(directory, encoder, products, features, texts, None)
    return directory, [(dataset / p).read_bytes() for p in scene_rows["image"].to_list()[:scenes]]


def print_table(label: str, r: dict) -> None:
    print(f"\nLoad test: {label}, {r['requests']} requests at concurrency {r['concurrency']} "
          f"(after {r['warmup']} warm-up), unique payloads (no cache hits)")
    header = (f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7} {'errors':>7} "
              f"{'RSS before':>11} {'RSS after':>10} {'growth':>8} {'peak RSS':>9}")
    print(header + "\n" + "-" * len(header))
    print(f"{r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['throughput_rps']:7.2f} {r['errors']:7d} "
          f"{r['rss_before_mib']:7.0f} MiB {r['rss_after_mib']:6.0f} MiB {r['rss_growth_mib']:+5.0f} MiB "
          f"{r['peak_rss_mib']:5.0f} MiB")
    if r["errors_by_kind"]:
        print("errors: " + ", ".join(f"{k}: {v}" for k, v in r["errors_by_kind"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path(os.environ.get("SCENE_MATCHER_IKEA_DIR", "../shared/ikea")))
    ap.add_argument("--fake", action="store_true", help="serve a tiny synthetic bundle with the fake encoder (CI)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--scenes", type=int, default=40, help="distinct scene photos (IKEA bundle)")
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache/bench"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.fake:
            index_dir, scenes = fake_bundle(Path(tmp) / "bundle")
            label = "synthetic 60-product bundle, fake encoder"
        else:
            index_dir, scenes = ikea_bundle(args.dataset, args.cache_dir, args.scenes)
            label = "IKEA catalog bundle, default encoder"
        result = load_test(index_dir, scenes, args.requests, args.concurrency, args.warmup)
    print_table(label, result)
    if args.json:
        args.json.write_text(json.dumps({"label": label, **result}, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
