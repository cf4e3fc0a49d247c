"""The ledger lookups that route a gateway event to its workflow. Only the ledger decides: ids a
payer could set (Razorpay payment notes, metadata) are never trusted to name a workflow."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.checkout import PaymentStatus


@dataclass(frozen=True)
class CheckoutOf:
    workflow_id: str
    payment_id: str
    status: PaymentStatus
    gateway_charge_id: str | None
    capture_requested: bool
    left_for: str | None = None
    """A gateway payment its checkout left for another gateway: the checkout's payment id."""


async def checkout_of(
    pool: asyncpg.Pool, gateway: str, gateway_payment_id: str
) -> CheckoutOf | None:
    """The checkout that created this gateway payment (recorded before any client saw it)."""
    row = await pool.fetchrow(
        "SELECT workflow_id, payment_id, status, gateway_charge_id,"
        " capture_requested_at IS NOT NULL AS capture_requested, left_for FROM payments"
        " WHERE gateway = $1 AND gateway_payment_id = $2",
        gateway,
        gateway_payment_id,
    )
    if row is None:
        return None
    return CheckoutOf(
        row["workflow_id"],
        row["payment_id"],
        PaymentStatus(row["status"]),
        row["gateway_charge_id"],
        row["capture_requested"],
        row["left_for"],
    )


async def own_refund_workflow(
    pool: asyncpg.Pool,
    gateway: str,
    refund_id: str,
    gateway_payment_id: str | None,
    gateway_charge_id: str | None,
) -> str | None:
    """Our refund `refund_id`, if the ledger has it as a refund of the payment the gateway's
    refund belongs to (Stripe: its PaymentIntent; Razorpay: its payment)."""
    workflow_id: str | None = await pool.fetchval(
        """
        SELECT r.workflow_id FROM refunds r JOIN payments p USING (payment_id)
        WHERE r.refund_id = $1 AND r.gateway = $2
          AND (p.gateway_payment_id = $3 OR p.gateway_charge_id = $4)
        """,
        refund_id, gateway, gateway_payment_id, gateway_charge_id,
    )  # fmt: skip
    return workflow_id


async def refund_workflow(pool: asyncpg.Pool, gateway: str, gateway_refund_id: str) -> str | None:
    """The workflow already recording this gateway refund."""
    workflow_id: str | None = await pool.fetchval(
        "SELECT workflow_id FROM refunds WHERE gateway = $1 AND gateway_refund_id = $2",
        gateway,
        gateway_refund_id,
    )
    return workflow_id


async def refund_settled(pool: asyncpg.Pool, workflow_id: str) -> bool:
    """Whether the refund a workflow records is final in the ledger."""
    settled = await pool.fetchval(
        "SELECT status IN ('succeeded', 'failed', 'canceled') FROM refunds WHERE workflow_id = $1",
        workflow_id,
    )
    return bool(settled)


async def refunded_payment(
    pool: asyncpg.Pool,
    gateway: str,
    gateway_payment_id: str | None,
    gateway_charge_id: str | None,
) -> str | None:
    """Our payment a gateway refund belongs to, if we took it."""
    payment_id: str | None = await pool.fetchval(
        """
        SELECT payment_id FROM payments
        WHERE gateway = $1 AND (gateway_payment_id = $2 OR gateway_charge_id = $3)
        """,
        gateway, gateway_payment_id, gateway_charge_id,
    )  # fmt: skip
    return payment_id
