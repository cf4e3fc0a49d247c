"""The refund saga with money the gateway took on its own, and when canceled through Temporal:
nothing reserved is left hanging, nothing the gateway received is forgotten, nothing is refunded
twice."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from domain.checkout import Gateway, GatewayPayment, GatewayPaymentRef, PaymentStatus
from domain.refund import (
    RefundEvent,
    RefundMode,
    RefundState,
    RefundStatus,
)
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.refund_doubles import FakeRefunds, refund_request
from workflows.refund import RefundWorkflow

LATE = GatewayPaymentRef(
    gateway=Gateway.RAZORPAY, gateway_payment_id="order_1", gateway_charge_id="pay_late"
)


def gateway_payment(status: PaymentStatus, captured: int) -> GatewayPayment:
    return GatewayPayment(
        ref=LATE, status=status, amount=2_500, currency="INR", amount_captured=captured
    )


async def run_late(
    env: WorkflowEnvironment, desk: FakeRefunds, at_gateway: GatewayPayment
) -> tuple[RefundState, list[GatewayPaymentRef]]:
    looked: list[GatewayPaymentRef] = []

    @activity.defn(name="fetch_gateway_payment")
    async def fetch(ref: GatewayPaymentRef) -> GatewayPayment:
        looked.append(ref)
        return at_gateway

    tq = f"refund-facts-{uuid.uuid4().hex}"
    request = refund_request(
        amount=None, mode=RefundMode.LATE_PAYMENT, payment_ref=LATE, gateway=Gateway.RAZORPAY
    )
    async with Worker(
        env.client,
        task_queue=tq,
        workflows=[RefundWorkflow],
        activities=[*desk.activities(), fetch],
        deployment_config=TEST_DEPLOYMENT,
    ):
        result = await env.client.execute_workflow(
            RefundWorkflow.run,
            request,
            id=names.late_payment_refund_workflow_id(request.payment_id, "pay_late"),
            task_queue=tq,
        )
    return result, looked


async def test_money_captured_after_the_checkout_ended_is_recorded_and_given_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds(Gateway.RAZORPAY, captured=0)  # the checkout had expired: nothing taken
    result, looked = await run_late(
        time_skipping_env, desk, gateway_payment(PaymentStatus.CAPTURED, 2_500)
    )

    assert looked == [LATE]  # the gateway says how much, not the event
    assert result.status is RefundStatus.SUCCEEDED and result.amount == 2_500
    assert [(c.amount, c.ref.gateway_charge_id) for c in desk.created] == [(2_500, "pay_late")]
    assert desk.balance() == {"gateway:razorpay": 0, "merchant:sales": -2_500,
                              "merchant:refunds": 2_500}  # fmt: skip


async def test_a_late_payment_the_gateway_did_not_capture_is_left_to_its_auto_refund(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds(Gateway.RAZORPAY, captured=0)
    result, _ = await run_late(
        time_skipping_env, desk, gateway_payment(PaymentStatus.AUTHORIZED, 0)
    )

    assert result.status is RefundStatus.REFUSED
    assert result.refusal_code == "nothing_captured"
    assert desk.created == [] and desk.records == [] and desk.postings == []


async def test_a_refund_canceled_while_the_gateway_works_on_it_is_made_once_and_recorded(
    dev_server_env: WorkflowEnvironment,
) -> None:
    # (the time-skipping server mishandles a canceled activity: the dev server runs this one)
    desk = FakeRefunds()
    desk.create_gate = asyncio.Event()
    asking = desk.asking = asyncio.Event()
    tq = f"refund-facts-{uuid.uuid4().hex}"
    request = refund_request(amount=1_000)
    async with Worker(
        dev_server_env.client, task_queue=tq, workflows=[RefundWorkflow],
        activities=desk.activities(), deployment_config=TEST_DEPLOYMENT,
    ):  # fmt: skip
        handle = await dev_server_env.client.start_workflow(
            RefundWorkflow.run,
            request,
            id=names.own_refund_workflow_id(request.payment_id, "tests", request.idempotency_key),
            task_queue=tq,
        )
        await asyncio.wait_for(asking.wait(), 10)  # the gateway has the request
        await handle.cancel()
        desk.create_gate.set()
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert [c.amount for c in desk.created] == [1_000]  # asked again with the same id: once
    assert desk.steps()[-1] == "gateway_refund_created"
    assert desk.refunded == 1_000 and desk.pending == 0


async def test_a_pending_refund_canceled_is_followed_to_its_end_and_settled(
    dev_server_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.status_on_create = RefundStatus.PENDING
    tq = f"refund-facts-{uuid.uuid4().hex}"
    request = refund_request(amount=1_000)
    async with Worker(
        dev_server_env.client, task_queue=tq, workflows=[RefundWorkflow],
        activities=desk.activities(), deployment_config=TEST_DEPLOYMENT,
    ):  # fmt: skip
        handle = await dev_server_env.client.start_workflow(
            RefundWorkflow.run,
            request,
            id=names.own_refund_workflow_id(request.payment_id, "tests", request.idempotency_key),
            task_queue=tq,
        )
        state = await handle.query(RefundWorkflow.state)
        while state.gateway_refund_id is None:
            state = await handle.query(RefundWorkflow.state)
        await handle.cancel()  # the gateway has the refund: it cannot be called back
        desk.settle_at_gateway(state.gateway_refund_id, RefundStatus.SUCCEEDED)
        await handle.signal(
            RefundWorkflow.refund_event,
            RefundEvent(
                event_id="evt_settled", event_type="refund.updated",
                gateway_refund_id=state.gateway_refund_id, gateway_status="succeeded",
            ),
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()

    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    # settled from the webhook, or from the look the cancellation takes when it cut that short
    assert desk.steps()[0] == "gateway_refund_created" and len(desk.steps()) == 2
    assert desk.steps()[1] in ("webhook_refund_updated", "gateway_looked_up")
    assert desk.refunded == 1_000 and desk.pending == 0
