"""The Razorpay adapter against the sandbox's Razorpay side with its default behaviour (the
account captures automatically), through the official `razorpay` SDK."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gateways.razorpay.adapter import RazorpayGateway
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    PaymentStatus,
)
from domain.refund import CreateGatewayRefund, RefundReason
from tests.contract.conftest import SANDBOX_RAZORPAY_KEY, SandboxControl


@pytest.fixture
def gateway(sandbox_url: str) -> RazorpayGateway:
    key_id, secret = SANDBOX_RAZORPAY_KEY
    return RazorpayGateway(key_id, secret, f"{sandbox_url}/razorpay", timeout_seconds=5)


def creation() -> CreateGatewayPayment:
    order = uuid.uuid4().hex[:8]
    return CreateGatewayPayment(
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


async def create(gateway: RazorpayGateway) -> GatewayPayment:
    return await gateway.create_payment(creation())


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


# Errors and slow writes, as Temporal's retry policy meets them: a retryable failure is called
# again, a non-retryable one ends the attempt.


async def _authorized(gateway: RazorpayGateway, sandbox_url: str) -> GatewayPayment:
    payment = await create(gateway)
    async with httpx.AsyncClient(base_url=sandbox_url) as customer:
        paid = await customer.post(
            f"/sandbox/razorpay/orders/{payment.ref.gateway_payment_id}/pay",
            json={"outcome": "success"},
        )
    assert paid.status_code == 200, paid.text
    ref = payment.ref.model_copy(update={"gateway_charge_id": paid.json()["razorpay_payment_id"]})
    return await gateway.fetch_payment(ref)


def _capture(payment: GatewayPayment, amount: int = 5_000) -> CaptureGatewayPayment:
    return CaptureGatewayPayment(
        ref=payment.ref, amount=amount, currency="INR", idempotency_key="unused"
    )


async def _fails(call: Awaitable[object], *, retryable: bool) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await call
    assert failed.value.non_retryable is not retryable, failed.value
    return failed.value


@pytest.mark.parametrize("kind", ["rate_limited", "error_500"])
async def test_a_429_or_a_5xx_is_retryable_and_the_retry_captures_once(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl, kind: str
) -> None:
    payment = await _authorized(gateway, sandbox_url)
    sandbox_control.arm("razorpay", "payments.capture", kind)

    failed = await _fails(gateway.capture(_capture(payment)), retryable=True)
    assert failed.type == ("gateway_rate_limited" if kind == "rate_limited" else "gateway_error")
    captured = await gateway.capture(_capture(payment))

    assert captured.status is PaymentStatus.CAPTURED
    charge = str(payment.ref.gateway_charge_id)
    assert sandbox_control.movements(charge) == ["authorization", "capture"]


async def test_a_429_creating_the_order_is_retryable_and_makes_one_order(
    gateway: RazorpayGateway, sandbox_control: SandboxControl
) -> None:
    sandbox_control.arm("razorpay", "orders.create", "rate_limited")
    creating = creation()

    failed = await _fails(gateway.create_payment(creating), retryable=True)
    assert failed.type == "gateway_rate_limited"
    first = await gateway.create_payment(creating)
    again = await gateway.create_payment(creating)

    assert first.ref == again.ref


async def test_an_order_applied_then_answered_500_is_found_by_its_receipt(
    gateway: RazorpayGateway, sandbox_control: SandboxControl
) -> None:
    sandbox_control.arm("razorpay", "orders.create", "applied_then_500")
    creating = creation()

    await _fails(gateway.create_payment(creating), retryable=True)
    payment = await gateway.create_payment(creating)

    orders = sandbox_control.http.get(
        "/razorpay/v1/orders", params={"receipt": creating.checkout_id}, auth=SANDBOX_RAZORPAY_KEY
    ).json()
    assert [o["id"] for o in orders["items"]] == [payment.ref.gateway_payment_id]


async def test_a_4xx_is_not_retryable_and_captures_nothing(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl
) -> None:
    payment = await _authorized(gateway, sandbox_url)

    failed = await _fails(gateway.capture(_capture(payment, amount=4_000)), retryable=False)

    assert "equal to the amount authorized" in failed.message
    assert (await gateway.fetch_payment(payment.ref)).status is PaymentStatus.AUTHORIZED
    assert sandbox_control.movements(str(payment.ref.gateway_charge_id)) == ["authorization"]


async def test_a_slow_capture_then_already_captured_reads_back_as_captured(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl
) -> None:
    """Issue 12's lost sale: the first capture lands after its client gave up; the retry still
    sees the payment authorized, asks again and is told "already been captured"."""
    payment = await _authorized(gateway, sandbox_url)
    sandbox_control.arm("razorpay", "payments.capture", "slow_commit", delay_seconds=1)

    await _fails(gateway.capture(_capture(payment)), retryable=True)  # a 502 page
    captured = await gateway.capture(_capture(payment))  # waits for the first, then 400

    assert captured.status is PaymentStatus.CAPTURED and captured.amount_captured == 5_000
    charge = str(payment.ref.gateway_charge_id)
    assert sandbox_control.movements(charge) == ["authorization", "capture"]


async def test_a_capture_applied_then_answered_500_reads_back_as_captured(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl
) -> None:
    payment = await _authorized(gateway, sandbox_url)
    sandbox_control.arm("razorpay", "payments.capture", "applied_then_500")

    captured = await gateway.capture(_capture(payment))

    assert captured.status is PaymentStatus.CAPTURED
    charge = str(payment.ref.gateway_charge_id)
    assert sandbox_control.movements(charge) == ["authorization", "capture"]


async def _captured(gateway: RazorpayGateway, sandbox_url: str) -> GatewayPayment:
    return await gateway.capture(_capture(await _authorized(gateway, sandbox_url)))


def _refund_of(payment: GatewayPayment, amount: int) -> CreateGatewayRefund:
    return CreateGatewayRefund(
        ref=payment.ref,
        refund_id="rfd_" + uuid.uuid4().hex[:24],
        workflow_id="refund-pay_x-own-key",
        payment_id="pay_x",
        amount=amount,
        currency="INR",
        reason=RefundReason.REQUESTED_BY_CUSTOMER,
    )


async def test_a_refund_applied_then_answered_500_is_found_by_its_receipt_not_made_twice(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl
) -> None:
    payment = await _captured(gateway, sandbox_url)
    sandbox_control.arm("razorpay", "payments.refund", "applied_then_500")
    refunding = _refund_of(payment, 2_000)

    await _fails(gateway.refund(refunding), retryable=True)
    refund = await gateway.refund(refunding)

    assert refund.amount == 2_000
    charge = str(payment.ref.gateway_charge_id)
    assert sandbox_control.movements(charge) == ["authorization", "capture", "refund"]


async def test_a_slow_refund_is_waited_for_then_found_not_made_twice(
    gateway: RazorpayGateway, sandbox_url: str, sandbox_control: SandboxControl
) -> None:
    payment = await _captured(gateway, sandbox_url)
    sandbox_control.arm("razorpay", "payments.refund", "slow_commit", delay_seconds=1)
    refunding = _refund_of(payment, 2_000)
    charge = str(payment.ref.gateway_charge_id)

    await _fails(gateway.refund(refunding), retryable=True)  # a 502 page
    try:  # while it is being made, the key answers 409 (or the refund has landed meanwhile)
        in_flight = await gateway.refund(refunding)
        assert in_flight.amount == 2_000
    except ApplicationError as error:
        assert not error.non_retryable and error.type == "refund_in_progress", error
    sandbox_control.wait_for_movement(charge, "refund")
    refund = await gateway.refund(refunding)

    assert refund.amount == 2_000
    assert sandbox_control.movements(charge) == ["authorization", "capture", "refund"]
