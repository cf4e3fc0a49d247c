"""The API's Prometheus metrics: requests by route and status with latencies, checkouts started,
webhooks received by gateway, type and result, and the webhook relay's deliveries, backlog and
delivery lag. Scraped at `/metrics`."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "payments_api_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "payments_api_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHECKOUTS = Counter(
    "payments_checkouts_started_total",
    "Checkout requests by gateway and answer",
    ["gateway", "result"],
)
WEBHOOKS = Counter(
    "payments_webhooks_total",
    "Webhook requests by gateway, event type (the gateway's known types, else `other`) and"
    " intake result: accepted, duplicate, invalid_signature, malformed_event, stale_event,"
    " database_unavailable",
    ["gateway", "type", "result"],
)
WEBHOOK_DELIVERIES = Counter(
    "payments_webhook_deliveries_total",
    "Webhook relay attempts by gateway and outcome: delivered, no_action, gateway_health,"
    " workflow_closed, temporal_unavailable, failed, dead_lettered",
    ["gateway", "outcome"],
)
WEBHOOK_BACKLOG = Gauge(
    "payments_webhook_inbox_backlog",
    "Webhook inbox rows by state: pending (waiting for delivery) and dead (dead letters)",
    ["state"],
)
WEBHOOK_DELIVERY_LAG = Histogram(
    "payments_webhook_delivery_lag_seconds",
    "From the inbox commit to the workflow's signal (or the decision that none is needed)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


class RequestMetrics:
    """Counts and times every request under its route template (never its raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
