"""`scene-matcher`: the command line of the project.

Thin: each command parses arguments and calls domain code in `scene_assets/` or runs a Dagster job.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from scene_assets import settings

EXAMPLES = """\
examples:
  scene-matcher materialize                       # run the main job on the embedded sample
  scene-matcher materialize --catalog ../shared/ikea/products.csv
  scene-matcher materialize --catalog export.csv --mapping merchant
  scene-matcher catalog ../shared/seed_catalog/product-catalog.csv --mapping merchant
  scene-matcher enrich "CERAMIC ELEPHANT 8X7X3 BLK/WHT S/2" --json
  scene-matcher data sample data/my-sample
  scene-matcher data fetch-ikea ~/datasets/ikea
  scene-matcher ui                                # Dagster UI on http://127.0.0.1:3000
"""


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at a project-controlled folder holding the repo's dagster.yaml."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    source = settings.PROJECT_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.is_file() and (not target.is_file() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    return home


def _configure_catalog(args: argparse.Namespace) -> None:
    if getattr(args, "catalog", None):
        os.environ[settings.ENV_CATALOG] = str(Path(args.catalog).expanduser().resolve())
    if getattr(args, "mapping", None):
        os.environ[settings.ENV_CATALOG_MAPPING] = args.mapping


def cmd_materialize(args: argparse.Namespace) -> int:
    _configure_catalog(args)
    home = ensure_dagster_home()
    from pipelines.runner import run_main_job

    started = time.perf_counter()
    summary = run_main_job()
    elapsed = time.perf_counter() - started
    print(f"\nscene-matcher: main job finished in {elapsed:.1f} s ({'ok' if summary['success'] else 'FAILED'})")
    for line in summary["lines"]:
        print(f"  {line}")
    print(f"\n  Dagster run history: {home}  (open it with: scene-matcher ui)")
    print(f"  Pipeline outputs:    {settings.data_dir()}")
    return 0 if summary["success"] else 1


def cmd_catalog(args: argparse.Namespace) -> int:
    from scene_assets.catalog import CatalogOptions, load_catalog
    from scene_assets.image_source import FetchPolicy

    policy = FetchPolicy(enabled=args.fetch, cache_dir=settings.data_dir() / "cache" / "images")
    result = load_catalog(args.path, args.mapping, CatalogOptions(fetch_policy=policy))
    if args.json:
        print(json.dumps({"stats": result.stats, "issues": result.issues.to_dicts()}, indent=2, default=str))
        return 0
    print(f"{args.path}: {result.stats}")
    with_kind = result.issues.with_columns(kind=result.issues["reason"].str.split(":").list.first())
    for kind, count in with_kind.group_by("kind").len().sort("len", descending=True).iter_rows():
        print(f"  {count:6d}  {kind}")
    return 0


def cmd_enrich(args: argparse.Namespace) -> int:
    from scene_assets.enrichment import embedding_text, parse_description

    parsed = parse_description(args.text)
    fields = parsed.to_dict()
    fields["embedding_text"] = embedding_text(parsed)
    if args.json:
        print(json.dumps(fields, indent=2, ensure_ascii=False))
    else:
        width = max(map(len, fields))
        for key, value in fields.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_data_sample(args: argparse.Namespace) -> int:
    from scene_assets.sample_data import generate_sample_dataset

    dest = generate_sample_dataset(Path(args.dest), seed=args.seed)
    print(f"synthetic labeled dataset written to {dest}")
    return 0


def cmd_data_fetch_ikea(args: argparse.Namespace) -> int:
    from scene_assets import ikea_dataset

    dest = Path(args.dest)
    try:
        if args.from_raw:
            stats = ikea_dataset.convert_raw_ikea(Path(args.from_raw), dest)
        else:
            stats = ikea_dataset.download_ikea(dest, **({"url": args.url} if args.url else {}))
    except ikea_dataset.IkeaDownloadError as exc:
        print(f"scene-matcher: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(stats), indent=2, default=str))
    print(f"labeled dataset written to {dest}; evaluate with: scene-matcher evaluate --dataset {dest}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    command = ["dagster", "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(command)}")
    return subprocess.call(command, cwd=settings.PROJECT_ROOT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scene-matcher",
        description="Recommend catalog products that fit an interior scene photo (Dagster + FAISS + MLflow).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    materialize = commands.add_parser("materialize", help="run the main job (catalog → enrichment → vectors → index)")
    materialize.add_argument("--catalog", help="catalog CSV/Parquet (default: the embedded synthetic sample)")
    materialize.add_argument("--mapping", help="column-mapping preset: labeled (default) or merchant")
    materialize.set_defaults(func=cmd_materialize)

    catalog = commands.add_parser("catalog", help="load a catalog and report its issues (no Dagster)")
    catalog.add_argument("path")
    catalog.add_argument("--mapping", default="labeled")
    catalog.add_argument("--fetch", action="store_true", help="fetch http(s) image URLs")
    catalog.add_argument("--json", action="store_true")
    catalog.set_defaults(func=cmd_catalog)

    enrich = commands.add_parser("enrich", help="parse one product text into structured fields")
    enrich.add_argument("text")
    enrich.add_argument("--json", action="store_true")
    enrich.set_defaults(func=cmd_enrich)

    data = commands.add_parser("data", help="datasets: the synthetic sample, the public IKEA dataset")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    sample = data_commands.add_parser("sample", help="generate the synthetic labeled sample into DEST")
    sample.add_argument("dest")
    sample.add_argument("--seed", type=int, default=7)
    sample.set_defaults(func=cmd_data_sample)
    fetch = data_commands.add_parser("fetch-ikea", help="download the public IKEA dataset and convert it (needs internet)")
    fetch.add_argument("dest")
    fetch.add_argument("--from-raw", help="convert an already downloaded raw checkout instead of downloading")
    fetch.add_argument("--url", help="archive URL of the public dataset repository (default: the authors' GitHub)")
    fetch.set_defaults(func=cmd_data_fetch_ikea)

    ui = commands.add_parser("ui", help="start the Dagster UI with the project's DAGSTER_HOME")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Dagster marks some stable-in-practice parameters (backfill_policy) beta; not news to a CLI user.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for the known failure kinds
        from scene_assets.catalog import CatalogError

        if isinstance(exc, (CatalogError, FileNotFoundError)):
            print(f"scene-matcher: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
