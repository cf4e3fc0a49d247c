"""The Stripe adapter against two Stripe emulators: our sandbox and localstripe, a third-party
emulator. The same tests pass on both, so the sandbox is checked by an outside party and the
adapter speaks Stripe, not just our own idea of it. A case localstripe cannot play is skipped for
it alone, with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import stripe
from temporalio.exceptions import ApplicationError

from activities.gateways.stripe.adapter import StripeGateway
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
from tests.contract.conftest import SANDBOX_STRIPE_KEY

LOCALSTRIPE_KEY = "sk_test_localstripe"


@dataclass
class Emulator:
    name: str
    gateway: StripeGateway
    customer_pays: Callable[[GatewayPayment], Awaitable[None]]
    """What Stripe.js does in the browser with the PaymentIntent's client secret."""

    def lacks(self, behaviour: str, emulator: str = "localstripe") -> None:
        if self.name == emulator:
            pytest.skip(f"{emulator} has no {behaviour}")


def _localstripe(url: str) -> Emulator:
    async def customer_pays(payment: GatewayPayment) -> None:
        client = stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": url})
        method = await client.v1.payment_methods.create_async(
            {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                },
            }
        )
        intent = payment.ref.gateway_payment_id
        await client.v1.payment_intents.update_async(intent, {"payment_method": method.id})
        await client.v1.payment_intents.confirm_async(intent)

    return Emulator("localstripe", StripeGateway(LOCALSTRIPE_KEY, url, 5), customer_pays)


def _sandbox(url: str) -> Emulator:
    async def customer_pays(payment: GatewayPayment) -> None:
        async with httpx.AsyncClient(base_url=url) as browser:
            paid = await browser.post(
                f"/sandbox/stripe/payment_intents/{payment.ref.gateway_payment_id}/pay",
                json={
                    "client_secret": payment.instructions.stripe_client_secret,
                    "payment_method": "pm_card_visa",
                },
            )
        assert paid.status_code == 200, paid.text

    return Emulator("sandbox", StripeGateway(SANDBOX_STRIPE_KEY, f"{url}/stripe", 5), customer_pays)


@pytest.fixture(params=["localstripe", "sandbox"])
def emulator(request: pytest.FixtureRequest) -> Emulator:
    if request.param == "localstripe":
        return _localstripe(request.getfixturevalue("localstripe_url"))
    return _sandbox(request.getfixturevalue("sandbox_url"))


def creation(amount: int = 1_000) -> CreateGatewayPayment:
    order = uuid.uuid4().hex[:8]
    return CreateGatewayPayment(
        gateway=Gateway.STRIPE,
        checkout_id=f"pay_{order}",
        order_id=order,
        workflow_id=names.checkout_workflow_id(order),
        amount=amount,
        currency="EUR",
        customer_email=None,
        metadata={"cart": "2 items"},
        idempotency_key=f"{names.checkout_workflow_id(order)}-create",
    )


def refund_of(payment: GatewayPayment, amount: int) -> CreateGatewayRefund:
    return CreateGatewayRefund(
        ref=payment.ref,
        refund_id="rfd_" + uuid.uuid4().hex[:24],
        workflow_id="refund-pay_x-key",
        payment_id="pay_x",
        amount=amount,
        currency="EUR",
        reason=RefundReason.OTHER,  # localstripe knows no `reason`; `other` sends none
    )


async def authorized(emulator: Emulator) -> GatewayPayment:
    payment = await emulator.gateway.create_payment(creation())
    await emulator.customer_pays(payment)
    return await emulator.gateway.fetch_payment(payment.ref)


async def test_created_payment_waits_for_the_customer_with_a_client_secret(
    emulator: Emulator,
) -> None:
    payment = await emulator.gateway.create_payment(creation())

    assert payment.status is PaymentStatus.CREATED
    assert payment.currency == "EUR" and payment.amount == 1_000
    assert payment.instructions.stripe_client_secret
    assert payment.instructions.stripe_client_secret.startswith(payment.ref.gateway_payment_id)


async def test_a_retried_create_gets_the_same_payment(emulator: Emulator) -> None:
    emulator.lacks("Idempotency-Key support")
    request = creation()

    first = await emulator.gateway.create_payment(request)
    again = await emulator.gateway.create_payment(request)  # a retry after a lost answer

    assert again.ref == first.ref


async def test_authorized_payment_is_captured_once_and_refunded(emulator: Emulator) -> None:
    payment = await authorized(emulator)
    assert payment.status is PaymentStatus.AUTHORIZED
    assert payment.amount_capturable == 1_000
    capture = CaptureGatewayPayment(
        ref=payment.ref, amount=1_000, currency="EUR", idempotency_key="cap-" + uuid.uuid4().hex
    )
    captured = await emulator.gateway.capture(capture)
    again = await emulator.gateway.capture(capture)  # a retry after a lost answer

    assert captured.status is again.status is PaymentStatus.CAPTURED
    assert again.amount_captured == 1_000
    refund = await emulator.gateway.refund(refund_of(payment, 400))

    assert refund.amount == 400 and refund.gateway_refund_id.startswith("re_")
    fetched = await emulator.gateway.fetch_refund(
        GatewayRefundRef(gateway=Gateway.STRIPE, gateway_refund_id=refund.gateway_refund_id)
    )
    assert fetched.amount == 400 and fetched.status is refund.status
    assert (await emulator.gateway.fetch_payment(payment.ref)).amount_refunded == 400


async def test_a_refund_beyond_what_was_captured_is_refused(emulator: Emulator) -> None:
    emulator.lacks("check of a refund's amount against the charge")
    payment = await authorized(emulator)
    await emulator.gateway.capture(
        CaptureGatewayPayment(
            ref=payment.ref, amount=1_000, currency="EUR", idempotency_key=uuid.uuid4().hex
        )
    )

    with pytest.raises(ApplicationError) as refused:
        await emulator.gateway.refund(refund_of(payment, 1_001))
    assert refused.value.non_retryable


async def test_release_cancels_an_unpaid_payment_and_is_safe_to_repeat(
    emulator: Emulator,
) -> None:
    payment = await emulator.gateway.create_payment(creation())
    release = ReleaseGatewayPayment(
        ref=payment.ref, reason="deadline", idempotency_key="rel-" + uuid.uuid4().hex
    )

    first = await emulator.gateway.release(release)
    second = await emulator.gateway.release(release)

    assert first.status is second.status is PaymentStatus.CANCELED


async def test_a_released_payment_cannot_be_captured(emulator: Emulator) -> None:
    emulator.lacks("status check on capture (it captures a canceled PaymentIntent)")
    payment = await authorized(emulator)
    await emulator.gateway.release(
        ReleaseGatewayPayment(ref=payment.ref, reason="refused", idempotency_key=uuid.uuid4().hex)
    )

    with pytest.raises(ApplicationError) as refused:
        await emulator.gateway.capture(
            CaptureGatewayPayment(
                ref=payment.ref, amount=1_000, currency="EUR", idempotency_key=uuid.uuid4().hex
            )
        )
    assert refused.value.non_retryable
    assert (await emulator.gateway.fetch_payment(payment.ref)).status is PaymentStatus.CANCELED


async def test_a_fetched_authorization_shows_the_cards_signals(emulator: Emulator) -> None:
    payment = await authorized(emulator)

    assert payment.card is not None
    if emulator.name == "localstripe":
        return  # it shows what it knows; the sandbox models the documented fields
    assert payment.card.fingerprint and payment.card.country == "US"
    assert payment.card.risk_level == "normal"
