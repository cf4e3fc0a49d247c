"""Facts are not requests (issue 12, 2.3): a refund made at the gateway's dashboard is recorded
whatever the payment's state in the ledger; where the ledger would have refused it, the payment
goes to `needs_review` with a reconciliation flag saying why. A request in the same state is
refused."""

from __future__ import annotations

import asyncpg
import pytest

from db import refunds
from domain.refund import RefundMode, RefundReason, RefundReservation, RefundStatus


async def _payment(pool: asyncpg.Pool, status: str, pending: int) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id,
                              amount_captured, amount_refund_pending)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'stripe', 'automatic', 2500, 'USD',
                $1, 'pi_1', $2, $3)
        """,
        status,
        0 if status == "unknown" else 2_500,
        pending,
    )


def _refund(mode: RefundMode, amount: int) -> RefundReservation:
    return RefundReservation(
        refund_id=f"rfd_{mode}",
        workflow_id=f"refund-pay_1-{mode}",
        payment_id="pay_1",
        amount=amount,
        reason=RefundReason.OTHER,
        note=None,
        mode=mode,
        idempotency_key=f"key-{mode}",
        gateway_refund_id="re_dashboard" if mode is RefundMode.OBSERVED else None,
    )


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        ("disputed", 0),  # a dispute is open
        ("captured", 2_000),  # another refund holds most of what is left
        ("unknown", 0),  # the capture's outcome is not known yet
    ],
)
async def test_a_dashboard_refund_is_recorded_whatever_the_ledger_says_and_flagged(
    pool: asyncpg.Pool, status: str, pending: int
) -> None:
    await _payment(pool, status, pending)

    asked = await refunds.reserve_refund(pool, _refund(RefundMode.OWN, 1_000))
    observed = await refunds.reserve_refund(pool, _refund(RefundMode.OBSERVED, 1_000))

    assert not asked.accepted, "a request in that state is refused"
    assert observed.accepted and observed.status is RefundStatus.PENDING
    assert observed.amount == 1_000
    payment = await pool.fetchrow("SELECT * FROM payments WHERE payment_id = 'pay_1'")
    assert payment["status"] == "needs_review"
    assert payment["amount_refund_pending"] == pending + 1_000
    flags = await pool.fetch(
        "SELECT * FROM reconciliation_flags WHERE payment_id = 'pay_1' AND resolved_at IS NULL"
    )
    assert [(f["object_id"], f["ledger_status"]) for f in flags] == [("rfd_observed", status)]
    assert "re_dashboard" in flags[0]["detail"]


async def test_a_dashboard_refund_the_ledger_allows_raises_no_flag(pool: asyncpg.Pool) -> None:
    await _payment(pool, "captured", 0)

    observed = await refunds.reserve_refund(pool, _refund(RefundMode.OBSERVED, 1_000))

    assert observed.accepted
    payment = await pool.fetchrow("SELECT status FROM payments WHERE payment_id = 'pay_1'")
    assert payment["status"] == "captured"
    assert await pool.fetchval("SELECT count(*) FROM reconciliation_flags") == 0
