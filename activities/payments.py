"""Gateway activities: route each call to the adapter of the checkout's gateway. Creating and
capturing a payment, and creating a refund, also write what they did to the ledger in the same
activity: each such write is one idempotent transaction keyed by the step, so a retry applies it
once, and the saga spends no separate ledger step (a Temporal action) on it."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateways.base import UNAVAILABLE_KINDS, PaymentGateway
from activities.marketplace import PayoutStarter
from db import health, payments, refunds
from domain.checkout import (
    AbandonGatewayPayment,
    CaptureCheckoutPayment,
    CheckoutRecord,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    OpenCheckoutPayment,
    PaymentStatus,
    ReleaseGatewayPayment,
    capture_record,
)
from domain.health import BreakerConfig
from domain.refund import (
    CreateGatewayRefund,
    GatewayRefund,
    GatewayRefundRef,
    RefundAtGateway,
    RefundEffect,
    RefundMade,
    refund_step,
)

T = TypeVar("T")
log = structlog.get_logger("activities.payments")
# What a checkout may have left at a gateway it abandons: released before another is asked.
_OPEN = frozenset(
    {PaymentStatus.CREATED, PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING,
     PaymentStatus.AUTHORIZED, PaymentStatus.UNKNOWN}
)  # fmt: skip


class GatewayActivities:
    def __init__(
        self,
        gateways: Mapping[Gateway, PaymentGateway],
        pool: asyncpg.Pool,
        breaker: BreakerConfig | None = None,
        payouts: PayoutStarter | None = None,
    ) -> None:
        self._gateways = gateways
        self._pool = pool
        self._breaker = breaker or BreakerConfig()
        self._payouts = payouts

    async def _observed(self, gateway: Gateway, call: Awaitable[T]) -> T:
        """A gateway call whose outcome feeds the gateway's shared breaker: an error the adapter
        classified as the gateway's unavailability counts as a failure, an answer (a refusal
        included) as a success. A breaker that cannot be written never fails the call."""
        try:
            result = await call
        except ApplicationError as error:
            if error.type in UNAVAILABLE_KINDS:
                await self._note_health(gateway, f"{error.type}: {error.message}")
            elif error.non_retryable:
                await self._note_health(gateway, None)
            raise
        await self._note_health(gateway, None)
        return result

    async def _note_health(self, gateway: Gateway, failure: str | None) -> None:
        now = datetime.now(UTC)
        try:
            if failure is None:
                await health.record_success(self._pool, gateway.value, now, self._breaker)
            else:
                await health.record_failure(self._pool, gateway.value, now, self._breaker, failure)
        except (asyncpg.PostgresError, OSError) as error:
            log.warning("gateway_health_unrecorded", gateway=gateway.value, error=str(error))

    @activity.defn
    async def create_gateway_payment(self, request: OpenCheckoutPayment) -> GatewayPayment:
        """The payment row first (a refused or unreachable gateway still leaves a checkout the
        API can show), then the gateway's payment, whose ids the ledger holds before any client
        can pay (webhook routing finds the checkout by them)."""
        payment = request.payment
        await payments.record_new_checkout(self._pool, request.checkout)
        if payment.gateway is not request.checkout.request.gateway:  # the saga failed over
            await payments.move_checkout(self._pool, payment.checkout_id, payment.gateway.value)
        created = await self._observed(
            payment.gateway, self._gateways[payment.gateway].create_payment(payment)
        )
        await payments.record_checkout_step(
            self._pool,
            CheckoutRecord(
                record_key=f"{payment.checkout_id}:gateway_payment_created"
                + (f":{request.switch}" if request.switch else ""),
                checkout_id=payment.checkout_id,
                status=PaymentStatus.CREATED,
                step="gateway_payment_created",
                detail=f"{payment.gateway} {created.ref.gateway_payment_id};"
                " waiting for the customer to pay",
                gateway_payment_id=created.ref.gateway_payment_id,
            ),
        )
        return created

    @activity.defn
    async def fetch_gateway_payment(self, ref: GatewayPaymentRef) -> GatewayPayment:
        return await self._observed(ref.gateway, self._gateways[ref.gateway].fetch_payment(ref))

    @activity.defn
    async def capture_gateway_payment(self, request: CaptureCheckoutPayment) -> GatewayPayment:
        """Write the steps the saga had not written yet and mark the capture requested, capture,
        then write the capture (what the gateway captured, posted)."""
        capture = request.capture
        await payments.record_checkout_steps(self._pool, request.records)
        await payments.mark_capture_requested(self._pool, request.checkout_id)
        captured = await self._observed(
            capture.ref.gateway, self._gateways[capture.ref.gateway].capture(capture)
        )
        record = capture_record(
            request.checkout_id, capture.ref.gateway, capture.ref.gateway_charge_id,
            captured.amount_captured, capture.currency,
        )  # fmt: skip
        await payments.record_checkout_step(self._pool, record)
        if self._payouts is not None:
            await self._payouts.captured(request.checkout_id)
        return captured

    @activity.defn
    async def release_gateway_payment(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        return await self._observed(
            request.ref.gateway, self._gateways[request.ref.gateway].release(request)
        )

    @activity.defn
    async def expire_gateway_payment(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        """The checkout's authorization deadline passed: look, and release what is still open,
        in one call (a deadline storm is the background load: each task it spares counts). An
        authorization or a capture is returned as the look found it, for the saga to take; a
        payment released is returned as the release answered."""
        gateway = request.ref.gateway
        adapter = self._gateways[gateway]
        current = await self._observed(gateway, adapter.fetch_payment(request.ref))
        if current.status not in _OPEN or current.status is PaymentStatus.AUTHORIZED:
            return current
        return await self._observed(gateway, adapter.release(request))

    @activity.defn
    async def abandon_gateway_payment(self, request: AbandonGatewayPayment) -> str:
        """Before a checkout moves to another gateway: find what an attempt to create its payment
        here may have left (the answer lost, or a 500 after the write), and release it. Says
        what was found, for the step log."""
        adapter = self._gateways[request.gateway]
        found = await self._observed(request.gateway, adapter.find_payment(request.checkout_id))
        if found is None:
            return f"nothing was created at {request.gateway}"
        if found.status not in _OPEN:
            return f"{request.gateway} {found.ref.gateway_payment_id} is {found.status}"
        released = await self._observed(
            request.gateway,
            adapter.release(
                ReleaseGatewayPayment(
                    ref=found.ref, reason=request.reason, idempotency_key=request.idempotency_key
                )
            ),
        )
        return f"{request.gateway} {found.ref.gateway_payment_id} released: {released.status}"

    @activity.defn
    async def refund_gateway_payment(self, request: CreateGatewayRefund) -> GatewayRefund:
        """Refunds whose histories predate `refund_and_record` (see RefundWorkflow) call this."""
        return await self._gateways[request.ref.gateway].refund(request)

    @activity.defn
    async def refund_and_record(self, request: RefundAtGateway) -> RefundMade:
        """Create the refund (our refund id is its idempotency key), then write the gateway's
        answer as the saga would have (`refund_step`, keyed by step: a retry writes it once)."""
        refund = await self._gateways[request.refund.ref.gateway].refund(request.refund)
        record = refund_step(request.so_far, refund, "gateway_refund_created")
        if record is None:
            return RefundMade(refund=refund, record=None)
        payment_status = await refunds.record_refund_step(self._pool, record)
        if self._payouts is not None and record.effect is RefundEffect.SETTLE:
            await self._payouts.money_taken_back(record.payment_id, f"refund {record.refund_id}")
        return RefundMade(refund=refund, record=record, payment_status=payment_status)

    @activity.defn
    async def fetch_gateway_refund(self, ref: GatewayRefundRef) -> GatewayRefund:
        return await self._gateways[ref.gateway].fetch_refund(ref)
