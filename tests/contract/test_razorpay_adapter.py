"""The Razorpay adapter against the sandbox's Razorpay side with its default behaviour (the
account captures automatically), through the official `razorpay` SDK."""

from __future__ import annotations

import uuid

import httpx
import pytest

from activities.gateways.razorpay.adapter import RazorpayGateway
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    PaymentStatus,
)
from tests.contract.conftest import SANDBOX_RAZORPAY_KEY


@pytest.fixture
def gateway(sandbox_url: str) -> RazorpayGateway:
    key_id, secret = SANDBOX_RAZORPAY_KEY
    return RazorpayGateway(key_id, secret, f"{sandbox_url}/razorpay", timeout_seconds=5)


async def create(gateway: RazorpayGateway) -> GatewayPayment:
    order = uuid.uuid4().hex[:8]
    return await gateway.create_payment(
        CreateGatewayPayment(
            gateway=Gateway.RAZORPAY,
            checkout_id=f"pay_{order}",
            order_id=order,
            workflow_id=f"checkout-{order}",
            amount=5_000,
            currency="INR",
            customer_email=None,
            metadata={},
            idempotency_key=f"checkout-{order}-create",
        )
    )


async def test_a_paid_order_waits_for_our_capture_although_the_account_captures_by_itself(
    gateway: RazorpayGateway, sandbox_url: str
) -> None:
    payment = await create(gateway)
    async with httpx.AsyncClient(base_url=sandbox_url) as customer:
        paid = await customer.post(
            f"/sandbox/razorpay/orders/{payment.ref.gateway_payment_id}/pay",
            json={"outcome": "success"},
        )
    assert paid.status_code == 200, paid.text
    ref = payment.ref.model_copy(update={"gateway_charge_id": paid.json()["razorpay_payment_id"]})

    authorized = await gateway.fetch_payment(ref)
    assert authorized.status is PaymentStatus.AUTHORIZED
    captured = await gateway.capture(
        CaptureGatewayPayment(ref=ref, amount=5_000, currency="INR", idempotency_key="unused")
    )
    assert captured.status is PaymentStatus.CAPTURED
