"""Test doubles for the dispute's activities: one dispute at a gateway, the ledger and the
merchant, in memory. Tests steer what the gateway says and read what the saga recorded."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.checkout import Gateway, LedgerLine, PaymentStatus
from domain.dispute import (
    DisputedPayment,
    DisputeOpened,
    DisputeOpening,
    DisputeRecord,
    DisputeRecorded,
    DisputeRequest,
    DisputeStage,
    DisputeStatus,
    GatewayDispute,
    GatewayDisputeAcceptance,
    GatewayDisputeRef,
    GatewayEvidence,
    MerchantDisputeNotice,
    UnverifiedDispute,
)

AMOUNT = 2_500
_STATUSES = {
    "needs_response": DisputeStatus.OPEN,
    "open": DisputeStatus.OPEN,
    "under_review": DisputeStatus.CHALLENGED,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "closed": DisputeStatus.CLOSED,
}


class FakeDispute:
    def __init__(
        self,
        gateway: Gateway = Gateway.STRIPE,
        *,
        due_in: timedelta = timedelta(days=21),
        withdrawn_at_open: bool = True,
        payment_status: PaymentStatus = PaymentStatus.CAPTURED,
    ) -> None:
        self.gateway = gateway
        self.gateway_dispute_id = (
            "dp_" if gateway is Gateway.STRIPE else "disp_"
        ) + uuid.uuid4().hex[:14]
        self.due_in = due_in
        self.due_by: datetime | None = None
        self.gateway_status = "needs_response" if gateway is Gateway.STRIPE else "open"
        self.withdrawn = AMOUNT if withdrawn_at_open else 0
        self.reinstated = 0
        self.fetches = 0
        self.outcome_after_fetches: tuple[int, str] | None = None
        """(n, gateway status): the issuer decides once the dispute has been looked up n times."""
        self.outcome_after_submit: str | None = None
        self.evidence_calls: list[GatewayEvidence] = []
        self.accepts = 0
        self.submit_error: ApplicationError | None = None
        self.unknown_at_gateway = False
        """The gateway answers every look-up with Stripe's `resource_missing`."""
        # the ledger
        self.payment_status = payment_status
        self.refunded = AMOUNT if payment_status is PaymentStatus.REFUNDED else 0
        self.refund_pending = 0
        self.opened = 0
        self.records: list[DisputeRecord] = []
        self.postings: list[LedgerLine] = []
        self.ledger_withdrawn = 0
        self.notices: list[str] = []
        self.unverified: list[UnverifiedDispute] = []

    def steps(self) -> list[str]:
        return [r.step for r in self.records]

    def balance(self) -> dict[str, int]:
        balance: dict[str, int] = {}
        for line in self.postings:
            balance[line.account] = balance.get(line.account, 0) + line.amount
        return {account: total for account, total in balance.items() if total}

    def decide(self, status: str) -> None:
        """The issuer's decision, with the fund movements it brings."""
        self.gateway_status = status
        if status == "won" and self.gateway is Gateway.STRIPE:
            self.reinstated = self.withdrawn
        if status == "lost" and self.gateway is Gateway.RAZORPAY:
            self.withdrawn = AMOUNT

    def snapshot(self) -> GatewayDispute:
        return GatewayDispute(
            gateway=self.gateway,
            gateway_dispute_id=self.gateway_dispute_id,
            gateway_payment_id="pi_1" if self.gateway is Gateway.STRIPE else "pay_rzp1",
            status=_STATUSES[self.gateway_status],
            gateway_status=self.gateway_status,
            stage=DisputeStage.CHARGEBACK,
            amount=AMOUNT,
            currency="USD" if self.gateway is Gateway.STRIPE else "INR",
            reason="fraudulent",
            due_by=self.due_by,
            amount_withdrawn=self.withdrawn,
            amount_reinstated=self.reinstated,
        )

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="fetch_gateway_dispute")
        async def fetch_gateway_dispute(ref: GatewayDisputeRef) -> GatewayDispute:
            if self.unknown_at_gateway:
                raise ApplicationError(
                    f"stripe: No such dispute: '{ref.gateway_dispute_id}'",
                    type="invalid_request:resource_missing",
                    non_retryable=True,
                )
            if self.due_by is None:  # in the test server's time, which skips ahead
                self.due_by = activity.info().current_attempt_scheduled_time + self.due_in
            self.fetches += 1
            if self.outcome_after_fetches and self.fetches >= self.outcome_after_fetches[0]:
                self.decide(self.outcome_after_fetches[1])
            return self.snapshot()

        @activity.defn(name="submit_gateway_dispute_evidence")
        async def submit_gateway_dispute_evidence(request: GatewayEvidence) -> GatewayDispute:
            if self.submit_error is not None:
                raise self.submit_error
            self.evidence_calls.append(request)
            if request.submit:
                self.gateway_status = "under_review"
                if self.outcome_after_submit:
                    self.decide(self.outcome_after_submit)
            return self.snapshot()

        @activity.defn(name="accept_gateway_dispute")
        async def accept_gateway_dispute(request: GatewayDisputeAcceptance) -> GatewayDispute:
            self.accepts += 1
            self.decide("lost")
            return self.snapshot()

        @activity.defn(name="notify_merchant_of_dispute")
        async def notify_merchant_of_dispute(notice: MerchantDisputeNotice) -> None:
            self.notices.append(f"{notice.type}:{notice.status}")

        @activity.defn(name="open_dispute")
        async def open_dispute(opening: DisputeOpening) -> DisputeOpened:
            self.opened += 1
            flagged = (
                "the payment was already refunded"
                if self.payment_status is PaymentStatus.REFUNDED
                else None
            )
            self.payment_status = PaymentStatus.DISPUTED
            return DisputeOpened(
                payment_id="pay_" + "0" * 24,
                payment_status=self.payment_status,
                flagged=flagged,
                status=DisputeStatus.OPEN,
                submitted=False,
                amount_withdrawn=self.ledger_withdrawn,
            )

        @activity.defn(name="record_dispute_step")
        async def record_dispute_step(record: DisputeRecord) -> DisputeRecorded:
            if all(r.record_key != record.record_key for r in self.records):
                self.records.append(record)
                target = record.withdrawn_target
                if target is not None and target != self.ledger_withdrawn:
                    delta = target - self.ledger_withdrawn
                    self.postings += [
                        LedgerLine(account="merchant:disputes", amount=delta),
                        LedgerLine(account=f"gateway:{self.gateway}", amount=-delta),
                    ]
                    self.ledger_withdrawn = target
                if record.status is DisputeStatus.LOST:
                    self.payment_status = PaymentStatus.DISPUTE_LOST
                elif record.status in (DisputeStatus.WON, DisputeStatus.CLOSED):
                    self.payment_status = PaymentStatus.CAPTURED
            return DisputeRecorded(
                payment_status=self.payment_status, amount_withdrawn=self.ledger_withdrawn
            )

        @activity.defn(name="read_disputed_payment")
        async def read_disputed_payment(dispute_id: str) -> DisputedPayment | None:
            return DisputedPayment(
                payment_id="pay_" + "0" * 24,
                currency="USD" if self.gateway is Gateway.STRIPE else "INR",
                amount_refunded=self.refunded,
                amount_refund_pending=self.refund_pending,
            )

        @activity.defn(name="flag_unverified_dispute")
        async def flag_unverified_dispute(unverified: UnverifiedDispute) -> None:
            self.unverified.append(unverified)

        return [
            fetch_gateway_dispute, submit_gateway_dispute_evidence, accept_gateway_dispute,
            notify_merchant_of_dispute, open_dispute, record_dispute_step, flag_unverified_dispute,
            read_disputed_payment,
        ]  # fmt: skip

    def request(self, **overrides: Any) -> DisputeRequest:
        fields: dict[str, Any] = {
            "gateway": self.gateway,
            "gateway_dispute_id": self.gateway_dispute_id,
            "poll_interval_seconds": 24 * 3600,
        }
        return DisputeRequest(**{**fields, **overrides})
