"""The API's Prometheus metrics: requests by method, route and status with latencies, checkouts
started, webhooks by gateway, type and result, and gauges of the ledger read at scrape time (open
payments and refunds, disputes, the webhook inbox's oldest pending event, reconciliation flags,
gateway health, risk assessments by decision and rule, the risk review queue); the webhook
relay's deliveries and delivery lag. The time a risk review took is the worker's
`payments_risk_review_time` (a workflow metric, by stage and end).

They are served on their own internal address (`API_METRICS_ADDRESS`), never by the public app:
only the scraper should reach them. Every label value is bounded (a fixed set of methods, route
templates, statuses), so no client can grow the series."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import asyncpg
import structlog
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import IMPLEMENTED_METHODS
from db.gauges import Snapshot, snapshot
from domain.checkout import Gateway

log = structlog.get_logger("metrics")

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
WEBHOOK_DELIVERY_LAG = Histogram(
    "payments_webhook_delivery_lag_seconds",
    "From the inbox commit to the workflow's signal (or the decision that none is needed)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)

# The client chooses the method: any other becomes OTHER, so invented methods add no series (the
# app refuses them before metrics anyway, api.middleware.RefuseUnknownMethods).
METHODS = IMPLEMENTED_METHODS
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


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
            method = method_label(scope["method"])
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)


# Gauges of the ledger, read when Prometheus scrapes. The metrics server answers from its own
# thread; the read runs on the app's event loop, where the pool lives.
LEDGER_READ_TIMEOUT_SECONDS = 5.0


class LedgerGauges(Collector):
    def __init__(self, pool: asyncpg.Pool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop

    def describe(self) -> Iterable[Metric]:
        # Registration must not read the ledger (it runs on the event loop the read needs).
        return _families(None)

    def collect(self) -> Iterable[Metric]:
        future = asyncio.run_coroutine_threadsafe(snapshot(self._pool), self._loop)
        try:
            read: Snapshot | None = future.result(LEDGER_READ_TIMEOUT_SECONDS)
        except Exception as error:  # whatever failed, the scrape still answers, with up = 0
            future.cancel()
            log.warning("ledger gauges unavailable", error=type(error).__name__)
            read = None
        return _families(read)


def _families(read: Snapshot | None) -> list[Metric]:
    up = GaugeMetricFamily(
        "payments_ledger_metrics_up", "1 when the ledger gauges below could be read"
    )
    up.add_metric([], 0 if read is None else 1)
    open_payments = GaugeMetricFamily(
        "payments_open_payments",
        "Payments whose saga is not closed, by gateway and status",
        labels=["gateway", "status"],
    )
    open_payment_age = GaugeMetricFamily(
        "payments_open_payment_oldest_seconds",
        "Time since the oldest open payment of a gateway and status last changed",
        labels=["gateway", "status"],
    )
    refunds = GaugeMetricFamily(
        "payments_refunds",
        "Refunds in the ledger by gateway and status",
        labels=["gateway", "status"],
    )
    open_refund_age = GaugeMetricFamily(
        "payments_open_refund_oldest_seconds",
        "Time since the oldest pending refund of a gateway and status last changed",
        labels=["gateway", "status"],
    )
    disputes = GaugeMetricFamily(
        "payments_disputes",
        "Disputes in the ledger by gateway and status",
        labels=["gateway", "status"],
    )
    deadline = GaugeMetricFamily(
        "payments_dispute_undecided_deadline_seconds",
        "Seconds until the nearest evidence deadline of an open dispute nobody decided"
        " (negative once passed)",
        labels=["gateway"],
    )
    inbox = GaugeMetricFamily(
        "payments_webhook_inbox_backlog",
        "Webhook inbox rows by state: pending (waiting for delivery) and dead (dead letters)",
        labels=["state"],
    )
    inbox_age = GaugeMetricFamily(
        "payments_webhook_inbox_oldest_pending_seconds",
        "Age of the oldest webhook not yet delivered to its workflow (0 when none)",
    )
    flags = GaugeMetricFamily(
        "payments_reconciliation_open_flags",
        "Reconciliation flags no operator has resolved, by object kind",
        labels=["kind"],
    )
    last_run = GaugeMetricFamily(
        "payments_reconciliation_last_run_timestamp_seconds",
        "When the reconciler's last run finished (Unix time)",
    )
    healthy = GaugeMetricFamily(
        "payments_gateway_healthy",
        "0 while a gateway has announced a downtime that is not resolved, else 1",
        labels=["gateway"],
    )
    breaker = GaugeMetricFamily(
        "payments_gateway_breaker_state",
        "1 for the state a gateway's circuit breaker is in (closed, open, half_open), else 0",
        labels=["gateway", "state"],
    )
    override = GaugeMetricFamily(
        "payments_gateway_override",
        "1 for an operator's override of a gateway's health (auto, down, up), else 0",
        labels=["gateway", "override"],
    )
    assessments = CounterMetricFamily(
        "payments_risk_assessments",
        "Risk assessments in the ledger by stage (create, authorization) and decision",
        labels=["stage", "decision"],
    )
    rule_hits = CounterMetricFamily(
        "payments_risk_rule_hits",
        "Risk rule hits in the ledger by stage and rule",
        labels=["stage", "rule"],
    )
    reviews = GaugeMetricFamily(
        "payments_risk_reviews_pending", "Checkouts waiting for an operator's risk review"
    )
    review_age = GaugeMetricFamily(
        "payments_risk_review_oldest_pending_seconds",
        "Age of the oldest risk review waiting for an operator (0 when none)",
    )
    families: list[Metric] = [
        up, open_payments, open_payment_age, refunds, open_refund_age, disputes, deadline,
        inbox, inbox_age, flags, last_run, healthy, breaker, override, assessments, rule_hits,
        reviews, review_age,
    ]  # fmt: skip
    if read is None:
        return families
    for waiting in read.open_payments:
        labels = [waiting.gateway, waiting.status]
        open_payments.add_metric(labels, waiting.count)
        open_payment_age.add_metric(labels, waiting.oldest_seconds)
    for waiting in read.open_refunds:
        open_refund_age.add_metric([waiting.gateway, waiting.status], waiting.oldest_seconds)
    for (gateway, status), count in read.refunds.items():
        refunds.add_metric([gateway, status], count)
    for (gateway, status), count in read.disputes.items():
        disputes.add_metric([gateway, status], count)
    for gateway, seconds in read.dispute_deadline_seconds.items():
        deadline.add_metric([gateway], seconds)
    for state, count in read.inbox_backlog.items():
        inbox.add_metric([state], count)
    inbox_age.add_metric([], read.inbox_oldest_pending_seconds)
    for kind, count in read.open_flags.items():
        flags.add_metric([kind], count)
    if read.last_reconciliation_finished is not None:
        last_run.add_metric([], read.last_reconciliation_finished)
    for gateway in Gateway:
        healthy.add_metric([gateway.value], 0 if gateway.value in read.unhealthy_gateways else 1)
    for gateway_name, (state, forced) in read.breakers.items():
        for each in ("closed", "open", "half_open"):
            breaker.add_metric([gateway_name, each], 1 if each == state else 0)
        for each in ("auto", "down", "up"):
            override.add_metric([gateway_name, each], 1 if each == forced else 0)
    for (stage, decision), count in read.risk_assessments.items():
        assessments.add_metric([stage, decision], count)
    for (stage, rule), count in read.risk_rule_hits.items():
        rule_hits.add_metric([stage, rule], count)
    reviews.add_metric([], read.pending_reviews)
    review_age.add_metric([], read.oldest_pending_review_seconds)
    return families


def serve_metrics(
    address: str, pool: asyncpg.Pool, registry: CollectorRegistry = REGISTRY
) -> Callable[[], None]:
    """Serve `registry` plus the ledger gauges at `http://<address>/metrics` until the returned
    function is called. Call it from the event loop that owns `pool`."""
    gauges = LedgerGauges(pool, asyncio.get_running_loop())
    registry.register(gauges)
    host, _, port = address.rpartition(":")
    try:
        server, thread = start_http_server(int(port), host, registry)
    except BaseException:
        registry.unregister(gauges)
        raise

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()
        registry.unregister(gauges)

    return stop
