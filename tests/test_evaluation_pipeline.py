"""The evaluation assets in Dagster on the embedded sample (fake encoder, so it is quick), logging to a
temporary SQLite MLflow store; runs are checked with mlflow.search_runs and through a real `mlflow ui`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from pipelines.evaluation.resources import LabeledData, MlflowTracking
from tests.feedback_shoppers import shoppers_on_the_sample
from scene_assets.ranking import ScoringWeights
from scene_assets.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "sample"
EXPERIMENT = "scene-matcher-test"
RUN_CONFIG = {
    "ops": {
        # the learned fusion ranker (opt-in): nested cross-validation, then fitted for serving by learned_scorer
        "scene_evaluation": {"config": {"folds": 3, "projection_epochs": 5, "gallery_scenes": 2, "ranker": True}},
        "weight_sweep": {"config": {"size": 5, "seed": 1}},
    }
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, materialized_sample):
    tmp = tmp_path_factory.mktemp("evaluation")
    sample = materialized_sample.copy_to(tmp / "sample")  # the evaluation job adds to it: this module's own copy
    data = sample.data
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    defs = sample.defs(
        labeled_data=LabeledData(dataset=str(SAMPLE)),
        mlflow_tracking=MlflowTracking(tracking_uri=uri, experiment=EXPERIMENT, artifact_root=str(tmp / "artifacts")),
    )
    with sample.instance() as instance:
        result = defs.resolve_job_def("evaluation_job").execute_in_process(instance=instance, run_config=RUN_CONFIG)
        assert result.success
        mlflow.set_tracking_uri(uri)
        yield {"instance": instance, "result": result, "uri": uri, "tmp": tmp, "data": data, "sample": sample,
               "mlflow": MlflowTracking(tracking_uri=uri, experiment=EXPERIMENT, artifact_root=str(tmp / "artifacts"))}


def _materialization(instance, key: str):
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None, key
    return event.asset_materialization.metadata


def test_scoring_run_logged_with_params_metrics_and_artifacts(evaluated):
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.kind = 'evaluation'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    for key in ("recall_at_10", "recall_at_50", "ndcg_at_10", "mrr", "hit_at_10", "n_scenes", "baseline.random.recall_at_10",
                "recall_at_10.ci_low", "recall_at_10.ci_high", "hit_at_10.chair", "room_type_accuracy", "ece"):
        assert f"metrics.{key}" in runs.columns, key
    assert 0.0 <= run["metrics.recall_at_10"] <= 1.0
    assert run["metrics.n_scenes"] == 9  # every sample scene has labeled products in the index
    assert run["params.encoder"] and run["params.dataset_hash"]
    assert float(run["params.weights.learned"]) > 0 and run["params.protocol"].startswith("3-fold")
    assert run["params.fusion"] == "ranker:hgb" and run["params.ranker.negatives"] == "random"
    client = mlflow.MlflowClient(evaluated["uri"])
    artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"reliability.png", "recall_at_k.png", "evaluation.json", "table.txt", "gallery"} <= artifacts
    gallery = [a.path for a in client.list_artifacts(run["run_id"], "gallery")]
    assert gallery == ["gallery/index.html"]
    # Dagster metadata shows the headline numbers (floats, so they plot over time) and links the run
    meta = _materialization(evaluated["instance"], "scene_evaluation")
    assert meta["recall@10"].value == pytest.approx(run["metrics.recall_at_10"])
    assert run["run_id"] in meta["mlflow_run"].value
    # ... and the served path's (what /match returns) beside them, in Dagster and in MLflow (issue #22)
    served_metric = [c for c in run.index if c.startswith("metrics.served") and c.endswith("ndcg_at_10")]
    assert served_metric and meta["served.ndcg@10"].value == pytest.approx(run[served_metric[0]])


def test_weight_sweep_is_a_parent_with_nested_children(evaluated):
    parents = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.kind = 'weight_sweep'")
    assert len(parents) == 1
    parent = parents.iloc[0]
    children = mlflow.search_runs(experiment_names=[EXPERIMENT],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    assert len(children) == 5
    # params repeated on every child, one configuration each
    assert children["params.encoder"].nunique() == 1 and children["params.encoder"].iloc[0] == parent["params.encoder"]
    assert children["params.dataset_hash"].notna().all()
    weights = children[[c for c in children.columns if c.startswith("params.weight.")]]
    assert len(weights.drop_duplicates()) == 5
    # the best configuration on the parent is the child with the best objective
    best_child = children.loc[children["metrics.ndcg_at_10"].idxmax()]
    assert parent["metrics.best.ndcg_at_10"] == pytest.approx(best_child["metrics.ndcg_at_10"])
    assert parent["tags.best_child_run_id"] in set(children["run_id"])
    assert "metrics.nested_heldout.ndcg_at_10" in parents.columns


def test_rerank_sweep_logs_one_child_per_configuration(evaluated):
    from evaluation.rerank_sweep import rerank_grid

    meta = _materialization(evaluated["instance"], "rerank_sweep")
    assert meta["n_configs"].value == len(rerank_grid()) == meta["mlflow_child_runs"].value
    assert "categories@10" in meta["table"].value and "ils@10" in meta["table"].value
    parents = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.kind = 'rerank_sweep'")
    assert len(parents) == 1
    parent = parents.iloc[0]
    children = mlflow.search_runs(experiment_names=[EXPERIMENT],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    assert len(children) == len(rerank_grid())
    assert children["params.config"].nunique() == len(children)
    assert (children["metrics.categories_at_10"] >= 1).all()
    assert parent["params.chosen"] == meta["chosen_config"].value


def test_scoring_weights_asset_is_usable_by_the_recommender(evaluated):
    meta = _materialization(evaluated["instance"], "scoring_weights")
    path = Path(meta["weights_path"].value)
    weights = ScoringWeights.from_file(path)
    sweep = _materialization(evaluated["instance"], "weight_sweep")
    assert weights.to_dict() == sweep["best_weights"].value
    assert path.parent == evaluated["data"] / "models" / "scoring_weights"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_ui_serves_the_runs(evaluated):
    """`mlflow ui` against the same store lists the sweep's parent and children over its REST API."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", evaluated["uri"], "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        exp_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", method="POST",
                                     data=json.dumps({"experiment_ids": [exp_id], "max_results": 100}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.load(r)["runs"]
        kinds = [next(t["value"] for t in run["data"]["tags"] if t["key"] == "kind") for run in runs]
        assert kinds.count("weight_sweep") == 1 and kinds.count("weight_sweep_child") == 5
        assert kinds.count("evaluation") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_learned_scorer_is_served_with_the_scene_index(evaluated):
    from faces.providers import MaterializedBundleProvider

    meta = _materialization(evaluated["instance"], "learned_scorer")
    assert (Path(meta["learned_dir"].value) / "learned.npz").is_file()
    assert meta["training_scenes"].value == 9
    provider = MaterializedBundleProvider(evaluated["instance"])
    loaded = provider.load()
    assert provider.version() == loaded.version and "+" in loaded.version
    rec = loaded.recommender
    assert rec.learned is not None and rec.calibrated
    assert rec.weights.learned > 0  # the learned defaults, since no weights were given
    # the evaluation used the fusion ranker, so the served scorer ranks with one fitted on its out-of-fold scores
    assert rec.ranker is not None and rec.ranker.info["training_scenes"] == 9
    assert meta["fusion"].value == "ranker:hgb"
    result = rec.recommend(next((SAMPLE / "images" / "scenes").glob("*.jpg")), k=5)
    assert result.calibrated and len(result.items) == 5 and result.params["fusion"] == "ranker (hgb)"
    assert all(0.0 <= it.score <= 1.0 for it in result.items)
    learned_factor = [it.factors["learned"] for it in result.items]
    assert any(abs(v - 0.5) > 1e-6 for v in learned_factor)  # the factor is live, not the neutral 0.5
    assert loaded.info["learned_scorer"] == meta["learned_fingerprint"].value
    # without it, the same index serves the plain defaults
    plain = MaterializedBundleProvider(evaluated["instance"], learned=None).load()
    assert plain.recommender.learned is None and "+" not in plain.version


def _retrain_from_feedback(evaluated, root: Path):
    """On a copy of the evaluated sample: shoppers -> feedback_sensor -> feedback_events (its partition run) ->
    feedback_pairs -> feedback_scorer and its blocking check. Returns (the run's result, the scorer served
    before, the one served after, feedback_scorer's metadata)."""
    from pipelines.feedback.resources import FeedbackDatabase
    from pipelines.feedback.sensors import feedback_sensor
    from pipelines.serving import FEEDBACK_CHECK, latest_learned_dir

    sample = evaluated["sample"].copy_to(root / "sample")
    url = f"sqlite:///{root / 'feedback.db'}"
    events = shoppers_on_the_sample(url, root / "scenes")
    feedback_db = FeedbackDatabase(url=url, photos_dir=str(root / "scenes"))
    defs = sample.defs(labeled_data=LabeledData(dataset=str(SAMPLE)), mlflow_tracking=evaluated["mlflow"],
                       feedback_db=feedback_db)
    with sample.instance() as instance:
        before = latest_learned_dir(instance)
        assert before is not None and before[1] == _materialization(instance, "learned_scorer")["learned_fingerprint"].value
        tick = feedback_sensor(dg.build_sensor_context(instance=instance, resources={"feedback_db": feedback_db}))
        assert tick.cursor == str(events) and len(tick.run_requests) == 1
        instance.add_dynamic_partitions("feedback_event_ranges", [tick.run_requests[0].partition_key])
        job = defs.resolve_job_def("feedback_events_job")
        assert job.execute_in_process(instance=instance, partition_key=tick.run_requests[0].partition_key).success
        retrain = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("feedback_pairs"), dg.AssetKey("feedback_scorer")},
            asset_check_selection={FEEDBACK_CHECK})
        result = retrain.execute_in_process(instance=instance, raise_on_error=False)
        return result, before, latest_learned_dir(instance), _materialization(instance, "feedback_scorer")


def test_feedback_sensor_retrains_the_scorer_behind_its_blocking_check(evaluated, tmp_path):
    """Shopper events -> feedback_sensor -> feedback_events (partition) -> feedback_pairs -> feedback_scorer and
    its blocking check on the labeled held-out folds -> served by default once it passed."""
    from scene_assets.learned import LearnedScorer

    result, before, after, meta = _retrain_from_feedback(evaluated, tmp_path)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert meta["feedback_scenes"].value == 9 and meta["labeled_scenes"].value == 9
    assert meta["feedback_photos_skipped"].value == 0 and "mlflow_run" in meta
    scorer = LearnedScorer.load(meta["learned_dir"].value)
    assert scorer.info["feedback_scenes"] == 9 and scorer.calibrator is not None
    assert scorer.fingerprint() != before[1]
    (evaluation,) = result.get_asset_check_evaluations()
    check = evaluation.metadata
    assert check["learned_fingerprint"].value == meta["learned_fingerprint"].value
    assert check["scenes"].value == 9 and check["folds"].value == 3
    # each fold leaves out the feedback on its own held-out photos: every photo is held out once
    assert check["excluded_feedback"].value == 9 and check["feedback_scenes"].value == 9
    diff, half = check["ndcg@10_difference"].value, check["ndcg@10_half_width"].value
    assert diff == pytest.approx(check["ndcg@10_with_feedback"].value - check["ndcg@10_labels_only"].value, abs=1e-9)
    assert evaluation.passed and diff + half >= 0  # shoppers who buy the labeled products: no regression
    assert after == (Path(meta["learned_dir"].value), meta["learned_fingerprint"].value)  # it serves from now on
