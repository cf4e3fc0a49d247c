"""Logs are JSON without secrets; traces flow through Temporal's interceptor when switched on."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from observability import configure_logging, tracing_interceptors
from tests.workflows.doubles import FakeGateway, checkout_request
from workflows.checkout import CheckoutWorkflow
from workflows.refund import RefundWorkflow


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def test_log_lines_are_json_and_secret_fields_are_redacted(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("api")
    structlog.get_logger("test").info(
        "gateway call", payment_id="pay_1", authorization="Bearer abc", webhook_signature="t=1,v1=x"
    )
    logging.getLogger("uvicorn.error").warning("from the standard library")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    assert lines[0]["event"] == "gateway call" and lines[0]["payment_id"] == "pay_1"
    assert lines[0]["authorization"] == lines[0]["webhook_signature"] == "[redacted]"
    assert lines[0]["component"] == "api" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "from the standard library" and lines[1]["component"] == "api"


def test_tracing_is_off_unless_an_exporter_is_configured() -> None:
    assert tracing_interceptors("") == []


async def test_traces_cover_the_workflow_and_its_activities(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    interceptors = tracing_interceptors("console")
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    config = time_skipping_env.client.config()
    config["interceptors"] = [*config["interceptors"], *interceptors]  # keep time skipping
    client = Client(**config)
    fake, queue = FakeGateway(), f"traced-{uuid.uuid4().hex}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[CheckoutWorkflow, RefundWorkflow],
        activities=fake.activities(),
    ):
        request = checkout_request()
        handle = await client.start_workflow(
            CheckoutWorkflow.run,
            request,
            id=names.checkout_workflow_id(request.order_id),
            task_queue=queue,
        )
        await handle.result()  # expires after the skipped 15 minutes

    provider.shutdown()  # type: ignore[attr-defined]
    span_names = {span.name for span in exporter.get_finished_spans()}
    assert "StartWorkflow:CheckoutWorkflow" in span_names
    assert "RunActivity:create_gateway_payment" in span_names
