"""The floor: a workflow with exactly the Temporal shape of a captured checkout and no I/O, run by
a worker built like worker.py's (same connection and data converter, same Worker settings) on
its own task queue. What it reaches is the most this machine and Temporal server can do for that
shape; `python -m bench` checks after its run that a real checkout's history still has this
shape (testkit.history_shape), and fails loudly if not.

A captured checkout (tests/histories/checkout_*_captured.json): started by update-with-start
with its search attributes and memo; first task: the update accepted, the risk assessment (a
local activity), the create activity and the deadline timer (never canceled); the update
completes; one authorization signal; one task with three local activities (the risk assessment
of the authorization, the merchant's confirmation, the ledger steps); the capture activity; the
status upsert with its memo; done.

`python -m bench.floor` runs that worker until SIGTERM; `drive_floor` loads it from a client."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    VersioningBehavior,
    WorkflowIDConflictPolicy,
)
from temporalio.worker import Worker, WorkerDeploymentConfig, WorkerDeploymentVersion

TASK_QUEUE = "bench-floor"
QUICK = timedelta(seconds=15)
DEADLINE = timedelta(minutes=30)
# The checkout's attributes (workflows/search_attributes.py), declared here so the floor does not
# import the product: the same keys and kinds, set at start; the status is upserted at the end.
PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
AT_START = (
    (SearchAttributeKey.for_keyword("OrderId"), "floor"),
    (SearchAttributeKey.for_keyword("CustomerId"), "c_floor"),
    (SearchAttributeKey.for_keyword("Gateway"), "floor"),
    (PAYMENT_STATUS, "created"),
    (SearchAttributeKey.for_int("AmountMinor"), 2500),
    (SearchAttributeKey.for_keyword("Currency"), "USD"),
)


@activity.defn
async def floor_gateway_call(step: str) -> str:
    return step


@activity.defn
async def floor_local_step(step: str) -> str:
    return step


@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)  # as the checkout
class FloorWorkflow:
    @workflow.init
    def __init__(self, name: str) -> None:
        self._ready = False
        self._authorized = False
        self._deadline_passed = False

    @workflow.run
    async def run(self, name: str) -> str:
        deadline = asyncio.create_task(self._deadline())  # never canceled, as the checkout's
        await workflow.execute_local_activity(
            floor_local_step, "assess", start_to_close_timeout=QUICK, summary="assess"
        )
        await workflow.execute_activity(
            floor_gateway_call, "create", start_to_close_timeout=QUICK, summary="create"
        )
        self._ready = True
        await workflow.wait_condition(lambda: self._authorized or self._deadline_passed)
        for step in ("assess", "confirm", "record"):
            await workflow.execute_local_activity(
                floor_local_step, step, start_to_close_timeout=QUICK, summary=step
            )
        await workflow.execute_activity(
            floor_gateway_call, "capture", start_to_close_timeout=QUICK, summary="capture"
        )
        workflow.upsert_search_attributes([PAYMENT_STATUS.value_set("captured")])
        workflow.upsert_memo({"captured": "25.00 USD"})
        await workflow.wait_condition(workflow.all_handlers_finished)
        del deadline
        return name

    async def _deadline(self) -> None:
        await workflow.sleep(DEADLINE, summary="authorization deadline")
        self._deadline_passed = True

    @workflow.update
    async def ready(self) -> bool:
        await workflow.wait_condition(lambda: self._ready)
        return True

    @workflow.signal
    def authorized(self) -> None:
        self._authorized = True


async def one_floor_run(client: Client) -> WorkflowHandle[Any, Any]:
    """What a checkout's client side does, with nothing but Temporal calls: update-with-start
    (attributes and memo at start, as the API sets them), the authorization signal, the result."""
    workflow_id = f"floor-{uuid.uuid4().hex}"
    start = WithStartWorkflowOperation(
        FloorWorkflow.run,
        workflow_id,
        id=workflow_id,
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(k, v) for k, v in AT_START]),
        memo={"amount": "25.00 USD"},
    )
    await client.execute_update_with_start_workflow(
        FloorWorkflow.ready, start_workflow_operation=start
    )
    handle = client.get_workflow_handle(workflow_id)
    await handle.signal(FloorWorkflow.authorized)
    await handle.result()
    return handle


async def drive_floor(client: Client, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` loops of floor workflows for `seconds`; workflows/s completed, and the id of
    one run (whose history the bench compares with a checkout's)."""
    done = 0
    latencies: list[float] = []
    sample = ""
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done, sample
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            handle = await one_floor_run(client)
            latencies.append(time.perf_counter() - began)
            sample = handle.id
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "completed": done,
        "seconds": round(elapsed, 2),
        "per_second": round(done / elapsed, 2),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else 0.0,
        "sample_workflow_id": sample,
    }


async def serve() -> None:
    # Built as worker.py builds its worker: the same connection (data converter), runtime with
    # Prometheus metrics, interceptor, Worker settings and Worker Versioning (a deployment of its
    # own); only the task queue, the workflow and the activities differ.
    from devstack.stack import free_port
    from observability import ActivityLogInterceptor, worker_runtime
    from settings import development_settings
    from temporal_client import connect_temporal
    from worker import compile_workflow_code, make_current_if_none

    compile_workflow_code(Path(__file__))  # as the worker compiles the checkout's
    settings = development_settings()
    client = await connect_temporal(settings, runtime=worker_runtime(f"127.0.0.1:{free_port()}"))
    version = WorkerDeploymentVersion("bench-floor", settings.worker_build_id)
    await make_current_if_none(client, version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[FloorWorkflow],
        activities=[floor_gateway_call, floor_local_step],
        interceptors=[ActivityLogInterceptor()],
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        deployment_config=WorkerDeploymentConfig(version=version, use_worker_versioning=True),
    )
    async with worker:
        logging.info("floor worker polling %r", TASK_QUEUE)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve())
