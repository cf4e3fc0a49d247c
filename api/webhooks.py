"""Gateway webhooks. Intake is verify, insert, commit, 2xx for every event: the signature is
checked on the raw body, the event is kept in the inbox (unique on the gateway's event id and,
where the gateway does not sign that id, on the signed body), and the answer says `accepted` or
`duplicate`. Intake never talks to Temporal; the relay (api/relay.py) delivers. 503 only when
PostgreSQL itself is unavailable. Operators read the inbox and list and replay dead letters."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import asyncpg
import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from activities.gateways.registry import KITS, GatewayKit
from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.context import AppContext, app_context
from api.history import NO_NUL
from api.metrics import WEBHOOKS
from api.problems import Problem
from db import inbox
from db.pool import DATABASE_UNAVAILABLE
from domain.checkout import Gateway
from domain.webhooks import NoAction, PaymentFact, Refused, VerifiedEvent

log = structlog.get_logger("api.webhooks")

router = APIRouter(tags=["webhooks"])
Context = Annotated[AppContext, Depends(app_context)]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]

INTAKE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the signature does not verify, or the event is malformed or stale"},
    503: {"description": "PostgreSQL is unavailable: nothing was kept; redeliver"},
}


class WebhookAck(BaseModel):
    status: Literal["accepted", "duplicate"]


@router.post("/v1/webhooks/{gateway}", response_model=WebhookAck, responses=INTAKE_PROBLEMS)
async def receive_webhook(gateway: Gateway, request: Request, ctx: Context) -> WebhookAck:
    """A gateway's signed event (Stripe: `Stripe-Signature`, 300 s tolerance; Razorpay:
    `X-Razorpay-Signature` and `X-Razorpay-Event-Id`), kept once and acknowledged."""
    kit = KITS[gateway]
    verified = kit.verify(
        await request.body(), request.headers, ctx.webhook_configs[gateway], time.time()
    )
    if isinstance(verified, Refused):
        WEBHOOKS.labels(gateway.value, "unknown", verified.code).inc()
        raise Problem(400, verified.code, verified.detail)
    label = verified.event_type if verified.event_type in kit.event_types else "other"
    try:
        status = await _keep(ctx.pool, kit, verified)
    except Problem as problem:
        WEBHOOKS.labels(gateway.value, label, problem.code).inc()
        raise
    WEBHOOKS.labels(gateway.value, label, status).inc()
    log.info("webhook", gateway=gateway.value, type=verified.event_type, outcome=status)
    return WebhookAck(status=status)


async def _keep(
    pool: asyncpg.Pool, kit: GatewayKit, event: VerifiedEvent
) -> Literal["accepted", "duplicate"]:
    gateway = event.gateway.value
    try:
        if event.stale and not await inbox.seen(pool, gateway, event.event_id):
            raise Problem(400, "stale_event", "the event is older than the accepted window")
        new = await inbox.receive(pool, _new_event(kit, event))
    except asyncpg.DataError:  # e.g. a NUL character, which PostgreSQL's jsonb cannot hold
        raise Problem(400, "malformed_event", "the event's JSON cannot be stored") from None
    except DATABASE_UNAVAILABLE as error:
        log.warning("webhook not kept: postgres unavailable", error=type(error).__name__)
        raise Problem(
            503, "database_unavailable", "nothing was kept; redeliver the event",
            headers={"Retry-After": "5"},
        ) from None  # fmt: skip
    return "accepted" if new else "duplicate"


async def keep(ctx: AppContext, event: VerifiedEvent) -> bool:
    """Keep a verified event for the relay; False when the inbox holds it already."""
    return await inbox.receive(ctx.pool, _new_event(KITS[event.gateway], event))


def _new_event(kit: GatewayKit, event: VerifiedEvent) -> inbox.NewEvent:
    """Events that concern no workflow are stored settled; the rest wait for the relay. The
    parser is total; if a bug makes it raise, the event still waits, and the relay retries it and
    parks it as a dead letter."""
    subject: str | None = None
    no_action: str | None = None
    fact_key: str | None = None
    try:
        fact = kit.parse(event)
    except Exception:
        log.exception("webhook parser failed", gateway=event.gateway.value, id=event.event_id)
    else:
        if isinstance(fact, NoAction):
            no_action = fact.reason
        else:
            subject = fact.subject
            fact_key = fact.fact_key if isinstance(fact, PaymentFact) else None
    return inbox.NewEvent(
        gateway=event.gateway.value,
        event_id=event.event_id,
        event_type=event.event_type,
        body=event.body,
        body_sha256=event.body_sha256,
        subject=subject,
        no_action=no_action,
        fact_key=fact_key,
    )


# Reading the inbox


class InboxEvent(BaseModel):
    gateway: str
    """A string, not the enum: the inbox may hold events of a gateway no longer configured."""
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "dead"]
    outcome: str
    workflow_id: str | None
    detail: str
    delivery_attempts: int
    failures: int
    last_error: str | None
    received_at: str
    delivered_at: str | None
    dead_lettered_at: str | None


class TypeCount(BaseModel):
    gateway: str
    event_type: str
    received: int
    delivered: int
    pending: int
    dead_letters: int


class InboxPage(BaseModel):
    events: list[InboxEvent]
    counts: list[TypeCount]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _event(row: Any) -> InboxEvent:
    return InboxEvent(
        **{k: row[k] for k in ("gateway", "event_id", "event_type", "state", "outcome")},
        workflow_id=row["workflow_id"],
        detail=row["detail"],
        delivery_attempts=row["delivery_attempts"],
        failures=row["failures"],
        last_error=row["last_error"],
        received_at=row["received_at"].isoformat(),
        delivered_at=_iso(row["delivered_at"]),
        dead_lettered_at=_iso(row["dead_lettered_at"]),
    )


@router.get(
    "/v1/webhooks/events", response_model=InboxPage, tags=["operations"], responses=AUTH_PROBLEMS
)
async def list_events(
    ctx: Context,
    caller: Operator,
    gateway: Gateway | None = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100, pattern=NO_NUL)] = None,
    delivered: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InboxPage:
    """The webhook inbox, newest first, and per-type counts: "did the gateway tell us?"."""
    name = gateway.value if gateway else None
    rows = await inbox.events(ctx.pool, name, event_type, delivered, limit)
    counts = await inbox.counts_by_type(ctx.pool, name, event_type)
    return InboxPage(
        events=[_event(r) for r in rows], counts=[TypeCount(**dict(r)) for r in counts]
    )


class DeadLetters(BaseModel):
    events: list[InboxEvent]


@router.get(
    "/v1/webhooks/dead-letters",
    response_model=DeadLetters,
    tags=["operations"],
    responses=AUTH_PROBLEMS,
)
async def list_dead_letters(
    ctx: Context,
    caller: Operator,
    gateway: Gateway | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeadLetters:
    """Events the relay gave up on after retrying, newest first, with the last error."""
    rows = await inbox.dead_letters(ctx.pool, gateway.value if gateway else None, limit)
    return DeadLetters(events=[_event(r) for r in rows])


class Replayed(BaseModel):
    status: Literal["requeued"]


@router.post(
    "/v1/webhooks/dead-letters/{gateway}/{event_id}/replay",
    response_model=Replayed,
    status_code=202,
    tags=["operations"],
    responses={**AUTH_PROBLEMS, 404: {"description": "no dead letter with this id"}},
)
async def replay_dead_letter(
    gateway: Gateway,
    event_id: Annotated[str, Path(max_length=255, pattern=NO_NUL)],
    ctx: Context,
    caller: Operator,
) -> Replayed:
    """Put a dead letter back in the relay's queue (after the cause is fixed), failures reset."""
    if not await inbox.replay(ctx.pool, gateway.value, event_id):
        raise Problem(404, "dead_letter_not_found", f"no dead letter {gateway}/{event_id}")
    log.info("dead letter replayed", gateway=gateway.value, event_id=event_id, by=caller.subject)
    return Replayed(status="requeued")
