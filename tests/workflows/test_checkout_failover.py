"""Failover inside the checkout saga (time-skipping): a routed checkout whose gateway cannot be
reached to create the payment releases what that gateway may hold, then creates the payment on
the next gateway routing allowed — never on two at once; a refusal or a named gateway does not
move."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.checkout import CheckoutRequest, Gateway, PaymentStatus, Routing
from tests.workflows.doubles import (
    FakeGateway,
    answered_while_retries_pass,
    checkout_request,
    start,
    worker,
)
from workflows.checkout import CheckoutWorkflow


def queue() -> str:
    return f"checkout-failover-{uuid.uuid4().hex}"


def unreachable() -> ApplicationError:
    return ApplicationError("connect timed out", type="gateway_unreachable")


def routed(*fallbacks: Gateway) -> CheckoutRequest:
    request = checkout_request()
    request.routing = Routing(
        reason="auto: stripe is the first healthy gateway for USD", fallbacks=list(fallbacks)
    )
    return request


async def test_an_unreachable_gateway_fails_over_after_its_payment_is_released(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [unreachable()] * 3  # the create's short retries, all unreachable
    fake.left_at[Gateway.STRIPE] = PaymentStatus.CREATED  # one of them wrote before failing
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(Gateway.RAZORPAY), tq)
        ready = await answered_while_retries_pass(
            time_skipping_env, handle.execute_update(CheckoutWorkflow.checkout_ready)
        )
        assert ready.gateway is Gateway.RAZORPAY and not ready.awaiting_gateway
        assert ready.routing_reason is not None
        assert ready.routing_reason.startswith("failover: stripe unavailable")
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert fake.calls == [
        "create:stripe", "create:stripe", "create:stripe", "abandon:stripe", "create:razorpay",
    ]  # fmt: skip
    assert fake.left_at[Gateway.STRIPE] is PaymentStatus.CANCELED
    assert result.status is PaymentStatus.CAPTURED and result.gateway is Gateway.RAZORPAY
    assert result.abandoned_gateways == [Gateway.STRIPE]
    assert fake.captures[0].ref.gateway is Gateway.RAZORPAY
    failover = next(s for s in result.history if s.step == "gateway_failover")
    assert "stripe pi_0 released: canceled" in failover.detail
    assert "gateway_failover" in fake.steps()


async def test_a_gateway_that_cannot_be_looked_at_is_released_before_the_checkout_ends(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [unreachable()] * 3
    fake.abandon_errors = [unreachable()] * 4  # its short retries, then one in the background
    fake.left_at[Gateway.STRIPE] = PaymentStatus.CREATED
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(Gateway.RAZORPAY), tq)
        ready = await answered_while_retries_pass(
            time_skipping_env, handle.execute_update(CheckoutWorkflow.checkout_ready)
        )
        assert ready.gateway is Gateway.RAZORPAY
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert fake.left_at[Gateway.STRIPE] is PaymentStatus.CANCELED
    assert "gateway_abandoned" in [s.step for s in result.history]


async def test_a_refusal_never_fails_over(time_skipping_env: WorkflowEnvironment) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [
        ApplicationError("amount too small", type="invalid_request", non_retryable=True)
    ]
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(Gateway.RAZORPAY), tq)
        result = await handle.result()

    assert result.status is PaymentStatus.FAILED and fake.calls == ["create:stripe"]


async def test_a_checkout_on_a_named_gateway_waits_for_it_instead_of_moving(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [unreachable()] * 3
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        ready = await answered_while_retries_pass(
            time_skipping_env, handle.execute_update(CheckoutWorkflow.checkout_ready)
        )
        assert ready.awaiting_gateway and ready.gateway is Gateway.STRIPE
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert {c.split(":")[1] for c in fake.calls} == {"stripe"}
