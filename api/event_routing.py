"""Which workflow each gateway event concerns, and with which signal: every event type the
gateways send is either routed or recorded as needing no action, never an error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic import BaseModel

from domain import names
from domain.checkout import Gateway, PaymentEvent, PaymentEventKind
from domain.dispute import DisputeEvent, DisputeRequest
from domain.refund import RefundEvent, RefundMode, RefundReason, RefundRequest
from settings import get_settings

JSON = dict[str, Any]


class Outcome(StrEnum):
    ROUTED = "routed"
    NO_ACTION = "no_action"
    GATEWAY_HEALTH = "gateway_health"


@dataclass(frozen=True)
class WorkflowStart:
    """For signal-with-start: the workflow to start when none runs under the id yet."""

    workflow: str
    arg: BaseModel
    summary: str


@dataclass(frozen=True)
class Signal:
    workflow_id: str
    name: str
    arg: BaseModel
    start: WorkflowStart | None = None


@dataclass(frozen=True)
class Downtime:
    gateway: Gateway
    downtime_id: str
    method: str
    status: str
    severity: str
    began_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class Routing:
    outcome: Outcome
    reason: str
    signal: Signal | None = None
    downtime: Downtime | None = None


def no_action(reason: str) -> Routing:
    return Routing(Outcome.NO_ACTION, reason)


Router = Callable[[asyncpg.Pool, str, JSON], Awaitable[Routing]]

# Stripe


_PAYMENT_INTENT_KINDS = {
    "payment_intent.amount_capturable_updated": PaymentEventKind.AUTHORIZED,
    "payment_intent.succeeded": PaymentEventKind.CAPTURED,
    "payment_intent.payment_failed": PaymentEventKind.FAILED,
    "payment_intent.canceled": PaymentEventKind.CANCELED,
}


async def _stripe_payment_intent(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    kind = _PAYMENT_INTENT_KINDS.get(event["type"])
    if kind is None:
        return no_action("this payment intent change needs no action from the checkout")
    intent = event.get("data", {}).get("object", {})
    workflow_id = await checkout_workflow_for(
        pool, Gateway.STRIPE, intent.get("id", ""), intent.get("metadata") or {}
    )
    if workflow_id is None:
        return no_action("no checkout of ours created this payment intent")
    error = intent.get("last_payment_error") or {}
    return Routing(
        Outcome.ROUTED,
        f"checkout {kind}",
        Signal(
            workflow_id,
            names.PAYMENT_EVENT,
            PaymentEvent(
                event_id=event_id,
                kind=kind,
                gateway_payment_id=intent["id"],
                gateway_charge_id=_id_of(intent.get("latest_charge")),
                error_code=error.get("decline_code") or error.get("code"),
                error_message=error.get("message"),
            ),
        ),
    )


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return value if isinstance(value, str) else None


async def _stripe_unhandled(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    family = event["type"].rsplit(".", 1)[0]
    reasons = {
        "charge": "charge events mirror their payment intent's, which drive the checkout",
    }
    if event["type"] == "charge.refunded":
        return no_action("the refund.* events of the same refund drive the refund saga")
    return no_action(reasons.get(family, f"{event['type']} needs no action"))


async def _stripe_refund(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    refund = event.get("data", {}).get("object", {})
    if refund.get("object") != "refund" or not refund.get("id"):
        return no_action("refund event without a refund object")
    return await _route_refund(
        pool, Gateway.STRIPE, event_id, event["type"], refund,
        payment_of_refund=_id_of(refund.get("payment_intent")),
    )  # fmt: skip


def stripe_router(event_type: str) -> Router:
    if event_type.startswith("payment_intent."):
        return _stripe_payment_intent
    if event_type.startswith("refund.") or event_type == "charge.refund.updated":
        return _stripe_refund
    if event_type.startswith("charge.dispute."):
        return _stripe_dispute
    return _stripe_unhandled


async def _stripe_dispute(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    dispute = event.get("data", {}).get("object", {})
    if dispute.get("object") != "dispute" or not dispute.get("id"):
        return no_action("dispute event without a dispute object")
    return _route_dispute(Gateway.STRIPE, event_id, event["type"], str(dispute["id"]))


# Razorpay

_RAZORPAY_PAYMENT_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.CAPTURED,
    "payment.failed": PaymentEventKind.FAILED,
}


def _entity(event: JSON, name: str) -> JSON:
    entity: JSON = event.get("payload", {}).get(name, {}).get("entity", {}) or {}
    return entity


async def _razorpay_payment(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    kind = _RAZORPAY_PAYMENT_KINDS[event["event"]]
    payment = _entity(event, "payment")
    order_id = payment.get("order_id")
    if not order_id:
        return no_action("payment without an order: not made through a checkout of ours")
    notes = payment.get("notes") if isinstance(payment.get("notes"), dict) else {}
    workflow_id = await checkout_workflow_for(pool, Gateway.RAZORPAY, order_id, notes or {})
    if workflow_id is None:
        return no_action("no checkout of ours created this order")
    return Routing(
        Outcome.ROUTED,
        f"checkout {kind}",
        Signal(
            workflow_id,
            names.PAYMENT_EVENT,
            PaymentEvent(
                event_id=event_id,
                kind=kind,
                gateway_payment_id=order_id,
                gateway_charge_id=payment.get("id"),
                error_code=payment.get("error_code"),
                error_message=payment.get("error_description"),
            ),
        ),
    )


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


async def _razorpay_downtime(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    downtime = _entity(event, "payment.downtime")
    if not downtime.get("id"):
        return no_action("downtime event without a downtime entity")
    return Routing(
        Outcome.GATEWAY_HEALTH,
        f"downtime {downtime.get('status', '?')} for {downtime.get('method', '?')}",
        downtime=Downtime(
            gateway=Gateway.RAZORPAY,
            downtime_id=downtime["id"],
            method=str(downtime.get("method", "unknown")),
            status=str(downtime.get("status", event["event"].rsplit(".", 1)[1])),
            severity=str(downtime.get("severity", "unknown")),
            began_at=_timestamp(downtime.get("begin")),
            ends_at=_timestamp(downtime.get("end")),
        ),
    )


_RAZORPAY_NO_ACTION = {
    "order.paid": "the payment.captured event of the same payment drives the checkout",
    "order.notification.delivered": "Razorpay's own customer notification",
    "order.notification.failed": "Razorpay's own customer notification",
    "invoice.paid": "invoices are not issued by this service",
    "invoice.partially_paid": "invoices are not issued by this service",
    "invoice.expired": "invoices are not issued by this service",
    "fund_account.validation.completed": "payouts are not made by this service",
    "fund_account.validation.failed": "payouts are not made by this service",
    "account.instantly_activated": "account lifecycle: nothing to do for payments",
    "account.activated_kyc_pending": "account lifecycle: nothing to do for payments",
    "payment_link.paid": "payment links are not created by this service",
    "payment_link.partially_paid": "payment links are not created by this service",
    "payment_link.expired": "payment links are not created by this service",
    "payment_link.cancelled": "payment links are not created by this service",
}


async def _razorpay_refund(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    refund, payment = _entity(event, "refund"), _entity(event, "payment")
    if not refund.get("id"):
        return no_action("refund event without a refund entity")
    if payment.get("captured") is False:
        return no_action(
            "Razorpay's auto-refund of an authorization that was never captured: no captured"
            " money moved, so the ledger has nothing to record"
        )
    return await _route_refund(
        pool, Gateway.RAZORPAY, event_id, event["event"], refund,
        payment_of_refund=refund.get("payment_id"),
    )  # fmt: skip


def razorpay_router(event_type: str) -> Router:
    if event_type in _RAZORPAY_PAYMENT_KINDS:
        return _razorpay_payment
    if event_type.startswith("payment.downtime."):
        return _razorpay_downtime
    if event_type.startswith("refund."):
        return _razorpay_refund
    if event_type.startswith("payment.dispute."):
        return _razorpay_dispute

    async def _no_action(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
        family = event_type.split(".")[0]
        reason = _RAZORPAY_NO_ACTION.get(event_type)
        return no_action(reason or f"{family} events need no action")

    return _no_action


async def _razorpay_dispute(pool: asyncpg.Pool, event_id: str, event: JSON) -> Routing:
    dispute = _entity(event, "dispute")
    if not dispute.get("id"):
        return no_action("dispute event without a dispute entity")
    return _route_dispute(Gateway.RAZORPAY, event_id, event["event"], str(dispute["id"]))


async def route(pool: asyncpg.Pool, gateway: Gateway, event_id: str, event: JSON) -> Routing:
    if gateway is Gateway.STRIPE:
        return await stripe_router(event["type"])(pool, event_id, event)
    return await razorpay_router(event["event"])(pool, event_id, event)


async def _route_refund(
    pool: asyncpg.Pool,
    gateway: Gateway,
    event_id: str,
    event_type: str,
    refund: JSON,
    *,
    payment_of_refund: str | None,
) -> Routing:
    """Our refund's workflow (named in the refund's metadata/notes, or by the ledger), else a new
    observed-mode refund workflow for a refund made outside the service (signal-with-start)."""
    refund_id = str(refund["id"])
    signal = RefundEvent(
        event_id=event_id,
        event_type=event_type,
        gateway_refund_id=refund_id,
        gateway_status=str(refund.get("status") or "unknown"),
    )
    notes = refund.get("metadata") or refund.get("notes")
    candidate = notes.get("workflow_id") if isinstance(notes, dict) else None
    workflow_id: str | None = (
        candidate
        if isinstance(candidate, str) and candidate.startswith(names.REFUND_ID_PREFIX)
        else None
    )
    if workflow_id is None:
        workflow_id = await pool.fetchval(
            "SELECT workflow_id FROM refunds WHERE gateway = $1 AND gateway_refund_id = $2",
            gateway.value,
            refund_id,
        )
    if workflow_id is not None:
        return Routing(
            Outcome.ROUTED, f"refund {signal.gateway_status}",
            Signal(workflow_id, names.REFUND_EVENT, signal),
        )  # fmt: skip
    column = "gateway_payment_id" if gateway is Gateway.STRIPE else "gateway_charge_id"
    payment_id: str | None = await pool.fetchval(
        f"SELECT payment_id FROM payments WHERE gateway = $1 AND {column} = $2",
        gateway.value,
        payment_of_refund,
    )
    if payment_id is None:
        return no_action("a refund of a payment this service did not take")
    reason = refund.get("reason")
    start = RefundRequest(
        payment_id=payment_id,
        reason=RefundReason(reason) if reason in set(RefundReason) else RefundReason.OTHER,
        note=f"made outside the service; first seen in {event_type}",
        mode=RefundMode.OBSERVED,
        idempotency_key=refund_id,
        poll_interval_seconds=get_settings().refund_poll_interval_seconds,
        gateway=gateway,
        gateway_refund_id=refund_id,
    )
    return Routing(
        Outcome.ROUTED,
        "refund made outside the service: recorded as observed",
        Signal(
            names.observed_refund_workflow_id(payment_id, refund_id),
            names.REFUND_EVENT,
            signal,
            start=WorkflowStart(
                names.REFUND_WORKFLOW,
                start,
                f"Observed {gateway} refund {refund_id} of {payment_id}",
            ),
        ),
    )


def _route_dispute(
    gateway: Gateway, event_id: str, event_type: str, gateway_dispute_id: str
) -> Routing:
    """Every dispute event goes to the dispute's own workflow, started by whichever event comes
    first (signal-with-start), so out-of-order events just queue; it fetches the dispute."""
    settings = get_settings()
    start = DisputeRequest(
        gateway=gateway,
        gateway_dispute_id=gateway_dispute_id,
        deadline_margin_seconds=settings.dispute_deadline_margin_seconds,
        deadline_policy=settings.dispute_deadline_policy,
        poll_interval_seconds=settings.dispute_poll_interval_seconds,
    )
    return Routing(
        Outcome.ROUTED,
        f"dispute {event_type.rsplit('.', 1)[1]}",
        Signal(
            names.dispute_workflow_id(gateway, gateway_dispute_id),
            names.DISPUTE_EVENT,
            DisputeEvent(
                event_id=event_id, event_type=event_type, gateway_dispute_id=gateway_dispute_id
            ),
            start=WorkflowStart(
                names.DISPUTE_WORKFLOW, start, f"Dispute {gateway_dispute_id} on {gateway}"
            ),
        ),
    )


async def checkout_workflow_for(
    pool: asyncpg.Pool, gateway: Gateway, gateway_payment_id: str, notes: JSON
) -> str | None:
    """The checkout's workflow: from the ledger, else from the metadata the checkout wrote."""
    workflow_id: str | None = await pool.fetchval(
        "SELECT workflow_id FROM payments WHERE gateway = $1 AND gateway_payment_id = $2",
        gateway.value,
        gateway_payment_id,
    )
    if workflow_id is None:
        candidate = notes.get("workflow_id")
        if isinstance(candidate, str) and candidate.startswith(names.CHECKOUT_ID_PREFIX):
            workflow_id = candidate
    return workflow_id
