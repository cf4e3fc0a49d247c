"""Payments in the ledger: the checkout's writes (the payment row, each step with its attempt,
audit line and balanced postings) and the reads the API serves once a checkout has closed."""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg
from temporalio.exceptions import ApplicationError

from db import marketplace
from domain import names
from domain.checkout import (
    CheckoutRecord,
    CheckoutState,
    CheckoutStep,
    LeftGatewayPayment,
    NewCheckout,
    PaymentAttempt,
    PaymentInstructions,
    PaymentStatus,
)
from domain.money import format_amount


async def record_new_checkout(pool: asyncpg.Pool, new: NewCheckout) -> None:
    """Insert the checkout's payment row and its first audit line; a retry (or a second run)
    changes nothing."""
    r = new.request
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """
            INSERT INTO payments (payment_id, order_id, attempt, workflow_id, customer_id,
                                  customer_email, gateway, capture_mode, amount, currency, status,
                                  metadata)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'created', $11::jsonb)
            ON CONFLICT (payment_id) DO NOTHING RETURNING true
            """,
            new.checkout_id, r.order_id, r.attempt, new.workflow_id, r.customer_id,
            r.customer_email, r.gateway.value, r.capture_mode.value, r.amount, r.currency,
            json.dumps(r.metadata),
        )  # fmt: skip
        if inserted and r.splits is not None:
            await marketplace.record_payout_plan(conn, new.checkout_id, r.splits, r.release_at)
        if inserted:
            await conn.execute(
                """
                INSERT INTO audit_log (payment_id, record_key, step, status, detail)
                VALUES ($1, $2, 'checkout_created', 'created', $3)
                ON CONFLICT (record_key) DO NOTHING
                """,
                new.checkout_id, f"{new.checkout_id}:checkout_created",
                f"{format_amount(r.amount, r.currency)} via {r.gateway}",
            )  # fmt: skip


async def move_checkout(pool: asyncpg.Pool, checkout_id: str, gateway: str) -> None:
    """A checkout failed over to `gateway` before any gateway payment of it was recorded: its
    webhooks are routed by this gateway from now on."""
    await pool.execute(
        "UPDATE payments SET gateway = $2, updated_at = now()"
        " WHERE payment_id = $1 AND gateway <> $2 AND gateway_payment_id IS NULL",
        checkout_id, gateway,
    )  # fmt: skip


async def record_checkout_steps(pool: asyncpg.Pool, records: list[CheckoutRecord]) -> None:
    """Several steps, in order, each applied once (by its record key)."""
    for record in records:
        await record_checkout_step(pool, record)


async def mark_capture_requested(pool: asyncpg.Pool, checkout_id: str) -> None:
    """The saga is about to capture: its webhook echo changes nothing (api.event_routing)."""
    await pool.execute(
        "UPDATE payments SET capture_requested_at = now()"
        " WHERE payment_id = $1 AND capture_requested_at IS NULL",
        checkout_id,
    )


async def record_checkout_step(pool: asyncpg.Pool, record: CheckoutRecord) -> None:
    """Apply one state change: status, gateway ids, amounts, attempt, audit and postings."""
    if sum(line.amount for line in record.postings) != 0:
        raise ApplicationError(
            f"unbalanced posting {record.record_key}", type="unbalanced_posting",
            non_retryable=True,
        )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """
            INSERT INTO audit_log (payment_id, record_key, step, status, detail)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (record_key) DO NOTHING RETURNING id
            """,
            record.checkout_id, record.record_key, record.step, record.status.value,
            record.detail,
        )  # fmt: skip
        if inserted is None:
            return  # already applied by an earlier attempt of this activity
        if record.left is not None:
            await _leave_gateway_payment(conn, record.checkout_id, record.left)
        currency = await conn.fetchval(
            """
            UPDATE payments SET status = CASE
                    -- a recorded fact in conflict (an observed refund) waits for an operator
                    WHEN status = 'needs_review' AND EXISTS (
                        SELECT 1 FROM reconciliation_flags f
                        WHERE f.payment_id = payments.payment_id AND f.resolved_at IS NULL
                          AND f.run_id = 'observed_refund') THEN status
                    -- refunds the ledger already holds (observed while the capture was unknown)
                    WHEN $2 = 'captured' AND amount_refunded > 0 THEN CASE
                        WHEN amount_refunded >= COALESCE($5, amount_captured) THEN 'refunded'
                        ELSE 'partially_refunded' END
                    ELSE $2 END,
                gateway_payment_id = COALESCE($3, gateway_payment_id),
                gateway_charge_id = COALESCE($4, gateway_charge_id),
                amount_captured = COALESCE($5, amount_captured),
                amount_refunded = COALESCE($6, amount_refunded),
                last_error = COALESCE($7, last_error),
                updated_at = now()
            WHERE payment_id = $1 RETURNING currency
            """,
            record.checkout_id, record.status.value, record.gateway_payment_id,
            record.gateway_charge_id, record.amount_captured, record.amount_refunded,
            record.last_error,
        )  # fmt: skip
        if currency is None:
            raise ApplicationError(
                f"no payment {record.checkout_id}", type="unknown_payment", non_retryable=True
            )
        if record.attempt is not None:
            a = record.attempt
            await conn.execute(
                """
                INSERT INTO payment_attempts (payment_id, record_key, gateway_attempt_id,
                                              outcome, error_code, error_message, at)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                """,
                record.checkout_id, record.record_key, a.gateway_attempt_id, a.outcome,
                a.error_code, a.error_message, a.at,
            )  # fmt: skip
        if record.postings:
            await conn.executemany(
                """
                INSERT INTO ledger_entries (payment_id, record_key, account, amount, currency)
                VALUES ($1, $2, $3, $4, $5)
                """,
                [
                    (record.checkout_id, record.record_key, line.account, line.amount, currency)
                    for line in record.postings
                ],
            )


async def _leave_gateway_payment(
    conn: asyncpg.Connection, checkout_id: str, left: LeftGatewayPayment
) -> None:
    """The checkout leaves its gateway payment for another gateway: the payment keeps a row of
    its own (ended `canceled`, `left_for` the checkout), so what that gateway takes on it later is
    routed there as a late payment and given back; the checkout's row moves to the next gateway,
    with no gateway payment until the create there records one. One transaction with the step."""
    left_id = names.checkout_id_for(left.key)
    moved = await conn.fetchval(
        """
        WITH left_payment AS (
            INSERT INTO payments (payment_id, order_id, attempt, workflow_id, customer_id,
                                  customer_email, gateway, capture_mode, amount, currency, status,
                                  gateway_payment_id, gateway_charge_id, metadata, last_error,
                                  left_for)
            SELECT $2, order_id, attempt, $3, customer_id, customer_email, gateway, capture_mode,
                   amount, currency, 'canceled', gateway_payment_id, gateway_charge_id, metadata,
                   $6, payment_id
            FROM payments
            WHERE payment_id = $1 AND gateway = $4 AND gateway_payment_id = $5
            RETURNING left_for
        )
        UPDATE payments SET gateway = $7, gateway_payment_id = NULL, gateway_charge_id = NULL,
            updated_at = now()
        WHERE payment_id = (SELECT left_for FROM left_payment) RETURNING true
        """,
        checkout_id, left_id, left.key, left.gateway.value, left.gateway_payment_id,
        f"left for {left.moved_to} by checkout {checkout_id}", left.moved_to.value,
    )  # fmt: skip
    if not moved:
        raise ApplicationError(
            f"checkout {checkout_id} holds no {left.gateway} payment {left.gateway_payment_id}",
            type="unknown_payment", non_retryable=True,
        )  # fmt: skip
    await conn.execute(
        """
        INSERT INTO audit_log (payment_id, record_key, step, status, detail)
        VALUES ($1, $2, 'left_for_another_gateway', 'canceled', $3)
        """,
        left_id, f"{left_id}:left",
        f"{left.gateway} {left.gateway_payment_id} left by checkout {checkout_id} for"
        f" {left.moved_to}; money taken here later is given back",
    )  # fmt: skip


@dataclass(frozen=True)
class CheckoutOwner:
    workflow_id: str
    customer_id: str


async def find_checkout(pool: asyncpg.Pool, checkout_id: str) -> CheckoutOwner | None:
    row = await pool.fetchrow(
        "SELECT workflow_id, customer_id FROM payments WHERE payment_id = $1", checkout_id
    )
    return CheckoutOwner(row["workflow_id"], row["customer_id"]) if row else None


async def checkout_state(pool: asyncpg.Pool, checkout_id: str) -> CheckoutState | None:
    """A checkout as the ledger holds it, for when its workflow has closed."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM payments WHERE payment_id = $1", checkout_id)
        if row is None:
            return None
        attempts = await conn.fetch(
            "SELECT * FROM payment_attempts WHERE payment_id = $1 ORDER BY id", checkout_id
        )
        steps = await conn.fetch(
            "SELECT * FROM audit_log WHERE payment_id = $1 ORDER BY id", checkout_id
        )
    history = [
        CheckoutStep(
            at=s["at"], step=s["step"], status=PaymentStatus(s["status"]), detail=s["detail"]
        )
        for s in steps
    ]
    authorized = any(s.status is PaymentStatus.AUTHORIZED for s in history)
    return CheckoutState(
        checkout_id=row["payment_id"],
        workflow_id=row["workflow_id"],
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        gateway=row["gateway"],
        capture_mode=row["capture_mode"],
        amount=row["amount"],
        currency=row["currency"],
        status=PaymentStatus(row["status"]),
        idempotency_key="",
        amount_authorized=row["amount"] if authorized else 0,
        amount_captured=row["amount_captured"],
        amount_refunded=row["amount_refunded"],
        gateway_payment_id=row["gateway_payment_id"],
        gateway_charge_id=row["gateway_charge_id"],
        instructions=PaymentInstructions(),
        attempts=[
            PaymentAttempt(
                at=a["at"],
                gateway_attempt_id=a["gateway_attempt_id"],
                outcome=a["outcome"],
                error_code=a["error_code"],
                error_message=a["error_message"],
            )
            for a in attempts
        ],
        history=history,
        last_error=row["last_error"],
        attempt=row["attempt"],
    )


@dataclass(frozen=True)
class OrderAttempt:
    checkout_id: str
    attempt: int
    status: PaymentStatus


async def latest_attempt(pool: asyncpg.Pool, order_id: str) -> OrderAttempt | None:
    """The order's most recent checkout, if it has one."""
    row = await pool.fetchrow(
        "SELECT payment_id, attempt, status FROM payments WHERE order_id = $1"
        " AND left_for IS NULL ORDER BY attempt DESC LIMIT 1",
        order_id,
    )
    if row is None:
        return None
    return OrderAttempt(row["payment_id"], row["attempt"], PaymentStatus(row["status"]))


async def payment_currency(pool: asyncpg.Pool, payment_id: str) -> str | None:
    currency: str | None = await pool.fetchval(
        "SELECT currency FROM payments WHERE payment_id = $1", payment_id
    )
    return currency
