"""Reads a checkout back from the ledger, for when its workflow has closed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.checkout import (
    CheckoutState,
    CheckoutStep,
    PaymentAttempt,
    PaymentInstructions,
    PaymentStatus,
)


@dataclass(frozen=True)
class CheckoutOwner:
    workflow_id: str
    customer_id: str


async def find_checkout(pool: asyncpg.Pool, checkout_id: str) -> CheckoutOwner | None:
    row = await pool.fetchrow(
        "SELECT workflow_id, customer_id FROM payments WHERE payment_id = $1", checkout_id
    )
    return CheckoutOwner(row["workflow_id"], row["customer_id"]) if row else None


async def checkout_from_ledger(pool: asyncpg.Pool, *, checkout_id: str) -> CheckoutState | None:
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
    )
