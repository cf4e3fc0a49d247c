"""Which payments and refunds the reconciler asks the gateways about, against PostgreSQL: each
status's own threshold, the most urgent first, and a backlog that cannot starve unknown outcomes."""

from __future__ import annotations

import asyncpg
import pytest

from activities.reconcile import ReconcileActivities
from db.migrate import apply_migrations
from domain.reconcile import ObjectKind, ReconcileRequest

THRESHOLDS = {
    "unknown": 60,
    "processing": 10 * 60,
    "pending": 15 * 60,
    "created": 30 * 60,
    "requires_action": 30 * 60,
    "authorized": 30 * 60,
    "needs_review": 60 * 60,
}


@pytest.fixture
async def ledger(pool: asyncpg.Pool) -> asyncpg.Pool:
    await apply_migrations(pool)
    return pool


async def seed_payments(pool: asyncpg.Pool, prefix: str, status: str, count: int, age: str) -> None:
    """`count` payments in `status`, last changed `age` ago."""
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id,
                              amount_captured, updated_at)
        SELECT $1 || n, 'order-' || $1 || n, 'checkout-order-' || $1 || n, 'c_1', 'stripe',
               'automatic', 2500, 'USD', $2, 'pi_' || $1 || n,
               CASE WHEN $2 IN ('captured', 'refunded') THEN 2500 ELSE 0 END,
               now() - $4::text::interval
        FROM generate_series(1, $3) AS n
        """,
        prefix, status, count, age,
    )  # fmt: skip


async def seed_refund(pool: asyncpg.Pool, refund_id: str, status: str, age: str) -> None:
    await pool.execute(
        """
        INSERT INTO refunds (refund_id, payment_id, workflow_id, gateway, amount, currency,
                             status, reason, mode, gateway_refund_id, idempotency_key, updated_at)
        VALUES ($1, 'paid1', 'refund-paid1-' || $1, 'stripe', 100, 'USD', $2, 'other', 'own',
                're_' || $1, $1, now() - $3::text::interval)
        """,
        refund_id, status, age,
    )  # fmt: skip


async def candidates(pool: asyncpg.Pool) -> list[tuple[ObjectKind, str, str]]:
    found = await ReconcileActivities(pool, {}, THRESHOLDS, 24).find_reconciliation_candidates(
        ReconcileRequest()
    )
    return [(c.kind, c.object_id, c.ledger_status) for c in found]


async def test_unknown_outcomes_are_picked_before_a_backlog_of_waiting_authorizations(
    ledger: asyncpg.Pool,
) -> None:
    await seed_payments(ledger, "auth", "authorized", 600, "2 hours")
    await seed_payments(ledger, "unk", "unknown", 3, "5 minutes")

    found = await candidates(ledger)

    assert found[:3] == [(ObjectKind.PAYMENT, f"unk{n}", "unknown") for n in (1, 2, 3)]
    assert 3 < len(found) <= 500  # still a bounded batch; the backlog waits for the next run


async def test_each_status_waits_for_its_own_threshold(ledger: asyncpg.Pool) -> None:
    await seed_payments(ledger, "fresh-auth", "authorized", 1, "20 minutes")  # 30 min threshold
    await seed_payments(ledger, "stale-proc", "processing", 1, "11 minutes")  # 10 min threshold
    await seed_payments(ledger, "fresh-unk", "unknown", 1, "30 seconds")  # 1 min threshold

    assert await candidates(ledger) == [(ObjectKind.PAYMENT, "stale-proc1", "processing")]


async def test_the_most_urgent_come_first_and_closed_ones_last(ledger: asyncpg.Pool) -> None:
    await seed_payments(ledger, "closed", "captured", 1, "3 hours")
    await seed_payments(ledger, "auth", "authorized", 1, "2 hours")
    await seed_payments(ledger, "proc", "processing", 1, "1 hour")
    await seed_payments(ledger, "unk", "unknown", 1, "10 minutes")
    await seed_payments(ledger, "paid", "captured", 1, "40 hours")  # outside the lookback
    await seed_refund(ledger, "succeeded", "succeeded", "3 hours")
    await seed_refund(ledger, "action", "requires_action", "2 hours")
    await seed_refund(ledger, "pending", "pending", "1 hour")
    await seed_refund(ledger, "young", "pending", "5 minutes")  # 15 min threshold

    assert await candidates(ledger) == [
        (ObjectKind.PAYMENT, "unk1", "unknown"),
        (ObjectKind.PAYMENT, "proc1", "processing"),
        (ObjectKind.PAYMENT, "auth1", "authorized"),
        (ObjectKind.PAYMENT, "closed1", "captured"),
        (ObjectKind.REFUND, "pending", "pending"),
        (ObjectKind.REFUND, "action", "requires_action"),
        (ObjectKind.REFUND, "succeeded", "succeeded"),
    ]
