"""The daily report's rollup (migration 031) follows the ledger's own writers: a capture, a refund
settled, dispute funds withdrawn and reinstated each land on their UTC day, gateway and currency;
and the migration counts the postings the ledger held before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import asyncpg

from db import disputes, payments, refunds, reports
from db.migrate import apply_migrations
from domain.checkout import Gateway, capture_record
from domain.dispute import (
    DisputeOpening,
    DisputeRecord,
    DisputeStage,
    DisputeStatus,
    GatewayDispute,
)
from domain.refund import (
    RefundEffect,
    RefundMode,
    RefundReason,
    RefundRecord,
    RefundReservation,
    RefundStatus,
)
from testkit import history


async def _authorized_payment(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'razorpay', 'manual', 9000, 'INR',
                'authorized', 'order_1')
        """
    )


async def test_the_ledgers_writers_fill_the_days_totals(pool: asyncpg.Pool) -> None:
    await _authorized_payment(pool)
    await payments.record_checkout_step(
        pool, capture_record("pay_1", Gateway.RAZORPAY, "pay_g1", 9_000, "INR")
    )
    reserved = await refunds.reserve_refund(
        pool,
        RefundReservation(
            refund_id="rfd_1", workflow_id="refund-pay_1-k", payment_id="pay_1", amount=2_000,
            reason=RefundReason.OTHER, note=None, mode=RefundMode.OWN, idempotency_key="k-1",
        ),
    )  # fmt: skip
    assert reserved.accepted
    await refunds.record_refund_step(
        pool,
        RefundRecord(
            record_key="rfd_1:succeeded", refund_id="rfd_1", payment_id="pay_1",
            step="succeeded", status=RefundStatus.SUCCEEDED, effect=RefundEffect.SETTLE,
        ),
    )  # fmt: skip
    await disputes.open_dispute(
        pool,
        DisputeOpening(
            dispute_id="dsp_1", workflow_id="dispute-razorpay-disp_1",
            dispute=GatewayDispute(
                gateway=Gateway.RAZORPAY, gateway_dispute_id="disp_1",
                gateway_payment_id="pay_g1", status=DisputeStatus.OPEN, gateway_status="open",
                stage=DisputeStage.CHARGEBACK, amount=7_000, currency="INR",
            ),
        ),
    )  # fmt: skip
    for key, target, status in (
        ("dsp_1:withdrawn", 7_000, DisputeStatus.OPEN),
        ("dsp_1:won", 0, DisputeStatus.WON),
    ):
        await disputes.record_dispute_step(
            pool,
            DisputeRecord(
                record_key=key, dispute_id="dsp_1", step=key, status=status,
                stage=DisputeStage.CHARGEBACK, withdrawn_target=target,
            ),
        )  # fmt: skip
    today = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")

    [line] = await reports.daily_totals(pool, today, today)

    assert (line.day, line.gateway, line.currency) == (today, Gateway.RAZORPAY, "INR")
    assert (line.captured, line.captures, line.refunded, line.refunds) == (9_000, 1, 2_000, 1)
    assert (line.disputed_withdrawn, line.dispute_withdrawals) == (7_000, 1)
    assert (line.disputed_reinstated, line.dispute_reinstatements) == (7_000, 1)
    assert line.net == 9_000 - 2_000
    assert await reports.daily_totals(pool, today, today, currency="USD") == []
    assert await reports.daily_totals(pool, today, today, gateway=Gateway.STRIPE) == []


async def test_the_migration_counts_the_postings_made_before_it(pool: asyncpg.Pool) -> None:
    until = datetime(2026, 11, 30, tzinfo=UTC)
    await history.write(pool, history.generate(300, days=10, until=until))
    expected = await reports.daily_totals(pool, date(2026, 11, 1), date(2026, 11, 30))
    await pool.execute(
        """
        DROP TRIGGER ledger_daily_add ON ledger_entries;
        DROP FUNCTION ledger_daily_add();
        DROP TABLE ledger_daily;
        DELETE FROM schema_migrations WHERE version = '031_ledger_daily.sql';
        """
    )

    assert await apply_migrations(pool) == ["031_ledger_daily.sql"]
    assert (
        expected
        and await reports.daily_totals(pool, date(2026, 11, 1), date(2026, 11, 30)) == expected
    )


async def test_concurrent_captures_are_all_counted(pool: asyncpg.Pool) -> None:
    await pool.executemany(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id)
        VALUES ($1, $1, $1, 'c_1', 'stripe', 'automatic', $2, 'USD', 'authorized', $1)
        """,
        [(f"pay_{i}", 100 + i) for i in range(40)],
    )

    await asyncio.gather(
        *(
            payments.record_checkout_step(
                pool, capture_record(f"pay_{i}", Gateway.STRIPE, f"ch_{i}", 100 + i, "USD")
            )
            for i in range(40)
        )
    )

    today = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    [line] = await reports.daily_totals(pool, today, today)
    assert (line.captures, line.captured) == (40, sum(100 + i for i in range(40)))
