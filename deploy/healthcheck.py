#!/usr/bin/env python
"""Container health checks, run by docker-compose.yml inside the image.

`payments-healthcheck api`: the API answers `/health/live`.
`payments-healthcheck worker`: Temporal has seen this container's worker poll its task queue
recently (a hung or disconnected worker stops polling; a dead one stops the container).
Exit status 0 = healthy, 1 = not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settings import Settings

POLL_FRESHNESS_SECONDS = 150  # long polls last about a minute; the server renews the time per poll


def api_is_live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


async def worker_is_polling(settings: Settings, hostname: str, now: float | None = None) -> bool:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from temporal_client import connect_temporal

    client = await connect_temporal(settings)  # TLS and API key as the worker connects
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    now = time.time() if now is None else now
    return any(
        poller.identity.endswith(f"@{hostname}")
        and now - poller.last_access_time.ToSeconds() < POLL_FRESHNESS_SECONDS
        for poller in response.pollers
    )


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else ""
    if role == "api":
        port = os.environ.get("PORT", "8000")
        return 0 if api_is_live(f"http://127.0.0.1:{port}/health/live") else 1
    if role == "worker":
        from settings import get_settings

        settings = get_settings()
        healthy = asyncio.run(worker_is_polling(settings, socket.gethostname()))
        return 0 if healthy else 1
    print("usage: payments-healthcheck api|worker", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
