"""Database URLs handed to SQLAlchemy: Dagster's PostgreSQL storage and the MLflow tracking store.

SQLAlchemy 2.1 reads a bare ``postgresql://`` URL as the psycopg (3) driver; the project installs
psycopg2 (``psycopg2-binary``), so its URLs say ``postgresql+psycopg2://``. A bare URL fails here, at
start-up, with that fix, rather than as a ModuleNotFoundError inside a run.
"""

from __future__ import annotations

import importlib.util

POSTGRES_SCHEME = "postgresql+psycopg2"


class DatabaseUrlError(ValueError):
    """A database URL that cannot work here; the message says what to write instead."""


def check_postgres_driver(url: str, source: str) -> None:
    """Raise :class:`DatabaseUrlError` when ``url`` (read from ``source``, e.g. an environment variable) is a
    PostgreSQL URL whose driver is not installed. Other URLs pass; the URL itself is never echoed
    (it may hold a password)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "postgres":  # Heroku-style alias, unknown to SQLAlchemy
        raise DatabaseUrlError(f"{source}: postgres:// is not a SQLAlchemy URL; write {POSTGRES_SCHEME}://USER:PASSWORD@HOST:PORT/DB")
    if scheme != "postgresql":
        return
    from sqlalchemy.dialects import postgresql

    driver = postgresql.dialect.driver  # what a bare postgresql:// means in this SQLAlchemy
    if importlib.util.find_spec(driver) is None:
        raise DatabaseUrlError(f"{source}: a bare postgresql:// URL selects the {driver} driver, which is not installed; "
                         f"write {POSTGRES_SCHEME}://USER:PASSWORD@HOST:PORT/DB (psycopg2-binary is a dependency)")


def redact_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))
