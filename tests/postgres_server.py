"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start it on a free loopback
port with trust authentication, create one database per name, hand out their URLs, then stop the server
and delete the folder whatever happened.

PostgreSQL refuses to run as root, so as root the server runs as an existing unprivileged account
(``postgres`` if the packages created it, else ``nobody``) through ``runuser`` or ``setpriv``; any other
user runs it directly. The binaries come from PATH or Debian's ``/usr/lib/postgresql/<version>/bin``
(``apt-get install postgresql``). Without them the ``postgres_server`` fixture skips with the reason -
unless ``CI`` is set, where a missing server is a failure, not a silent skip.

    with throwaway_postgres(["dagster", "mlflow"]) as server:
        server.url("dagster")             # postgresql://postgres@127.0.0.1:<port>/dagster (psycopg2, psql)
        server.sqlalchemy_url("mlflow")   # postgresql+psycopg2://... (Dagster storage, MLflow)
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "postgres"  # the database role initdb creates; not the operating-system account
UNPRIVILEGED_ACCOUNTS = ("postgres", "nobody")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries, or no way to run them as a non-root user."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    root: Path  # data folder, socket and log; deleted on exit
    databases: tuple[str, ...]

    def url(self, database: str) -> str:
        """libpq form, for psycopg2.connect and psql."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        """The form Dagster and MLflow are given (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3)."""
        return f"postgresql+psycopg2://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.is_file() else ""


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    candidates = [c for c in candidates if (c / "pg_ctl").is_file()]
    return max(candidates, key=lambda c: _version(c.parent.name)) if candidates else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """Command prefix that drops root, and the account it drops to (no prefix, None: not root)."""
    if os.geteuid() != 0:
        return [], None
    account = next((a for a in UNPRIVILEGED_ACCOUNTS if _account(a)), None)
    if account is None:
        raise PostgresUnavailable(f"running as root and none of the accounts {UNPRIVILEGED_ACCOUNTS} exists")
    user = _account(account)
    if shutil.which("runuser"):
        return ["runuser", "-u", account, "--"], user
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"], user
    raise PostgresUnavailable("running as root and neither runuser nor setpriv is installed")


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: Sequence[str], timeout: float) -> None:
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


def _create_databases(host: str, port: int, names: Sequence[str]) -> None:
    import psycopg2

    connection = psycopg2.connect(host=host, port=port, user=SUPERUSER, dbname="postgres")
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def locate() -> tuple[Path, list[str], pwd.struct_passwd | None]:
    """The binaries folder, the command prefix that drops root and the account it drops to; raises
    :class:`PostgresUnavailable` when a server cannot be started here at all."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin; "
                                  "install them with `apt-get install postgresql`")
    return (bin_dir, *_run_as())


@contextlib.contextmanager
def throwaway_postgres(databases: Sequence[str] = ("dagster", "mlflow"), start_timeout: float = 60) -> Iterator[PostgresServer]:
    """A fresh server with ``databases`` created; stopped (immediate mode) and deleted on exit."""
    bin_dir, prefix, user = locate()
    # /tmp, not pytest's tmp_path: the unprivileged account must be able to reach the folder.
    root = Path(tempfile.mkdtemp(prefix="scene-matcher-pg-", dir="/tmp" if user else None))
    data = root / "data"
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
              "--locale=C", "--no-sync"], timeout=120)
        host = "127.0.0.1"
        for attempt in range(3):  # the free port can be taken between the probe and the start
            port = _free_port()
            options = (f"-h {host} -p {port} -k {root} -F -c full_page_writes=off -c synchronous_commit=off "
                       "-c max_connections=100")
            try:
                _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                      "-t", str(int(start_timeout)), "-o", options, "start"], timeout=start_timeout + 10)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(0.5)
        _create_databases(host, port, databases)
        yield PostgresServer(host=host, port=port, root=root, databases=tuple(databases))
    finally:
        if (data / "postmaster.pid").is_file():  # running, or a start that did not finish in time
            stopped = subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                      "-t", "30", "stop"], capture_output=True, timeout=60)
            if stopped.returncode != 0:
                _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl stop fails: SIGKILL the postmaster whose pid the data folder records."""
    import signal

    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway server with ``dagster`` and ``mlflow`` databases for the tests of one module. Skips
    without PostgreSQL binaries, except under CI (env ``CI`` set), where it fails."""
    try:
        locate()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    with throwaway_postgres(("dagster", "mlflow")) as server:
        yield server
