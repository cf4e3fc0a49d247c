"""Razorpay adapter over the official SDK: orders, payment capture and refunds.

Razorpay has no idempotency key for orders or captures, so those calls look the object up first:
an order by its receipt (our checkout id), a payment by its id. Refunds carry
`X-Refund-Idempotency` and are also looked up by their receipt (our refund id) first. The SDK
is synchronous and has no default timeout, so every call runs in a thread with an explicit one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import razorpay
import razorpay.errors
import requests
from temporalio.exceptions import ApplicationError

from activities.gateways.base import refused, unavailable
from domain.checkout import (
    RAZORPAY_MANUAL_CAPTURE_MINUTES,
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    PaymentInstructions,
    PaymentStatus,
    ReleaseGatewayPayment,
)
from domain.dispute import (
    DisputeEvidence,
    DisputeStage,
    DisputeStatus,
    GatewayDispute,
    GatewayDisputeAcceptance,
    GatewayDisputeRef,
    GatewayEvidence,
)
from domain.refund import CreateGatewayRefund, GatewayRefund, GatewayRefundRef, RefundStatus

_PAYMENT_STATUSES = {
    "created": PaymentStatus.PROCESSING,
    "authorized": PaymentStatus.AUTHORIZED,
    "captured": PaymentStatus.CAPTURED,
    "refunded": PaymentStatus.CAPTURED,  # refunds live in the refund ledger
    "failed": PaymentStatus.FAILED,
}
# Which of an order's payments tells the order's story, best first.
_PAYMENT_RANK = {"captured": 0, "refunded": 0, "authorized": 1, "created": 2, "failed": 3}
_NOTES_LIMIT = 15  # Razorpay keeps at most 15 notes
# Razorpay captures a payment by itself unless its order asks otherwise (the account default is
# automatic capture): the saga captures only after the merchant confirmed the order. It asks for
# the longest manual capture period an order may have; an authorization not captured by then is
# refunded at normal speed (https://razorpay.com/docs/payments/payments/capture-settings/api),
# and the checkout's capture window closes before that (domain.checkout.manual_capture_window).
MANUAL_CAPTURE: dict[str, Any] = {
    "capture": "manual",
    "capture_options": {
        "manual_expiry_period": RAZORPAY_MANUAL_CAPTURE_MINUTES,
        "refund_speed": "normal",
    },
}
_REFUND_STATUSES = {
    "pending": RefundStatus.PENDING,
    "processed": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
}

_DISPUTE_STATUSES = {
    "open": DisputeStatus.OPEN,
    "under_review": DisputeStatus.CHALLENGED,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "closed": DisputeStatus.CLOSED,
}
_DISPUTE_STAGES = {
    "retrieval": DisputeStage.INQUIRY,
    "fraud": DisputeStage.INQUIRY,
    "chargeback": DisputeStage.CHARGEBACK,
    "pre_arbitration": DisputeStage.PRE_ARBITRATION,
    "arbitration": DisputeStage.ARBITRATION,
}


def classify(error: Exception, status: int | None) -> ApplicationError:
    """The one place that decides which Razorpay errors are worth retrying: by the HTTP status
    first (the SDK raises BadRequestError for a 429 too, whose body says BAD_REQUEST_ERROR;
    https://razorpay.com/docs/api/errors/), then by the SDK's class."""
    if isinstance(error, requests.Timeout | requests.ConnectionError):
        return unavailable("gateway_unreachable", f"razorpay: {type(error).__name__}")
    if status == 429:
        return unavailable("gateway_rate_limited", f"razorpay: {error}")
    if status is not None and status >= 500:
        return unavailable("gateway_error", f"razorpay: HTTP {status}: {error}")
    if status == 401 or "authentication" in str(error).lower():
        return refused("gateway_misconfigured", f"razorpay: {error}")
    if isinstance(error, razorpay.errors.BadRequestError):
        return refused("invalid_request", f"razorpay: {error}")
    return unavailable("gateway_error", f"razorpay: {type(error).__name__}: {error}")


class RazorpayGateway:
    def __init__(self, key_id: str, key_secret: str, api_base: str, timeout_seconds: float) -> None:
        self._client = razorpay.Client(auth=(key_id, key_secret), base_url=api_base)
        # The SDK keeps no HTTP status on its errors: a response hook remembers it per thread.
        self._last_status = threading.local()
        self._client.session.hooks["response"].append(self._remember_status)
        self._key_id = key_id
        self._timeout = timeout_seconds

    def _remember_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_status.value = response.status_code

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            self._last_status.value = None
            try:
                return method(*args, timeout=self._timeout, **kwargs)
            except (
                razorpay.errors.BadRequestError,
                razorpay.errors.GatewayError,
                razorpay.errors.ServerError,
                requests.RequestException,
                ValueError,
            ) as error:
                raise classify(error, self._last_status.value) from None  # fmt: skip

        return await asyncio.to_thread(call)

    async def create_payment(self, request: CreateGatewayPayment) -> GatewayPayment:
        existing = await self._call(self._client.order.all, {"receipt": request.checkout_id})
        orders = existing.get("items", [])
        if orders:
            order = orders[0]  # created by an earlier attempt whose answer was lost
        else:
            notes = {
                **dict(list(request.metadata.items())[: _NOTES_LIMIT - 3]),
                "order_id": request.order_id,
                "checkout_id": request.checkout_id,
                "workflow_id": request.workflow_id,
            }
            order = await self._call(
                self._client.order.create,
                {
                    "amount": request.amount,
                    "currency": request.currency,
                    "receipt": request.checkout_id,
                    "notes": notes,
                    "payment": MANUAL_CAPTURE,
                },
            )
        return self._order_payment(order, None)

    async def find_payment(self, checkout_id: str) -> GatewayPayment | None:
        existing = await self._call(self._client.order.all, {"receipt": checkout_id})
        orders = existing.get("items", [])
        if not orders:
            return None
        return await self.fetch_payment(
            GatewayPaymentRef(gateway=Gateway.RAZORPAY, gateway_payment_id=orders[0]["id"])
        )

    async def fetch_payment(self, ref: GatewayPaymentRef) -> GatewayPayment:
        order = await self._call(self._client.order.fetch, ref.gateway_payment_id)
        if ref.gateway_charge_id:
            payment = await self._call(self._client.payment.fetch, ref.gateway_charge_id)
            if payment.get("order_id") != order["id"]:
                raise refused("payment_order_mismatch", "razorpay: payment is for another order")
            return self._order_payment(order, payment)
        payments = await self._call(self._client.order.payments, ref.gateway_payment_id)
        items = sorted(payments.get("items", []), key=lambda p: _PAYMENT_RANK.get(p["status"], 9))
        return self._order_payment(order, items[0] if items else None)

    async def capture(self, request: CaptureGatewayPayment) -> GatewayPayment:
        if not request.ref.gateway_charge_id:
            raise refused("not_authorized", "razorpay: no authorized payment to capture")
        current = await self.fetch_payment(request.ref)
        if current.status is PaymentStatus.CAPTURED:
            return current  # an earlier attempt captured it and its answer was lost
        if current.status is not PaymentStatus.AUTHORIZED:
            raise refused("not_authorized", f"razorpay: payment is {current.status}")
        try:
            await self._call(
                self._client.payment.capture,
                request.ref.gateway_charge_id,
                request.amount,
                {"currency": request.currency},
            )
        except ApplicationError:
            # A capture that failed may have happened all the same: an earlier attempt the
            # gateway applied after its client gave up answers this one "already captured".
            current = await self.fetch_payment(request.ref)
            if current.status is PaymentStatus.CAPTURED:
                return current
            raise
        return await self.fetch_payment(request.ref)

    async def release(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        # Razorpay cannot void: an authorized payment that is never captured is refunded to the
        # customer automatically after a few days, and an unpaid order simply expires.
        current = await self.fetch_payment(request.ref)
        if current.status is PaymentStatus.CAPTURED:
            raise refused("already_captured", "razorpay: captured payments can only be refunded")
        return current

    async def refund(self, request: CreateGatewayRefund) -> GatewayRefund:
        payment_id = request.ref.gateway_charge_id
        if not payment_id:
            raise refused("not_captured", "razorpay: no payment to refund")
        existing = await self._call(
            self._client.payment.fetch_multiple_refund, payment_id, {"count": 100}
        )
        for refund in existing.get("items", []):
            if refund.get("receipt") == request.refund_id:
                return _refund(refund)  # made by an earlier attempt whose answer was lost
        body = {
            "amount": request.amount,
            "speed": "normal",
            "receipt": request.refund_id,
            "notes": {
                "refund_id": request.refund_id,
                "workflow_id": request.workflow_id,
                "payment_id": request.payment_id,
                "reason": request.reason.value,
            },
        }
        headers = {"X-Refund-Idempotency": request.refund_id}
        try:
            refund = await self._call(
                self._client.payment.refund, payment_id, body, headers=headers
            )
        except ApplicationError as error:
            if "being processed" in error.message.lower():  # our earlier attempt, still running
                raise unavailable("refund_in_progress", error.message) from None
            raise
        return _refund(refund)

    async def fetch_refund(self, ref: GatewayRefundRef) -> GatewayRefund:
        return _refund(await self._call(self._client.refund.fetch, ref.gateway_refund_id))

    async def fetch_dispute(self, ref: GatewayDisputeRef) -> GatewayDispute:
        return _dispute(await self._call(self._client.dispute.fetch, ref.gateway_dispute_id))

    async def submit_dispute_evidence(self, request: GatewayEvidence) -> GatewayDispute:
        """`PATCH /v1/disputes/{id}/contest` with `action` draft or submit. Repeating it with the
        same evidence changes nothing, so a retry after a lost answer is safe."""
        body = {
            **_razorpay_evidence(request.evidence),
            "action": "submit" if request.submit else "draft",
        }
        await self._call(self._client.dispute.contest, request.ref.gateway_dispute_id, body)
        return await self.fetch_dispute(request.ref)

    async def accept_dispute(self, request: GatewayDisputeAcceptance) -> GatewayDispute:
        current = await self.fetch_dispute(request.ref)
        if current.status is DisputeStatus.LOST:
            return current  # accepted by an earlier attempt whose answer was lost
        await self._call(self._client.dispute.accept, request.ref.gateway_dispute_id, {})
        return await self.fetch_dispute(request.ref)

    def _order_payment(
        self, order: dict[str, Any], payment: dict[str, Any] | None
    ) -> GatewayPayment:
        instructions = PaymentInstructions(
            razorpay_order_id=order["id"], razorpay_key_id=self._key_id
        )
        if payment is None:
            return GatewayPayment(
                ref=GatewayPaymentRef(gateway=Gateway.RAZORPAY, gateway_payment_id=order["id"]),
                status=PaymentStatus.CREATED,
                amount=order["amount"],
                currency=order["currency"],
                instructions=instructions,
            )
        status = _PAYMENT_STATUSES.get(payment["status"], PaymentStatus.UNKNOWN)
        if payment["status"] == "refunded" and not payment.get("captured"):
            # Razorpay refunds an authorization nobody captured within its window by itself
            status = PaymentStatus.VOIDED
        return GatewayPayment(
            ref=GatewayPaymentRef(
                gateway=Gateway.RAZORPAY,
                gateway_payment_id=order["id"],
                gateway_charge_id=payment["id"],
            ),
            status=status,
            amount=payment["amount"],
            currency=payment["currency"],
            amount_capturable=payment["amount"] if status is PaymentStatus.AUTHORIZED else 0,
            amount_captured=payment["amount"] if status is PaymentStatus.CAPTURED else 0,
            amount_refunded=payment.get("amount_refunded") or 0,
            instructions=instructions,
            error_code=payment.get("error_code"),
            error_message=payment.get("error_description"),
        )


def _refund(refund: dict[str, Any]) -> GatewayRefund:
    return GatewayRefund(
        gateway=Gateway.RAZORPAY,
        gateway_refund_id=refund["id"],
        gateway_payment_id=refund["payment_id"],
        status=_REFUND_STATUSES.get(refund["status"], RefundStatus.PENDING),
        amount=refund["amount"],
        currency=refund["currency"],
        failure_reason="the bank refused the refund" if refund["status"] == "failed" else None,
        speed=refund.get("speed_processed") or refund.get("speed_requested"),
    )


def _dispute(dispute: dict[str, Any]) -> GatewayDispute:
    respond_by = dispute.get("respond_by")
    return GatewayDispute(
        gateway=Gateway.RAZORPAY,
        gateway_dispute_id=dispute["id"],
        gateway_payment_id=dispute.get("payment_id"),
        status=_DISPUTE_STATUSES.get(dispute["status"], DisputeStatus.OPEN),
        gateway_status=dispute["status"],
        stage=_DISPUTE_STAGES.get(dispute.get("phase") or "", DisputeStage.CHARGEBACK),
        amount=dispute["amount"],
        currency=dispute["currency"],
        reason=dispute.get("reason_code"),
        due_by=datetime.fromtimestamp(respond_by, UTC) if respond_by else None,
        amount_withdrawn=dispute.get("amount_deducted") or 0,
    )


def _razorpay_evidence(evidence: DisputeEvidence) -> dict[str, Any]:
    """Razorpay takes lists of document ids per kind and one summary text."""
    summary = [
        evidence.product_description,
        f"Shipped with {evidence.shipping_carrier}" if evidence.shipping_carrier else None,
        f"Tracking number {evidence.shipping_tracking_number}"
        if evidence.shipping_tracking_number
        else None,
        evidence.refund_policy_disclosure,
        evidence.uncategorized_text,
    ]
    body: dict[str, Any] = {"summary": "\n\n".join(t for t in summary if t) or None}
    for name, documents in (
        ("customer_communication", evidence.customer_communication),
        ("billing_proof", evidence.receipt),
        ("shipping_proof", evidence.shipping_documentation),
        ("refund_cancellation_policy", evidence.refund_policy),
    ):
        if documents:
            body[name] = documents
    if evidence.uncategorized_documents:
        body["others"] = [
            {"type": "uncategorized", "document_ids": evidence.uncategorized_documents}
        ]
    return body
