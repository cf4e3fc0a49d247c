"""The one way every process (API, worker, scripts) connects to Temporal, with the data converter
and interceptors they must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from observability import tracing_interceptors
from settings import Settings


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=tracing_interceptors(settings.tracing_exporter),
        lazy=lazy,
        runtime=runtime,
    )
