"""The resolver: a typed gateway fact → its delivery (workflow id, signal, and what to start when
no workflow runs under that id yet), looked up in the ledger alone. A fact the ledger cannot place
needs no action: a payment of another order never reaches, fails or steers someone's checkout."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from pydantic import BaseModel
from temporalio.common import TypedSearchAttributes

from db import routing
from domain import names
from domain.checkout import (
    ENDED_WITHOUT_MONEY,
    GatewayPaymentRef,
    PaymentEventKind,
    PaymentStatus,
)
from domain.dispute import DeadlinePolicy, DisputeRequest
from domain.refund import RefundEvent, RefundMode, RefundReason, RefundRequest, late_payment_refund
from domain.webhooks import DisputeFact, NoAction, PaymentFact, RefundFact
from settings import Settings
from workflows import search_attributes as search


@dataclass(frozen=True)
class WorkflowStart:
    """For signal-with-start: the workflow to start when none runs under the id yet."""

    workflow: str
    arg: BaseModel
    summary: str
    search_attributes: TypedSearchAttributes | None = None
    """What the workflow is found by from its start (costs no Temporal action there)."""


@dataclass(frozen=True)
class Delivery:
    workflow_id: str
    signal: str
    arg: BaseModel
    reason: str
    start: WorkflowStart | None = None


@dataclass(frozen=True)
class RoutingPolicy:
    """The settings that go into workflows this resolver starts."""

    refund_poll_interval_seconds: int
    dispute_deadline_margin_seconds: int
    dispute_deadline_policy: DeadlinePolicy
    dispute_poll_interval_seconds: int

    @classmethod
    def of(cls, settings: Settings) -> RoutingPolicy:
        return cls(
            refund_poll_interval_seconds=settings.refund_poll_interval_seconds,
            dispute_deadline_margin_seconds=settings.dispute_deadline_margin_seconds,
            dispute_deadline_policy=settings.dispute_deadline_policy,
            dispute_poll_interval_seconds=settings.dispute_poll_interval_seconds,
        )


async def resolve(
    pool: asyncpg.Pool, fact: PaymentFact | RefundFact | DisputeFact, policy: RoutingPolicy
) -> Delivery | NoAction:
    if isinstance(fact, PaymentFact):
        return await _payment(pool, fact)
    if isinstance(fact, RefundFact):
        return await _refund(pool, fact, policy)
    return _dispute(fact, policy)


async def _payment(pool: asyncpg.Pool, fact: PaymentFact) -> Delivery | NoAction:
    checkout = await routing.checkout_of(pool, fact.gateway.value, fact.gateway_payment_id)
    if checkout is None:
        return NoAction(reason="no checkout of ours created this payment")
    taken = fact.kind in (PaymentEventKind.AUTHORIZED, PaymentEventKind.CAPTURED)
    if taken and checkout.status in ENDED_WITHOUT_MONEY:
        return _late_payment(fact, checkout)
    if checkout.left_for is not None:
        return NoAction(reason=f"checkout {checkout.left_for} left it for another gateway")
    known = _known(fact, checkout)
    if known is not None:
        return NoAction(reason=known)
    return Delivery(
        checkout.workflow_id, names.PAYMENT_EVENT, fact.signal(), f"checkout {fact.kind}"
    )


# Statuses in which a checkout holds an authorization, and those in which it recorded a capture.
_HOLDING = frozenset(
    {
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.DISPUTED,
        PaymentStatus.DISPUTE_LOST,
    }
)
_CAPTURE_RECORDED = _HOLDING - {PaymentStatus.AUTHORIZED}


def _known(fact: PaymentFact, checkout: routing.CheckoutOf) -> str | None:
    """Why the fact changes nothing for its checkout (so no signal is sent: each is a billed
    Temporal action), or None. An authorization, a decline or a request for authentication
    (3-D Secure) after the checkout holds an authorization, and a capture it recorded or is
    making (the gateway's echo of the saga's own capture), are nothing new."""
    if fact.kind in (
        PaymentEventKind.AUTHORIZED,
        PaymentEventKind.FAILED,
        PaymentEventKind.REQUIRES_ACTION,
    ):
        if checkout.status in _HOLDING:
            return f"the checkout holds an authorization already ({checkout.status})"
    elif fact.kind is PaymentEventKind.CAPTURED and checkout.status in _CAPTURE_RECORDED:
        if fact.gateway_charge_id in (None, checkout.gateway_charge_id):
            return f"the checkout recorded this capture ({checkout.status})"
    elif fact.kind is PaymentEventKind.CAPTURED and checkout.capture_requested:
        if fact.gateway_charge_id in (None, checkout.gateway_charge_id):
            return "the checkout's own capture is in flight; its capture call reports the outcome"
    return None


def _late_payment(fact: PaymentFact, checkout: routing.CheckoutOf) -> Delivery:
    """The customer paid after the checkout had ended without money (a late authorization): a
    refund workflow looks at what the gateway took, and gives it back (signal-with-start, one
    per gateway payment)."""
    held_by = fact.gateway_charge_id or fact.gateway_payment_id
    start = late_payment_refund(
        checkout.payment_id,
        GatewayPaymentRef(
            gateway=fact.gateway,
            gateway_payment_id=fact.gateway_payment_id,
            gateway_charge_id=fact.gateway_charge_id,
        ),
        f"paid after the checkout ended {checkout.status}; first seen in {fact.event_id}",
    )
    return Delivery(
        names.late_payment_refund_workflow_id(checkout.payment_id, held_by),
        names.REFUND_EVENT,
        RefundEvent(event_id=fact.event_id, event_type=f"payment.{fact.kind}"),
        f"paid after the checkout ended {checkout.status}: the late payment is given back",
        WorkflowStart(
            names.REFUND_WORKFLOW,
            start,
            f"Late payment {held_by} of {checkout.payment_id}: given back",
            search.refund_at_start(checkout.payment_id),
        ),
    )


async def _refund(
    pool: asyncpg.Pool, fact: RefundFact, policy: RoutingPolicy
) -> Delivery | NoAction:
    """Our own refund (found by the refund id we sent, if the ledger has it for this payment, or
    by the gateway's refund id once recorded), else a refund made outside the service: a new
    observed-mode refund workflow records it (signal-with-start)."""
    gateway = fact.gateway.value
    workflow_id = None
    if fact.our_refund_id is not None:
        workflow_id = await routing.own_refund_workflow(
            pool, gateway, fact.our_refund_id, fact.gateway_payment_id, fact.gateway_charge_id
        )
    if workflow_id is None:
        workflow_id = await routing.refund_workflow(pool, gateway, fact.gateway_refund_id)
    if workflow_id is not None:
        if await routing.refund_settled(pool, workflow_id):  # an echo of what it recorded
            return NoAction(reason="the refund is settled in the ledger already")
        return Delivery(
            workflow_id, names.REFUND_EVENT, fact.signal(), f"refund {fact.gateway_status}"
        )
    payment_id = await routing.refunded_payment(
        pool, gateway, fact.gateway_payment_id, fact.gateway_charge_id
    )
    if payment_id is None:
        return NoAction(reason="a refund of a payment this service did not take")
    reason = RefundReason.OTHER
    if fact.reason is not None and fact.reason in set(RefundReason):
        reason = RefundReason(fact.reason)
    start = RefundRequest(
        payment_id=payment_id,
        reason=reason,
        note=f"made outside the service; first seen in {fact.event_type}",
        mode=RefundMode.OBSERVED,
        idempotency_key=fact.gateway_refund_id,
        poll_interval_seconds=policy.refund_poll_interval_seconds,
        gateway=fact.gateway,
        gateway_refund_id=fact.gateway_refund_id,
    )
    return Delivery(
        names.observed_refund_workflow_id(payment_id, fact.gateway_refund_id),
        names.REFUND_EVENT,
        fact.signal(),
        "refund made outside the service: recorded as observed",
        WorkflowStart(
            names.REFUND_WORKFLOW,
            start,
            f"Observed {gateway} refund {fact.gateway_refund_id} of {payment_id}",
            search.refund_at_start(payment_id),
        ),
    )


def _dispute(fact: DisputeFact, policy: RoutingPolicy) -> Delivery:
    """Every dispute event goes to the dispute's own workflow, started by whichever event comes
    first (signal-with-start), so out-of-order events just queue; it fetches the dispute."""
    start = DisputeRequest(
        gateway=fact.gateway,
        gateway_dispute_id=fact.gateway_dispute_id,
        deadline_margin_seconds=policy.dispute_deadline_margin_seconds,
        deadline_policy=policy.dispute_deadline_policy,
        poll_interval_seconds=policy.dispute_poll_interval_seconds,
    )
    return Delivery(
        names.dispute_workflow_id(fact.gateway.value, fact.gateway_dispute_id),
        names.DISPUTE_EVENT,
        fact.signal(),
        f"dispute {fact.event_type.rsplit('.', 1)[-1]}",
        WorkflowStart(
            names.DISPUTE_WORKFLOW,
            start,
            f"Dispute {fact.gateway_dispute_id} on {fact.gateway}",
        ),
    )
