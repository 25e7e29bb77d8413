"""Fuzz the real HTTP server from its own OpenAPI schema (schemathesis + hypothesis).

  .venv/bin/python bench/bench_fuzz.py                        # 500 cases per operation and generation mode
  .venv/bin/python bench/bench_fuzz.py --examples 60 --json out.json     # CI's reduced count

`scene-matcher serve` is started on loopback with a tiny offline bundle (the fake encoder: the API
surface, not the model, is under test). For every operation in ``/openapi.json`` schemathesis
generates requests that follow the schema (positive), the same with a real scene photo uploaded
(positive+photo: fuzzed k, caption, categories and room reach the model) and requests that break it
(negative: wrong types, missing fields, out-of-range values, junk bodies); each is sent for real. A server error is
any 5xx answer or a dropped connection. Prints a table of status codes per operation; exits 1 on
any server error. The server must still answer /health at the end.

schemathesis (and hypothesis with it) comes with the project's `test` extra
(`pip install -e '.[test]'`; scripts/test.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_process import fake_bundle, serve  # noqa: E402


def fuzz(base_url: str, examples: int, scene: bytes | None = None) -> dict:
    """Status codes per (operation, mode) and every server error seen (method, path, status, body)."""
    import httpx
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    table: dict[str, dict[str, Counter]] = {}
    server_errors: list[dict] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if scene is not None and operation.label == "POST /match":
            # The schema lets `image` be absent (image_url is the alternative), so generated cases rarely
            # reach the model: this mode puts a real scene photo in every schema-following case.
            modes.append((GenerationMode.POSITIVE, scene))
        for mode, image in modes:
            name = mode.value if image is None else "positive+photo"
            statuses = table.setdefault(operation.label, {}).setdefault(name, Counter())
            try:
                _fuzz_operation(operation, mode, base_url, examples, statuses, server_errors, image)()
            except Unsatisfiable:
                pass  # nothing to break: an operation without parameters or body has no negative cases
    with httpx.Client(timeout=10, trust_env=False) as client:
        alive = client.get(f"{base_url}/health").status_code == 200
    cases = sum(sum(c.values()) for modes in table.values() for c in modes.values())
    return {
        "operations": len(table), "cases": cases, "server_errors": len(server_errors), "alive_after": alive,
        "statuses": {op: {mode: dict(c) for mode, c in modes.items()} for op, modes in table.items()},
        "first_errors": server_errors[:10],
    }


def _form_value(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for item in value for v in _form_value(item)]
    return [value if isinstance(value, str) else json.dumps(value)]


def _post_with_photo(base_url: str, body: dict, image: bytes):
    """The generated form fields (every value as text, lists repeated) plus `image` as a file upload:
    schemathesis sends OpenAPI 3.1's binary strings as text fields, never as files."""
    import httpx

    fields = {key: _form_value(value) for key, value in body.items() if key not in ("image", "image_url")}
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
        return client.post("/match", data=fields, files={"image": ("scene.jpg", image, "image/jpeg")})


def _fuzz_operation(operation, mode, base_url: str, examples: int, statuses: Counter, server_errors: list,
                    image: bytes | None = None):
    """A hypothesis test that sends `examples` generated cases of one operation and records answers;
    with `image`, every case uploads that photo (and no image_url)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        try:
            if image is not None and isinstance(case.body, dict):
                response = _post_with_photo(base_url, case.body, image)
            else:
                response = case.call(base_url=base_url, timeout=30)
        except Exception as exc:  # noqa: BLE001 - a dropped or refused connection is a finding, not a crash
            statuses[f"no answer ({type(exc).__name__})"] += 1
            server_errors.append({"operation": operation.label, "error": repr(exc)[:300]})
            return
        statuses[str(response.status_code)] += 1
        if response.status_code >= 500:
            server_errors.append({"operation": operation.label, "status": response.status_code,
                                  "body": response.text[:300], "query": str(case.query), "sent": repr(case.body)[:200]})

    return send


def print_table(r: dict) -> None:
    print(f"\nFuzzing {r['operations']} operations from /openapi.json: {r['cases']} requests, "
          f"{r['server_errors']} server errors, alive after: {r['alive_after']}")
    header = f"{'operation':<16} {'mode':<15} {'requests':>8}  status codes"
    print(header + "\n" + "-" * 60)
    for op, modes in r["statuses"].items():
        for mode, counts in modes.items():
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
            print(f"{op:<16} {mode:<15} {sum(counts.values()):>8}  {codes}")
    for error in r["first_errors"]:
        print("server error:", error)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=500, help="cases per operation and generation mode")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index_dir, scenes = fake_bundle(Path(tmp) / "bundle")
        with serve(index_dir) as (_server, base):
            result = fuzz(base, args.examples, scenes[0])
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["server_errors"] == 0 and result["alive_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
