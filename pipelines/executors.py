"""The executor that runs a job's steps, chosen by configuration.

Default: Dagster's multiprocess executor, one process per step on the machine that runs the run;
the launchpad can still pick `in_process`. With ``SCENE_MATCHER_EXECUTOR=dask``, each step is
a task on an existing Dask cluster at ``SCENE_MATCHER_DASK_ADDRESS``, or at the address set in the
launchpad (``execution: config: address: tcp://host:8786``). The workers must import this project,
and they need the same environment variables (storage root, catalog, encoder) and the same storage.
Give each worker one thread (see scene_assets/dask_cluster.py and docs/dask.md). The cluster is
checked before anything is submitted.

This applies to runs launched from the UI, schedules, sensors, ``dagster job launch`` and
``execute_job(reconstructable(...))``. ``scene-matcher materialize`` runs its jobs with
``execute_in_process``, which ignores executors.
"""

import os
from collections.abc import Mapping

import dagster as dg
import distributed
from dagster import _check as check
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker

from scene_assets.dask_cluster import DEFAULT_CONNECT_TIMEOUT_S, DaskClusterError, check_cluster

ENV_EXECUTOR = "SCENE_MATCHER_EXECUTOR"
ENV_DASK_ADDRESS = "SCENE_MATCHER_DASK_ADDRESS"
EXECUTOR_KINDS = ("multiprocess", "dask")


class CheckedDaskExecutor(DaskExecutor):
    """dagster-dask's executor on an existing cluster, with two changes.

    The cluster is checked first (reachable, a running single-threaded worker, the resources the
    steps ask for), so a run that would hang fails at once with the fix in its message. Task keys
    carry the run id: dagster-dask names a task ``<job>.<step>``, so two runs of one job at the
    same time (a backfill of shards) share tasks, and the second one reports the first one's
    results without running anything.
    """

    def __init__(self, address: str, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S):
        super().__init__("existing", {"address": address})
        self.address = address
        self.connect_timeout_s = connect_timeout_s

    def execute(self, plan_context, execution_plan):
        check.invariant(plan_context.instance.is_persistent, "Dask execution requires a persistent DagsterInstance")
        steps = [step for level in execution_plan.get_steps_to_execute_by_level() for step in level]
        info = check_cluster(
            self.address,
            resource_requirements=[get_dask_resource_requirements(step.tags) for step in steps],
            timeout_s=self.connect_timeout_s,
        )
        yield DagsterEvent.engine_event(
            plan_context,
            f"Dask cluster {self.address}: {info.summary()}; submitting {len(steps)} step(s).",
            EngineEventData(metadata={"dask_workers": dg.MetadataValue.json([w.address for w in info.workers])}),
        )
        run_id = plan_context.dagster_run.run_id
        with distributed.Client(self.address, timeout=self.connect_timeout_s, set_as_default=False) as client:
            futures = {}
            for step in steps:
                # Dask starts a task only when the futures among its arguments are done, so a step
                # waits for its upstream steps in the scheduler, not on a worker thread.
                upstream = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                futures[step.key] = client.submit(
                    query_on_dask_worker,
                    upstream,
                    plan_context.reconstructable_job,
                    plan_context.dagster_run,
                    plan_context.run_config,
                    [step.key],
                    plan_context.instance.get_ref(),
                    execution_plan.known_state,
                    key=f"{plan_context.job_name}.{step.key}-{run_id}",
                    resources=get_dask_resource_requirements(step.tags),
                )
            done = distributed.as_completed(list(futures.values()), loop=client.loop, with_results=True)
            for _, events in iterate_with_context(raise_execution_interrupts, done):
                for event in events:
                    yield check.inst(event, DagsterEvent)


@dg.executor(
    name="dask",
    config_schema={
        "address": dg.Field(
            dg.StringSource,
            is_required=False,
            description=f"Dask scheduler address, e.g. tcp://10.0.0.5:8786. Default: ${ENV_DASK_ADDRESS}.",
        ),
        "connect_timeout_s": dg.Field(
            float, default_value=DEFAULT_CONNECT_TIMEOUT_S, description="How long to try to reach the scheduler."
        ),
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def dask_cluster_executor(init_context: dg.InitExecutorContext) -> CheckedDaskExecutor:
    """Every step as a task on an existing Dask cluster (one thread per worker)."""
    address = init_context.executor_config.get("address") or os.environ.get(ENV_DASK_ADDRESS, "")
    if not address:
        raise DaskClusterError(
            f"the dask executor needs the scheduler's address: set {ENV_DASK_ADDRESS}=tcp://HOST:8786 where the "
            "run starts, or `execution: config: address:` in the launchpad"
        )
    return CheckedDaskExecutor(address, init_context.executor_config["connect_timeout_s"])


def executor_from_environment(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor ``SCENE_MATCHER_EXECUTOR`` names: multiprocess (default) or dask."""
    environ = os.environ if environ is None else environ
    kind = environ.get(ENV_EXECUTOR, "").strip().lower() or "multiprocess"
    if kind == "multiprocess":
        return dg.multi_or_in_process_executor
    if kind == "dask":
        return dask_cluster_executor
    raise ValueError(f"{ENV_EXECUTOR}={kind!r}: expected one of {', '.join(EXECUTOR_KINDS)}")
