"""The monitoring and deployment files of docs/deploy/: Prometheus alert rules checked and unit-tested
with the real promtool, every series they and the Grafana dashboard use exported by the app, and the
Compose file checked against a schema of the keys it uses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field

from tests.system_tools import require_program
from tests.test_serving import PRODUCT_IDS, FakeProvider, _build, _post, _settings, running

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "scene-matcher.json"
COMPOSE = DEPLOY / "compose.yaml"


def _promtool() -> str:
    return require_program("promtool", "prometheus")


@pytest.mark.parametrize("args", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                                  ["check", "config", "prometheus.yml"]], ids=" ".join)
def test_promtool_accepts_the_rules_and_their_unit_tests(args):
    done = subprocess.run([_promtool(), *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _series_names(exprs: list[str]) -> set[str]:
    """Raw series the expressions read (recording-rule names, which contain ':', are not raw series)."""
    return {name for expr in exprs for name in re.findall(r"\b(scene_matcher_[a-z0-9_]+)", expr)}


@pytest.fixture(scope="module")
def exported_series() -> set[str]:
    """Every sample name the app exports after one computed /match answer."""
    with running(FakeProvider({"v1": _build(PRODUCT_IDS)}, "v1"), _settings()) as client:
        assert _post(client, k="5").status_code == 200
        text = client.get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_rules_and_dashboard_read_only_series_the_app_exports(exported_series):
    used = _series_names(_rule_exprs() + _dashboard_exprs())
    assert {"scene_matcher_result_candidate_depth_bucket", "scene_matcher_top1_confidence_sum",
            "scene_matcher_index_written_timestamp_seconds", "scene_matcher_http_requests_total"} <= used
    assert used <= exported_series, sorted(used - exported_series)
    recorded = {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    for expr in _dashboard_exprs():  # a recording rule the dashboard reads must be defined
        assert set(re.findall(r"\bscene_matcher:[a-z0-9_:]+", expr)) <= recorded, expr


def test_dashboard_is_a_grafana_dashboard_over_a_prometheus_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat") and panel["title"] and panel["targets"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(target["refId"] and target["expr"].strip() for target in panel["targets"])


# -- the Compose file: a schema of the Compose keys it uses (extra keys are errors) ----------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Build(_Strict):
    context: str
    dockerfile: str


class Healthcheck(_Strict):
    test: list[str]
    interval: str
    timeout: str
    retries: int
    start_period: str | None = None


class DependsOn(_Strict):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"]


class Service(_Strict):
    image: str
    build: Build | None = None
    command: list[str] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    volumes: list[str] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)
    depends_on: dict[str, DependsOn] = Field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: Literal["no", "always", "on-failure", "unless-stopped"] | None = None


class Compose(BaseModel):
    model_config = ConfigDict(extra="allow")  # x-* extension fields hold the YAML anchors
    name: str
    services: dict[str, Service]
    volumes: dict[str, Any]


def test_compose_file_matches_the_schema_and_wires_the_services():
    raw = yaml.safe_load(COMPOSE.read_text())
    assert all(key.startswith("x-") for key in set(raw) - {"name", "services", "volumes"})
    compose = Compose.model_validate(raw)
    services = compose.services
    assert {"api-1", "api-2", "redis", "postgres", "dagster-webserver", "dagster-daemon", "mlflow"} <= set(services)
    for name, service in services.items():
        for dependency in service.depends_on:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        if dependency_health := [d for d, c in service.depends_on.items() if c.condition == "service_healthy"]:
            assert all(services[d].healthcheck for d in dependency_health), name
        for volume in service.volumes:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose.volumes, f"{name}: named volume {source} is not declared"
            else:
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
        if service.build is not None:
            assert (COMPOSE.parent / service.build.context / service.build.dockerfile).is_file()
    for replica in ("api-1", "api-2"):  # stateless replicas: same command and settings, /ready health check
        api = services[replica]
        assert api.command[:2] == ["scene-matcher", "serve"] and api.command == services["api-1"].command
        assert api.environment == services["api-1"].environment
        assert api.environment["SCENE_MATCHER_REDIS_URL"].startswith("redis://redis:")
        assert any("/ready" in part for part in api.healthcheck.test)
        assert "data:/data:ro" in api.volumes
    assert "lb" in services and set(services["lb"].depends_on) == {"api-1", "api-2"}
