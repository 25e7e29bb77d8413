"""A Dask cluster for pipeline steps: what it must offer, checked before a run is sent to it, and a
local one on loopback for tests and benchmarks.

Each Dagster step is one Dask task, and a worker must run one step at a time: **one thread per
worker process** (``dask worker ADDRESS --nthreads 1``; ``--nworkers N`` for parallelism). Two
steps in one process can deadlock the whole worker. Every step start calls
``logging.config.dictConfig`` (Dagster rebuilds the handlers from ``dagster.yaml``), and that call
holds the ``logging`` module lock while it takes each handler's lock to close it. A step running
on another thread holds its event handler's lock while it writes an event, and that write logs
through SQLAlchemy, which can need the module lock. Each thread then waits for the other's lock.
The worker's event loop blocks on the module lock at its next log line, so its heartbeats stop and
the run hangs until the scheduler drops the worker. A cluster without a running worker hangs too:
the tasks wait in the scheduler's queue. Both cases are refused here before anything is submitted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

THREADS_PER_WORKER = 1
"""The thread count every worker must have (see the module docstring for why not more)."""

DEFAULT_CONNECT_TIMEOUT_S = 10.0
USABLE_STATUSES = frozenset({"running"})


class DaskClusterError(RuntimeError):
    """The cluster cannot run pipeline steps: unreachable, no usable worker, or workers that would hang."""


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    nthreads: int
    status: str
    resources: Mapping[str, float]


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    workers: tuple[WorkerInfo, ...]

    def summary(self) -> str:
        threads = sorted({w.nthreads for w in self.workers})
        return f"{len(self.workers)} worker(s), threads per worker {threads or '-'}"


def cluster_info(address: str, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> ClusterInfo:
    """The workers the scheduler at `address` knows; DaskClusterError if it cannot be reached."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout_s, set_as_default=False) as client:
            info = client.scheduler_info(n_workers=-1)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskClusterError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout_s:.0f} s "
            f"({type(exc).__name__}: {exc}). Start one (`dask scheduler --port 8786`) and its workers, or "
            "fix the address (SCENE_MATCHER_DASK_ADDRESS, or the executor's `address` in the launchpad)."
        ) from exc
    workers = tuple(
        WorkerInfo(
            address=worker_address,
            nthreads=int(worker.get("nthreads", 0)),
            status=str(worker.get("status", "unknown")),
            resources=dict(worker.get("resources") or {}),
        )
        for worker_address, worker in sorted(info.get("workers", {}).items())
    )
    return ClusterInfo(address=address, workers=workers)


def cluster_problems(info: ClusterInfo, resource_requirements: Sequence[Mapping[str, float]] = ()) -> list[str]:
    """Why pipeline steps sent to this cluster would hang or deadlock (empty: none).

    `resource_requirements`: the Dask resources each step asks for (``dagster-dask/resource_requirements``).
    """
    usable = [w for w in info.workers if w.status in USABLE_STATUSES and w.nthreads > 0]
    start = f"dask worker {info.address} --nthreads {THREADS_PER_WORKER}"
    if not usable:
        seen = ", ".join(f"{w.address} ({w.status}, {w.nthreads} threads)" for w in info.workers) or "none"
        return [
            f"no running Dask worker with a thread at {info.address} (workers: {seen}): the steps would wait in "
            f"the scheduler's queue forever. At least 1 worker with {THREADS_PER_WORKER} thread is needed: "
            f"`{start}`."
        ]
    problems = []
    threaded = [w for w in usable if w.nthreads != THREADS_PER_WORKER]
    if threaded:
        listed = ", ".join(f"{w.address} ({w.nthreads} threads)" for w in threaded)
        problems.append(
            f"Dask workers with more than {THREADS_PER_WORKER} thread: {listed}. Two pipeline steps in one worker "
            "process can deadlock it: each step start rebuilds Python logging under the logging lock while another "
            "step holds its event handler's lock. Restart these workers with `--nthreads 1`, and use "
            "`--nworkers N` (processes) for parallelism."
        )
    for needed in {tuple(sorted(r.items())) for r in resource_requirements if r}:
        if not any(all(w.resources.get(name, 0) >= amount for name, amount in needed) for w in usable):
            wanted = ",".join(f"{name}={amount:g}" for name, amount in needed)
            problems.append(
                f"steps ask for Dask resources {wanted}, which no running worker offers: they would wait "
                f"forever. Start a worker with `--resources \"{wanted}\"`."
            )
    return problems


def check_cluster(
    address: str,
    *,
    resource_requirements: Sequence[Mapping[str, float]] = (),
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> ClusterInfo:
    """The cluster at `address` if it can run pipeline steps, else DaskClusterError saying how to fix it."""
    info = cluster_info(address, timeout_s=timeout_s)
    problems = cluster_problems(info, resource_requirements)
    if problems:
        raise DaskClusterError("; ".join(problems))
    return info


# --------------------------------------------------------------------------------------------
# A local cluster of subprocesses on loopback (tests, benchmarks)
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]]


def _stop(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left (a worker's nanny takes a few seconds)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, 9)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def local_cluster(
    n_workers: int,
    *,
    threads_per_worker: int = THREADS_PER_WORKER,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_dir: Path | None = None,
    start_timeout_s: float = 60.0,
) -> Iterator[str]:
    """A scheduler and `n_workers` worker processes (one ``dask worker``) on loopback free ports;
    yields the scheduler address once every worker is connected and stops all of them on exit.

    `env` and `cwd` are the workers': they must import the project and see the same storage.
    """
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    environ = {**os.environ, **(env or {})}
    logs = []

    def start(name: str, command: list[str]) -> subprocess.Popen:
        log = open(log_dir / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL
        if log_dir:
            logs.append(log)
        # Own process group: the whole group is stopped, even after a failure in between.
        return subprocess.Popen(command, env=environ, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    processes: list[subprocess.Popen] = []
    try:
        processes.append(start("scheduler", _dask_command(
            "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")))
        if n_workers:
            processes.append(start("workers", _dask_command(
                "worker", address, "--nworkers", str(n_workers), "--nthreads", str(threads_per_worker),
                "--host", "127.0.0.1", "--no-dashboard")))
        deadline = time.monotonic() + start_timeout_s
        with Client(address, timeout=start_timeout_s, set_as_default=False) as client:
            if n_workers:
                client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in logs:
            log.close()
