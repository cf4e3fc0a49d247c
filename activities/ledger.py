"""Ledger activities: the only writers of payments, attempts, ledger entries and the audit log."""

from __future__ import annotations

import json

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.checkout import CheckoutRecord, NewCheckout


class LedgerActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_new_checkout(self, new: NewCheckout) -> None:
        """Insert the checkout's payment row; a retry (or a second run) changes nothing."""
        r = new.request
        await self._pool.execute(
            """
            INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, customer_email,
                                  gateway, capture_mode, amount, currency, status, metadata)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'created', $10::jsonb)
            ON CONFLICT (payment_id) DO NOTHING
            """,
            new.checkout_id, r.order_id, new.workflow_id, r.customer_id, r.customer_email,
            r.gateway.value, r.capture_mode.value, r.amount, r.currency, json.dumps(r.metadata),
        )  # fmt: skip

    @activity.defn
    async def record_checkout_step(self, record: CheckoutRecord) -> None:
        """Apply one state change: status, gateway ids, amounts, attempt, audit and postings."""
        if sum(line.amount for line in record.postings) != 0:
            raise ApplicationError(
                f"unbalanced posting {record.record_key}", type="unbalanced_posting",
                non_retryable=True,
            )  # fmt: skip
        async with self._pool.acquire() as conn, conn.transaction():
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
            currency = await conn.fetchval(
                """
                UPDATE payments SET status = $2,
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
