"""A gateway payment a checkout left for another gateway (a declined customer retried there) keeps
a ledger row of its own: money that gateway takes on it later is a late payment of that row,
given back from it at that gateway — never lost as "no checkout of ours", never mixed into the
checkout's own capture on the next gateway."""

from __future__ import annotations

import asyncpg

from activities.reconcile import ReconcileActivities
from api.event_routing import Delivery, RoutingPolicy, resolve
from db import history, payments, refunds
from domain import names
from domain.checkout import (
    CheckoutRecord,
    Gateway,
    GatewayPaymentRef,
    LeftGatewayPayment,
    PaymentEventKind,
    PaymentStatus,
)
from domain.dispute import DeadlinePolicy
from domain.history import PaymentFilter
from domain.reconcile import ReconcileRequest
from domain.refund import RefundMode, RefundRequest, RefundReservation
from domain.webhooks import NoAction, PaymentFact

POLICY = RoutingPolicy(
    refund_poll_interval_seconds=60,
    dispute_deadline_margin_seconds=3600,
    dispute_deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE,
    dispute_poll_interval_seconds=60,
)
LEFT = LeftGatewayPayment(
    key=names.left_payment_key("checkout-o1", 1),
    gateway=Gateway.STRIPE,
    gateway_payment_id="pi_1",
    moved_to=Gateway.RAZORPAY,
)
LEFT_ID = names.checkout_id_for(LEFT.key)
SWITCHED = CheckoutRecord(
    record_key="pay_1:3:gateway_switched",
    checkout_id="pay_1",
    status=PaymentStatus.CREATED,
    step="gateway_switched",
    left=LEFT,
)


async def _switched(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'stripe', 'automatic', 2500, 'INR',
                'created', 'pi_1')
        """
    )
    await payments.record_checkout_step(pool, SWITCHED)


def _fact(kind: PaymentEventKind) -> PaymentFact:
    return PaymentFact(
        gateway=Gateway.STRIPE,
        event_id=f"evt_{kind}",
        kind=kind,
        gateway_payment_id="pi_1",
        gateway_charge_id="ch_late",
    )


async def test_the_left_payment_gets_a_row_of_its_own_and_the_checkout_moves(
    pool: asyncpg.Pool,
) -> None:
    await _switched(pool)
    await payments.record_checkout_step(pool, SWITCHED)  # a retried write: applied once

    rows = {r["payment_id"]: r for r in await pool.fetch("SELECT * FROM payments")}
    assert set(rows) == {"pay_1", LEFT_ID}
    checkout, left = rows["pay_1"], rows[LEFT_ID]
    assert (checkout["gateway"], checkout["gateway_payment_id"]) == ("razorpay", None)
    assert (left["gateway"], left["gateway_payment_id"], left["status"]) == (
        "stripe", "pi_1", "canceled",
    )  # fmt: skip
    assert (left["left_for"], left["order_id"], left["attempt"]) == ("pay_1", "o1", 1)
    assert left["workflow_id"] == LEFT.key
    # the order's checkout is still the checkout, not the payment it left
    latest = await payments.latest_attempt(pool, "o1")
    assert latest is not None and latest.checkout_id == "pay_1"
    # the order's history shows both, the left one saying whose it was
    listed = await history.list_payments(pool, PaymentFilter(order_id="o1"), None, 10)
    assert {(p.checkout_id, p.left_for) for _, p in listed} == {("pay_1", None), (LEFT_ID, "pay_1")}


async def test_money_taken_on_the_left_payment_is_given_back_from_its_own_row(
    pool: asyncpg.Pool,
) -> None:
    await _switched(pool)

    routed = await resolve(pool, _fact(PaymentEventKind.AUTHORIZED), POLICY)
    assert isinstance(routed, Delivery) and routed.start is not None
    assert routed.workflow_id == names.late_payment_refund_workflow_id(LEFT_ID, "ch_late")
    start = routed.start.arg
    assert isinstance(start, RefundRequest) and start.mode is RefundMode.LATE_PAYMENT
    assert start.payment_id == LEFT_ID and start.gateway is Gateway.STRIPE

    reserved = await refunds.reserve_refund(
        pool,
        RefundReservation(
            refund_id="refund-late-1", workflow_id=routed.workflow_id, payment_id=LEFT_ID,
            amount=None, reason=start.reason, note=start.note, mode=RefundMode.LATE_PAYMENT,
            idempotency_key=start.idempotency_key, capture_to_record=2500,
            payment_ref=GatewayPaymentRef(
                gateway=Gateway.STRIPE, gateway_payment_id="pi_1", gateway_charge_id="ch_late"
            ),
        ),
    )  # fmt: skip
    # refunded at the gateway that took it, from the payment it took it on
    assert reserved.accepted and reserved.amount == 2500
    assert (reserved.gateway, reserved.gateway_payment_id) == (Gateway.STRIPE, "pi_1")
    checkout = await pool.fetchrow("SELECT * FROM payments WHERE payment_id = 'pay_1'")
    assert checkout is not None and checkout["amount_captured"] == 0
    assert checkout["status"] == "created"


async def test_other_facts_of_the_left_payment_reach_no_saga(pool: asyncpg.Pool) -> None:
    await _switched(pool)
    for kind in (PaymentEventKind.FAILED, PaymentEventKind.REQUIRES_ACTION):
        routed = await resolve(pool, _fact(kind), POLICY)
        assert isinstance(routed, NoAction) and "left it" in routed.reason


async def test_the_reconciler_looks_at_the_left_payment(pool: asyncpg.Pool) -> None:
    """Whatever the gateway took on it while no webhook said so is found by the next run."""
    await _switched(pool)
    found = await ReconcileActivities(pool, {}, {"created": 60}, 24).find_reconciliation_candidates(
        ReconcileRequest()
    )
    assert [(c.payment_id, c.gateway, c.ledger_status) for c in found] == [
        (LEFT_ID, Gateway.STRIPE, "canceled")
    ]
