"""Two stateless replicas sharing a real Redis, under load, and an index swap under load (#19).

  .venv/bin/python bench/bench_replicas.py                      # 2,000 requests at concurrency 16
  .venv/bin/python bench/bench_replicas.py --requests 500 --json out.json

A throwaway `redis-server` (Debian package) and two `scene-matcher serve --index DIR --redis-url ...`
processes on loopback; DIR is a symlink to a bundle folder (fake encoder, synthetic products: the bench
measures the serving layer, not the model). Requests alternate between the replicas; each POSTs one of
`--distinct` scene payloads, so the first request of a payload is computed and later ones are answered
from a cache: the replica's own LRU ("local") or the other replica's answer through Redis ("shared").
Then the same load runs while DIR is switched to a second bundle (atomic symlink replace): both
replicas must reach the new version with no failed request. Prints tables; exit status 1 on any error.

The Python client (httpx, one thread per connection) shares the 2 cores with both replicas, so its own
per-request cost is part of every latency it reports. When `wrk` (Debian package, a C load generator)
is installed, cached answers are also measured with it at the same concurrency (half the connections
on each replica, every answer from the replica's own cache), next to a floor: the same load on
`GET /health`, which does nothing. Both rows are "what this machine can do", the floor the most any
endpoint of this server could reach here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
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

from serving_process import fake_bundle, free_port, serve  # noqa: E402


@contextlib.contextmanager
def redis_server(root: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def run_load(bases: list[str], scenes: list[bytes], requests: int, concurrency: int,
             during=None) -> dict:
    """`requests` POSTs spread over `bases` from `concurrency` threads; `during()` runs once, halfway
    (in that request's thread: the other threads keep sending meanwhile)."""
    import httpx

    lock = threading.Lock()
    rows: list[tuple[float, bool, str]] = []
    outcomes: Counter = Counter()
    versions: Counter = Counter()
    local = threading.local()

    def one(i: int) -> None:
        if i == requests // 2 and during is not None:
            during()
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60, trust_env=False)
        # each round over the payloads moves every payload to the other replica, so repeats are
        # answered by the replica's own LRU or, the first time there, through Redis
        base = bases[(i + i // len(scenes)) % len(bases)]
        t0 = time.perf_counter()
        try:
            response = client.post(f"{base}/match", data={"k": "10"},
                                   files={"image": ("scene.jpg", scenes[i % len(scenes)], "image/jpeg")})
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                outcomes[str(response.status_code)] += 1
                if response.status_code == 200:
                    body = response.json()
                    rows.append((ms, body["cached"], base))
                    versions[body["index_version"]] += 1
        except httpx.HTTPError as exc:
            with lock:
                outcomes[type(exc).__name__] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - t0
    ms = np.array([r[0] for r in rows]) if rows else np.zeros(1)
    cached = np.array([r[0] for r in rows if r[1]]) if any(r[1] for r in rows) else np.zeros(1)
    computed = np.array([r[0] for r in rows if not r[1]]) if any(not r[1] for r in rows) else np.zeros(1)
    return {
        "requests": requests, "concurrency": concurrency, "seconds": round(seconds, 2),
        "throughput_rps": round(requests / seconds, 1), "outcomes": dict(outcomes),
        "errors": requests - outcomes.get("200", 0),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "cached": int(sum(r[1] for r in rows)), "cached_p50_ms": round(float(np.percentile(cached, 50)), 1),
        "cached_p95_ms": round(float(np.percentile(cached, 95)), 1),
        "computed_p50_ms": round(float(np.percentile(computed, 50)), 1), "versions": dict(versions),
    }


_WRK_SCRIPT = """
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = os.getenv("WRK_METHOD")
if wrk.method == "POST" then
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
end
"""


def _wrk_report(text: str) -> dict:
    """p50 / p99 (ms), requests/s and non-2xx / socket errors from ``wrk --latency`` output."""
    import re

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    latency = {m.group(1): ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M)}
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"p50_ms": latency.get("50"), "p99_ms": latency.get("99"), "requests": requests,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
            "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)}


def wrk_load(bases: list[str], path: str, connections: int, seconds: float, root: Path,
             body: bytes = b"", content_type: str = "") -> dict | None:
    """``connections`` connections split over ``bases`` (one single-threaded wrk each, run together) for
    ``seconds``: merged p50 / p99 (the slower replica's), requests/s (summed), errors. None without wrk."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    (root / "wrk.lua").write_text(_WRK_SCRIPT)
    (root / "wrk-body").write_bytes(body)
    env = {**os.environ, "WRK_BODY_FILE": str(root / "wrk-body"), "WRK_METHOD": "POST" if body else "GET",
           "WRK_CONTENT_TYPE": content_type}
    per = max(1, connections // len(bases))
    processes = [subprocess.Popen([binary, "-t1", f"-c{per}", f"-d{seconds:g}s", "--latency", "-s", str(root / "wrk.lua"),
                                   f"{base}{path}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
                 for base in bases]
    reports = [_wrk_report(p.communicate()[0]) for p in processes]
    return {"connections": per * len(bases), "seconds": seconds, "requests": sum(r["requests"] for r in reports),
            "rps": round(sum(r["rps"] for r in reports), 1), "errors": sum(r["errors"] for r in reports),
            "p50_ms": round(max(r["p50_ms"] for r in reports), 2), "p99_ms": round(max(r["p99_ms"] for r in reports), 2)}


def cached_payload(bases: list[str], payload: bytes) -> tuple[bytes, str]:
    """The multipart body of a ``/match`` request for ``payload`` (as the load sends it) and its content
    type, after one request of it to each replica (so every later one is a cache hit)."""
    import httpx

    request = httpx.Request("POST", f"{bases[0]}/match", data={"k": "10"},
                            files={"image": ("scene.jpg", payload, "image/jpeg")})
    body = request.read()
    for base in bases:
        response = httpx.post(f"{base}/match", content=body, headers={"content-type": request.headers["content-type"]},
                              timeout=60, trust_env=False)
        response.raise_for_status()
    return body, request.headers["content-type"]


def metric(base: str, name: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=10, trust_env=False).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--distinct", type=int, default=200, help="distinct scene payloads")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--wrk-seconds", type=float, default=10, help="duration of each wrk run (when wrk is installed)")
    args = ap.parse_args()
    import httpx

    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        root = Path(tmp)
        first, scenes = fake_bundle(root / "bundle-a", n_products=400)
        second, _ = fake_bundle(root / "bundle-b", n_products=401)
        # distinct payloads: the scene photos with a counter after the JPEG end marker (decoders ignore it)
        payloads = [scenes[i % len(scenes)] + b"\xff\xfe" + i.to_bytes(8, "big") for i in range(args.distinct)]
        current = root / "current"
        current.symlink_to(first)

        def swap() -> None:
            staged = root / "current.new"
            staged.symlink_to(second)
            os.replace(staged, current)  # atomic: a reader sees the old or the new bundle, never neither
            # keep this thread's slot busy until both replicas serve the new version (the rest of the
            # load keeps running through the reload)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(httpx.get(f"{b}/ready", trust_env=False).json()["version"] != before[0] for b in bases):
                    break
                time.sleep(0.1)

        with (redis_server(root) as redis_url,
              # one data folder, as replicas share a volume: feedback recorded in one SQLite file, as served
              serve(current, "--redis-url", redis_url, "--reload-interval", "1", data_dir=root / "data") as (_, base_a),
              serve(current, "--redis-url", redis_url, "--reload-interval", "1", data_dir=root / "data") as (_, base_b)):
            bases = [base_a, base_b]
            before = [httpx.get(f"{b}/ready", trust_env=False).json()["version"] for b in bases]
            load = run_load(bases, payloads, args.requests, args.concurrency)
            shared_hits = sum(metric(b, "scene_matcher_shared_cache_hits_total") for b in bases)
            serial = run_load(bases, payloads[:50], 200, 1)  # cached answers, one request at a time
            body, content_type = cached_payload(bases, payloads[0])
            wrk_cached = wrk_load(bases, "/match", args.concurrency, args.wrk_seconds, root, body, content_type)
            wrk_floor = wrk_load(bases, "/health", args.concurrency, args.wrk_seconds, root)
            swap_run = run_load(bases, payloads, args.requests, args.concurrency, during=swap)
            deadline = time.monotonic() + 30
            while True:
                after = [httpx.get(f"{b}/ready", trust_env=False).json()["version"] for b in bases]
                if len(set(after)) == 1 and after[0] != before[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    results = {"load": load, "shared_hits": shared_hits, "serial": serial, "swap": swap_run, "versions_before": before,
               "versions_after": after, "wrk_cached": wrk_cached, "wrk_floor": wrk_floor}
    print(f"\nTwo replicas + Redis on loopback, fake-encoder bundle of 400 products, {os.cpu_count()} cores "
          f"(ms, client side)")
    header = f"{'run':<28} {'requests':>8} {'errors':>6} {'p50':>7} {'p95':>7} {'cached':>7} {'cached p50':>10} {'req/s':>7}"
    print(header + "\n" + "-" * len(header))
    for label, r in (("load (2 replicas)", load), ("cached, one at a time", serial), ("index swap under load", swap_run)):
        print(f"{label:<28} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['cached']:>7} "
              f"{r['cached_p50_ms']:>10} {r['throughput_rps']:>7}")
    print(f"answers from the other replica through Redis: {int(shared_hits)}; versions before {before} -> after {after}; "
          f"swap run answered by versions {swap_run['versions']}")
    if wrk_cached is None:
        print("wrk not installed (apt-get install wrk): no C-client rows")
    else:
        print(f"\nwrk (C client), {wrk_cached['connections']} connections over both replicas, {args.wrk_seconds:g} s each")
        header = f"{'run':<40} {'requests':>8} {'errors':>6} {'p50':>7} {'p99':>7} {'req/s':>7}"
        print(header + "\n" + "-" * len(header))
        for label, r in (("POST /match, every answer cached", wrk_cached), ("GET /health (floor: does nothing)", wrk_floor)):
            print(f"{label:<40} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['rps']:>7}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    swapped = len(set(after)) == 1 and after[0] != before[0]
    wrk_errors = sum(r["errors"] for r in (wrk_cached, wrk_floor) if r is not None)
    return 0 if load["errors"] == 0 and swap_run["errors"] == 0 and swapped and wrk_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
