"""Gateway webhooks: verify the signature on the raw body, keep the event in the inbox, signal the
checkout it concerns, then answer 2xx. Temporal unreachable: 503, so the gateway retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import razorpay.errors
import stripe
from fastapi import APIRouter, Depends, Request
from temporalio.service import RPCError, RPCStatusCode

from api.context import AppContext, app_context
from api.problems import Problem
from domain.checkout import Gateway, PaymentEvent, PaymentEventKind
from workflows.checkout import CheckoutWorkflow

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Context = Annotated[AppContext, Depends(app_context)]

STRIPE_TOLERANCE_SECONDS = 300

_STRIPE_KINDS = {
    "payment_intent.amount_capturable_updated": PaymentEventKind.AUTHORIZED,
    "payment_intent.succeeded": PaymentEventKind.CAPTURED,
    "payment_intent.payment_failed": PaymentEventKind.FAILED,
    "payment_intent.canceled": PaymentEventKind.CANCELED,
}
_RAZORPAY_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.CAPTURED,
    "payment.failed": PaymentEventKind.FAILED,
}


@dataclass(frozen=True)
class Verified:
    gateway: Gateway
    event_id: str
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Route:
    workflow_id: str | None
    event: PaymentEvent | None


@router.post("/stripe", responses={400: {"description": "bad signature"}, 503: {}})
async def stripe_webhook(request: Request, ctx: Context) -> dict[str, str]:
    raw = await request.body()
    header = request.headers.get("Stripe-Signature")
    try:
        stripe.WebhookSignature.verify_header(
            raw.decode(), header, ctx.settings.stripe_webhook_secret, STRIPE_TOLERANCE_SECONDS
        )
        payload = json.loads(raw)
        verified = Verified(Gateway.STRIPE, payload["id"], payload["type"], payload)
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError):
        raise Problem(400, "invalid_signature", "the Stripe-Signature does not verify") from None
    return await _process(ctx, verified, _route_stripe)


@router.post("/razorpay", responses={400: {"description": "bad signature"}, 503: {}})
async def razorpay_webhook(request: Request, ctx: Context) -> dict[str, str]:
    raw = await request.body()
    signature = request.headers.get("X-Razorpay-Signature", "")
    event_id = request.headers.get("X-Razorpay-Event-Id", "")
    try:
        ctx.razorpay_verifier.utility.verify_webhook_signature(
            raw.decode(), signature, ctx.settings.razorpay_webhook_secret
        )
        payload = json.loads(raw)
        verified = Verified(Gateway.RAZORPAY, event_id, payload["event"], payload)
    except (razorpay.errors.SignatureVerificationError, ValueError, KeyError, TypeError):
        raise Problem(
            400, "invalid_signature", "the X-Razorpay-Signature does not verify"
        ) from None
    if not event_id:
        raise Problem(400, "missing_event_id", "X-Razorpay-Event-Id is required")
    return await _process(ctx, verified, _route_razorpay)


async def _process(ctx: AppContext, event: Verified, route_of: Any) -> dict[str, str]:
    pool = ctx.pool
    delivered = await _receive(pool, event)
    if delivered:
        return {"status": "duplicate"}
    route: Route = await route_of(pool, event)
    if route.workflow_id is None or route.event is None:
        await _settle(pool, event, "no_action", None, "no checkout is waiting for this event")
        return {"status": "no_action"}
    handle = ctx.temporal.get_workflow_handle(route.workflow_id)
    try:
        await handle.signal(CheckoutWorkflow.payment_event, route.event)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            await _settle(pool, event, "delivery_failed", route.workflow_id, str(error.status))
            raise Problem(
                503, "temporal_unavailable", "could not deliver the event; retry",
                headers={"Retry-After": "5"},
            ) from error  # fmt: skip
        await _settle(pool, event, "workflow_closed", route.workflow_id, "checkout has finished")
        return {"status": "workflow_closed"}
    await _settle(pool, event, "delivered", route.workflow_id, "")
    return {"status": "delivered"}


async def _receive(pool: asyncpg.Pool, event: Verified) -> bool:
    """Store the event once; True when it was already delivered (a duplicate to drop)."""
    await pool.execute(
        "INSERT INTO webhook_inbox (gateway, event_id, event_type, payload)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (gateway, event_id) DO NOTHING",
        event.gateway.value, event.event_id, event.event_type, json.dumps(event.payload),
    )  # fmt: skip
    delivered_at = await pool.fetchval(
        "SELECT delivered_at FROM webhook_inbox WHERE gateway = $1 AND event_id = $2",
        event.gateway.value,
        event.event_id,
    )
    return delivered_at is not None


async def _settle(
    pool: asyncpg.Pool, event: Verified, outcome: str, workflow_id: str | None, detail: str
) -> None:
    delivered = outcome != "delivery_failed"
    await pool.execute(
        "UPDATE webhook_inbox SET outcome = $3, workflow_id = $4, detail = $5,"
        " delivered_at = CASE WHEN $6 THEN now() END WHERE gateway = $1 AND event_id = $2",
        event.gateway.value, event.event_id, outcome, workflow_id, detail, delivered,
    )  # fmt: skip


async def _workflow_for(
    pool: asyncpg.Pool, gateway: Gateway, gateway_payment_id: str, notes: dict[str, Any]
) -> str | None:
    """The checkout's workflow: from the ledger, else from the metadata the checkout wrote."""
    workflow_id: str | None = await pool.fetchval(
        "SELECT workflow_id FROM payments WHERE gateway = $1 AND gateway_payment_id = $2",
        gateway.value,
        gateway_payment_id,
    )
    if workflow_id is None:
        candidate = notes.get("workflow_id")
        if isinstance(candidate, str) and candidate.startswith("checkout-"):
            workflow_id = candidate
    return workflow_id


async def _route_stripe(pool: asyncpg.Pool, event: Verified) -> Route:
    kind = _STRIPE_KINDS.get(event.event_type)
    intent = event.payload.get("data", {}).get("object", {})
    if kind is None or intent.get("object") != "payment_intent":
        return Route(None, None)
    error = intent.get("last_payment_error") or {}
    workflow_id = await _workflow_for(
        pool, Gateway.STRIPE, intent["id"], intent.get("metadata") or {}
    )
    return Route(
        workflow_id,
        PaymentEvent(
            event_id=event.event_id,
            kind=kind,
            gateway_payment_id=intent["id"],
            gateway_charge_id=intent.get("latest_charge"),
            error_code=error.get("decline_code") or error.get("code"),
            error_message=error.get("message"),
        ),
    )


async def _route_razorpay(pool: asyncpg.Pool, event: Verified) -> Route:
    kind = _RAZORPAY_KINDS.get(event.event_type)
    payment = event.payload.get("payload", {}).get("payment", {}).get("entity", {})
    if kind is None or not payment.get("order_id"):
        return Route(None, None)
    workflow_id = await _workflow_for(
        pool, Gateway.RAZORPAY, payment["order_id"], payment.get("notes") or {}
    )
    return Route(
        workflow_id,
        PaymentEvent(
            event_id=event.event_id,
            kind=kind,
            gateway_payment_id=payment["order_id"],
            gateway_charge_id=payment["id"],
            error_code=payment.get("error_code"),
            error_message=payment.get("error_description"),
        ),
    )
