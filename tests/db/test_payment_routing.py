"""Which payment facts reach their checkout as a signal (a billed Temporal action each) and which
change nothing: the gateway's echo of the saga's own capture is one of the latter, also while the
capture activity has not yet written it (the webhook races the activity's ledger write)."""

from __future__ import annotations

import asyncpg

from api.event_routing import Delivery, RoutingPolicy, resolve
from db import payments
from domain.checkout import Gateway, PaymentEventKind
from domain.dispute import DeadlinePolicy
from domain.webhooks import NoAction, PaymentFact

POLICY = RoutingPolicy(
    refund_poll_interval_seconds=60,
    dispute_deadline_margin_seconds=3600,
    dispute_deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE,
    dispute_poll_interval_seconds=60,
)


async def _authorized(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id,
                              gateway_charge_id)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'stripe', 'automatic', 2500, 'USD',
                'authorized', 'pi_1', 'ch_1')
        """
    )


def _captured(charge: str = "ch_1") -> PaymentFact:
    return PaymentFact(
        gateway=Gateway.STRIPE,
        event_id="evt_1",
        kind=PaymentEventKind.CAPTURED,
        gateway_payment_id="pi_1",
        gateway_charge_id=charge,
    )


async def test_a_capture_nobody_asked_for_reaches_the_checkout(pool: asyncpg.Pool) -> None:
    await _authorized(pool)
    assert isinstance(await resolve(pool, _captured(), POLICY), Delivery)


async def test_the_echo_of_the_sagas_own_capture_in_flight_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    await _authorized(pool)
    await payments.mark_capture_requested(pool, "pay_1")
    routed = await resolve(pool, _captured(), POLICY)
    assert isinstance(routed, NoAction) and "in flight" in routed.reason


async def test_a_capture_of_another_charge_still_reaches_the_checkout(pool: asyncpg.Pool) -> None:
    await _authorized(pool)
    await payments.mark_capture_requested(pool, "pay_1")
    assert isinstance(await resolve(pool, _captured("ch_other"), POLICY), Delivery)


async def test_a_request_for_authentication_reaches_a_checkout_waiting_for_payment(
    pool: asyncpg.Pool,
) -> None:
    await _authorized(pool)
    asked = PaymentFact(
        gateway=Gateway.STRIPE, event_id="evt_3ds", kind=PaymentEventKind.REQUIRES_ACTION,
        gateway_payment_id="pi_1",
    )  # fmt: skip
    stale = await resolve(pool, asked, POLICY)
    assert isinstance(stale, NoAction) and "holds an authorization" in stale.reason
    await pool.execute("UPDATE payments SET status = 'created' WHERE payment_id = 'pay_1'")
    assert isinstance(await resolve(pool, asked, POLICY), Delivery)
