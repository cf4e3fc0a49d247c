"""Refund contract: the request, the state a query returns, the gateway events it accepts, and the
gateway-neutral refund model the adapters translate to."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from domain.checkout import Gateway, GatewayPaymentRef, Model, PaymentStatus
from domain.money import format_amount

DEFAULT_POLL_INTERVAL_SECONDS = 60 * 60


class RefundReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    OTHER = "other"


class RefundMode(StrEnum):
    """`own`: asked for through our API; `observed`: made elsewhere (a gateway dashboard) and
    recorded from its webhook, without calling the gateway; `compensation`: a checkout undoing
    its capture; `late_payment`: money the gateway took after the checkout had ended without it
    (a late authorization it captured), recorded as captured and given back."""

    OWN = "own"
    OBSERVED = "observed"
    COMPENSATION = "compensation"
    LATE_PAYMENT = "late_payment"


class RefundStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUSED = "refused"
    """Never sent to the gateway: the ledger had no room for it, or nothing was captured."""


FINAL_REFUND_STATUSES = frozenset(
    {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED, RefundStatus.REFUSED}
)


def refund_id_for(workflow_id: str) -> str:
    """Our refund id, derived from the workflow id so every retry and replay names the same refund.
    It is also the gateway idempotency key and the Razorpay receipt (letters, digits, `_`)."""
    return "rfd_" + hashlib.sha256(workflow_id.encode()).hexdigest()[:24]


class RefundRequest(Model):
    """The refund workflow's input."""

    payment_id: str
    amount: int | None = None
    """Minor units; None = whatever is left to refund."""
    reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER
    note: str | None = None
    mode: RefundMode = RefundMode.OWN
    idempotency_key: str
    poll_interval_seconds: int = DEFAULT_POLL_INTERVAL_SECONDS
    """How long to wait for a webhook before asking the gateway (the polling fallback)."""
    gateway: Gateway | None = None
    gateway_refund_id: str | None = None
    """Observed mode: the gateway and its refund, as the webhook named them."""
    capture_to_record: int = 0
    """Compensation mode: what the gateway captured, in case the ledger has not recorded it."""
    payment_ref: GatewayPaymentRef | None = None
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""
    """Compensation and late-payment modes: the gateway payment that holds the money, which the
    ledger may not know yet (a late payment of a checkout that had ended without money)."""
    carried: RefundState | None = None
    """Set on continue-as-new: the state so far."""


def late_payment_refund(payment_id: str, held_by: GatewayPaymentRef, note: str) -> RefundRequest:
    """Giving back money the gateway took for a payment that had ended without it (one refund per
    gateway payment, whoever finds it first: the webhook's route, the reconciler, the checkout)."""
    return RefundRequest(
        payment_id=payment_id,
        reason=RefundReason.OTHER,
        note=note,
        mode=RefundMode.LATE_PAYMENT,
        idempotency_key=f"late-{held_by.gateway_charge_id or held_by.gateway_payment_id}",
        gateway=held_by.gateway,
        payment_ref=held_by,
    )


class RefundStep(Model):
    at: datetime
    step: str
    status: RefundStatus
    detail: str = ""


class RefundState(Model):
    """The full live state of one refund, as the `state` query returns it."""

    refund_id: str
    workflow_id: str
    payment_id: str
    mode: RefundMode
    status: RefundStatus
    reason: RefundReason
    note: str | None = None
    amount: int = 0
    currency: str | None = None
    gateway: Gateway | None = None
    gateway_payment_id: str | None = None
    gateway_charge_id: str | None = None
    gateway_refund_id: str | None = None
    speed: str | None = None
    refusal_code: str | None = None
    failure_reason: str | None = None
    payment_status: PaymentStatus | None = None
    """The payment's status once this refund was settled (or released)."""
    history: list[RefundStep] = Field(default_factory=list)
    seen_events: list[str] = Field(default_factory=list)
    polls: int = 0


class RefundEvent(Model):
    """A gateway fact about a refund, from a verified webhook. A hint: the workflow fetches the
    refund from the gateway before it settles anything."""

    event_id: str
    event_type: str
    gateway_refund_id: str | None = None
    """None for the event that starts a late payment's refund: no refund exists yet."""
    gateway_status: str = ""


# Gateway-neutral activity contracts


class CreateGatewayRefund(Model):
    ref: GatewayPaymentRef
    refund_id: str
    """Our id: the idempotency key (Stripe `Idempotency-Key`, Razorpay `X-Refund-Idempotency`)
    and the Razorpay receipt that finds the refund again after an unknown outcome."""
    workflow_id: str
    payment_id: str
    amount: int
    currency: str
    reason: RefundReason


class GatewayRefundRef(Model):
    gateway: Gateway
    gateway_refund_id: str


class GatewayRefund(Model):
    gateway: Gateway
    gateway_refund_id: str
    gateway_payment_id: str
    """Stripe PaymentIntent id or Razorpay payment id."""
    status: RefundStatus
    amount: int
    currency: str
    failure_reason: str | None = None
    speed: str | None = None
    """Razorpay: how the refund is (being) processed, `normal` or `instant`."""


# Ledger activity contracts


class RefundReservation(Model):
    """Reserve the amount on the payment, in one transaction, or say why not."""

    refund_id: str
    workflow_id: str
    payment_id: str
    amount: int | None
    reason: RefundReason
    note: str | None
    mode: RefundMode
    idempotency_key: str
    gateway_refund_id: str | None = None
    capture_to_record: int = 0
    payment_ref: GatewayPaymentRef | None = None


class ReservationOutcome(Model):
    accepted: bool
    refusal_code: str | None = None
    """`invalid_refund_amount`, `payment_not_refundable`, `refund_exceeds_available`,
    `unknown_payment`."""
    detail: str = ""
    status: RefundStatus
    """The refund's status in the ledger: `pending` when just reserved; a retried reservation of a
    refund already settled says so."""
    amount: int = 0
    currency: str | None = None
    gateway: Gateway | None = None
    gateway_payment_id: str | None = None
    gateway_charge_id: str | None = None
    gateway_refund_id: str | None = None


class RefundEffect(StrEnum):
    NONE = "none"
    SETTLE = "settle"
    """Post the refund and move the reserved amount to refunded."""
    RELEASE = "release"
    """Give the reserved amount back: the refund did not happen."""


class RefundRecord(Model):
    """One state change of a refund, written to the ledger in one transaction, once."""

    record_key: str
    refund_id: str
    payment_id: str
    step: str
    status: RefundStatus
    detail: str = ""
    effect: RefundEffect = RefundEffect.NONE
    gateway_refund_id: str | None = None
    failure_reason: str | None = None


class RefundSoFar(Model):
    """What the next step of a refund is decided from: its saga's state, in short."""

    refund_id: str
    payment_id: str
    gateway: Gateway
    amount: int
    status: RefundStatus
    steps: int
    """How many steps the refund has taken (its next record's key counts them)."""
    gateway_refund_id: str | None = None
    speed: str | None = None


def refund_step(so_far: RefundSoFar, refund: GatewayRefund, step: str) -> RefundRecord | None:
    """The ledger step the gateway's word on a refund makes, or None when it says nothing new.
    Decided here alone: by the saga, and by the activity that creates the refund and writes
    the answer at once (the same key, so the ledger applies it once)."""
    first_sight = so_far.gateway_refund_id != refund.gateway_refund_id
    detail = f"{so_far.gateway} {refund.gateway_refund_id} is {refund.status}"
    if refund.amount != so_far.amount:
        detail += f" for {format_amount(refund.amount, refund.currency)}"
    effect, failure_reason = RefundEffect.NONE, None
    if refund.status is RefundStatus.SUCCEEDED:
        effect = RefundEffect.SETTLE
    elif refund.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
        failure_reason = refund.failure_reason or f"the gateway says {refund.status}"
        detail, effect = f"{detail}: {failure_reason}", RefundEffect.RELEASE
    elif refund.speed is not None and so_far.speed is not None and refund.speed != so_far.speed:
        step, detail = "speed_changed", f"{detail}; speed {refund.speed}"
    elif first_sight or refund.status is not so_far.status:
        if refund.status is RefundStatus.REQUIRES_ACTION:
            detail += "; the customer must act (e.g. give bank details) before it can proceed"
    else:
        return None
    return RefundRecord(
        record_key=f"{so_far.refund_id}:{so_far.steps + 1}:{step}",
        refund_id=so_far.refund_id,
        payment_id=so_far.payment_id,
        step=step,
        status=refund.status,
        detail=detail,
        effect=effect,
        gateway_refund_id=refund.gateway_refund_id,
        failure_reason=failure_reason,
    )


class RefundAtGateway(Model):
    """Create the refund at the gateway and write its answer to the ledger, in one activity."""

    refund: CreateGatewayRefund
    so_far: RefundSoFar


class RefundMade(Model):
    refund: GatewayRefund
    record: RefundRecord | None
    """The step the activity wrote, None when the answer changed nothing."""
    payment_status: PaymentStatus | None = None
    """The payment's status after that step."""


RefundRequest.model_rebuild()
