"""The Dagster instance configuration the CLI writes into $DAGSTER_HOME.

It is the repo's dagster.yaml as it is (SQLite storage under $DAGSTER_HOME), or - when
``SCENE_MATCHER_DAGSTER_POSTGRES_URL`` is set - the same file plus a ``storage: postgres`` section that
puts runs, event logs and schedules in PostgreSQL (dagster-postgres). The URL reads
``postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB`` (scene_assets/database_urls.py says why). The
section names the variable, not its value, so the password never lands on disk and every Dagster
process (UI, daemon, run workers) reads the URL from its own environment. See docs/postgres.md.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from scene_assets import settings
from scene_assets.database_urls import check_postgres_driver

ENV_DAGSTER_POSTGRES_URL = "SCENE_MATCHER_DAGSTER_POSTGRES_URL"

POSTGRES_STORAGE = f"""
# Added by scene-matcher because ${ENV_DAGSTER_POSTGRES_URL} is set: runs, event logs and schedules
# live in PostgreSQL. Every Dagster process reads the URL from that variable when it starts.
storage:
  postgres:
    postgres_url:
      env: {ENV_DAGSTER_POSTGRES_URL}
"""


def postgres_url(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get(ENV_DAGSTER_POSTGRES_URL) or None


def instance_yaml(source: Path | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The text of $DAGSTER_HOME/dagster.yaml: ``source`` (default: the repo's dagster.yaml), with the
    PostgreSQL storage section when the variable is set."""
    source = source or settings.PROJECT_ROOT / "dagster.yaml"
    text = source.read_text(encoding="utf-8") if source.is_file() else ""
    url = postgres_url(environ)
    if not url:
        return text
    check_postgres_driver(url, f"${ENV_DAGSTER_POSTGRES_URL}")
    if "storage" in (yaml.safe_load(text) or {}):
        raise ValueError(f"{source} already has a `storage` section; remove it or unset {ENV_DAGSTER_POSTGRES_URL}")
    return text.rstrip("\n") + "\n" + POSTGRES_STORAGE if text else POSTGRES_STORAGE.lstrip("\n")


def write_instance_yaml(home: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Write ``home/dagster.yaml`` when its text differs (so switching storage back and forth works)."""
    target = home / "dagster.yaml"
    text = instance_yaml(environ=environ)
    if text and (not target.is_file() or target.read_text(encoding="utf-8") != text):
        target.write_text(text, encoding="utf-8")
    return target


def storage_description(home: Path, environ: Mapping[str, str] = os.environ) -> str:
    """Where run history lives, for the CLI's messages (never prints the URL: it may hold a password)."""
    if postgres_url(environ):
        return f"PostgreSQL (${ENV_DAGSTER_POSTGRES_URL}); instance config in {home}"
    return str(home)
