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

from activities.gateways.base import PaymentGateway, TransferGateway
from db import reconciliation
from db.reconciliation import (
    MONEY_TAKEN,
    NOTHING_TAKEN,
    payment_candidate,
    refund_candidate,
    transfer_candidate,
)
from domain.checkout import Gateway, GatewayPayment, GatewayPaymentRef, PaymentStatus
from domain.marketplace import GatewayTransfer
from domain.reconcile import (
    Candidate,
    CheckResult,
    Flag,
    ObjectKind,
    ReconcileReport,
    ReconcileRequest,
)
from domain.refund import GatewayRefundRef, RefundStatus

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


class ReconcileActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        gateways: Mapping[Gateway, PaymentGateway],
        stale_after_seconds: Mapping[str, int],
        lookback_hours: int,
        transfers: Mapping[Gateway, TransferGateway] | None = None,
    ) -> None:
        self._pool = pool
        self._gateways = gateways
        self._transfers = transfers or {}
        self._stale_after = stale_after_seconds
        self._lookback = timedelta(hours=lookback_hours)

    @activity.defn
    async def find_reconciliation_candidates(self, request: ReconcileRequest) -> list[Candidate]:
        """One payment, its refunds and its sellers' transfers; or every open object older than
        its status's threshold, and every closed one changed within the lookback that no run has
        checked since, the most urgent first; then the transfers the gateway still holds or
        that changed within the lookback."""
        payments, refunds = await reconciliation.candidate_rows(
            self._pool, request.payment_id, self._stale_after, self._lookback
        )
        transfers = await reconciliation.transfer_rows(
            self._pool, request.payment_id, self._lookback
        )
        return (
            [payment_candidate(row) for row in payments]
            + [refund_candidate(row) for row in refunds]
            + [transfer_candidate(row) for row in transfers]
        )

    @activity.defn
    async def check_against_gateway(self, candidate: Candidate) -> CheckResult:
        """What the gateway says of one object, and whether the ledger agrees."""
        late: GatewayPaymentRef | None = None
        if candidate.kind is ObjectKind.TRANSFER:
            assert candidate.gateway_transfer_id is not None
            transfer = await self._transfer_gateway(candidate.gateway).fetch_transfer(
                candidate.gateway_transfer_id
            )
            status = transfer_status(transfer)
            disagreement = transfer_disagreement(candidate, transfer)
            if disagreement is None:
                await reconciliation.mark_reconciled(self._pool, candidate)
            return CheckResult(
                candidate=candidate, gateway_status=status, disagreement=disagreement
            )
        gateway = self._gateways[candidate.gateway]
        if candidate.kind is ObjectKind.PAYMENT:
            assert candidate.payment_ref is not None
            payment = await gateway.fetch_payment(candidate.payment_ref)
            status = payment.status.value
            disagreement = payment_disagreement(candidate, payment)
            if (
                candidate.ledger_status in NOTHING_TAKEN
                and payment.status is PaymentStatus.CAPTURED
            ):
                late = payment.ref
        else:
            assert candidate.gateway_refund_id is not None
            refund = await gateway.fetch_refund(
                GatewayRefundRef(
                    gateway=candidate.gateway, gateway_refund_id=candidate.gateway_refund_id
                )
            )
            status = refund.status.value
            disagreement = refund_disagreement(candidate, refund.status, refund.amount)
        if disagreement is None:
            await reconciliation.mark_reconciled(self._pool, candidate)
        return CheckResult(
            candidate=candidate, gateway_status=status, disagreement=disagreement, late_payment=late
        )

    def _transfer_gateway(self, gateway: Gateway) -> TransferGateway:
        found = self._transfers.get(gateway)
        if found is None:
            raise ApplicationError(
                f"no transfer adapter for {gateway}", type="no_transfer_gateway", non_retryable=True
            )
        return found

    @activity.defn
    async def flag_disagreement(self, flag: Flag) -> None:
        """Leave a closed object's disagreement to an operator: recorded once, never fixed here."""
        await reconciliation.flag(self._pool, flag)

    @activity.defn
    async def record_reconciliation_run(self, report: ReconcileReport) -> None:
        if report.finished_at is None:
            raise ApplicationError("a run is recorded when it has finished", non_retryable=True)
        await reconciliation.record_run(self._pool, report)
        activity.logger.info("reconciliation run %s", json.dumps(report.findings))


def payment_disagreement(candidate: Candidate, payment: GatewayPayment) -> str | None:
    """Why the ledger's payment and the gateway's disagree, or None."""
    status, captured = payment.status, payment.amount_captured
    if (payment.amount, payment.currency) != (candidate.amount, candidate.currency):
        ours = f"{candidate.amount} {candidate.currency}"
        return f"gateway has {payment.amount} {payment.currency}, the ledger {ours}"
    ledger = candidate.ledger_status
    if ledger in MONEY_TAKEN:
        if status is not PaymentStatus.CAPTURED:
            return f"the ledger says {ledger}, the gateway {status}"
        if captured != candidate.amount_captured:
            return f"gateway captured {captured}, the ledger {candidate.amount_captured}"
        # A refund we reserved may or may not have reached the gateway yet; anything outside
        # that range was refunded without us (a dashboard, a dropped webhook) or never made.
        refunded, pending = candidate.amount_refunded, candidate.amount_refund_pending
        if not refunded <= payment.amount_refunded <= refunded + pending:
            return (
                f"gateway refunded {payment.amount_refunded}, the ledger {refunded}"
                f" with {pending} pending"
            )
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


def transfer_status(transfer: GatewayTransfer) -> str:
    """A transfer's state at the gateway in a word, for the flag's `gateway_status`."""
    if transfer.amount and transfer.amount_reversed >= transfer.amount:
        return "reversed"
    state = "partially_reversed" if transfer.amount_reversed else "transferred"
    return f"{state}_on_hold" if transfer.on_hold else state


def transfer_disagreement(candidate: Candidate, transfer: GatewayTransfer) -> str | None:
    """Why the ledger's transfer and the gateway's disagree, or None: the amount transferred,
    what was reversed, the seller's account, and the hold where the gateway holds transfers."""
    ours = candidate.gateway_transfer_id
    if transfer.amount != candidate.amount or (
        transfer.currency is not None and transfer.currency.upper() != candidate.currency
    ):
        return (
            f"transfer {ours}: gateway transferred {transfer.amount} {transfer.currency},"
            f" the ledger {candidate.amount} {candidate.currency}"
        )
    if transfer.amount_reversed != candidate.amount_reversed:
        return (
            f"transfer {ours}: gateway reversed {transfer.amount_reversed},"
            f" the ledger {candidate.amount_reversed}"
        )
    if transfer.destination != candidate.destination:
        return (
            f"transfer {ours}: gateway paid account {transfer.destination},"
            f" the seller's account is {candidate.destination}"
        )
    if transfer.on_hold is not None and transfer.on_hold != candidate.on_hold:
        said = "held" if candidate.on_hold else "released"
        return f"transfer {ours}: the ledger says {said}, the gateway on_hold={transfer.on_hold}"
    return None
