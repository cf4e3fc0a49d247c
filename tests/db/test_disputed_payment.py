"""What the dispute deadline policy reads before it may concede: the disputed payment's refunds,
made and pending, as the ledger holds them at that moment."""

from __future__ import annotations

import asyncpg

from db import disputes
from db.migrate import apply_migrations
from domain.checkout import Gateway
from domain.dispute import (
    DisputedPayment,
    DisputeOpening,
    DisputeStage,
    DisputeStatus,
    GatewayDispute,
)


def opening(dispute_id: str, gateway_payment_id: str) -> DisputeOpening:
    return DisputeOpening(
        dispute_id=dispute_id,
        workflow_id=f"dispute-stripe-{dispute_id}",
        dispute=GatewayDispute(
            gateway=Gateway.STRIPE,
            gateway_dispute_id=f"dp_{dispute_id}",
            gateway_payment_id=gateway_payment_id,
            status=DisputeStatus.OPEN,
            gateway_status="needs_response",
            stage=DisputeStage.CHARGEBACK,
            amount=2_500,
            currency="USD",
        ),
    )


async def test_the_policy_reads_the_refunds_of_the_disputed_payment_now(
    pool: asyncpg.Pool,
) -> None:
    await apply_migrations(pool)
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id,
                              amount_captured)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'stripe', 'automatic', 2500, 'USD',
                'captured', 'pi_1', 2500)
        """
    )
    await disputes.open_dispute(pool, opening("dsp_1", "pi_1"))
    await disputes.open_dispute(pool, opening("dsp_2", "pi_unknown"))
    before = await disputes.disputed_payment(pool, "dsp_1")
    await pool.execute(
        "UPDATE payments SET amount_refund_pending = 1000 WHERE payment_id = 'pay_1'"
    )  # a refund reserved after the dispute opened

    assert before == DisputedPayment(
        payment_id="pay_1", currency="USD", amount_refunded=0, amount_refund_pending=0
    )
    after = await disputes.disputed_payment(pool, "dsp_1")
    assert after is not None and after.amount_refund_pending == 1_000
    assert await disputes.disputed_payment(pool, "dsp_2") is None  # not a payment of ours
