"""Stripe events → typed gateway facts, pure: every event type, and every payload of an unexpected
shape, reads as a fact or as no action with its reason (Stripe docs, "Types of events":
https://docs.stripe.com/api/events/types)."""

from __future__ import annotations

from activities.gateways.payload import JSON, currency, id_of, ident, minor_units, obj, text
from domain.checkout import Gateway, PaymentEventKind, PaymentSnapshot, PaymentStatus
from domain.webhooks import (
    DisputeFact,
    GatewayEvent,
    NoAction,
    OnboardingState,
    PaymentFact,
    RefundFact,
    SellerAccountFact,
    VerifiedEvent,
)

PAYMENT_INTENT_KINDS = {
    "payment_intent.amount_capturable_updated": PaymentEventKind.AUTHORIZED,
    "payment_intent.succeeded": PaymentEventKind.CAPTURED,
    "payment_intent.payment_failed": PaymentEventKind.FAILED,
    "payment_intent.canceled": PaymentEventKind.CANCELED,
    "payment_intent.requires_action": PaymentEventKind.REQUIRES_ACTION,
}

EVENT_TYPES = frozenset(
    {
        *PAYMENT_INTENT_KINDS,
        "payment_intent.created", "payment_intent.processing",
        "payment_intent.partially_funded",
        "charge.succeeded", "charge.failed", "charge.captured", "charge.refunded",
        "charge.updated", "charge.pending", "charge.expired", "charge.refund.updated",
        "refund.created", "refund.updated", "refund.failed",
        "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
        "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
        "account.updated",
    }
)  # fmt: skip
"""The types this service reads; others are recorded as no action (and counted as `other`)."""


def parse(event: VerifiedEvent) -> GatewayEvent:
    kind = event.event_type
    data = obj(obj(event.payload.get("data")).get("object"))
    if kind.startswith("payment_intent."):
        return _payment_intent(event, data)
    if kind.startswith("refund.") or kind == "charge.refund.updated":
        return _refund(event, data)
    if kind.startswith("charge.dispute."):
        return _dispute(event, data)
    if kind == "account.updated":
        return _account(event, data)
    if kind == "charge.refunded":
        return NoAction(reason="the refund.* events of the same refund drive the refund saga")
    if kind.startswith("charge."):
        return NoAction(reason="charge events mirror their payment intent's, which drive checkouts")
    return NoAction(reason=f"{kind} needs no action")


def _payment_intent(event: VerifiedEvent, intent: JSON) -> GatewayEvent:
    kind = PAYMENT_INTENT_KINDS.get(event.event_type)
    if kind is None:
        return NoAction(reason="this payment intent change needs no action from the checkout")
    intent_id = ident(intent.get("id"))
    if intent_id is None:
        return NoAction(reason="payment intent event without a payment intent id")
    error = obj(intent.get("last_payment_error"))
    return PaymentFact(
        gateway=Gateway.STRIPE,
        event_id=event.event_id,
        kind=kind,
        gateway_payment_id=intent_id,
        gateway_charge_id=id_of(intent.get("latest_charge")),
        error_code=ident(error.get("decline_code")) or ident(error.get("code")),
        error_message=text(error.get("message")),
        snapshot=_snapshot(intent),
    )


# How a PaymentIntent's status reads when its event carries money a checkout takes, or asks the
# customer to authenticate (3-D Secure) before its bank authorizes.
_HELD = {
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
}


def _snapshot(intent: JSON) -> PaymentSnapshot | None:
    """The authorization (or capture) the signed event shows, when every field is there."""
    status = _HELD.get(str(intent.get("status")))
    amount = minor_units(intent.get("amount"))
    code = currency(intent.get("currency"))
    if status is None or amount is None or code is None:
        return None
    return PaymentSnapshot(
        status=status,
        amount=amount,
        currency=code,
        amount_capturable=minor_units(intent.get("amount_capturable")) or 0,
        amount_captured=minor_units(intent.get("amount_received")) or 0,
        next_action=obj(intent.get("next_action")) or None
        if status is PaymentStatus.REQUIRES_ACTION
        else None,
    )


def _refund(event: VerifiedEvent, refund: JSON) -> GatewayEvent:
    refund_id = ident(refund.get("id"))
    if refund.get("object") != "refund" or refund_id is None:
        return NoAction(reason="refund event without a refund object")
    return RefundFact(
        gateway=Gateway.STRIPE,
        event_id=event.event_id,
        event_type=event.event_type,
        gateway_refund_id=refund_id,
        gateway_status=ident(refund.get("status")) or "unknown",
        gateway_payment_id=id_of(refund.get("payment_intent")),
        our_refund_id=ident(obj(refund.get("metadata")).get("refund_id")),
        reason=ident(refund.get("reason")),
    )


def _dispute(event: VerifiedEvent, dispute: JSON) -> GatewayEvent:
    dispute_id = ident(dispute.get("id"))
    if dispute.get("object") != "dispute" or dispute_id is None:
        return NoAction(reason="dispute event without a dispute object")
    return DisputeFact(
        gateway=Gateway.STRIPE,
        event_id=event.event_id,
        event_type=event.event_type,
        gateway_dispute_id=dispute_id,
    )


def _account(event: VerifiedEvent, account: JSON) -> GatewayEvent:
    """A connected account's onboarding ("Connect webhooks", https://docs.stripe.com/connect/
    webhooks; "Account capabilities", https://docs.stripe.com/connect/account-capabilities): it
    can be paid when charges and payouts are enabled and its `transfers` capability is active."""
    account_id = ident(account.get("id"))
    if account.get("object") != "account" or account_id is None:
        return NoAction(reason="account event without an account object")
    transfers = obj(account.get("capabilities")).get("transfers")
    state: OnboardingState
    if (
        account.get("charges_enabled") is True
        and account.get("payouts_enabled") is True
        and (transfers == "active")
    ):
        state = "active"
    elif account.get("details_submitted") is True:
        state = "restricted"
    else:
        state = "pending"
    return SellerAccountFact(
        gateway=Gateway.STRIPE,
        event_id=event.event_id,
        gateway_account_id=account_id,
        onboarding_state=state,
    )
