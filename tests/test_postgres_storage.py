"""PostgreSQL storage end to end on a throwaway server (tests/postgres_server.py).

The Dagster instance is the one the CLI configures (``ensure_dagster_home`` with
``SCENE_MATCHER_DAGSTER_POSTGRES_URL`` set), not one built here; the main job and the evaluation job
run on it with the fake encoder and the embedded sample, and the evaluation logs to MLflow through
``MLFLOW_TRACKING_URI=postgresql://...``. Runs, materializations and MLflow runs are then read back
through Dagster's and MLflow's own APIs, from a second instance and straight from the tables.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from mlflow import MlflowClient

from evaluation.tracking import MlflowLogger
from faces.cli import ensure_dagster_home
from pipelines.evaluation.resources import LabeledData, MlflowTracking
from pipelines.instance_config import ENV_DAGSTER_POSTGRES_URL, instance_yaml
from pipelines.jobs import MAIN_JOB_STEPS
from pipelines.runner import run_main_job
from scene_assets import settings
from scene_assets.database_urls import check_postgres_driver, redact_password
from tests.pipeline_fakes import SAMPLE_CATALOG, defs_with_fakes
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 (the fixture)

SAMPLE = settings.PROJECT_ROOT / "data" / "sample"
EXPERIMENT = "scene-matcher-postgres-test"
SWEEP_SIZE = 4
RUN_CONFIG = {
    "ops": {
        "scene_evaluation": {"config": {"folds": 3, "projection_epochs": 5, "gallery_scenes": 1}},
        "weight_sweep": {"config": {"size": SWEEP_SIZE, "seed": 1}},
    }
}
JOBS = [step.name for step in MAIN_JOB_STEPS] + ["evaluation_job"]


def _query(url: str, sql: str) -> list[tuple]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def stored(postgres_server: PostgresServer, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """The main job, then the evaluation job with a small sweep, on the CLI-configured instance."""
    tmp = tmp_path_factory.mktemp("postgres-storage")
    home, data = tmp / "dagster_home", tmp / "data"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv(settings.ENV_DATA_DIR, str(data))
        env.setenv(ENV_DAGSTER_POSTGRES_URL, postgres_server.sqlalchemy_url("dagster"))
        env.setenv(settings.ENV_MLFLOW_URI, postgres_server.sqlalchemy_url("mlflow"))
        assert ensure_dagster_home() == home.resolve()
        defs = defs_with_fakes(
            data, SAMPLE_CATALOG,
            labeled_data=LabeledData(dataset=str(SAMPLE)),
            # no tracking_uri: the resource reads $MLFLOW_TRACKING_URI, as it does for users
            mlflow_tracking=MlflowTracking(experiment=EXPERIMENT, artifact_root=str(tmp / "artifacts")),
        )
        with dg.DagsterInstance.get() as instance:
            summary = run_main_job(instance=instance, defs=defs)
            assert summary["success"], summary["lines"]
            evaluation = defs.resolve_job_def("evaluation_job").execute_in_process(instance=instance, run_config=RUN_CONFIG)
            assert evaluation.success
            yield {"server": postgres_server, "instance": instance, "home": home, "tmp": tmp, "data": data,
                   "run_ids": [*summary["run_ids"], evaluation.run_id]}


@pytest.mark.slow  # the module's jobs take ~30 s together
def test_the_cli_writes_postgres_storage_into_dagster_home(stored):
    text = (stored["home"] / "dagster.yaml").read_text()
    assert yaml.safe_load(text)["storage"] == {"postgres": {"postgres_url": {"env": ENV_DAGSTER_POSTGRES_URL}}}
    assert stored["server"].sqlalchemy_url("dagster") not in text  # the URL (and a password in it) stays in the environment
    instance = stored["instance"]
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert not (stored["home"] / "history").exists()  # no SQLite run history beside it


@pytest.mark.slow  # the module's jobs take ~30 s together
def test_runs_and_materializations_are_in_postgres(stored):
    instance, run_ids = stored["instance"], stored["run_ids"]
    runs = instance.get_runs()
    assert sorted(r.run_id for r in runs) == sorted(run_ids)
    assert sorted(r.job_name for r in runs) == sorted(JOBS)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    for key in ("cleaned_catalog", "scene_index", "scene_evaluation", "weight_sweep", "scoring_weights"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.run_id in run_ids, key
    # the shards of the ranged embedding run, each a partition materialization
    assert instance.get_materialized_partitions(dg.AssetKey("product_image_features"))

    # a second instance from the same DAGSTER_HOME (as the UI or another worker would open it) sees them
    with dg.DagsterInstance.from_config(str(stored["home"])) as other:
        assert sorted(r.run_id for r in other.get_runs()) == sorted(run_ids)
        weights = other.get_latest_materialization_event(dg.AssetKey("scoring_weights"))
        assert Path(weights.asset_materialization.metadata["weights_path"].value).is_file()

    # and the rows are in the server's tables
    url = stored["server"].url("dagster")
    rows = dict(_query(url, "SELECT run_id, status FROM runs"))
    assert rows == {run_id: "SUCCESS" for run_id in run_ids}
    materialized = _query(url, "SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert '["scoring_weights"]' in {key for (key,) in materialized}


@pytest.mark.slow  # the module's jobs take ~30 s together
def test_the_sweep_is_logged_to_the_postgres_mlflow_store(stored):
    url = stored["server"].url("mlflow")
    client = MlflowClient(tracking_uri=stored["server"].sqlalchemy_url("mlflow"))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    assert experiment.artifact_location == (stored["tmp"] / "artifacts").as_uri()
    evaluations = client.search_runs([experiment.experiment_id], "tags.kind = 'evaluation'")
    assert len(evaluations) == 1 and evaluations[0].info.status == "FINISHED"
    assert 0.0 <= evaluations[0].data.metrics["recall_at_10"] <= 1.0
    (parent,) = client.search_runs([experiment.experiment_id], "tags.kind = 'weight_sweep'")
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == SWEEP_SIZE
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"ndcg_at_10", "recall_at_10", "mrr"} <= set(child.data.metrics)
        assert child.data.params["encoder"] == parent.data.params["encoder"]
    best = max(children, key=lambda run: run.data.metrics["ndcg_at_10"])
    assert parent.data.metrics["best.ndcg_at_10"] == pytest.approx(best.data.metrics["ndcg_at_10"])
    assert parent.data.tags["best_child_run_id"] in {run.info.run_id for run in children}
    # the artifacts went to the artifact folder, the runs to the server (no SQLite store on the side)
    assert "best_weights.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert list((stored["tmp"] / "artifacts").rglob("best_weights.json"))
    assert not (stored["data"] / "mlflow" / "mlflow.db").exists()
    logged = client.search_runs([experiment.experiment_id], max_results=1000)
    kinds = Counter(run.data.tags.get("kind") for run in logged)
    assert (kinds["evaluation"], kinds["weight_sweep"], kinds["weight_sweep_child"]) == (1, 1, SWEEP_SIZE)
    rows = _query(url, f"SELECT run_uuid FROM runs WHERE experiment_id = {int(experiment.experiment_id)}")
    assert {run_id for (run_id,) in rows} == {run.info.run_id for run in logged}


def test_the_shipped_example_is_the_repo_config_with_postgres_storage(tmp_path: Path, monkeypatch):
    """docs/dagster-postgres.yaml (for users who manage DAGSTER_HOME) equals what the CLI writes, and
    Dagster accepts it."""
    example = settings.PROJECT_ROOT / "docs" / "dagster-postgres.yaml"
    written = instance_yaml(environ={ENV_DAGSTER_POSTGRES_URL: "postgresql+psycopg2://u@h/db"})
    assert yaml.safe_load(example.read_text()) == yaml.safe_load(written)
    (tmp_path / "dagster.yaml").write_text(example.read_text())
    monkeypatch.setenv(ENV_DAGSTER_POSTGRES_URL, "postgresql+psycopg2://u@h/db")  # validating resolves the variable
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    # unset, the CLI writes the repo's file as it is: SQLite under DAGSTER_HOME stays the default
    assert instance_yaml(environ={}) == (settings.PROJECT_ROOT / "dagster.yaml").read_text()


def test_postgres_urls_must_name_an_installed_driver():
    """A bare postgresql:// means psycopg 3 to SQLAlchemy 2.1; without it the CLI and MlflowLogger stop at
    start-up with the fix (and never echo the password, nor does the CLI when it prints a URL)."""
    from sqlalchemy.dialects import postgresql

    for fine in ("postgresql+psycopg2://u:secret@h:5432/db", "sqlite:///data/mlflow/mlflow.db", "http://mlflow:5000"):
        check_postgres_driver(fine, "X")
    with pytest.raises(ValueError, match=r"postgresql\+psycopg2://") as alias:
        check_postgres_driver("postgres://u:secret@h/db", "X")
    assert "secret" not in str(alias.value)
    if importlib.util.find_spec(postgresql.dialect.driver) is None:
        with pytest.raises(ValueError, match=rf"\${ENV_DAGSTER_POSTGRES_URL}: .*postgresql\+psycopg2://") as bare:
            instance_yaml(environ={ENV_DAGSTER_POSTGRES_URL: "postgresql://u:secret@h/db"})
        assert "secret" not in str(bare.value)
        with pytest.raises(ValueError, match="MLflow tracking URI"):
            MlflowLogger("postgresql://u:secret@h/db", EXPERIMENT)
    else:
        check_postgres_driver("postgresql://u:secret@h/db", "X")
    assert redact_password("postgresql+psycopg2://u:secret@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"
