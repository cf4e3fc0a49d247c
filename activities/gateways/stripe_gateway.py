"""Stripe adapter over the official SDK: PaymentIntents with manual capture, refunds."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe
from temporalio.exceptions import ApplicationError

from activities.gateways.base import refused, unavailable
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    GatewayRefund,
    PaymentInstructions,
    PaymentStatus,
    RefundGatewayPayment,
    ReleaseGatewayPayment,
)

T = TypeVar("T")

_STATUSES = {
    "requires_payment_method": PaymentStatus.CREATED,
    "requires_confirmation": PaymentStatus.CREATED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "canceled": PaymentStatus.CANCELED,
}
_REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


def classify(error: stripe.StripeError) -> ApplicationError:
    """The one place that decides which Stripe errors are worth retrying."""
    code = getattr(error, "code", None) or ""
    message = f"stripe: {error.user_message or error}"
    if isinstance(error, stripe.CardError):
        decline = getattr(error, "decline_code", None) or code
        return refused("card_declined", f"{message} ({decline})")
    if isinstance(error, stripe.IdempotencyError):
        return refused("idempotency_conflict", message)
    if isinstance(error, stripe.InvalidRequestError):
        return refused(f"invalid_request:{code}" if code else "invalid_request", message)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return refused("gateway_misconfigured", message)
    if isinstance(error, stripe.RateLimitError):
        return unavailable("gateway_rate_limited", message)
    if isinstance(error, stripe.APIConnectionError):
        return unavailable("gateway_unreachable", message)
    return unavailable("gateway_error", message)


class StripeGateway:
    def __init__(self, api_key: str, api_base: str, timeout_seconds: float) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            http_client=stripe.HTTPXClient(timeout=timeout_seconds),
            max_network_retries=0,  # Temporal's retry policy owns retries
        )

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except stripe.StripeError as error:
            raise classify(error) from None

    async def create_payment(self, request: CreateGatewayPayment) -> GatewayPayment:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "capture_method": "manual",
            "payment_method_types": ["card"],
            "metadata": {
                **request.metadata,
                "order_id": request.order_id,
                "checkout_id": request.checkout_id,
                "workflow_id": request.workflow_id,
            },
        }
        if request.customer_email:
            params["receipt_email"] = request.customer_email
        intent = await self._call(
            self._client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": request.idempotency_key},
            )
        )
        return self._payment(intent)

    async def fetch_payment(self, ref: GatewayPaymentRef) -> GatewayPayment:
        intent = await self._call(
            self._client.v1.payment_intents.retrieve_async(ref.gateway_payment_id)
        )
        return self._payment(intent)

    async def capture(self, request: CaptureGatewayPayment) -> GatewayPayment:
        try:
            intent = await self._client.v1.payment_intents.capture_async(
                request.ref.gateway_payment_id,
                {"amount_to_capture": request.amount},
                {"idempotency_key": request.idempotency_key},
            )
        except stripe.InvalidRequestError as error:
            current = await self.fetch_payment(request.ref)
            if current.status is PaymentStatus.CAPTURED:
                return current  # an earlier attempt captured it and its answer was lost
            raise classify(error) from None
        except stripe.StripeError as error:
            raise classify(error) from None
        return self._payment(intent)

    async def release(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        current = await self.fetch_payment(request.ref)
        if current.status is PaymentStatus.CANCELED:
            return current
        if current.status is PaymentStatus.CAPTURED:
            raise refused("already_captured", "stripe: captured payments can only be refunded")
        intent = await self._call(
            self._client.v1.payment_intents.cancel_async(
                request.ref.gateway_payment_id, {}, {"idempotency_key": request.idempotency_key}
            )
        )
        return self._payment(intent)

    async def refund(self, request: RefundGatewayPayment) -> GatewayRefund:
        params: dict[str, Any] = {
            "payment_intent": request.ref.gateway_payment_id,
            "amount": request.amount,
            "metadata": {"reason": request.reason},
        }
        if request.reason in _REFUND_REASONS:
            params["reason"] = request.reason
        refund = await self._call(
            self._client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": request.idempotency_key},
            )
        )
        return GatewayRefund(
            gateway_refund_id=refund.id, status=refund.status or "pending", amount=refund.amount
        )

    @staticmethod
    def _payment(intent: stripe.PaymentIntent) -> GatewayPayment:
        error = getattr(intent, "last_payment_error", None)
        status = _STATUSES.get(intent.status, PaymentStatus.UNKNOWN)
        # Older API versions and emulators omit these two; the status tells what they must be.
        capturable = getattr(intent, "amount_capturable", None)
        received = getattr(intent, "amount_received", None)
        if capturable is None:
            capturable = intent.amount if status is PaymentStatus.AUTHORIZED else 0
        if received is None:
            received = intent.amount if status is PaymentStatus.CAPTURED else 0
        return GatewayPayment(
            ref=GatewayPaymentRef(
                gateway=Gateway.STRIPE,
                gateway_payment_id=intent.id,
                gateway_charge_id=_charge_id(intent),
            ),
            status=status,
            amount=intent.amount,
            currency=intent.currency.upper(),
            amount_capturable=capturable,
            amount_captured=received,
            instructions=PaymentInstructions(stripe_client_secret=intent.client_secret),
            error_code=(error.decline_code or error.code) if error else None,
            error_message=error.message if error else None,
        )


def _charge_id(intent: stripe.PaymentIntent) -> str | None:
    charge: str | stripe.Charge | None = getattr(intent, "latest_charge", None)
    if charge is None or isinstance(charge, str):
        return charge
    return charge.id
