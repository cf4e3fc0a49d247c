"""The checkout saga when the gateways behave as the real ones do: they capture on their own, fail
a look-up, go down, authorize late or partly; and when the saga is canceled through Temporal.
Whatever happens, the saga ends with nothing of the customer's left at the gateway."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.checkout import (
    CancelCheckout,
    CaptureCheckout,
    CaptureMode,
    CheckoutState,
    MerchantDecision,
    PaymentEvent,
    PaymentEventKind,
    PaymentStatus,
)
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.doubles import (
    AMOUNT,
    FakeGateway,
    answered_while_retries_pass,
    checkout_request,
    paid_checkout,
    payable,
    start,
    wait_for,
    worker,
)
from workflows.checkout import CheckoutWorkflow
from workflows.policies import GATEWAY_RETRY
from workflows.refund import RefundWorkflow


def queue() -> str:
    return f"checkout-facts-{uuid.uuid4().hex}"


def unreachable() -> ApplicationError:
    return ApplicationError("connect timed out", type="gateway_unreachable")


# The gateway captures on its own (Razorpay's default; Direct Settlement accounts always)


async def test_merchant_refusal_of_a_payment_the_gateway_captured_on_its_own_refunds_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.auto_capture = True
    fake.merchant = MerchantDecision(accepted=False, reason="out of stock")
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.REFUNDED  # not "voided" with the money kept
    assert [r.amount for r in fake.refunds] == [AMOUNT]
    assert fake.captures == [] and fake.releases == []
    assert fake.ledger_balance() == {
        "gateway:stripe": 0, "merchant:sales": -AMOUNT, "merchant:refunds": AMOUNT,
    }  # fmt: skip


async def test_a_payment_the_gateway_captured_on_its_own_is_recorded_without_a_capture_call(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.auto_capture = True
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED and result.amount_captured == AMOUNT
    assert fake.captures == [] and fake.refunds == []
    assert fake.ledger_balance() == {"gateway:stripe": AMOUNT, "merchant:sales": -AMOUNT}


async def test_cancel_of_an_authorization_the_gateway_captured_meanwhile_refunds_it(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, lambda s: s.status is PaymentStatus.AUTHORIZED)
        fake.status, fake.captured = PaymentStatus.CAPTURED, AMOUNT  # captured at the gateway
        state = await handle.execute_update(CheckoutWorkflow.cancel, CancelCheckout())

    assert state.status is PaymentStatus.REFUNDED
    assert [r.amount for r in fake.refunds] == [AMOUNT] and fake.releases == []


# Deadlines, partial authorizations, look-ups that fail, outages


async def test_the_deadline_takes_an_authorization_whose_webhook_never_came(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        fake.customer_pays()  # authorized at the gateway; the webhook is late
        result = await handle.result()  # the deadline passes

    assert result.status is PaymentStatus.CAPTURED  # not voided on the way out
    assert fake.releases == [] and len(fake.captures) == 1


async def test_a_partial_authorization_goes_to_review_and_is_never_captured(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.capturable = 1_000
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, lambda s: s.status is PaymentStatus.NEEDS_REVIEW)
        result = await handle.result()  # nobody reviews it in time

    assert "partial authorization" in (result.last_error or "")
    assert result.status is PaymentStatus.VOIDED
    assert fake.captures == [] and len(fake.releases) == 1


async def test_look_ups_that_fail_do_not_end_the_checkout(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    # more failures than one activity's retries: the saga itself looks again later
    fake.fetch_errors = [unreachable() for _ in range(GATEWAY_RETRY.maximum_attempts + 3)]
    foreign = PaymentEvent(
        event_id="evt_foreign",
        kind=PaymentEventKind.AUTHORIZED,
        gateway_payment_id="order_1",
        gateway_charge_id="pay_of_another_order",
    )
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        assert (await handle.result()).status is PaymentStatus.CAPTURED
        assert fake.fetch_errors == []
    async with worker(time_skipping_env.client, fake, tq):
        second = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(second, payable)
        fake.status = PaymentStatus.CREATED
        fake.fetch_errors = [
            ApplicationError("payment is for another order", type="payment_order_mismatch",
                             non_retryable=True)
        ]  # fmt: skip
        await second.signal(CheckoutWorkflow.payment_event, foreign)
        await wait_for(second, lambda s: s.history[-1].step == "event_ignored")
        await second.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await second.result()

    assert result.status is PaymentStatus.CAPTURED


async def test_an_outage_creating_the_payment_delays_the_checkout_instead_of_failing_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [unreachable() for _ in range(7)]  # three rounds of short retries
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        ready = await answered_while_retries_pass(
            time_skipping_env, handle.execute_update(CheckoutWorkflow.checkout_ready)
        )
        assert ready.awaiting_gateway and ready.gateway_payment_id is None
        assert ready.status is PaymentStatus.CREATED
        await time_skipping_env.sleep(timedelta(minutes=5))  # two pauses of the saga
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert not result.awaiting_gateway
    assert [s.step for s in result.history][:3] == [
        "checkout_created", "gateway_unavailable", "gateway_payment_created",
    ]  # fmt: skip


async def test_an_outage_until_the_deadline_expires_the_checkout(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [unreachable() for _ in range(10_000)]
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()

    assert result.status is PaymentStatus.EXPIRED
    assert result.gateway_payment_id is None and fake.releases == []


async def test_a_refusal_creating_the_payment_fails_the_checkout_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.create_errors = [
        ApplicationError("amount too small", type="invalid_request", non_retryable=True)
    ]
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()

    assert result.status is PaymentStatus.FAILED and fake.creates == 1


# Canceled through Temporal: whatever the gateway holds is released, voided or refunded


async def test_a_workflow_canceled_while_waiting_for_the_customer_releases_the_payment(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    assert isinstance(failed.value.cause, CancelledError)
    assert len(fake.releases) == 1
    assert fake.records[-1].status is PaymentStatus.CANCELED


async def test_a_workflow_canceled_while_the_merchant_decides_refunds_what_the_gateway_captured(
    dev_server_env: WorkflowEnvironment,
) -> None:
    # (on the dev server: the time-skipping one keeps a canceled activity's slot afterwards)
    fake, tq = FakeGateway(), queue()
    fake.auto_capture = True
    deciding = asyncio.Event()

    @activity.defn(name="confirm_order_with_merchant")
    async def slow_merchant(checkout: CheckoutState) -> MerchantDecision:
        deciding.set()
        await asyncio.sleep(3600)  # cancelled with the workflow
        return MerchantDecision(accepted=True)

    activities = [a for a in fake.activities() if a.__name__ != "confirm_order_with_merchant"]
    async with Worker(
        dev_server_env.client,
        task_queue=tq,
        workflows=[CheckoutWorkflow, RefundWorkflow],
        activities=[*activities, slow_merchant],
        deployment_config=TEST_DEPLOYMENT,
    ):
        # The cancel reaches the saga with its next workflow task; while the merchant's local
        # activity runs, that is the task's heartbeat at 80% of the task timeout (8 s at the
        # default 10 s, 1.6 s here): the same path, sooner.
        handle = await start(
            dev_server_env.client, checkout_request(), tq, task_timeout=timedelta(seconds=2)
        )
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await asyncio.wait_for(deciding.wait(), 10)
        await handle.cancel()
        await handle.cancel()  # a second cancellation does not interrupt the compensation
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert [r.amount for r in fake.refunds] == [AMOUNT]
    assert fake.records[-1].status is PaymentStatus.REFUNDED


# Updates racing, resets


async def test_capture_and_cancel_sent_together_are_never_both_accepted(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        for _ in range(3):
            handle = await start(dev_server_env.client, checkout_request(CaptureMode.MANUAL), tq)
            await wait_for(handle, payable)
            fake.status = PaymentStatus.CREATED
            await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
            await wait_for(handle, lambda s: s.status is PaymentStatus.AUTHORIZED)
            outcomes = await asyncio.gather(
                handle.execute_update(CheckoutWorkflow.capture, CaptureCheckout()),
                handle.execute_update(CheckoutWorkflow.cancel, CancelCheckout()),
                return_exceptions=True,
            )
            accepted = [o for o in outcomes if not isinstance(o, BaseException)]
            refused = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
            assert len(accepted) == 1 and len(refused) == 1, outcomes
            result = await handle.result()
            assert result.status in (PaymentStatus.CAPTURED, PaymentStatus.CANCELED)


async def test_a_reset_to_the_first_workflow_task_completes_with_the_same_payment_id(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client, fake, tq = dev_server_env.client, FakeGateway(), queue()
    async with worker(client, fake, tq):
        handle = await start(client, checkout_request(), tq)
        before = await wait_for(handle, payable)
        history = await handle.fetch_history()
        first_task = next(
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        reset = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
                reason="operator reset to the first workflow task",
                workflow_task_finish_event_id=first_task,
                request_id=uuid.uuid4().hex,
            )
        )
        again = client.get_workflow_handle(
            handle.id, run_id=reset.run_id, result_type=CheckoutState
        )
        await wait_for(again, payable)
        await again.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await again.result()

    assert result.checkout_id == before.checkout_id
    assert result.status is PaymentStatus.CAPTURED
