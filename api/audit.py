"""Who did it (PCI DSS 10.2): every money-moving or decision call is appended to the caller
audit — subject, roles, request id, time, the object and the answer's status — before its answer
leaves, whatever the answer. Admins read it at `GET /v1/audit`. The workflows carry the author
too (`requested_by` in their inputs and memo, `reviewer`, `trigger`), so a history shows it.

One table decides which calls are audited: `AUDITED`, by method and route template."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import asyncpg
import structlog
from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.context import AppContext, app_context
from api.history import NO_NUL, Since, Until
from db import audit

log = structlog.get_logger("api.audit")

AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/v1/checkouts"): "checkout.create",
    ("POST", "/v1/checkouts/{checkout_id}/capture"): "checkout.capture",
    ("POST", "/v1/checkouts/{checkout_id}/cancel"): "checkout.cancel",
    ("POST", "/v1/checkouts/{checkout_id}/switch-gateway"): "checkout.switch_gateway",
    ("POST", "/v1/checkouts/{checkout_id}/razorpay/confirm"): "checkout.razorpay_confirm",
    ("POST", "/v1/checkouts/{checkout_id}/review"): "checkout.review",
    ("POST", "/v1/payments/{payment_id}/refunds"): "refund.create",
    ("POST", "/v1/payments/{payment_id}/retry"): "payment.retry",
    ("POST", "/v1/payments/{payment_id}/reconcile"): "payment.reconcile",
    ("POST", "/v1/disputes/{dispute_id}/evidence"): "dispute.evidence",
    ("POST", "/v1/disputes/{dispute_id}/accept"): "dispute.accept",
    ("POST", "/v1/webhooks/dead-letters/{gateway}/{event_id}/replay"): "webhook.replay",
    ("POST", "/v1/gateways/{gateway}/override"): "gateway.override",
}
# The object of a call, from its path; a created checkout names itself (`audit_target`).
_TARGETS = {"checkout_id": "checkout", "payment_id": "payment", "dispute_id": "dispute",
            "event_id": "webhook_event"}  # fmt: skip
CALLER_STATE = "caller"
TARGET_STATE = "audit_target"


def audit_target(request: Request, kind: str, target_id: str) -> None:
    """Name the object a call created, for its audit row (the path cannot)."""
    setattr(request.state, TARGET_STATE, (kind, target_id))


class CallerAudit:
    """Appends the audit row when the answer starts, before it is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await _append(scope, message["status"])
            await send(message)

        await self.app(scope, receive, audited_send)


async def _append(scope: Scope, status: int) -> None:
    route = getattr(scope.get("route"), "path", None)
    action = AUDITED.get((scope["method"], route or ""))
    state = scope.get("state", {})
    caller: Caller | None = state.get(CALLER_STATE)
    if action is None or caller is None:
        return  # not an audited call, or nobody authenticated (refused with a 401 before)
    params = scope.get("path_params", {})
    target: tuple[str, str] | None = state.get(TARGET_STATE)
    if target is None:
        target = next(((_TARGETS[k], str(v)) for k, v in params.items() if k in _TARGETS), None)
    if target is not None and target[0] == "webhook_event":
        target = ("webhook_event", f"{params.get('gateway')}/{target[1]}")
    headers = dict(scope.get("headers", []))
    key = headers.get(b"idempotency-key")
    entry = audit.AuditEntry(
        action=action,
        subject=caller.subject,
        roles=sorted(r.value for r in caller.roles),
        request_id=correlation_id.get(),
        target_kind=target[0] if target else None,
        target_id=target[1] if target else None,
        idempotency_key=key.decode("latin-1")[:128] if key else None,
        status=status,
    )
    context: AppContext = scope["app"].state.context
    try:
        await audit.append(context.pool, entry)
    except (OSError, asyncpg.PostgresError) as error:
        # The call has happened: its answer goes out; the gap is loud in the logs.
        log.error("caller audit not written", action=action, subject=caller.subject,
                  request_id=entry.request_id, error=type(error).__name__)  # fmt: skip


# Reading it

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=AUTH_PROBLEMS)
Admin = Annotated[Caller, Depends(access(Role.ADMIN))]
Context = Annotated[AppContext, Depends(app_context)]


class AuditRecord(BaseModel):
    id: int
    at: datetime
    action: str
    subject: str
    roles: list[str]
    request_id: str | None
    target_kind: str | None
    target_id: str | None
    idempotency_key: str | None
    status: int


class AuditPage(BaseModel):
    entries: list[AuditRecord]
    next_cursor: int | None
    """Pass as `cursor` for the next (older) page; null on the last page."""


@router.get("", response_model=AuditPage)
async def read_audit(
    ctx: Context,
    caller: Admin,
    subject: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    target_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    since: Since = None,
    until: Until = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Who asked for each money-moving or decision call, newest first (admins only)."""
    rows = await audit.read(
        ctx.pool, subject=subject, action=action, target_id=target_id, since=since,
        until=until, before_id=cursor, limit=limit,
    )  # fmt: skip
    return AuditPage(
        entries=[AuditRecord(id=r.id, at=r.at, **vars(r.entry)) for r in rows],
        next_cursor=rows[-1].id if len(rows) == limit else None,
    )


async def run_retention(pool: asyncpg.Pool, retention_days: int, stop: asyncio.Event) -> None:
    """Forget audit rows older than AUDIT_RETENTION_DAYS (0: keep them all), hourly."""
    while retention_days > 0 and not stop.is_set():
        try:
            purged = await audit.purge(pool, retention_days)
            if purged:
                log.info("caller audit purged", rows=purged, retention_days=retention_days)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("caller audit purge failed", error=type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), 3600)
        except TimeoutError:
            pass
