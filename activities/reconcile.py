"""Reconciliation activities: find what may have drifted, ask the gateway, record what disagrees.

They never change money state: a disagreement goes to the owning workflow (by the reconcile
workflow's signal) or, when that workflow has closed, to an operator as a flag."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateways.base import PaymentGateway
from domain.checkout import Gateway, GatewayPaymentRef, PaymentStatus
from domain.reconcile import (
    Candidate,
    CheckResult,
    Flag,
    ObjectKind,
    ReconcileReport,
    ReconcileRequest,
)
from domain.refund import GatewayRefundRef, RefundStatus

# Statuses whose money is at the gateway (captured, maybe partly refunded or disputed) versus
# statuses in which we never took money.
MONEY_TAKEN = frozenset({"captured", "partially_refunded", "refunded", "disputed", "dispute_lost"})
NOTHING_TAKEN = frozenset({"voided", "expired", "canceled", "failed"})
# How each open payment status may legitimately look at the gateway while the saga works.
OPEN_AGREEING = {
    "created": {
        PaymentStatus.CREATED,
        PaymentStatus.PROCESSING,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.FAILED,
    },
    "requires_action": {PaymentStatus.REQUIRES_ACTION, PaymentStatus.CREATED},
    "processing": {PaymentStatus.PROCESSING},
    "authorized": {PaymentStatus.AUTHORIZED},
    "needs_review": {PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED},
    "unknown": set(),  # an unknown outcome always goes back to its saga
}
OPEN_REFUND = frozenset({RefundStatus.PENDING.value, RefundStatus.REQUIRES_ACTION.value})
CANDIDATE_LIMIT = 500


class ReconcileActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        gateways: Mapping[Gateway, PaymentGateway],
        stale_after_seconds: Mapping[str, int],
        lookback_hours: int,
    ) -> None:
        self._pool = pool
        self._gateways = gateways
        self._stale_after = stale_after_seconds
        self._lookback = timedelta(hours=lookback_hours)

    @activity.defn
    async def find_reconciliation_candidates(self, request: ReconcileRequest) -> list[Candidate]:
        """One payment and its refunds; or every open object older than its status's threshold,
        and every closed one changed within the lookback that no run has checked since."""
        stale = timedelta(seconds=min(self._stale_after.values(), default=0))
        payments = await self._pool.fetch(
            """
            SELECT *, now() - updated_at AS age FROM payments
            WHERE gateway_payment_id IS NOT NULL AND (
                payment_id = $1 OR ($1 IS NULL AND (
                    (status <> ALL($2::text[]) AND updated_at < now() - $3::interval)
                 OR (status = ANY($2::text[]) AND updated_at > now() - $4::interval
                     AND (reconciled_at IS NULL OR reconciled_at < updated_at)))))
            ORDER BY updated_at LIMIT $5
            """,
            request.payment_id, sorted(MONEY_TAKEN | NOTHING_TAKEN), stale, self._lookback,
            CANDIDATE_LIMIT,
        )  # fmt: skip
        refunds = await self._pool.fetch(
            """
            SELECT r.*, p.gateway_payment_id, p.gateway_charge_id, now() - r.updated_at AS age
            FROM refunds r JOIN payments p USING (payment_id)
            WHERE r.gateway_refund_id IS NOT NULL AND (
                r.payment_id = $1 OR ($1 IS NULL AND (
                    (r.status = ANY($2::text[]) AND r.updated_at < now() - $3::interval)
                 OR (r.status <> ALL($2::text[]) AND r.updated_at > now() - $4::interval
                     AND (r.reconciled_at IS NULL OR r.reconciled_at < r.updated_at)))))
            ORDER BY r.updated_at LIMIT $5
            """,
            request.payment_id, sorted(OPEN_REFUND), stale, self._lookback, CANDIDATE_LIMIT,
        )  # fmt: skip
        found = [self._payment(row) for row in payments if self._due(row, request)]
        found += [self._refund(row) for row in refunds if self._due(row, request)]
        return found

    def _due(self, row: asyncpg.Record, request: ReconcileRequest) -> bool:
        if request.payment_id is not None or row["status"] not in self._stale_after:
            return True  # asked for explicitly, or a closed object within the lookback
        return bool(row["age"] >= timedelta(seconds=self._stale_after[row["status"]]))

    @staticmethod
    def _payment(row: asyncpg.Record) -> Candidate:
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
            payment_ref=GatewayPaymentRef(
                gateway=gateway,
                gateway_payment_id=row["gateway_payment_id"],
                gateway_charge_id=row["gateway_charge_id"],
            ),
            closed=row["status"] in MONEY_TAKEN | NOTHING_TAKEN,
        )

    @staticmethod
    def _refund(row: asyncpg.Record) -> Candidate:
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

    @activity.defn
    async def check_against_gateway(self, candidate: Candidate) -> CheckResult:
        """What the gateway says of one object, and whether the ledger agrees."""
        gateway = self._gateways[candidate.gateway]
        if candidate.kind is ObjectKind.PAYMENT:
            assert candidate.payment_ref is not None
            payment = await gateway.fetch_payment(candidate.payment_ref)
            status = payment.status.value
            disagreement = payment_disagreement(
                candidate, payment.status, payment.amount, payment.currency, payment.amount_captured
            )
            table, key = "payments", "payment_id"
        else:
            assert candidate.gateway_refund_id is not None
            refund = await gateway.fetch_refund(
                GatewayRefundRef(
                    gateway=candidate.gateway, gateway_refund_id=candidate.gateway_refund_id
                )
            )
            status = refund.status.value
            disagreement = refund_disagreement(candidate, refund.status, refund.amount)
            table, key = "refunds", "refund_id"
        if disagreement is None:
            await self._pool.execute(
                f"UPDATE {table} SET reconciled_at = now() WHERE {key} = $1", candidate.object_id
            )
        return CheckResult(candidate=candidate, gateway_status=status, disagreement=disagreement)

    @activity.defn
    async def flag_disagreement(self, flag: Flag) -> None:
        """Leave a closed object's disagreement to an operator: recorded once, never fixed here."""
        c = flag.candidate
        async with self._pool.acquire() as conn, conn.transaction():
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

    @activity.defn
    async def record_reconciliation_run(self, report: ReconcileReport) -> None:
        if report.finished_at is None:
            raise ApplicationError("a run is recorded when it has finished", non_retryable=True)
        await self._pool.execute(
            """
            INSERT INTO reconciliation_runs (run_id, trigger, started_at, finished_at, checked,
                                             changed, flagged, unreachable)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING
            """,
            report.run_id, report.trigger, report.started_at, report.finished_at,
            report.checked, report.changed, report.flagged, report.unreachable,
        )  # fmt: skip
        activity.logger.info("reconciliation run %s", json.dumps(report.findings))


def payment_disagreement(
    candidate: Candidate, status: PaymentStatus, amount: int, currency: str, captured: int
) -> str | None:
    """Why the ledger's payment and the gateway's disagree, or None."""
    if (amount, currency) != (candidate.amount, candidate.currency):
        ours = f"{candidate.amount} {candidate.currency}"
        return f"gateway has {amount} {currency}, the ledger {ours}"
    ledger = candidate.ledger_status
    if ledger in MONEY_TAKEN:
        if status is not PaymentStatus.CAPTURED:
            return f"the ledger says {ledger}, the gateway {status}"
        if captured != candidate.amount_captured:
            return f"gateway captured {captured}, the ledger {candidate.amount_captured}"
        return None
    if ledger in NOTHING_TAKEN:
        if status is PaymentStatus.CAPTURED:
            return f"the ledger says {ledger} but the gateway captured {captured}"
        return None
    if status in OPEN_AGREEING.get(ledger, set()):
        return None
    return f"the ledger says {ledger}, the gateway {status}"


def refund_disagreement(candidate: Candidate, status: RefundStatus, amount: int) -> str | None:
    if amount != candidate.amount:
        return f"gateway refunded {amount}, the ledger {candidate.amount}"
    if status.value == candidate.ledger_status:
        return None
    return f"the ledger says {candidate.ledger_status}, the gateway {status}"
