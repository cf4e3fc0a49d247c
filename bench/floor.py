"""The floor: a workflow with a checkout's shape (update-with-start, 10 activities, 2 signals) and
no I/O, run by a worker built like worker.py's (same data converter, same Worker settings) on its
own task queue. What it reaches is the most this machine and Temporal server can do.

`python -m bench.floor` runs that worker until SIGTERM; `drive_floor` loads it from a client."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

TASK_QUEUE = "bench-floor"
# One checkout that is captured runs: record_new_checkout, record, create payment, record
# (before it is ready to pay) and fetch, record, merchant confirmation, record, capture, record
# (after the authorization signal).
ACTIVITIES_BEFORE_READY = 4
ACTIVITIES_AFTER_SIGNAL = 6
QUICK = timedelta(seconds=15)


@activity.defn
async def floor_step(step: int) -> int:
    return step


@workflow.defn
class FloorWorkflow:
    @workflow.init
    def __init__(self, name: str) -> None:
        self._ready = False
        self._events: set[str] = set()

    @workflow.run
    async def run(self, name: str) -> int:
        steps = 0
        for _ in range(ACTIVITIES_BEFORE_READY):
            steps += await workflow.execute_activity(
                floor_step, 1, start_to_close_timeout=QUICK, summary="floor step"
            )
        self._ready = True
        await workflow.wait_condition(lambda: bool(self._events))
        for _ in range(ACTIVITIES_AFTER_SIGNAL):
            steps += await workflow.execute_activity(
                floor_step, 1, start_to_close_timeout=QUICK, summary="floor step"
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return steps

    @workflow.update
    async def ready(self) -> bool:
        await workflow.wait_condition(lambda: self._ready)
        return True

    @workflow.signal
    def event(self, event_id: str) -> None:
        self._events.add(event_id)


async def one_floor_run(client: Client) -> None:
    """What a checkout's client side does, with nothing but Temporal calls: update-with-start,
    the authorization signal and a duplicate of it, then the result."""
    workflow_id = f"floor-{uuid.uuid4().hex}"
    start = WithStartWorkflowOperation(
        FloorWorkflow.run,
        workflow_id,
        id=workflow_id,
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await client.execute_update_with_start_workflow(
        FloorWorkflow.ready, start_workflow_operation=start
    )
    handle = client.get_workflow_handle(workflow_id)
    await handle.signal(FloorWorkflow.event, "authorized")
    await handle.signal(FloorWorkflow.event, "authorized")
    await handle.result()


async def drive_floor(client: Client, concurrency: int, seconds: float) -> dict[str, float]:
    """`concurrency` loops of floor workflows for `seconds`; workflows/s completed."""
    done = 0
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            await one_floor_run(client)
            latencies.append(time.perf_counter() - began)
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
    }


async def serve() -> None:
    # Built as worker.py builds its worker: the same connection (data converter) and the same
    # Worker settings; only the task queue, the workflow and the activity differ.
    from settings import get_settings
    from temporal_client import connect_temporal

    settings = get_settings()
    client = await connect_temporal(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[FloorWorkflow],
        activities=[floor_step],
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    async with worker:
        logging.info("floor worker polling %r", TASK_QUEUE)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve())
