"""Razorpay events → typed gateway facts, pure: every event type, and every payload of an
unexpected shape, reads as a fact or as no action with its reason (Razorpay docs, "Webhook
Events": https://razorpay.com/docs/webhooks/payloads/)."""

from __future__ import annotations

import json

from activities.gateways.payload import JSON, currency, ident, minor_units, obj, text, timestamp
from domain.checkout import (
    Gateway,
    GatewayPayment,
    PaymentEventKind,
    PaymentSnapshot,
    PaymentStatus,
)
from domain.webhooks import (
    DisputeFact,
    DowntimeFact,
    GatewayEvent,
    NoAction,
    PaymentFact,
    RefundFact,
    VerifiedEvent,
)

PAYMENT_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.CAPTURED,
    "payment.failed": PaymentEventKind.FAILED,
}

NO_ACTION = {
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

EVENT_TYPES = frozenset(
    {
        *PAYMENT_KINDS,
        *NO_ACTION,
        "payment.dispute.created", "payment.dispute.won", "payment.dispute.lost",
        "payment.dispute.closed", "payment.dispute.under_review",
        "payment.dispute.action_required",
        "payment.downtime.started", "payment.downtime.updated", "payment.downtime.resolved",
        "refund.created", "refund.processed", "refund.failed", "refund.speed_changed",
    }
)  # fmt: skip
"""The types this service reads; others are recorded as no action (and counted as `other`)."""


def client_confirmation(
    order_id: str, payment_id: str, payment: GatewayPayment | None
) -> VerifiedEvent:
    """The customer's signed proof from Razorpay Checkout (verified by the API) as the event it
    tells: `payment.authorized`, with the payment as the API read it from Razorpay right after
    ("Verify Payment Status", https://razorpay.com/docs/payments/payment-gateway/web-integration/
    standard/build-integration/#16-verify-payment-status), or without amounts when Razorpay could
    not be asked (the saga looks it up). It goes to the inbox like the webhook, which tells the
    same authorization: one of the two is delivered."""
    entity: JSON = {"id": payment_id, "order_id": order_id}
    if payment is not None and payment.ref.gateway_charge_id == payment_id:
        status = _READ_STATUSES.get(payment.status)
        if status is not None:
            entity |= {"amount": payment.amount, "currency": payment.currency, "status": status}
    payload = {
        "event": "payment.authorized",
        "source": "client_confirmation",
        "payload": {"payment": {"entity": entity}},
    }
    return VerifiedEvent(
        gateway=Gateway.RAZORPAY,
        event_id=f"client-confirmation:{payment_id}",
        event_type="payment.authorized",
        payload=payload,
        body=json.dumps(payload),
    )


_READ_STATUSES = {PaymentStatus.AUTHORIZED: "authorized", PaymentStatus.CAPTURED: "captured"}


def parse(event: VerifiedEvent) -> GatewayEvent:
    kind = event.event_type
    if kind in PAYMENT_KINDS:
        return _payment(event, PAYMENT_KINDS[kind])
    if kind.startswith("payment.downtime."):
        return _downtime(event)
    if kind.startswith("refund."):
        return _refund(event)
    if kind.startswith("payment.dispute."):
        return _dispute(event)
    return NoAction(reason=NO_ACTION.get(kind) or f"{kind.split('.')[0]} events need no action")


def _entity(event: VerifiedEvent, name: str) -> JSON:
    return obj(obj(obj(event.payload.get("payload")).get(name)).get("entity"))


def _payment(event: VerifiedEvent, kind: PaymentEventKind) -> GatewayEvent:
    payment = _entity(event, "payment")
    order_id = ident(payment.get("order_id"))
    if order_id is None:
        return NoAction(reason="payment without an order: not made through a checkout of ours")
    return PaymentFact(
        gateway=Gateway.RAZORPAY,
        event_id=event.event_id,
        kind=kind,
        gateway_payment_id=order_id,
        gateway_charge_id=ident(payment.get("id")),
        error_code=ident(payment.get("error_code")),
        error_message=text(payment.get("error_description")),
        snapshot=_snapshot(payment),
    )


def _snapshot(payment: JSON) -> PaymentSnapshot | None:
    """The authorization (or capture) the signed event shows, when every field is there."""
    amount = minor_units(payment.get("amount"))
    code = currency(payment.get("currency"))
    status = payment.get("status")
    if amount is None or code is None or status not in ("authorized", "captured"):
        return None
    held = PaymentStatus.CAPTURED if status == "captured" else PaymentStatus.AUTHORIZED
    return PaymentSnapshot(
        status=held,
        amount=amount,
        currency=code,
        amount_capturable=amount if held is PaymentStatus.AUTHORIZED else 0,
        amount_captured=amount if held is PaymentStatus.CAPTURED else 0,
    )


def _downtime(event: VerifiedEvent) -> GatewayEvent:
    downtime = _entity(event, "payment.downtime")
    downtime_id = ident(downtime.get("id"))
    if downtime_id is None:
        return NoAction(reason="downtime event without a downtime entity")
    return DowntimeFact(
        gateway=Gateway.RAZORPAY,
        downtime_id=downtime_id,
        method=ident(downtime.get("method")) or "unknown",
        status=ident(downtime.get("status")) or event.event_type.rsplit(".", 1)[1],
        severity=ident(downtime.get("severity")) or "unknown",
        began_at=timestamp(downtime.get("begin")),
        ends_at=timestamp(downtime.get("end")),
    )


def _refund(event: VerifiedEvent) -> GatewayEvent:
    refund, payment = _entity(event, "refund"), _entity(event, "payment")
    refund_id = ident(refund.get("id"))
    if refund_id is None:
        return NoAction(reason="refund event without a refund entity")
    if payment.get("captured") is False:
        return NoAction(
            reason="Razorpay's auto-refund of an authorization that was never captured: no"
            " captured money moved, so the ledger has nothing to record"
        )
    return RefundFact(
        gateway=Gateway.RAZORPAY,
        event_id=event.event_id,
        event_type=event.event_type,
        gateway_refund_id=refund_id,
        gateway_status=ident(refund.get("status")) or "unknown",
        gateway_charge_id=ident(refund.get("payment_id")),
        our_refund_id=ident(refund.get("receipt"))
        or ident(obj(refund.get("notes")).get("refund_id")),
        reason=ident(refund.get("reason")),
    )


def _dispute(event: VerifiedEvent) -> GatewayEvent:
    dispute_id = ident(_entity(event, "dispute").get("id"))
    if dispute_id is None:
        return NoAction(reason="dispute event without a dispute entity")
    return DisputeFact(
        gateway=Gateway.RAZORPAY,
        event_id=event.event_id,
        event_type=event.event_type,
        gateway_dispute_id=dispute_id,
    )
