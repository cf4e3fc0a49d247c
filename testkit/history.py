"""Generated payment history for the history tests and benchmark: payments with captures,
refunds and disputes, written in bulk with the ledger's own account scheme (the postings
db/payments.py, db/refunds.py and db/disputes.py make), so the `ledger_daily` trigger sees what
it would see in production. Deterministic for a given seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

CURRENCIES = {"stripe": ("USD", "EUR", "JPY"), "razorpay": ("INR",)}


@dataclass
class GeneratedHistory:
    payments: list[tuple[object, ...]] = field(default_factory=list)
    refunds: list[tuple[object, ...]] = field(default_factory=list)
    disputes: list[tuple[object, ...]] = field(default_factory=list)
    postings: list[tuple[object, ...]] = field(default_factory=list)


def generate(
    count: int,
    *,
    start: int = 0,
    customers: int = 1_000,
    days: int = 30,
    until: datetime,
    seed: int = 20,
) -> GeneratedHistory:
    """`count` payments numbered from `start`, created over the `days` before `until`: about 70 %
    captured (of which 10 % refunded, in part or whole, and 2 % disputed, half of those won), the
    rest failed, expired or still open."""
    rng = random.Random(seed + start)
    out = GeneratedHistory()
    span = days * 86_400
    for i in range(start, start + count):
        payment_id = f"pay_{i:024x}"
        gateway = "razorpay" if rng.random() < 0.3 else "stripe"
        currency = rng.choice(CURRENCIES[gateway])
        amount = rng.randrange(100, 500_000)
        created = until - timedelta(seconds=rng.uniform(0, span))
        roll = rng.random()
        status = (
            "captured" if roll < 0.7
            else "failed" if roll < 0.8
            else "expired" if roll < 0.9
            else "created"
        )  # fmt: skip
        captured = refunded = 0
        disputed = False
        gateway_id = f"pi_{i:020x}" if gateway == "stripe" else f"order_{i:014x}"
        charge_id = None
        updated = created
        if status == "captured":
            captured = amount
            charge_id = f"ch_{i:020x}" if gateway == "stripe" else f"pay_{i:014x}"
            at = min(until, created + timedelta(seconds=rng.uniform(5, 600)))
            updated = at
            key = f"{payment_id}:captured"
            out.postings += [
                (payment_id, key, f"gateway:{gateway}", amount, currency, at),
                (payment_id, key, "merchant:sales", -amount, currency, at),
            ]
            if rng.random() < 0.10:
                refunded = amount if rng.random() < 0.5 else rng.randrange(1, amount)
                refund_id = f"rfd_{i:024x}"
                at = min(until, at + timedelta(seconds=rng.uniform(60, 5 * 86_400)))
                updated = at
                out.refunds.append(
                    (refund_id, payment_id, f"refund-{payment_id}-{i}", gateway, refunded,
                     currency, "succeeded", "requested_by_customer", "own", f"re_{i:020x}",
                     f"key-{i}", at, at)
                )  # fmt: skip
                key = f"{refund_id}:succeeded"
                out.postings += [
                    (payment_id, key, "merchant:refunds", refunded, currency, at),
                    (payment_id, key, f"gateway:{gateway}", -refunded, currency, at),
                ]
                status = "refunded" if refunded == amount else "partially_refunded"
            elif rng.random() < 0.02:
                disputed = True
                dispute_id = f"dsp_{i:024x}"
                opened = min(until, at + timedelta(seconds=rng.uniform(3_600, 10 * 86_400)))
                key = f"{dispute_id}:opened"
                out.postings += [
                    (payment_id, key, "merchant:disputes", amount, currency, opened),
                    (payment_id, key, f"gateway:{gateway}", -amount, currency, opened),
                ]
                won = rng.random() < 0.5
                withdrawn = amount
                closed = min(until, opened + timedelta(seconds=rng.uniform(3_600, 5 * 86_400)))
                if won:
                    key = f"{dispute_id}:won"
                    out.postings += [
                        (payment_id, key, "merchant:disputes", -amount, currency, closed),
                        (payment_id, key, f"gateway:{gateway}", amount, currency, closed),
                    ]
                    withdrawn = 0
                out.disputes.append(
                    (dispute_id, gateway, f"dp_{i:020x}", payment_id, gateway_id,
                     f"dispute-{gateway}-dp_{i:020x}", amount, currency, "fraudulent",
                     "chargeback", "won" if won else "lost", withdrawn, opened, closed)
                )  # fmt: skip
                status = "captured" if won else "dispute_lost"
                updated = closed
        out.payments.append(
            (payment_id, f"order-{i:08d}", 1, f"checkout-order-{i:08d}", f"c_{i % customers}",
             gateway, "automatic", amount, currency, status, gateway_id, charge_id, captured,
             refunded, disputed, created, updated)
        )  # fmt: skip
    return out


async def write(pool: asyncpg.Pool, history: GeneratedHistory) -> None:
    """Copy the generated rows in one transaction (the postings through the ledger's trigger)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "payments", records=history.payments,
            columns=["payment_id", "order_id", "attempt", "workflow_id", "customer_id", "gateway",
                     "capture_mode", "amount", "currency", "status", "gateway_payment_id",
                     "gateway_charge_id", "amount_captured", "amount_refunded", "disputed",
                     "created_at", "updated_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "refunds", records=history.refunds,
            columns=["refund_id", "payment_id", "workflow_id", "gateway", "amount", "currency",
                     "status", "reason", "mode", "gateway_refund_id", "idempotency_key",
                     "created_at", "updated_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "disputes", records=history.disputes,
            columns=["dispute_id", "gateway", "gateway_dispute_id", "payment_id",
                     "gateway_payment_id", "workflow_id", "amount", "currency", "reason", "stage",
                     "status", "amount_withdrawn", "created_at", "updated_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "ledger_entries", records=history.postings,
            columns=["payment_id", "record_key", "account", "amount", "currency", "created_at"],
        )  # fmt: skip
