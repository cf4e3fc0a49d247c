"""`/v1/gateways`: each gateway's health (breaker, operator override, announced downtimes) and
the operator's override; and the auto routing that picks a new checkout's gateway by them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, StringConstraints

from api.audit import audit_target
from api.auth import AUTH_PROBLEMS, Caller, Policy, Role, access
from api.context import AppContext, app_context
from api.models import Body, CreateCheckout
from api.problems import Problem
from db import health, inbox
from domain.checkout import Gateway, Routing
from domain.health import BreakerState, GatewayHealth, Override, current_state, routable
from domain.routing import SUPPORTED_CURRENCIES, Availability, NoGateway, choose
from settings import Settings

log = structlog.get_logger("api.gateways")
router = APIRouter(prefix="/v1/gateways", tags=["operations"], responses=AUTH_PROBLEMS)

Context = Annotated[AppContext, Depends(app_context)]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]
OperatorWrite = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN, policy=Policy.WRITE))]


class DowntimeView(BaseModel):
    downtime_id: str
    method: str
    status: str
    severity: str
    began_at: str | None
    ends_at: str | None


class GatewayHealthView(BaseModel):
    gateway: Gateway
    healthy: bool
    """Whether auto routing sends new payments to it now."""
    why: str
    breaker: BreakerState
    failures: int
    """Unavailable errors counted in the breaker's current window."""
    last_failure: str | None
    override: Override
    override_by: str | None
    override_reason: str | None
    override_at: datetime | None
    open_downtimes: list[DowntimeView]


class OverrideBody(Body):
    override: Override
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")
    ]
    """Why, in words for the other operators (no control characters)."""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def _availability(
    ctx: AppContext,
) -> tuple[dict[Gateway, GatewayHealth], frozenset[str], datetime]:
    stored = await health.all_health(ctx.pool)
    down = await health.announced_down(ctx.pool)
    every = {g: stored.get(g.value) or GatewayHealth(gateway=g.value) for g in Gateway}
    return every, down, datetime.now(UTC)


def _view(
    h: GatewayHealth, down: frozenset[str], now: datetime, settings: Settings, rows: list[Any]
) -> GatewayHealthView:
    gateway = Gateway(h.gateway)
    ok, why = routable(h, now, settings.breaker, gateway.value in down)
    return GatewayHealthView(
        gateway=gateway, healthy=ok, why=why, breaker=current_state(h, now, settings.breaker),
        failures=h.failures, last_failure=h.last_failure, override=h.override,
        override_by=h.override_by, override_reason=h.override_reason, override_at=h.override_at,
        open_downtimes=[
            DowntimeView(
                downtime_id=r["downtime_id"], method=r["method"], status=r["status"],
                severity=r["severity"], began_at=_iso(r["began_at"]), ends_at=_iso(r["ends_at"]),
            )
            for r in rows if r["gateway"] == gateway.value
        ],
    )  # fmt: skip


@router.get("/health", response_model=list[GatewayHealthView])
async def gateways_health(ctx: Context, caller: Operator) -> list[GatewayHealthView]:
    """Each gateway's breaker (from our own calls, shared by every replica), the operator's
    override, and the downtimes it announced (Razorpay `payment.downtime.*`) not yet resolved."""
    every, down, now = await _availability(ctx)
    rows = await inbox.open_downtimes(ctx.pool)
    return [_view(h, down, now, ctx.settings, rows) for h in every.values()]


@router.post(
    "/{gateway}/override",
    response_model=GatewayHealthView,
    responses={422: {"description": "the request is not valid"}},
)
async def override_gateway(
    gateway: Gateway, body: OverrideBody, request: Request, ctx: Context, caller: OperatorWrite
) -> GatewayHealthView:
    """Force the gateway down (auto routing avoids it) or up (routes to it whatever its breaker
    says), or hand it back to the breaker (`auto`); the caller and the reason are recorded with
    the override, and the call in the caller audit."""
    audit_target(request, "gateway", gateway.value)
    try:
        h = await health.set_override(
            ctx.pool, gateway.value, body.override, caller.subject, body.reason
        )
    except (asyncpg.DataError, UnicodeEncodeError):  # text PostgreSQL cannot hold
        raise Problem(422, "invalid_reason", "the reason cannot be stored as text") from None
    log.info(
        "gateway override", gateway=gateway.value, override=body.override.value,
        by=caller.subject, reason=body.reason,
    )  # fmt: skip
    down = await health.announced_down(ctx.pool)
    rows = await inbox.open_downtimes(ctx.pool)
    return _view(h, down, datetime.now(UTC), ctx.settings, rows)


async def choose_gateway(ctx: AppContext, body: CreateCheckout) -> tuple[Gateway, Routing | None]:
    """The checkout's gateway: the one the request (or DEFAULT_GATEWAY) names, or on `auto` the
    one ROUTING_RULES and each gateway's health pick, with those the saga may fail over to."""
    settings = ctx.settings
    wanted = body.gateway or settings.default_gateway
    if wanted != "auto":
        gateway = Gateway(wanted)
        if body.currency not in SUPPORTED_CURRENCIES[gateway]:  # only DEFAULT_GATEWAY gets here
            raise Problem(422, "unsupported_currency", f"{gateway} does not settle {body.currency}")
        return gateway, None
    every, down, now = await _availability(ctx)
    availability = {
        g: Availability(*routable(h, now, settings.breaker, g.value in down))
        for g, h in every.items()
    }
    try:
        gateway, routing = choose(body.amount, body.currency, settings.routing_rules, availability)
    except NoGateway as refusal:
        if refusal.code == "unroutable":
            raise Problem(422, "no_gateway_for_payment", refusal.message) from None
        raise Problem(
            503, "gateways_unavailable", refusal.message, headers={"Retry-After": "30"}
        ) from None
    routing.declined_retry = settings.declined_retry_on_other_gateway
    return gateway, routing
