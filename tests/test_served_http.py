"""The served-path row of the evaluation is what a real `scene-matcher serve` process answers (issue #22).

The embedded sample dataset is split by scene into a training and a scored dataset that share the
products; the main job's scene_index bundle (fake encoder, on the same products.csv) is evaluated in
train mode, the fitted scorer saved, and a real server on that bundle and scorer is sent every scored
scene's image (k = served_k, no other options). The metrics computed from its answers must equal the
report's ``served.*`` values. Offline, CPU, the fake encoder; the server is a subprocess on a free
loopback port, always stopped.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from evaluation.config import EvaluationConfig
from evaluation.dataset import load_labeled_dataset
from evaluation.folds import prepare_scenes, serve_scenes
from evaluation.metrics import mean_metrics, ranking_metrics
from evaluation.protocol import evaluate
from pipelines.serving import latest_bundle_dir
from scene_assets.recommender_bundle import load_recommender
from scene_assets.settings import PROJECT_ROOT, sample_dataset_dir

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from serving_process import match_answers

HEADLINE = ("recall@10", "recall@50", "ndcg@10", "mrr")
TRAINING_SCENES = 5  # of the sample's 9 scenes; the other 4 are scored


def _split_sample(root: Path) -> tuple[Path, Path]:
    """The sample's scenes split in two dataset folders (training: the first TRAINING_SCENES scenes,
    scored: the rest), each with the sample's products.csv and images."""
    sample = sample_dataset_dir()
    scenes = pl.read_csv(sample / "scenes.csv", infer_schema=False)
    pairs = pl.read_csv(sample / "scene_products.csv", infer_schema=False)
    folders = []
    for name, part in (("training", scenes.head(TRAINING_SCENES)), ("scored", scenes.slice(TRAINING_SCENES))):
        folder = root / name
        folder.mkdir(parents=True)
        shutil.copy(sample / "products.csv", folder / "products.csv")
        (folder / "images").symlink_to(sample / "images", target_is_directory=True)
        part.write_csv(folder / "scenes.csv")
        pairs.filter(pl.col("scene_id").is_in(part["scene_id"].to_list())).write_csv(folder / "scene_products.csv")
        folders.append(folder)
    return folders[0], folders[1]


def test_served_row_is_what_the_http_server_answers(materialized_sample, tmp_path: Path):
    training_dir, scored_dir = _split_sample(tmp_path / "datasets")
    training, scored = load_labeled_dataset(training_dir), load_labeled_dataset(scored_dir)
    assert set(training.scene_ids).isdisjoint(scored.scene_ids) and scored.scene_ids
    with materialized_sample.instance() as instance:
        bundle_dir = latest_bundle_dir(instance)[0]
    recommender, _ = load_recommender(bundle_dir)

    config = EvaluationConfig()
    report = evaluate(scored, train=training, recommender=recommender, config=config,
                      cache_dir=tmp_path / "cache")
    scorer_dir = tmp_path / "scorer"
    report.learned.save(scorer_dir)

    answers = match_answers(bundle_dir, list(scored.scenes.select("scene_id", "image_path").iter_rows()),
                            "--learned", str(scorer_dir), k=config.served_k, ready_timeout_s=120,
                            request_timeout_s=60)

    # A relevant product the server did not list counts as not retrieved (the metrics' definitions).
    http = mean_metrics([ranking_metrics(answers[sid], scored.relevant[sid]) for sid in scored.scene_ids])
    served = {k: report.metrics[f"served.{k}"] for k in HEADLINE}
    # The upload is the scene file's bytes and both sides decode them with scene_assets.images.open_rgb,
    # the server's scorer is the report's own (saved and loaded), and the served row ranks each scene by
    # recommend_prepared with /match's default re-rank options: the figures should be exactly equal.
    # The 0.005 tolerance only absorbs float noise (e.g. FAISS search threads); the report
    # rounds its figures to 4 decimals.
    for k in HEADLINE:
        assert http[k] == pytest.approx(served[k], abs=0.005), (k, http, served)

    # Stricter, and what the equality rests on: the served row's lists are serve_scenes' (evaluate calls
    # it with the fitted scorer on the scenes it prepared); the server lists the same products in order.
    in_process = serve_scenes(recommender, prepare_scenes(recommender, scored, config.use_captions),
                              scored.scene_ids, report.learned, config)
    assert answers == in_process
