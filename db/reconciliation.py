"""Reconciliation in the ledger: which payments and refunds may have drifted, what the reconciler
found, and the runs and open flags operators read. Nothing here changes money state."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import asyncpg

from domain import names
from domain.checkout import ENDED_WITHOUT_MONEY, Gateway, GatewayPaymentRef
from domain.reconcile import Candidate, Flag, ObjectKind, ReconcileReport

# Statuses whose money is at the gateway (captured, maybe partly refunded or disputed) versus
# statuses in which we never took money.
MONEY_TAKEN = frozenset({"captured", "partially_refunded", "refunded", "disputed", "dispute_lost"})
NOTHING_TAKEN = frozenset(status.value for status in ENDED_WITHOUT_MONEY)
OPEN_REFUND = frozenset({"pending", "requires_action"})
CANDIDATE_LIMIT = 500


async def candidate_rows(
    pool: asyncpg.Pool,
    payment_id: str | None,
    stale_after_seconds: Mapping[str, int],
    lookback: timedelta,
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """One payment and its refunds; or every open object not changed for its status's threshold
    (a status without one waits for the smallest), and every closed one changed within
    `lookback` that no run has checked since. The most urgent come first and a batch is bounded:
    unknown outcomes, then processing or pending ones, then the other open ones, then the closed
    ones, so a backlog of authorizations waiting for their customers cannot starve them."""
    thresholds = json.dumps(dict(stale_after_seconds))
    smallest = min(stale_after_seconds.values(), default=0)
    payments = await pool.fetch(
        """
        SELECT * FROM payments
        WHERE gateway_payment_id IS NOT NULL AND (
            payment_id = $1 OR ($1 IS NULL AND (
                (status <> ALL($2::text[]) AND updated_at < now() - make_interval(
                    secs => COALESCE(($3::jsonb ->> status)::float8, $4)))
             OR (status = ANY($2::text[]) AND updated_at > now() - $5::interval
                 AND (reconciled_at IS NULL OR reconciled_at < updated_at)))))
        ORDER BY CASE WHEN status = 'unknown' THEN 0
                      WHEN status = 'processing' THEN 1
                      WHEN status <> ALL($2::text[]) THEN 2
                      ELSE 3 END,
                 updated_at
        LIMIT $6
        """,
        payment_id, sorted(MONEY_TAKEN | NOTHING_TAKEN), thresholds, smallest, lookback,
        CANDIDATE_LIMIT,
    )  # fmt: skip
    refunds = await pool.fetch(
        """
        SELECT r.*, p.gateway_payment_id, p.gateway_charge_id
        FROM refunds r JOIN payments p USING (payment_id)
        WHERE r.gateway_refund_id IS NOT NULL AND (
            r.payment_id = $1 OR ($1 IS NULL AND (
                (r.status = ANY($2::text[]) AND r.updated_at < now() - make_interval(
                    secs => COALESCE(($3::jsonb ->> r.status)::float8, $4)))
             OR (r.status <> ALL($2::text[]) AND r.updated_at > now() - $5::interval
                 AND (r.reconciled_at IS NULL OR r.reconciled_at < r.updated_at)))))
        ORDER BY CASE WHEN r.status = 'pending' THEN 1
                      WHEN r.status = ANY($2::text[]) THEN 2
                      ELSE 3 END,
                 r.updated_at
        LIMIT $6
        """,
        payment_id, sorted(OPEN_REFUND), thresholds, smallest, lookback, CANDIDATE_LIMIT,
    )  # fmt: skip
    return list(payments), list(refunds)


async def transfer_rows(
    pool: asyncpg.Pool, payment_id: str | None, lookback: timedelta
) -> list[asyncpg.Record]:
    """One payment's transfers; or every transfer the gateway has that is still held, or that
    changed within `lookback` and no run has checked since. Each with the seller's account and
    what of its reversals went through the gateway (a reversal while Stripe's platform still
    held the share moved only in the ledger)."""
    rows = await pool.fetch(
        """
        SELECT t.*, s.gateway_account_id,
               COALESCE((SELECT sum(r.amount) FROM transfer_reversals r
                         WHERE r.transfer_id = t.transfer_id
                           AND r.gateway_reversal_id IS NOT NULL), 0)::bigint AS reversed_at_gateway
        FROM transfers t JOIN sellers s USING (seller_id)
        WHERE t.gateway_transfer_id IS NOT NULL AND (
            t.payment_id = $1 OR ($1 IS NULL AND (
                t.status = 'held'
             OR (t.updated_at > now() - $2::interval
                 AND (t.reconciled_at IS NULL OR t.reconciled_at < t.updated_at)))))
        ORDER BY t.updated_at
        LIMIT $3
        """,
        payment_id, lookback, CANDIDATE_LIMIT,
    )  # fmt: skip
    return list(rows)


def transfer_candidate(row: asyncpg.Record) -> Candidate:
    """What the gateway should say of a transfer, from the ledger: it transferred the share less
    what was taken back before it reached the gateway, has reversed what went through it, pays
    the seller's account, and (where the gateway can hold transfers) holds it until released."""
    gateway = Gateway(row["gateway"])
    reversed_at_gateway = row["reversed_at_gateway"]
    taken_back_before = row["amount_reversed"] - reversed_at_gateway
    return Candidate(
        kind=ObjectKind.TRANSFER,
        object_id=row["transfer_id"],
        payment_id=row["payment_id"],
        workflow_id=names.payout_workflow_id(row["payment_id"]),
        gateway=gateway,
        ledger_status=row["status"],
        amount=row["amount"] - taken_back_before,
        currency=row["currency"].strip(),
        gateway_transfer_id=row["gateway_transfer_id"],
        destination=row["gateway_account_id"],
        amount_reversed=reversed_at_gateway,
        on_hold=row["released_at"] is None,
        closed=True,  # the payout is never signalled: a disagreement is an operator's
    )


def payment_candidate(row: asyncpg.Record) -> Candidate:
    gateway = Gateway(row["gateway"])
    return Candidate(
        kind=ObjectKind.PAYMENT,
        object_id=row["payment_id"],
        payment_id=row["payment_id"],
        workflow_id=row["workflow_id"],
        gateway=gateway,
        ledger_status=row["status"],
        amount=row["amount"],
        currency=row["currency"].strip(),
        amount_captured=row["amount_captured"],
        amount_refunded=row["amount_refunded"],
        amount_refund_pending=row["amount_refund_pending"],
        payment_ref=GatewayPaymentRef(
            gateway=gateway,
            gateway_payment_id=row["gateway_payment_id"],
            gateway_charge_id=row["gateway_charge_id"],
        ),
        closed=row["status"] in MONEY_TAKEN | NOTHING_TAKEN,
    )


def refund_candidate(row: asyncpg.Record) -> Candidate:
    return Candidate(
        kind=ObjectKind.REFUND,
        object_id=row["refund_id"],
        payment_id=row["payment_id"],
        workflow_id=row["workflow_id"],
        gateway=Gateway(row["gateway"]),
        ledger_status=row["status"],
        amount=row["amount"],
        currency=row["currency"].strip(),
        gateway_refund_id=row["gateway_refund_id"],
        closed=row["status"] not in OPEN_REFUND,
    )


async def mark_reconciled(pool: asyncpg.Pool, candidate: Candidate) -> None:
    """The gateway agrees: the object needs no look until it changes again."""
    if candidate.kind is ObjectKind.PAYMENT:
        await pool.execute(
            "UPDATE payments SET reconciled_at = now() WHERE payment_id = $1", candidate.object_id
        )
    elif candidate.kind is ObjectKind.REFUND:
        await pool.execute(
            "UPDATE refunds SET reconciled_at = now() WHERE refund_id = $1", candidate.object_id
        )
    else:
        await pool.execute(
            "UPDATE transfers SET reconciled_at = now() WHERE transfer_id = $1",
            candidate.object_id,
        )


async def flag(pool: asyncpg.Pool, flag: Flag) -> None:
    """Leave a closed object's disagreement to an operator: recorded once, with an audit line."""
    c = flag.candidate
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO reconciliation_flags (run_id, object_kind, object_id, payment_id,
                                              ledger_status, gateway_status, detail)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (object_kind, object_id, ledger_status, gateway_status) DO NOTHING
            """,
            flag.run_id, c.kind.value, c.object_id, c.payment_id, c.ledger_status,
            flag.gateway_status, flag.detail,
        )  # fmt: skip
        await conn.execute(
            """
            INSERT INTO audit_log (payment_id, record_key, step, status, detail)
            SELECT $1, $2, 'reconciliation_flagged', status, $3 FROM payments
            WHERE payment_id = $1 ON CONFLICT (record_key) DO NOTHING
            """,
            c.payment_id, f"{flag.run_id}:{c.kind}:{c.object_id}:flag", flag.detail,
        )  # fmt: skip


async def record_run(pool: asyncpg.Pool, report: ReconcileReport) -> None:
    await pool.execute(
        """
        INSERT INTO reconciliation_runs (run_id, trigger, started_at, finished_at, checked,
                                         changed, flagged, unreachable)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING
        """,
        report.run_id, report.trigger, report.started_at, report.finished_at,
        report.checked, report.changed, report.flagged, report.unreachable,
    )  # fmt: skip


async def recent_runs(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM reconciliation_runs ORDER BY started_at DESC LIMIT $1", limit
        )
    )


async def open_flags(pool: asyncpg.Pool, limit: int = 500) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM reconciliation_flags WHERE resolved_at IS NULL"
            " ORDER BY flagged_at DESC LIMIT $1",
            limit,
        )
    )
