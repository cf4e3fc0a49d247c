"""Logs, metrics and traces for the API and the worker.

Logs are JSON lines (structlog) carrying the request's correlation id and, inside activities, the
workflow id, payment id and gateway. Metrics are Prometheus: the Temporal SDK's own from the
worker's runtime, ours from the API. Traces go through Temporal's OpenTelemetry interceptor, only
when an exporter is configured."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from asgi_correlation_id import correlation_id
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workflows import search_attributes as search

_log = structlog.get_logger("activity")

# Keys whose values never reach a log line, whatever logs them.
_SECRET_KEYS = re.compile(r"secret|password|token|authorization|signature|card|cvv|cvc|pan$", re.I)


def _add_correlation_id(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
    request_id = correlation_id.get()
    if request_id:
        event.setdefault("correlation_id", request_id)
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
    return event


def configure_logging(component: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, Temporal's) through one JSON renderer on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        lambda _, __, event: {**event, "component": component},
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


# The workflow tells each activity which payment it works for, in this header: the payment id
# and gateway the workflow published as search attributes.
PAYMENT_HEADER = "payment-log-context"


def _with_payment_header(headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
    found = workflow.info().typed_search_attributes
    context = {
        key: value
        for key, value in (
            ("payment_id", found.get(search.PAYMENT_ID)),
            ("gateway", found.get(search.GATEWAY)),
        )
        if value
    }
    if not context:
        return headers
    return {**headers, PAYMENT_HEADER: workflow.payload_converter().to_payload(context)}


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_payment_header(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_payment_header(input.headers)
        return super().start_local_activity(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        context: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "activity": info.activity_type,
            "attempt": info.attempt,
        }
        for arg in input.args:
            context.update(_payment_context(arg))
        header = input.headers.get(PAYMENT_HEADER)
        if header is not None:
            context.update(activity.payload_converter().from_payload(header, dict))
        with structlog.contextvars.bound_contextvars(**context):
            started = time.perf_counter()
            try:
                result = await super().execute_activity(input)
            except BaseException as error:
                _log.warning(
                    "step failed",
                    error=type(error).__name__,
                    error_type=getattr(error, "type", None),
                    seconds=round(time.perf_counter() - started, 3),
                )
                raise
            _log.info("step done", seconds=round(time.perf_counter() - started, 3))
            return result


def _payment_context(arg: Any) -> dict[str, str]:
    """Payment id and gateway from an activity's argument, wherever the contract keeps them."""
    found: dict[str, str] = {}
    for source in (arg, getattr(arg, "ref", None), getattr(arg, "request", None)):
        if source is None:
            continue
        for attribute, key in (("checkout_id", "payment_id"), ("payment_id", "payment_id"),
                               ("gateway", "gateway")):  # fmt: skip
            value = getattr(source, attribute, None)
            if value is not None and key not in found:
                found[key] = str(getattr(value, "value", value))
    return found


class ActivityLogInterceptor(Interceptor):
    """Binds the workflow id, payment id and gateway to every log line an activity writes; the
    workflow side passes the payment's ids along with each activity it starts."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowInbound


# Buckets (seconds) of the workflows' own histograms whose spans the SDK's defaults do not fit.
HISTOGRAM_BUCKETS = {
    # a customer's authorization to its capture: seconds (merchant callback) to days (manual)
    "payments_checkout_authorized_to_captured": (
        1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400,
    ),
}  # fmt: skip


def worker_runtime(metrics_address: str) -> Runtime | None:
    """A Temporal runtime exporting the SDK's worker metrics (and the workflows' own) for
    Prometheus at `http://<metrics_address>/metrics`, durations in seconds like the API's; None
    keeps the default runtime."""
    if not metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=metrics_address,
                durations_as_seconds=True,
                histogram_bucket_overrides={k: list(v) for k, v in HISTOGRAM_BUCKETS.items()},
            )
        )
    )


def tracing_interceptors(exporter: str) -> list[ClientInterceptor]:
    """Temporal's OpenTelemetry interceptor with a span exporter, or nothing when tracing is off.

    `console` prints spans; `otlp` sends them to OTEL_EXPORTER_OTLP_ENDPOINT."""
    if not exporter:
        return []
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )
    from temporalio.contrib.opentelemetry import TracingInterceptor

    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "payment-sagas"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    return [TracingInterceptor()]
