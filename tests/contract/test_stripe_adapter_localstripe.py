"""The Stripe adapter against localstripe, a third-party Stripe emulator: an outside check that
the adapter speaks Stripe, not just our own sandbox's idea of it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from activities.gateways.stripe.adapter import StripeGateway
from devstack.stack import free_port, wait_for_port
from domain import names
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    PaymentStatus,
    ReleaseGatewayPayment,
)
from domain.refund import CreateGatewayRefund, GatewayRefundRef, RefundReason

KEY = "sk_test_localstripe"


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "localstripe"), "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway(localstripe_url: str) -> StripeGateway:
    return StripeGateway(KEY, localstripe_url, timeout_seconds=5)


async def create(gateway: StripeGateway, amount: int = 1_000) -> GatewayPayment:
    order = uuid.uuid4().hex[:8]
    return await gateway.create_payment(
        CreateGatewayPayment(
            gateway=Gateway.STRIPE,
            checkout_id=f"pay_{order}",
            order_id=order,
            workflow_id=names.checkout_workflow_id(order),
            amount=amount,
            currency="EUR",
            customer_email=None,
            metadata={"cart": "2 items"},
            idempotency_key=f"checkout-{order}-create",
        )
    )


def customer_pays(localstripe_url: str, payment_intent: str) -> None:
    """What Stripe.js does in the browser: attach a card and confirm."""
    client = stripe.StripeClient(KEY, base_addresses={"api": localstripe_url})
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_intent, {"payment_method": method.id})
    client.v1.payment_intents.confirm(payment_intent)


async def test_created_payment_waits_for_the_customer_with_a_client_secret(
    gateway: StripeGateway,
) -> None:
    payment = await create(gateway)

    assert payment.status is PaymentStatus.CREATED
    assert payment.currency == "EUR" and payment.amount == 1_000
    assert payment.instructions.stripe_client_secret
    assert payment.instructions.stripe_client_secret.startswith(payment.ref.gateway_payment_id)


async def test_authorized_payment_is_captured_once_and_refunded(
    gateway: StripeGateway, localstripe_url: str
) -> None:
    payment = await create(gateway)
    customer_pays(localstripe_url, payment.ref.gateway_payment_id)

    authorized = await gateway.fetch_payment(payment.ref)
    assert authorized.status is PaymentStatus.AUTHORIZED
    assert authorized.amount_capturable == 1_000
    capture = CaptureGatewayPayment(
        ref=authorized.ref, amount=1_000, currency="EUR", idempotency_key="cap-" + uuid.uuid4().hex
    )
    captured = await gateway.capture(capture)
    again = await gateway.capture(capture)  # a retry after a lost answer

    assert captured.status is again.status is PaymentStatus.CAPTURED
    assert again.amount_captured == 1_000
    request = CreateGatewayRefund(
        ref=authorized.ref,
        refund_id="rfd_" + uuid.uuid4().hex[:24],
        workflow_id="refund-pay_x-key",
        payment_id="pay_x",
        amount=400,
        currency="EUR",
        reason=RefundReason.OTHER,  # localstripe knows no `reason`; `other` sends none
    )
    refund = await gateway.refund(request)

    assert refund.amount == 400 and refund.gateway_refund_id.startswith("re_")
    fetched = await gateway.fetch_refund(
        GatewayRefundRef(gateway=Gateway.STRIPE, gateway_refund_id=refund.gateway_refund_id)
    )
    assert fetched.amount == 400 and fetched.status is refund.status


async def test_release_cancels_an_unpaid_payment_and_is_safe_to_repeat(
    gateway: StripeGateway,
) -> None:
    payment = await create(gateway)
    release = ReleaseGatewayPayment(
        ref=payment.ref, reason="deadline", idempotency_key="rel-" + uuid.uuid4().hex
    )

    first = await gateway.release(release)
    second = await gateway.release(release)

    assert first.status is second.status is PaymentStatus.CANCELED
