"""The Stripe adapter against two Stripe emulators: our sandbox and localstripe, a third-party
emulator. The same tests pass on both, so the sandbox is checked by an outside party and the
adapter speaks Stripe, not just our own idea of it. A case localstripe cannot play is skipped for
it alone, with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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
from tests.contract.conftest import SANDBOX_STRIPE_KEY, SandboxControl

LOCALSTRIPE_KEY = "sk_test_localstripe"


@dataclass
class Emulator:
    name: str
    api_base: str
    gateway: StripeGateway
    customer_pays: Callable[[GatewayPayment], Awaitable[None]]
    """What Stripe.js does in the browser with the PaymentIntent's client secret."""

    def lacks(self, behaviour: str, emulator: str = "localstripe") -> None:
        if self.name == emulator:
            pytest.skip(f"{emulator} has no {behaviour}")

    def faults(self, request: pytest.FixtureRequest) -> SandboxControl:
        """The sandbox's fault controls; localstripe has none, so the case is sandbox-only."""
        self.lacks("fault injection (a 500 saved under the key, a write applied late)")
        control: SandboxControl = request.getfixturevalue("sandbox_control")
        return control


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

    return Emulator("localstripe", url, StripeGateway(LOCALSTRIPE_KEY, url, 5), customer_pays)


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

    api_base = f"{url}/stripe"
    return Emulator(
        "sandbox", api_base, StripeGateway(SANDBOX_STRIPE_KEY, api_base, 5), customer_pays
    )


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


# A gateway that fails, or applies a call and fails all the same. Each case calls the adapter as
# Temporal's retry policy does: once, and again after a retryable failure.


async def _intents_of(emulator: Emulator, checkout_id: str) -> list[str]:
    client = stripe.StripeClient(SANDBOX_STRIPE_KEY, base_addresses={"api": emulator.api_base})
    found = await client.v1.payment_intents.search_async(
        {"query": f"metadata['checkout_id']:'{checkout_id}'", "limit": 100}
    )
    return [intent.id for intent in found.data]


async def _fails_retryably(call: Awaitable[object]) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await call
    assert not failed.value.non_retryable, failed.value
    return failed.value


async def test_a_create_answered_500_moves_to_the_next_key_once_a_look_up_finds_nothing(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    control.arm("stripe", "payment_intents.create", "error_500")
    creating = creation()

    await _fails_retryably(emulator.gateway.create_payment(creating))
    # The retry's key replays the saved 500; the look-up shows nothing was made, so the next
    # generation of the key makes the PaymentIntent.
    payment = await emulator.gateway.create_payment(creating)

    assert payment.status is PaymentStatus.CREATED
    assert await _intents_of(emulator, creating.checkout_id) == [payment.ref.gateway_payment_id]


async def test_a_create_applied_then_answered_500_is_found_and_not_made_twice(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    control.arm("stripe", "payment_intents.create", "applied_then_500")
    creating = creation()

    await _fails_retryably(emulator.gateway.create_payment(creating))
    payment = await emulator.gateway.create_payment(creating)

    assert await _intents_of(emulator, creating.checkout_id) == [payment.ref.gateway_payment_id]


async def test_a_capture_answered_500_is_captured_once_under_the_next_key(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await authorized(emulator)
    control.arm("stripe", "payment_intents.capture", "error_500")
    capture = CaptureGatewayPayment(
        ref=payment.ref, amount=1_000, currency="EUR", idempotency_key="cap-" + uuid.uuid4().hex
    )

    await _fails_retryably(emulator.gateway.capture(capture))
    captured = await emulator.gateway.capture(capture)

    assert captured.status is PaymentStatus.CAPTURED and captured.amount_captured == 1_000
    assert control.movements(payment.ref.gateway_payment_id) == ["authorization", "capture"]


async def test_a_capture_applied_then_answered_500_reads_back_as_captured(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await authorized(emulator)
    control.arm("stripe", "payment_intents.capture", "applied_then_500")
    capture = CaptureGatewayPayment(
        ref=payment.ref, amount=1_000, currency="EUR", idempotency_key="cap-" + uuid.uuid4().hex
    )

    captured = await emulator.gateway.capture(capture)
    again = await emulator.gateway.capture(capture)  # the key replays the 500; the look-up tells

    assert captured.status is again.status is PaymentStatus.CAPTURED
    assert control.movements(payment.ref.gateway_payment_id) == ["authorization", "capture"]


async def test_a_slow_capture_is_read_back_as_captured_and_made_once(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await authorized(emulator)
    control.arm("stripe", "payment_intents.capture", "slow_commit", delay_seconds=1)
    capture = CaptureGatewayPayment(
        ref=payment.ref, amount=1_000, currency="EUR", idempotency_key="cap-" + uuid.uuid4().hex
    )

    await _fails_retryably(emulator.gateway.capture(capture))  # a 502; the intent still shows
    try:  # while the capture is being applied, the same key is in use (409): retry later
        in_flight = await emulator.gateway.capture(capture)
        assert in_flight.status is PaymentStatus.CAPTURED
    except ApplicationError as error:
        assert not error.non_retryable, error
    control.wait_for_movement(payment.ref.gateway_payment_id, "capture")
    captured = await emulator.gateway.capture(capture)

    assert captured.status is PaymentStatus.CAPTURED and captured.amount_captured == 1_000
    assert control.movements(payment.ref.gateway_payment_id) == ["authorization", "capture"]


async def _captured(emulator: Emulator) -> GatewayPayment:
    payment = await authorized(emulator)
    return await emulator.gateway.capture(
        CaptureGatewayPayment(
            ref=payment.ref, amount=1_000, currency="EUR", idempotency_key=uuid.uuid4().hex
        )
    )


async def test_a_refund_answered_500_is_made_once_under_the_next_key(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await _captured(emulator)
    control.arm("stripe", "refunds.create", "error_500")
    refunding = refund_of(payment, 400)

    await _fails_retryably(emulator.gateway.refund(refunding))
    refund = await emulator.gateway.refund(refunding)

    assert refund.amount == 400
    moved = control.movements(payment.ref.gateway_payment_id)
    assert moved == ["authorization", "capture", "refund"]


async def test_a_refund_applied_then_answered_500_is_found_and_not_made_twice(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await _captured(emulator)
    control.arm("stripe", "refunds.create", "applied_then_500")
    refunding = refund_of(payment, 400)

    await _fails_retryably(emulator.gateway.refund(refunding))
    refund = await emulator.gateway.refund(refunding)

    assert refund.amount == 400
    moved = control.movements(payment.ref.gateway_payment_id)
    assert moved == ["authorization", "capture", "refund"]
    assert (await emulator.gateway.fetch_payment(payment.ref)).amount_refunded == 400


async def test_a_card_short_of_funds_is_declined_unless_partial_authorization_was_asked(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    """Our PaymentIntents do not ask for partial authorization, so the issuer approving less is a
    decline the customer may retry; one that asked reads as less to capture than its amount."""
    emulator.faults(request)  # localstripe models no issuer approving part of the amount
    payment = await emulator.gateway.create_payment(creation())
    async with httpx.AsyncClient(base_url=emulator.api_base.removesuffix("/stripe")) as browser:
        declined = await browser.post(
            f"/sandbox/stripe/payment_intents/{payment.ref.gateway_payment_id}/pay",
            json={
                "client_secret": payment.instructions.stripe_client_secret,
                "payment_method": "pm_card_visa",
                "authorized_amount": 600,
            },
        )
    assert declined.status_code == 402
    after = await emulator.gateway.fetch_payment(payment.ref)
    assert after.status is PaymentStatus.CREATED and after.error_code == "insufficient_funds"

    client = stripe.StripeClient(SANDBOX_STRIPE_KEY, base_addresses={"api": emulator.api_base})
    partial_allowed: Any = {
        "amount": 1_000,
        "currency": "eur",
        "capture_method": "manual",
        "payment_method_options": {"card": {"request_partial_authorization": "if_available"}},
    }
    asked = await client.v1.payment_intents.create_async(partial_allowed)
    async with httpx.AsyncClient(base_url=emulator.api_base.removesuffix("/stripe")) as browser:
        paid = await browser.post(
            f"/sandbox/stripe/payment_intents/{asked.id}/pay",
            json={
                "client_secret": asked.client_secret,
                "payment_method": "pm_card_visa",
                "authorized_amount": 600,
            },
        )
    assert paid.status_code == 200, paid.text
    partial = await emulator.gateway.fetch_payment(
        payment.ref.model_copy(update={"gateway_payment_id": asked.id})
    )
    assert partial.status is PaymentStatus.AUTHORIZED
    assert (partial.amount, partial.amount_capturable) == (1_000, 600)


async def test_a_slow_refund_is_replayed_to_its_key_once_it_lands_and_made_once(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    control = emulator.faults(request)
    payment = await _captured(emulator)
    control.arm("stripe", "refunds.create", "slow_commit", delay_seconds=1)
    refunding = refund_of(payment, 400)

    await _fails_retryably(emulator.gateway.refund(refunding))  # a 502 page
    try:  # while it is being made, its key is in use (409): retry later
        in_flight = await emulator.gateway.refund(refunding)
        assert in_flight.amount == 400
    except ApplicationError as error:
        assert not error.non_retryable, error
    control.wait_for_movement(payment.ref.gateway_payment_id, "refund")
    refund = await emulator.gateway.refund(refunding)

    assert refund.amount == 400
    moved = control.movements(payment.ref.gateway_payment_id)
    assert moved == ["authorization", "capture", "refund"]


async def test_a_fetched_authorization_shows_the_cards_signals(emulator: Emulator) -> None:
    payment = await authorized(emulator)

    assert payment.card is not None
    if emulator.name == "localstripe":
        return  # it shows what it knows; the sandbox models the documented fields
    assert payment.card.fingerprint and payment.card.country == "US"
    assert payment.card.risk_level == "normal"
