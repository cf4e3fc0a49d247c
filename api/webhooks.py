"""Gateway webhooks: verify the signature on the raw body, keep the event in the inbox, deliver it
to its workflow, then answer 2xx. Temporal unreachable: 503, and the inbox relay retries."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

import asyncpg
import razorpay.errors
import stripe
import structlog
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.context import AppContext, app_context
from api.event_routing import JSON, Outcome, Routing, Signal, route
from api.metrics import WEBHOOKS
from api.problems import Problem
from domain.checkout import Gateway

log = structlog.get_logger("api.webhooks")

router = APIRouter(tags=["webhooks"])
Context = Annotated[AppContext, Depends(app_context)]

STRIPE_TOLERANCE_SECONDS = 300
RELAY_INTERVAL_SECONDS = 5.0
RELAY_MIN_AGE = timedelta(seconds=10)
RELAY_BATCH = 50

SIGNATURE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the signature does not verify, or the event is malformed or stale"},
    503: {"description": "the event is kept but could not be delivered yet; redeliver"},
}


@dataclass(frozen=True)
class Verified:
    gateway: Gateway
    event_id: str
    event_type: str
    payload: JSON


class WebhookAck(BaseModel):
    status: Literal["delivered", "duplicate", "no_action", "gateway_health", "workflow_closed"]


def _secrets(configured: str) -> list[str]:
    """Several comma-separated secrets may be valid at once while one is rotated."""
    return [s.strip() for s in configured.split(",") if s.strip()]


def _signed_at(stripe_signature: str) -> int:
    fields = dict(part.split("=", 1) for part in stripe_signature.split(",") if "=" in part)
    return int(fields["t"])  # verify_header already parsed it, so it is there


def _refuse(detail: str) -> Problem:
    WEBHOOKS.labels("unknown", "unknown", "invalid_signature").inc()
    return Problem(400, "invalid_signature", detail)


@router.post("/v1/webhooks/stripe", response_model=WebhookAck, responses=SIGNATURE_PROBLEMS)
async def stripe_webhook(request: Request, ctx: Context) -> WebhookAck:
    """Stripe events, authenticated by `Stripe-Signature` (300 s tolerance) alone."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    header = request.headers.get("Stripe-Signature")
    if not header:
        raise _refuse("Stripe-Signature is missing")
    for secret in _secrets(ctx.settings.stripe_webhook_secret.get_secret_value()):
        try:
            stripe.WebhookSignature.verify_header(raw, header, secret, STRIPE_TOLERANCE_SECONDS)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise _refuse("Stripe-Signature does not verify, or its timestamp is outside 300 s")
    if _signed_at(header) > time.time() + STRIPE_TOLERANCE_SECONDS:
        raise _refuse("Stripe-Signature is dated in the future")  # the SDK checks only the past
    try:
        payload = json.loads(raw)
        event = Verified(Gateway.STRIPE, str(payload["id"]), str(payload["type"]), payload)
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "malformed_event", "the event is not a Stripe event") from None
    return await process(ctx, event)


@router.post("/v1/webhooks/razorpay", response_model=WebhookAck, responses=SIGNATURE_PROBLEMS)
async def razorpay_webhook(request: Request, ctx: Context) -> WebhookAck:
    """Razorpay events, authenticated by `X-Razorpay-Signature` alone; deduplicated on
    `X-Razorpay-Event-Id`. Razorpay signs no timestamp, so old unseen events are refused."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    signature = request.headers.get("X-Razorpay-Signature", "")
    utility = ctx.razorpay_verifier.utility
    for secret in _secrets(ctx.settings.razorpay_webhook_secret.get_secret_value()):
        try:
            utility.verify_webhook_signature(raw, signature, secret)
            break
        except razorpay.errors.SignatureVerificationError:
            continue
    else:
        raise _refuse("X-Razorpay-Signature does not verify")
    event_id = request.headers.get("X-Razorpay-Event-Id", "")
    if not 1 <= len(event_id) <= 100:
        raise Problem(400, "malformed_event", "X-Razorpay-Event-Id is missing")
    try:
        payload = json.loads(raw)
        event = Verified(Gateway.RAZORPAY, event_id, str(payload["event"]), payload)
        created_at = int(payload.get("created_at", 0))
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "malformed_event", "the event is not a Razorpay event") from None
    too_old = time.time() - created_at > ctx.settings.razorpay_webhook_max_age_seconds
    if too_old and not await _seen(ctx.pool, event):
        raise Problem(400, "stale_event", "the event is older than the accepted window")
    return await process(ctx, event)


async def process(ctx: AppContext, event: Verified) -> WebhookAck:
    """Keep the event, then deliver it; a duplicate already delivered is acknowledged only."""
    labels = (event.gateway.value, event.event_type)
    if await _receive(ctx.pool, event):
        WEBHOOKS.labels(*labels, "duplicate").inc()
        return WebhookAck(status="duplicate")
    try:
        status = await deliver(ctx, event)
    except Problem:
        WEBHOOKS.labels(*labels, "delivery_failed").inc()
        raise
    WEBHOOKS.labels(*labels, status).inc()
    log.info("webhook", gateway=event.gateway.value, type=event.event_type, outcome=status)
    return WebhookAck(status=status)


async def deliver(
    ctx: AppContext, event: Verified
) -> Literal["delivered", "no_action", "gateway_health", "workflow_closed"]:
    routing = await route(ctx.pool, event.gateway, event.event_id, event.payload)
    if routing.outcome is Outcome.GATEWAY_HEALTH:
        assert routing.downtime is not None
        await _record_downtime(ctx.pool, routing)
        await _settle(ctx.pool, event, "gateway_health", None, routing.reason)
        return "gateway_health"
    if routing.signal is None:
        await _settle(ctx.pool, event, "no_action", None, routing.reason)
        return "no_action"
    signal = routing.signal
    try:
        await _send(ctx, signal)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            await _settle(ctx.pool, event, "workflow_closed", signal.workflow_id, routing.reason)
            return "workflow_closed"
        await _failed(ctx.pool, event, signal.workflow_id, f"temporal: {error.status}")
        raise _unavailable() from error
    except RuntimeError as error:  # the lazy client could not connect at all
        await _failed(ctx.pool, event, signal.workflow_id, f"temporal: {error}")
        raise _unavailable() from error
    await _settle(ctx.pool, event, "delivered", signal.workflow_id, routing.reason)
    return "delivered"


def _unavailable() -> Problem:
    return Problem(
        503, "temporal_unavailable", "the event is kept; it will be delivered on redelivery",
        headers={"Retry-After": "5"},
    )  # fmt: skip


async def _send(ctx: AppContext, signal: Signal) -> None:
    if signal.start is None:
        await ctx.temporal.get_workflow_handle(signal.workflow_id).signal(signal.name, signal.arg)
        return
    await ctx.temporal.start_workflow(
        signal.start.workflow,
        signal.start.arg,
        id=signal.workflow_id,
        task_queue=ctx.settings.task_queue,
        start_signal=signal.name,
        start_signal_args=[signal.arg],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=signal.start.summary,
    )


async def _seen(pool: asyncpg.Pool, event: Verified) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM webhook_inbox WHERE gateway = $1 AND event_id = $2",
        event.gateway.value,
        event.event_id,
    )
    return bool(found)


async def _receive(pool: asyncpg.Pool, event: Verified) -> bool:
    """Store the event once; True when it was already delivered (a duplicate to drop)."""
    delivered_at = await pool.fetchval(
        """
        INSERT INTO webhook_inbox (gateway, event_id, event_type, payload)
        VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (gateway, event_id) DO UPDATE SET gateway = EXCLUDED.gateway
        RETURNING delivered_at
        """,
        event.gateway.value, event.event_id, event.event_type, json.dumps(event.payload),
    )  # fmt: skip
    return delivered_at is not None


async def _settle(
    pool: asyncpg.Pool, event: Verified, outcome: str, workflow_id: str | None, detail: str
) -> None:
    await pool.execute(
        """
        UPDATE webhook_inbox SET outcome = $3, workflow_id = $4, detail = $5, delivered_at = now(),
            delivery_attempts = delivery_attempts + 1, last_attempt_at = now()
        WHERE gateway = $1 AND event_id = $2
        """,
        event.gateway.value, event.event_id, outcome, workflow_id, detail,
    )  # fmt: skip


async def _failed(pool: asyncpg.Pool, event: Verified, workflow_id: str, detail: str) -> None:
    await pool.execute(
        """
        UPDATE webhook_inbox SET outcome = 'delivery_failed', workflow_id = $3, detail = $4,
            delivery_attempts = delivery_attempts + 1, last_attempt_at = now()
        WHERE gateway = $1 AND event_id = $2
        """,
        event.gateway.value, event.event_id, workflow_id, detail,
    )  # fmt: skip


async def _record_downtime(pool: asyncpg.Pool, routing: Routing) -> None:
    d = routing.downtime
    assert d is not None
    await pool.execute(
        """
        INSERT INTO gateway_downtimes
            (gateway, downtime_id, method, status, severity, began_at, ends_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (gateway, downtime_id) DO UPDATE SET method = EXCLUDED.method,
            status = EXCLUDED.status, severity = EXCLUDED.severity, began_at = EXCLUDED.began_at,
            ends_at = EXCLUDED.ends_at, updated_at = now()
        """,
        d.gateway.value, d.downtime_id, d.method, d.status, d.severity, d.began_at, d.ends_at,
    )  # fmt: skip


async def relay_undelivered(ctx: AppContext) -> int:
    """Deliver what a failed attempt left in the inbox. Each row is claimed for a while, so
    replicas share the work; a rare double delivery is harmless (workflows deduplicate)."""
    rows = await ctx.pool.fetch(
        """
        UPDATE webhook_inbox SET last_attempt_at = now()
        WHERE (gateway, event_id) IN (
            SELECT gateway, event_id FROM webhook_inbox
            WHERE delivered_at IS NULL AND received_at < now() - $1::interval
              AND (last_attempt_at IS NULL OR last_attempt_at < now() - $1::interval)
            ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING gateway, event_id, event_type, payload
        """,
        RELAY_MIN_AGE,
        RELAY_BATCH,
    )
    delivered = 0
    for row in rows:
        event = Verified(
            Gateway(row["gateway"]), row["event_id"], row["event_type"], json.loads(row["payload"])
        )
        try:
            await deliver(ctx, event)
        except Problem:
            break  # Temporal is still away; the next round tries again
        delivered += 1
    return delivered


async def run_relay(ctx: AppContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            count = await relay_undelivered(ctx)
            if count:
                log.info("inbox relay delivered", events=count)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("inbox relay failed", error=type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), RELAY_INTERVAL_SECONDS)
        except TimeoutError:
            pass


# Reading the inbox


class InboxEvent(BaseModel):
    gateway: Gateway
    event_id: str
    event_type: str
    outcome: str
    workflow_id: str | None
    detail: str
    delivery_attempts: int
    received_at: str
    delivered_at: str | None


class TypeCount(BaseModel):
    gateway: Gateway
    event_type: str
    received: int
    delivered: int
    failed: int


class InboxPage(BaseModel):
    events: list[InboxEvent]
    counts: list[TypeCount]


Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]


@router.get(
    "/v1/webhooks/events", response_model=InboxPage, tags=["operations"], responses=AUTH_PROBLEMS
)
async def list_events(
    ctx: Context,
    caller: Operator,
    gateway: Gateway | None = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    delivered: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InboxPage:
    """The webhook inbox, newest first, and per-type counts: "did the gateway tell us?"."""
    where = """($1::text IS NULL OR gateway = $1) AND ($2::text IS NULL OR event_type = $2)"""
    rows = await ctx.pool.fetch(
        f"""
        SELECT * FROM webhook_inbox WHERE {where}
          AND ($3::boolean IS NULL OR (delivered_at IS NOT NULL) = $3)
        ORDER BY received_at DESC LIMIT $4
        """,
        gateway and gateway.value, event_type, delivered, limit,
    )  # fmt: skip
    counts = await ctx.pool.fetch(
        f"""
        SELECT gateway, event_type, count(*) AS received,
               count(delivered_at) AS delivered,
               count(*) FILTER (WHERE delivered_at IS NULL AND delivery_attempts > 0) AS failed
        FROM webhook_inbox WHERE {where} GROUP BY gateway, event_type ORDER BY gateway, event_type
        """,
        gateway and gateway.value, event_type,
    )  # fmt: skip
    return InboxPage(
        events=[
            InboxEvent(
                **{k: r[k] for k in ("gateway", "event_id", "event_type", "outcome")},
                workflow_id=r["workflow_id"],
                detail=r["detail"],
                delivery_attempts=r["delivery_attempts"],
                received_at=r["received_at"].isoformat(),
                delivered_at=r["delivered_at"].isoformat() if r["delivered_at"] else None,
            )
            for r in rows
        ],
        counts=[TypeCount(**dict(r)) for r in counts],
    )


class DowntimeView(BaseModel):
    downtime_id: str
    method: str
    status: str
    severity: str
    began_at: str | None
    ends_at: str | None


class GatewayHealth(BaseModel):
    gateway: Gateway
    healthy: bool
    open_downtimes: list[DowntimeView]


@router.get(
    "/v1/gateways/health",
    response_model=list[GatewayHealth],
    tags=["operations"],
    responses=AUTH_PROBLEMS,
)
async def gateways_health(ctx: Context, caller: Operator) -> list[GatewayHealth]:
    """Downtimes the gateways announced (Razorpay `payment.downtime.*`) and not yet resolved."""
    rows = await ctx.pool.fetch(
        "SELECT * FROM gateway_downtimes WHERE status <> 'resolved' ORDER BY began_at"
    )
    health = []
    for gateway in Gateway:
        open_downtimes = [
            DowntimeView(
                downtime_id=r["downtime_id"],
                method=r["method"],
                status=r["status"],
                severity=r["severity"],
                began_at=r["began_at"].isoformat() if r["began_at"] else None,
                ends_at=r["ends_at"].isoformat() if r["ends_at"] else None,
            )
            for r in rows
            if r["gateway"] == gateway.value
        ]
        health.append(
            GatewayHealth(
                gateway=gateway, healthy=not open_downtimes, open_downtimes=open_downtimes
            )
        )
    return health
