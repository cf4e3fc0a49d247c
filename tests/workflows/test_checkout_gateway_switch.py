"""A declined customer retries on another gateway (time-skipping): the payment at the first
gateway is looked at, released and left to a ledger row of its own before the next gateway is
asked, so a payment is never open on two gateways and money taken on the left one later is given
back, never mixed into the checkout's capture."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain import names
from domain.checkout import (
    CheckoutRequest,
    CheckoutState,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    PaymentStatus,
    Routing,
    SwitchGateway,
)
from domain.refund import RefundMode, RefundState
from tests.workflows.doubles import AMOUNT, FakeGateway, checkout_request, start, wait_for, worker
from workflows.checkout import CheckoutWorkflow


def queue() -> str:
    return f"checkout-switch-{uuid.uuid4().hex}"


def routed(*, declined_retry: bool = True) -> CheckoutRequest:
    request = checkout_request()
    request.routing = Routing(
        reason="auto: stripe is the first healthy gateway for USD",
        fallbacks=[Gateway.RAZORPAY],
        declined_retry=declined_retry,
    )
    return request


async def declined(
    handle: WorkflowHandle[CheckoutWorkflow, CheckoutState], fake: FakeGateway
) -> None:
    await handle.execute_update(CheckoutWorkflow.checkout_ready)
    await handle.signal(CheckoutWorkflow.payment_event, fake.declines())
    await wait_for(handle, lambda s: len(s.attempts) == 1)


def refusal(error: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str | None:
    cause = error.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type


async def test_a_declined_customer_pays_on_the_next_gateway_after_the_first_is_released(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(), tq)
        await declined(handle, fake)
        moved = await handle.execute_update(CheckoutWorkflow.switch_gateway, SwitchGateway())
        assert moved.gateway is Gateway.RAZORPAY and moved.gateway_payment_id == "pi_2"
        assert moved.abandoned_gateways == [Gateway.STRIPE]
        assert moved.status is PaymentStatus.CREATED
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    # released at Stripe before Razorpay was asked; captured on Razorpay alone
    assert fake.calls == ["create:stripe", "create:razorpay"]
    assert [(r.ref.gateway, r.ref.gateway_payment_id) for r in fake.releases] == [
        (Gateway.STRIPE, "pi_1")
    ]
    assert [(c.ref.gateway, c.ref.gateway_payment_id) for c in fake.captures] == [
        (Gateway.RAZORPAY, "pi_2")
    ]
    assert result.status is PaymentStatus.CAPTURED and result.amount_captured == AMOUNT
    # the second create and its release key are its own, never the first create's replayed
    keys = [c.payment.idempotency_key for c in fake.created]
    assert keys[1] == keys[0] + "-1" and fake.created[1].switch == 1
    switched = next(r for r in fake.records if r.step == "gateway_switched")
    assert switched.left is not None
    assert (switched.left.gateway, switched.left.gateway_payment_id) == (Gateway.STRIPE, "pi_1")
    assert switched.left.moved_to is Gateway.RAZORPAY and switched.gateway_payment_id is None
    assert fake.ledger_balance() == {"gateway:razorpay": AMOUNT, "merchant:sales": -AMOUNT}


async def test_an_event_of_the_left_payment_does_not_reach_the_checkout(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(), tq)
        await declined(handle, fake)
        await handle.execute_update(CheckoutWorkflow.switch_gateway, SwitchGateway())
        # relayed before the ledger moved it: a decline of the left payment is not this one's
        await handle.signal(CheckoutWorkflow.payment_event, fake.declines("pi_1"))
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert [a.outcome for a in result.attempts] == ["failed", "authorized"]
    assert result.status is PaymentStatus.CAPTURED


async def test_a_payment_that_went_through_is_taken_instead_of_moving(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, routed(), tq)
        await declined(handle, fake)
        fake.customer_pays()  # the second try went through; its webhook is not here yet
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await handle.execute_update(CheckoutWorkflow.switch_gateway, SwitchGateway())
        result = await handle.result()

    assert refusal(error) == "checkout_not_switched"
    assert fake.releases == [] and fake.calls == ["create:stripe"]
    assert result.status is PaymentStatus.CAPTURED and result.gateway is Gateway.STRIPE


async def test_money_taken_on_a_left_payment_that_stays_open_is_given_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A gateway that cannot cancel (a Razorpay order) took the customer's money between the
    look and the ledger's move: the checkout's last look finds it and the late-payment refund
    of the left payment's own row gives it back."""
    fake, tq = FakeGateway(), queue()
    fake.release_cancels = False

    def paid_meanwhile() -> None:
        fake.others["pi_1"] = GatewayPayment(
            ref=GatewayPaymentRef(
                gateway=Gateway.STRIPE, gateway_payment_id="pi_1", gateway_charge_id="ch_late"
            ),
            status=PaymentStatus.CAPTURED, amount=AMOUNT, currency="USD",
            amount_captured=AMOUNT,
        )  # fmt: skip

    fake.after_release = paid_meanwhile
    async with worker(time_skipping_env.client, fake, tq):
        request = routed()
        handle = await start(time_skipping_env.client, request, tq)
        await declined(handle, fake)
        moved = await handle.execute_update(CheckoutWorkflow.switch_gateway, SwitchGateway())
        left_id = names.checkout_id_for(names.left_payment_key(handle.id, 1))
        late = time_skipping_env.client.get_workflow_handle(
            names.late_payment_refund_workflow_id(left_id, "ch_late"), result_type=RefundState
        )
        given_back = await late.result()
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert moved.gateway is Gateway.RAZORPAY
    assert given_back.payment_id == left_id and given_back.mode is RefundMode.LATE_PAYMENT
    assert given_back.amount == AMOUNT
    assert result.status is PaymentStatus.CAPTURED and result.gateway is Gateway.RAZORPAY


@pytest.mark.parametrize(
    ("request_", "decline", "switch", "code"),
    [
        (routed(declined_retry=False), True, SwitchGateway(), "gateway_switch_not_allowed"),
        (checkout_request(), True, SwitchGateway(), "gateway_switch_not_allowed"),
        (routed(), False, SwitchGateway(), "checkout_not_switchable"),
        (routed(), True, SwitchGateway(gateway=Gateway.STRIPE), "gateway_not_allowed"),
    ],
    ids=["merchant-does-not-allow", "named-gateway", "nothing-declined", "not-a-fallback"],
)
async def test_a_switch_is_refused_unless_routing_and_a_decline_allow_it(
    time_skipping_env: WorkflowEnvironment,
    request_: CheckoutRequest,
    decline: bool,
    switch: SwitchGateway,
    code: str,
) -> None:
    fake, tq = FakeGateway(), queue()
    request_ = request_.model_copy(update={"order_id": f"o_{uuid.uuid4().hex[:8]}"})
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, request_, tq)
        if decline:
            await declined(handle, fake)
        else:
            await handle.execute_update(CheckoutWorkflow.checkout_ready)
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await handle.execute_update(CheckoutWorkflow.switch_gateway, switch)
        # ended before its worker stops: a workflow left with tasks no worker takes would stop
        # the shared time-skipping server from skipping for every later test of this process
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert refusal(error) == code
    assert fake.calls == ["create:stripe"]
