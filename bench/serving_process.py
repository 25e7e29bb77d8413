"""`scene-matcher serve` as a real process on a loopback port, for the serving, load and fuzz benchmarks.

Also builds the tiny offline bundle (fake encoder, synthetic products) that CI's reduced runs serve,
so they need no model weights and no dataset.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":")
            out[key] = int(value.split()[0])
    return out


@contextlib.contextmanager
def serve(index_dir: Path, *extra_args: str, ready_timeout_s: float = 300,
          data_dir: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start `scene-matcher serve --index DIR` on a free loopback port, wait for /ready, yield (process,
    base URL); the server is stopped (SIGTERM, then SIGKILL) however the block ends. ``data_dir``: its data
    folder (where it records feedback and keeps scene photos by default), else the environment's."""
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONPATH": str(ROOT)}
    if data_dir is not None:
        env["SCENE_MATCHER_DATA_DIR"] = str(data_dir)
    server = subprocess.Popen(
        [sys.executable, "-m", "faces.cli", "serve", "--index", str(index_dir), "--port", str(port), "--device", "cpu",
         *extra_args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        with httpx.Client(timeout=10, trust_env=False) as client:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"server exited with {server.returncode}: {server.stderr.read()[-2000:]}")
                try:
                    if client.get(f"{base}/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready after {ready_timeout_s:.0f} s")
                time.sleep(0.3)
        yield server, base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def match_answers(index_dir: Path, scenes: list[tuple[str, str]], *extra_args: str, k: int,
                  ready_timeout_s: float = 300, request_timeout_s: float = 300) -> dict[str, list[str]]:
    """scene id -> the product ids a real server on ``index_dir`` (``serve`` arguments ``extra_args``)
    lists for it: each ``(scene_id, image_path)`` POSTed once to /match with only ``k`` set."""
    import httpx

    answers: dict[str, list[str]] = {}
    with (serve(index_dir, *extra_args, ready_timeout_s=ready_timeout_s) as (_, base),
          httpx.Client(base_url=base, timeout=request_timeout_s, trust_env=False) as client):
        for sid, image in scenes:
            response = client.post("/match", data={"k": str(k)},
                                   files={"image": (Path(image).name, Path(image).read_bytes(), "image/jpeg")})
            if response.status_code != 200:
                raise RuntimeError(f"/match for scene {sid} ({image}): {response.status_code} {response.text}")
            answers[sid] = [item["product_id"] for item in response.json()["items"]]
    return answers


def fake_bundle(directory: Path, n_products: int = 60, dim: int = 16) -> tuple[Path, list[bytes]]:
    """A served bundle of `n_products` synthetic products with the fake encoder (no weights needed),
    and a few scene photos (JPEG bytes) made of those products' images."""
    from PIL import Image
    import polars as pl

    from scene_assets.embeddings import vectors_frame
    from scene_assets.encoders import EncoderSpec, FakeOptions, build_encoder
    from scene_assets.recommender_bundle import build_scene_index, write_bundle_files

    spec = EncoderSpec(kind="fake", options=FakeOptions(dim=dim), device="cpu")
    encoder = build_encoder(spec)
    rng = np.random.default_rng(0)
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(n_products)]
    images = [Image.new("RGB", (64, 64), c) for c in colours]
    ids = [f"fake-{i:04d}" for i in range(n_products)]
    categories = ["seating", "tables", "lighting", "rugs", "vases", "beds"]
    catalog = pl.DataFrame({
        "product_id": ids,
        "title": [f"PRODUCT {i}" for i in range(n_products)],
        "category": [categories[i % len(categories)] for i in range(n_products)],
        "product_type": [categories[i % len(categories)] for i in range(n_products)],
        "colors": [[] for _ in ids],
    })
    if not (directory / "bundle.json").is_file():
        fingerprint = encoder.fingerprint()
        frame = vectors_frame(ids, ids, fingerprint, encoder.encode_images(images))
        build_scene_index(frame, directory, fingerprint=fingerprint, space="joint")
        text = encoder.encode_texts(catalog["title"].to_list())
        write_bundle_files(
            directory,
            catalog=catalog,
            text_vectors=vectors_frame(ids, ids, encoder.text_fingerprint(), text).select("product_id", "vector"),
            encoder_spec=spec,
            text_fingerprint=encoder.text_fingerprint(),
        )
    scenes = []
    for s in range(8):
        scene = Image.new("RGB", (320, 240), (230, 228, 220))
        for n, i in enumerate(rng.choice(n_products, 4, replace=False)):
            scene.paste(images[int(i)], (20 + 75 * n, 60 + 20 * (s % 3)))
        buf = io.BytesIO()
        scene.save(buf, "JPEG", quality=90)
        scenes.append(buf.getvalue())
    return directory, scenes
