"""The load test and the API fuzzer from bench/, run at a reduced count against a real `scene-matcher
serve` process on loopback (the bench scripts start and stop it). Full counts, from bench/: the
default 2,000 requests at concurrency 8, and 500 cases per operation and generation mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scene_assets.settings import PROJECT_ROOT


def _bench(script: str, *args: str, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / script), *args, "--json", str(out)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert out.is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


def test_load_test_has_no_errors_and_no_memory_growth(tmp_path: Path):
    done, result = _bench("bench_load.py", "--fake", "--requests", "300", "--concurrency", "8", "--warmup", "60",
                          out=tmp_path / "load.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["requests"] == result["ok"] == 300 and result["errors"] == 0, result
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    # Every request was a distinct image (a cache miss): memory must not grow with the requests seen.
    assert result["rss_growth_mib"] < 32, result
    assert "p99 ms" in done.stdout and "RSS before" in done.stdout


def test_fuzzing_from_the_openapi_schema_finds_no_server_errors(tmp_path: Path):
    done, result = _bench("bench_fuzz.py", "--examples", "80", out=tmp_path / "fuzz.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["server_errors"] == 0, result["first_errors"]
    assert result["alive_after"] is True
    assert {"POST /match", "GET /health", "GET /ready", "GET /metrics"} <= set(result["statuses"])
    match = result["statuses"]["POST /match"]
    assert sum(match["positive"].values()) == 80 and sum(match["negative"].values()) == 80
    # Malformed requests are refused as client errors, never answered as if they were fine.
    assert set(match["negative"]) <= {"400", "413", "415", "422"}, match
    # With a real photo uploaded, fuzzed fields reach the model and most cases are answered.
    assert match["positive+photo"].get("200", 0) >= 40, match
