"""`scene-matcher`: the command line of the project.

Thin: each command parses arguments and calls domain code in `scene_assets/` / `evaluation/`, runs a
Dagster job, or serves a bundle provider (faces/providers.py) over HTTP (faces/http_app.py).
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
  scene-matcher materialize --job evaluation_job  # score the index, sweep weights, log to MLflow
  scene-matcher catalog ../shared/seed_catalog/product-catalog.csv --mapping merchant
  scene-matcher enrich "CERAMIC ELEPHANT 8X7X3 BLK/WHT S/2" --json
  scene-matcher data sample data/my-sample
  scene-matcher data fetch-ikea ~/datasets/ikea
  scene-matcher recommend ../shared/seed_catalog/scene-1.jpg -k 5
  scene-matcher recommend room.jpg --caption "a cosy reading corner" --json
  scene-matcher export data/sample/images/scenes -k 8   # batch: Parquet, CSV, HTML gallery
  scene-matcher evaluate --dataset ../shared/ikea --json out.json   # cross-validated metrics table
  scene-matcher evaluate --dataset heldout/ --train-dataset ../shared/ikea --json out.json
  scene-matcher evaluate --dataset ../shared/ikea --ablation --mlflow   # one row per direction turned off
  scene-matcher serve --port 8000                 # HTTP API: POST /match, /health, /ready, /metrics
  scene-matcher ui                                # Dagster UI on http://127.0.0.1:3000
"""


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at a project-controlled folder holding the repo's dagster.yaml (plus PostgreSQL
    storage when $SCENE_MATCHER_DAGSTER_POSTGRES_URL is set: pipelines/instance_config.py)."""
    from pipelines.instance_config import write_instance_yaml

    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    write_instance_yaml(home)
    return home


def _configure_catalog(args: argparse.Namespace) -> None:
    if getattr(args, "catalog", None):
        os.environ[settings.ENV_CATALOG] = str(Path(args.catalog).expanduser().resolve())
    if getattr(args, "mapping", None):
        os.environ[settings.ENV_CATALOG_MAPPING] = args.mapping


def cmd_materialize(args: argparse.Namespace) -> int:
    _configure_catalog(args)
    home = ensure_dagster_home()
    from pipelines.jobs import MAIN_JOB_STEPS
    from pipelines.runner import run_jobs

    run_config = None
    if args.config:
        import yaml

        run_config = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(run_config, dict):
            print(f"scene-matcher: {args.config}: expected a run config mapping (ops: ...), got {type(run_config).__name__}",
                  file=sys.stderr)
            return 2
    jobs = [step.name for step in MAIN_JOB_STEPS] if args.job == "main" else [args.job]
    what = "main job" if args.job == "main" else args.job
    started = time.perf_counter()
    summary = run_jobs(jobs, run_config=run_config)
    elapsed = time.perf_counter() - started
    print(f"\nscene-matcher: {what} finished in {elapsed:.1f} s ({'ok' if summary['success'] else 'FAILED'})")
    for line in summary["lines"]:
        print(f"  {line}")
    from pipelines.instance_config import storage_description

    print(f"\n  Dagster run history: {storage_description(home)}  (open it with: scene-matcher ui)")
    print(f"  Pipeline outputs:    {settings.data_dir()}")
    if args.job == "evaluation_job":
        from scene_assets.database_urls import redact_password

        print(f"  MLflow runs:         .venv/bin/mlflow ui --backend-store-uri {redact_password(settings.mlflow_tracking_uri())}")
    return 0 if summary["success"] else 1


def cmd_catalog(args: argparse.Namespace) -> int:
    from scene_assets.catalog import CatalogOptions, load_catalog
    from scene_assets.images import FetchPolicy

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


def _provider(args: argparse.Namespace):
    """The provider `recommend` and `serve` use, by the one policy of pipelines/serving.py: the bundle in
    --index DIR (with the scorer in --learned DIR, if named), else the latest scene_index materialization
    with the scorer in --learned DIR or, by default, the latest learned_scorer materialization;
    --no-learned: no scorer. A scorer fitted on another encoder is refused (BundleError)."""
    from faces.providers import LATEST, DirectoryBundleProvider, MaterializedBundleProvider
    from scene_assets.ranking import ScoringWeights

    weights = ScoringWeights.from_file(args.weights) if args.weights else None
    if args.index:
        return DirectoryBundleProvider(args.index, device=args.device, weights=weights, learned=args.learned)
    ensure_dagster_home()
    import dagster as dg

    learned = None if args.no_learned else args.learned or LATEST
    return MaterializedBundleProvider(dg.DagsterInstance.get(), device=args.device, weights=weights, learned=learned,
                                      bundle_asset=args.bundle_asset)


def _split(values: list[str] | None) -> list[str] | None:
    out = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return out or None


def _print_recommendations(result: dict, image: str, info: dict) -> None:
    scene = result["scene"]
    top_rooms = sorted(scene["room_probs"].items(), key=lambda kv: -kv[1])[:3]
    top_styles = sorted(scene["style_probs"].items(), key=lambda kv: -kv[1])[:3]
    print(f"scene {image}")
    print(f"  room   {', '.join(f'{k} {v:.2f}' for k, v in top_rooms)}  ({scene['room_source']})")
    print(f"  style  {', '.join(f'{k} {v:.2f}' for k, v in top_styles)}  ({scene['style_source']})")
    colours = ", ".join(f"{c['name']} {c['share']:.0%}" for c in scene["palette"])
    print(f"  colours {colours}")
    if scene.get("caption"):
        print(f"  caption {scene['caption']!r}")
    calibrated = "calibrated" if result["calibrated"] else "UNCALIBRATED (no calibration fitted yet)"
    print(f"\ntop {len(result['items'])} of {info.get('products', '?')} products  (confidence: {calibrated})")
    header = f"{'#':>2}  {'product_id':<14} {'title':<28} {'category':<14} {'score':>6} {'conf':>5}  factors"
    print(header)
    for item in result["items"]:
        factors = " ".join(f"{k[:3]}={v:.2f}" for k, v in item["factors"].items())
        title = (item["title"] or item.get("product_type") or "")[:28]
        print(f"{item['rank']:>2}  {item['product_id']:<14} {title:<28} {item['category'][:14]:<14} "
              f"{item['score']:6.3f} {item['confidence']:5.2f}  {factors}")
    timings = result["timings_ms"]
    print(f"\n{timings.get('total', 0):.0f} ms (regions {timings.get('regions', 0):.0f}, search {timings.get('search', 0):.0f}, "
          f"rerank {timings.get('rerank', 0):.0f}); index {info.get('index_dir')}")
    print(f"served: {info.get('source')}")


def cmd_recommend(args: argparse.Namespace) -> int:
    from scene_assets.images import open_rgb

    from scene_assets.ranking.config import RankingConfig

    try:  # the typed config the export job and /match use, with the same limits
        ranking = RankingConfig(fusion=args.fusion, diversity=args.diversity, mmr_lambda=args.mmr_lambda,
                                category_cap=args.category_cap, collapse_variants=args.collapse_variants)
    except ValueError as exc:
        print(f"scene-matcher: error: {exc}", file=sys.stderr)
        return 2
    provider = _provider(args)
    try:  # before loading models: a bad path should not cost seconds of start-up
        image = open_rgb(Path(args.image))
    except OSError as exc:  # UnreadableImageError (names the file) or a missing file
        print(f"scene-matcher: error: {exc}", file=sys.stderr)
        return 2
    loaded = provider.load()
    result = loaded.recommender.recommend(
        image,
        k=args.k,
        caption=args.caption,
        include_categories=_split(args.include),
        exclude_categories=_split(args.exclude),
        room=args.room,
        **ranking.recommend_options(),
    ).to_dict()
    result["index"] = {**loaded.info, "version": loaded.version}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_recommendations(result, args.image, loaded.info)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from scene_assets.memory import keep_gpu_compilers_out
    from faces.http_app import ServingSettings, serve

    keep_gpu_compilers_out(args.device)  # before torch loads: a CPU server never compiles GPU kernels
    provider = _provider(args)
    from scene_assets import feedback
    from scene_assets.ranking.variants import VariantPlan
    from scene_assets.settings import data_dir

    capture = args.feedback_db_url != "off"
    settings_ = ServingSettings(allow_url_fetch=args.allow_url_fetch, reload_interval_s=args.reload_interval,
                                redis_url=args.redis_url or None, redis_ttl_s=args.redis_ttl,
                                feedback_db_url=(args.feedback_db_url or feedback.configured_url(data_dir())) if capture else None,
                                # the photos shoppers reacted to: what learning from their feedback needs
                                scene_photos_dir=str(feedback.scene_photos_dir(data_dir())) if capture else None,
                                variants=VariantPlan.load(args.variants) if args.variants else None)
    print(f"scene-matcher: serving {provider.describe()}\n  (a learned scorer fitted on another encoder is refused; "
          "/ready says why)")
    print(f"scene-matcher: serving on http://{args.host}:{args.port} (docs at /docs, metrics at /metrics)")
    serve(provider, host=args.host, port=args.port, settings=settings_, access_log=args.access_log)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """One export batch of every scene image in FOLDER, run now as a real Dagster run."""
    ensure_dagster_home()
    import dagster as dg

    from pipelines.definitions import build_defs
    from pipelines.export.partitions import scene_batches
    from pipelines.export.resources import SceneInbox
    from pipelines.export.sensors import create_batch
    from scene_assets.export import list_scene_images

    inbox = SceneInbox(folder=str(Path(args.folder).expanduser().resolve()))
    files = list_scene_images(inbox.path())
    if not files:
        print(f"scene-matcher: error: no scene images (jpg/png/webp) in {inbox.path()}", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    key = create_batch(inbox, "cli", files)
    instance.add_dynamic_partitions(scene_batches.name, [key])
    defs = build_defs({"scene_inbox": inbox})
    config = {
        "ops": {"scene_recommendations": {"config": {"k": args.k}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    result = defs.resolve_job_def("export_recommendations_job").execute_in_process(
        instance=instance, partition_key=key, run_config=config, raise_on_error=False
    )
    if not result.success:
        failure = next((e for e in result.all_events if e.is_failure), None)
        print(f"scene-matcher: export FAILED (run {result.run_id}): {failure.message if failure else ''}", file=sys.stderr)
        return 1
    metadata = result.asset_materializations_for_node("scene_recommendations")[0].metadata
    print(f"export batch {key}: {metadata['scenes_exported'].value} scenes exported, "
          f"{metadata['scenes_failed'].value} skipped, {metadata['rows'].value} rows")
    for name in ("parquet", "csv", "gallery"):
        if name in metadata:
            print(f"  {name:<8} {metadata[name].value}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    # The dagster script of this environment (beside the running Python), so `.venv/bin/scene-matcher ui`
    # works without .venv/bin on PATH.
    beside = Path(sys.executable).parent / "dagster"
    dagster = str(beside) if beside.is_file() else (shutil.which("dagster") or "dagster")
    command = [dagster, "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(command)}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.call(command, cwd=settings.PROJECT_ROOT, env=env)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from evaluation.dataset import DatasetError, load_labeled_dataset
    from scene_assets.composites import CompositeConfig
    from evaluation.config import EvaluationConfig
    from evaluation.protocol import SplitError, same_data

    if args.mlflow:  # a tracking URI that cannot work fails now, not after the evaluation
        from scene_assets.database_urls import check_postgres_driver

        check_postgres_driver(settings.mlflow_tracking_uri(), f"${settings.ENV_MLFLOW_URI}")
    try:
        config = EvaluationConfig.from_file(args.config) if args.config else EvaluationConfig()
        if args.fusion:
            config = EvaluationConfig.from_dict(config.to_dict() | {"ranker": args.fusion == "ranker" and (
                config.ranker.to_dict() if config.ranker is not None else True)})
        if args.composites_per_scene is not None:
            config = dataclasses.replace(config, composites=dataclasses.replace(
                config.composites or CompositeConfig(), per_scene=args.composites_per_scene))
        if args.served_index is not None:
            config = dataclasses.replace(config, served_index=args.served_index, served_nprobe=args.served_nprobe)
        dataset = load_labeled_dataset(args.dataset)
        train = load_labeled_dataset(args.train_dataset) if args.train_dataset else None
    except (DatasetError, ValueError) as exc:
        print(f"scene-matcher: error: {exc}", file=sys.stderr)
        return 2
    if args.ablation:
        return _evaluate_ablation(args, dataset, train, config)
    if same_data(train, dataset):
        if not args.allow_same_dataset:
            print(f"scene-matcher: error: --train-dataset and --dataset are the same data ({dataset.root}); the "
                  "figures would not be held out. Drop --train-dataset to cross-validate over its scenes, or pass "
                  "--allow-same-dataset to get in-sample figures.", file=sys.stderr)
            return 2
        print("\n" + "!" * 78 + "\nWARNING: training and scoring on the SAME dataset - these figures are NOT held "
              "out\nand overstate quality. Use them only to debug.\n" + "!" * 78 + "\n", file=sys.stderr)
    from evaluation.report import format_table
    from evaluation.run import run_evaluation, run_rerank_sweep, run_weight_sweep

    tracking = None
    if args.mlflow:
        from evaluation.tracking import MlflowLogger

        uri = settings.mlflow_tracking_uri()
        tracking = MlflowLogger.local(uri, args.mlflow, settings.mlflow_artifact_root())
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:  # plots and gallery, logged with the MLflow run
            run = run_evaluation(dataset, train=train, config=config, cache_dir=Path(args.cache_dir),
                                 out_dir=Path(tmp) if tracking else None, tracking=tracking,
                                 run_name=f"cli-evaluate-{dataset.root.name}", allow_same_dataset=args.allow_same_dataset,
                                 progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    except SplitError as exc:
        print(f"scene-matcher: error: {exc}", file=sys.stderr)
        return 2
    report = run.report
    print(format_table(report))
    if report.two_stage_overlap_at_10 is not None:
        print(f"\nserved two-stage ({config.served_index}, nprobe {config.served_nprobe}): overlap@10 with the exact "
              f"served lists {report.two_stage_overlap_at_10:.3f}")
    if args.sweep:
        base = {"encoder": report.metrics["encoder"], "dataset_hash": dataset.fingerprint, "protocol": report.protocol,
                "evaluation_run_id": run.mlflow_run_id}
        swept = run_weight_sweep(report.results, config.weights, size=args.sweep, seed=config.seed, tracking=tracking,
                                 run_name=f"cli-sweep-{dataset.root.name}", base_params=base)
        sweep = swept.sweep
        best = sweep.best
        print(f"\nweight sweep: {len(sweep.configs)} configurations on the out-of-fold scores; best ndcg@10 "
              f"{sweep.mean[sweep.best_index, 2]:.3f} (the evaluated weights: {sweep.mean[0, 2]:.3f}; choosing on the "
              f"other folds and scoring the held-out one: {sweep.nested.get('ndcg@10', float('nan')):.3f})")
        print("best weights: " + ", ".join(f"{k}={v:g}" for k, v in best.to_dict().items() if v))
    if args.rerank_sweep:
        from evaluation.rerank_sweep import format_rerank_table

        reranked = run_rerank_sweep(report, tracking=tracking, run_name=f"cli-rerank-sweep-{dataset.root.name}",
                                    base_params={"encoder": report.metrics["encoder"], "dataset_hash": dataset.fingerprint,
                                                 "protocol": report.protocol, "evaluation_run_id": run.mlflow_run_id})
        print("\nre-rank sweep (every held-out scene served once per configuration):\n"
              + format_rerank_table(reranked.sweep))
    if tracking is not None:
        from scene_assets.database_urls import redact_password

        shown = redact_password(uri)  # a PostgreSQL URL may hold a password
        print(f"\nMLflow: evaluation run {run.mlflow_run_id} in experiment {args.mlflow!r} at {shown}")
        if args.sweep:
            print(f"MLflow: sweep parent run {swept.mlflow_parent_run_id} with {len(swept.mlflow_child_run_ids)} child "
                  f"runs (mlflow ui --backend-store-uri {shown})")
        if args.rerank_sweep:
            print(f"MLflow: re-rank sweep parent run {reranked.mlflow_parent_run_id} with "
                  f"{len(reranked.mlflow_child_run_ids)} child runs")
    if args.save_model and report.learned is not None:
        report.learned.save(args.save_model)
        print(f"\nlearned scorer (fitted on the training dataset) saved to {args.save_model}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=1, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")
    return 0


def _evaluate_ablation(args: argparse.Namespace, dataset, train, config) -> int:
    """`evaluate --ablation`: the cross-validation once per variant (evaluation.ablation), printed,
    optionally logged to MLflow as a parent run with a child per variant and written as JSON."""
    import tempfile

    from evaluation.ablation import ablate, default_variants, format_ablation, visual_variants, write_ablation

    if train is not None:
        print("scene-matcher: error: --ablation cross-validates over --dataset; drop --train-dataset", file=sys.stderr)
        return 2
    variants = (visual_variants if args.ablation == "visual" else default_variants)(config)
    result = ablate(dataset, config, variants=variants, cache_dir=Path(args.cache_dir),
                    progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    print(format_ablation(result))
    if args.mlflow:
        from evaluation.tracking import MlflowLogger

        uri = settings.mlflow_tracking_uri()
        tracking = MlflowLogger.local(uri, args.mlflow, settings.mlflow_artifact_root())
        with tempfile.TemporaryDirectory() as tmp:
            artifacts = write_ablation(result, Path(tmp))
            parent, children = tracking.log_ablation(
                result, run_name=f"cli-ablation-{dataset.root.name}", artifacts=artifacts,
                base_params={"encoder": result.encoder, "dataset_hash": dataset.fingerprint, "dataset": str(dataset.root),
                             "protocol": result.protocol})
        print(f"\nMLflow: ablation parent run {parent} with {len(children)} child runs in experiment {args.mlflow!r}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"protocol": result.protocol, "rows": result.rows, "timings_s": result.timings_s},
                                  indent=1, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from scene_assets.ranking.config import RankingConfig

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
    from pipelines.jobs import ALL_JOBS

    materialize.add_argument(
        "--job", default="main", choices=["main", *(job.name for job in ALL_JOBS)],
        help="main (default: catalog → vectors → index) or one job, e.g. evaluation_job (score the index on the "
        "labeled dataset, sweep weights, log to MLflow)",
    )
    materialize.add_argument("--config", metavar="YAML", help="run config for the job (as in the launchpad: ops: ...)")
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

    def recommender_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--index", help="bundle folder to use (default: the latest --bundle-asset materialization)")
        command.add_argument("--bundle-asset", choices=("scene_index", "two_stage_bundle"), default="scene_index",
                             help="which materialized bundle to serve without --index: scene_index (the main job's) or "
                             "two_stage_bundle (a large catalog served from the merged sharded index; ivf_merge_job)")
        command.add_argument("--weights", help="scoring weights JSON (e.g. the evaluation sweep's best configuration); "
                             "given weights replace the learned scorer's fusion ranker")
        command.add_argument("--device", help="cpu or cuda (default: the device the bundle was built for, auto)")
        scorer = command.add_mutually_exclusive_group()
        scorer.add_argument("--learned", metavar="DIR",
                            help="learned scorer folder (default: without --index, the latest learned_scorer "
                            "materialization, if any; with --index, none). `scene-matcher evaluate --save-model DIR` "
                            "writes one too. A scorer fitted on another encoder than the bundle's is refused")
        scorer.add_argument("--no-learned", action="store_true", help="serve without a learned scorer")

    recommend = commands.add_parser("recommend", help="analyse a scene photo and print the top-k products")
    recommend.add_argument("image", help="scene photo (JPEG/PNG/WebP)")
    recommend.add_argument("-k", type=int, default=10, help="how many products (default 10)")
    recommend.add_argument("--caption", help="optional text about the scene, e.g. 'a cosy reading corner'")
    recommend.add_argument("--include", action="append", help="only these categories (comma-separated, repeatable)")
    recommend.add_argument("--exclude", action="append", help="never these categories (comma-separated, repeatable)")
    recommend.add_argument("--room", help="force the room type (and keep only products that belong there)")
    recommend.add_argument("--json", action="store_true", help="machine-readable output")
    ranking_defaults = RankingConfig()
    recommend.add_argument("--fusion", choices=["auto", "weights", "ranker"], default=ranking_defaults.fusion,
                           help=RankingConfig.field_help("fusion")["description"])
    recommend.add_argument("--diversity", choices=["mmr", "category_cap", "none"],
                           default=ranking_defaults.diversity or "none",
                           help=RankingConfig.field_help("diversity")["description"])
    recommend.add_argument("--mmr-lambda", type=float, default=ranking_defaults.mmr_lambda,
                           help=RankingConfig.field_help("mmr_lambda")["description"])
    recommend.add_argument("--category-cap", type=int, default=ranking_defaults.category_cap,
                           help=RankingConfig.field_help("category_cap")["description"])
    recommend.add_argument("--no-collapse-variants", dest="collapse_variants", action="store_false",
                           help="list every variant of a product (default: keep the best of each variant group)")
    recommender_options(recommend)
    recommend.set_defaults(func=cmd_recommend)

    serve_ = commands.add_parser("serve", help="HTTP API over the latest index (reloads when a new one is materialized)")
    serve_.add_argument("--host", default="127.0.0.1")
    serve_.add_argument("--port", type=int, default=8000)
    serve_.add_argument("--reload-interval", type=float, default=10.0, help="seconds between checks for a new index")
    serve_.add_argument("--redis-url", default=os.environ.get("SCENE_MATCHER_REDIS_URL", ""),
                        help="Redis shared by the replicas for /match answers (default $SCENE_MATCHER_REDIS_URL; "
                        "empty: only the in-process cache). A Redis outage only turns the shared cache off.")
    serve_.add_argument("--redis-ttl", type=int, default=3600, help="seconds a shared answer lives in Redis")
    serve_.add_argument("--feedback-db-url", default=os.environ.get("SCENE_MATCHER_FEEDBACK_DB_URL", ""),
                        help="database recording served recommendations and shopper feedback (POST /feedback): a "
                        "SQLAlchemy URL, e.g. postgresql+psycopg2://... (default $SCENE_MATCHER_FEEDBACK_DB_URL; "
                        "empty: a SQLite file under the data folder; 'off': no capture)")
    serve_.add_argument("--access-log", action="store_true",
                        help="log a line per request (off: /metrics counts requests; a balancer in front logs them)")
    serve_.add_argument("--variants", default=os.environ.get("SCENE_MATCHER_VARIANTS", ""),
                        help="A/B plan (JSON or YAML: salt, variants with name, share and optional weights, fusion "
                        "and learned - a learned scorer folder, relative to the plan): each /match with a session_id "
                        "is scored with its shopper's variant (default $SCENE_MATCHER_VARIANTS; empty: none)")
    serve_.add_argument("--allow-url-fetch", action="store_true",
                        help="accept image_url in /match (public http(s) addresses only)")
    recommender_options(serve_)
    serve_.set_defaults(func=cmd_serve)

    export = commands.add_parser("export", help="recommendations for every scene image in FOLDER (Parquet, CSV, HTML gallery)")
    export.add_argument("folder")
    export.add_argument("-k", type=int, default=10)
    export.set_defaults(func=cmd_export)

    evaluate_ = commands.add_parser(
        "evaluate", help="rank the whole catalog for every labeled scene and print the metrics table",
        description="Scores a labeled dataset (products.csv, scenes.csv, scene_products.csv). Without "
                    "--train-dataset, learned parts are fitted with cross-validation folds over its scenes; with "
                    "it, they are fitted on the training dataset only and every scene of --dataset is scored once.")
    evaluate_.add_argument("--dataset", required=True, help="labeled dataset folder to score (its labels are only used for scoring)")
    evaluate_.add_argument("--train-dataset", help="labeled dataset folder to fit learned parts on (default: CV folds)")
    evaluate_.add_argument("--config", help="JSON/YAML: weights, folds, seed, use_captions, projection settings")
    evaluate_.add_argument("--json", help="write the full report (headline keys, baselines, intervals, per room) here")
    evaluate_.add_argument("--cache-dir", default=str(settings.data_dir() / "cache" / "evaluation"),
                           help="product feature cache, reused between runs")
    evaluate_.add_argument("--save-model", help="with --train-dataset: save the fitted learned scorer to this folder")
    evaluate_.add_argument("--sweep", type=int, default=0, metavar="N",
                           help="also try N weight configurations on the out-of-fold scores and print the best")
    evaluate_.add_argument("--rerank-sweep", action="store_true",
                           help="also serve every held-out scene once per re-rank option (diversity none / MMR lambdas "
                                "/ category caps, variant collapse on and off) and print recall, nDCG@10, distinct "
                                "categories@10 and intra-list similarity with the recommended default")
    evaluate_.add_argument("--mlflow", nargs="?", const="scene-matcher", metavar="EXPERIMENT",
                           help="log the run (and the sweep as a parent with child runs) to the project's MLflow store")
    evaluate_.add_argument("--allow-same-dataset", action="store_true",
                           help="let --train-dataset equal --dataset (in-sample figures, loudly flagged)")
    evaluate_.add_argument("--fusion", choices=("ranker", "weights"),
                           help="combine the factors with the learned ranker or the weights (default: the config's, "
                                "else the evaluation default)")
    evaluate_.add_argument("--composites-per-scene", type=int, metavar="N",
                           help="synthetic composites made from each training scene for the projection to learn from "
                                "(default: the config's, 20; 0: labels only)")
    evaluate_.add_argument("--served-index", metavar="FACTORY",
                           help="serve the served-path row two-stage, as a large catalog is: candidates from this "
                                "approximate FAISS index of the catalog's vectors (e.g. IVF32,PQ64), re-scored exactly; "
                                "prints its overlap@10 with the exact served lists (#19)")
    evaluate_.add_argument("--served-nprobe", type=int, metavar="N", help="lists searched per query with --served-index")
    evaluate_.add_argument("--ablation", nargs="?", const="fusion", choices=("fusion", "visual"),
                           help="cross-validate once per variant with one direction turned off on the same folds and "
                                "prepared scenes; prints the table (--mlflow: parent run + one child per variant). "
                                "fusion (default): learned ranker vs weights, projection, room classifier, prior, "
                                "colour, regions, ...; visual: the projection with / without synthetic composites, "
                                "shared map, projection off")
    evaluate_.set_defaults(func=cmd_evaluate)

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

        from pipelines.serving import NoBundleError
        from scene_assets.database_urls import DatabaseUrlError
        from scene_assets.ranking.variants import VariantPlanError
        from scene_assets.recommender_bundle import BundleError

        if isinstance(exc, (CatalogError, FileNotFoundError, NoBundleError, BundleError, DatabaseUrlError, VariantPlanError)):
            print(f"scene-matcher: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
