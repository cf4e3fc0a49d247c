"""Test doubles for the refund's activities: a gateway's refunds and the ledger, in memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.checkout import Gateway, LedgerLine, PaymentStatus
from domain.refund import (
    CreateGatewayRefund,
    GatewayRefund,
    GatewayRefundRef,
    RefundAtGateway,
    RefundEffect,
    RefundMade,
    RefundRecord,
    RefundRequest,
    RefundReservation,
    RefundStatus,
    ReservationOutcome,
    refund_step,
)

CAPTURED = 4_999


class FakeRefunds:
    """One captured payment: its refunds at the gateway and its ledger. Tests steer what the
    gateway answers and read what the saga recorded."""

    def __init__(self, gateway: Gateway = Gateway.STRIPE, captured: int = CAPTURED) -> None:
        self.gateway = gateway
        self.captured = captured
        self.refunded = 0
        self.pending = 0
        self.payment_status = PaymentStatus.CAPTURED if captured else PaymentStatus.AUTHORIZED
        self.reserved: dict[str, tuple[int, RefundStatus]] = {}
        self.records: list[RefundRecord] = []
        self.postings: list[LedgerLine] = []
        self.at_gateway: dict[str, GatewayRefund] = {}
        self.created: list[CreateGatewayRefund] = []
        """Every refund the gateway made (not every call: a retry of a made one is not here)."""
        self.calls = 0
        self.status_on_create = RefundStatus.SUCCEEDED
        self.create_error: ApplicationError | None = None
        self.lose_first_answer = False
        """The first call makes the refund but its answer never arrives (an unknown outcome)."""
        self.fetches = 0
        self.final_after_fetches: tuple[int, RefundStatus] | None = None
        """(n, status): the gateway settles the refund once it has been looked up n times."""
        self.create_gate: asyncio.Event | None = None
        """Holds every refund call until set (a slow gateway)."""
        self.asking: asyncio.Event | None = None
        """Set when the first refund call reaches the gateway."""
        self._made_for: dict[str, str] = {}

    def steps(self) -> list[str]:
        return [r.step for r in self.records]

    def balance(self) -> dict[str, int]:
        balance: dict[str, int] = {}
        for line in self.postings:
            balance[line.account] = balance.get(line.account, 0) + line.amount
        return balance

    def refund_made_elsewhere(self, amount: int, status: RefundStatus) -> GatewayRefund:
        """A refund made at the gateway's dashboard."""
        return self._make(amount, status)

    def _make(self, amount: int, status: RefundStatus) -> GatewayRefund:
        refund = GatewayRefund(
            gateway=self.gateway,
            gateway_refund_id=f"re_{uuid.uuid4().hex[:12]}",
            gateway_payment_id="pi_1",
            status=status,
            amount=amount,
            currency="USD",
            failure_reason="expired_or_canceled_card" if status is RefundStatus.FAILED else None,
            speed="normal" if self.gateway is Gateway.RAZORPAY else None,
        )
        self.at_gateway[refund.gateway_refund_id] = refund
        return refund

    def settle_at_gateway(self, gateway_refund_id: str, status: RefundStatus) -> None:
        refund = self.at_gateway[gateway_refund_id]
        self.at_gateway[gateway_refund_id] = refund.model_copy(
            update={
                "status": status,
                "failure_reason": "declined" if status is RefundStatus.FAILED else None,
            }
        )

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="reserve_refund")
        async def reserve_refund(r: RefundReservation) -> ReservationOutcome:
            if r.refund_id in self.reserved:
                amount, status = self.reserved[r.refund_id]
                return self._accepted(amount, status)
            if r.capture_to_record > self.captured:
                missing = r.capture_to_record - self.captured
                self.postings += [
                    LedgerLine(account=f"gateway:{self.gateway}", amount=missing),
                    LedgerLine(account="merchant:sales", amount=-missing),
                ]
                self.captured = r.capture_to_record
                self.payment_status = PaymentStatus.CAPTURED
            available = self.captured - self.refunded - self.pending
            amount = r.amount if r.amount is not None else available
            if r.amount is not None and r.amount <= 0:
                return self._refused("invalid_refund_amount")
            if not self.captured:
                return self._refused("payment_not_refundable")
            if amount <= 0 or amount > available:
                return self._refused("refund_exceeds_available")
            self.pending += amount
            self.reserved[r.refund_id] = (amount, RefundStatus.PENDING)
            return self._accepted(amount, RefundStatus.PENDING)

        @activity.defn(name="record_refund_step")
        async def record_refund_step(record: RefundRecord) -> PaymentStatus:
            if any(r.record_key == record.record_key for r in self.records):
                return self.payment_status
            amount, _ = self.reserved[record.refund_id]
            self.reserved[record.refund_id] = (amount, record.status)
            if record.effect is RefundEffect.SETTLE:
                self.pending -= amount
                self.refunded += amount
                self.payment_status = (
                    PaymentStatus.REFUNDED
                    if self.refunded >= self.captured
                    else PaymentStatus.PARTIALLY_REFUNDED
                )
                self.postings += [
                    LedgerLine(account="merchant:refunds", amount=amount),
                    LedgerLine(account=f"gateway:{self.gateway}", amount=-amount),
                ]
            elif record.effect is RefundEffect.RELEASE:
                self.pending -= amount
            self.records.append(record)
            return self.payment_status

        @activity.defn(name="refund_gateway_payment")
        async def refund_gateway_payment(request: CreateGatewayRefund) -> GatewayRefund:
            self.calls += 1
            if self.asking is not None:
                self.asking.set()
            if self.create_gate is not None:
                await self.create_gate.wait()
            if self.create_error is not None:
                raise self.create_error
            if request.refund_id in self._made_for:  # the idempotency key: the same refund
                return self.at_gateway[self._made_for[request.refund_id]]
            refund = self._make(request.amount, self.status_on_create)
            self._made_for[request.refund_id] = refund.gateway_refund_id
            self.created.append(request)
            if self.lose_first_answer and self.calls == 1:
                raise ApplicationError("answer lost", type="gateway_unreachable")
            return refund

        @activity.defn(name="refund_and_record")
        async def refund_and_record(request: RefundAtGateway) -> RefundMade:
            refund = await refund_gateway_payment(request.refund)
            record = refund_step(request.so_far, refund, "gateway_refund_created")
            if record is None:
                return RefundMade(refund=refund, record=None)
            status = await record_refund_step(record)
            return RefundMade(refund=refund, record=record, payment_status=status)

        @activity.defn(name="fetch_gateway_refund")
        async def fetch_gateway_refund(ref: GatewayRefundRef) -> GatewayRefund:
            self.fetches += 1
            if self.final_after_fetches and self.fetches >= self.final_after_fetches[0]:
                self.settle_at_gateway(ref.gateway_refund_id, self.final_after_fetches[1])
            return self.at_gateway[ref.gateway_refund_id]

        return [
            reserve_refund,
            record_refund_step,
            refund_gateway_payment,
            refund_and_record,
            fetch_gateway_refund,
        ]

    def _accepted(self, amount: int, status: RefundStatus) -> ReservationOutcome:
        return ReservationOutcome(
            accepted=True,
            status=status,
            amount=amount,
            currency="USD",
            gateway=self.gateway,
            gateway_payment_id="pi_1",
            gateway_charge_id="ch_1",
        )

    @staticmethod
    def _refused(code: str) -> ReservationOutcome:
        return ReservationOutcome(
            accepted=False, refusal_code=code, detail=code, status=RefundStatus.REFUSED
        )


def refund_request(**overrides: Any) -> RefundRequest:
    fields: dict[str, Any] = {
        "payment_id": "pay_" + uuid.uuid4().hex[:24],
        "amount": 1_000,
        "idempotency_key": "key-" + uuid.uuid4().hex[:8],
        "poll_interval_seconds": 3600,
    }
    return RefundRequest(**{**fields, **overrides})
