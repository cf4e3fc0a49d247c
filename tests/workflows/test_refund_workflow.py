"""Every branch of the refund saga on the time-skipping server, its activities replaced by doubles:
webhooks that never come and refunds pending for days pass in moments."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from domain.checkout import Gateway, PaymentStatus
from domain.refund import (
    RefundEvent,
    RefundMode,
    RefundRequest,
    RefundState,
    RefundStatus,
)
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.refund_doubles import CAPTURED, FakeRefunds, refund_request
from workflows.refund import RefundWorkflow


def worker(client: Client, desk: FakeRefunds, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RefundWorkflow],
        activities=desk.activities(),
        deployment_config=TEST_DEPLOYMENT,
    )


async def start(
    client: Client, request: RefundRequest, task_queue: str
) -> WorkflowHandle[RefundWorkflow, RefundState]:
    return await client.start_workflow(
        RefundWorkflow.run,
        request,
        id=names.own_refund_workflow_id(request.payment_id, "tests", request.idempotency_key),
        task_queue=task_queue,
    )


async def run(env: WorkflowEnvironment, desk: FakeRefunds, request: RefundRequest) -> RefundState:
    tq = f"refund-test-{uuid.uuid4().hex}"
    async with worker(env.client, desk, tq):
        return await (await start(env.client, request, tq)).result()


async def test_refund_the_gateway_accepts_is_settled_in_the_ledger(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    result = await run(time_skipping_env, desk, refund_request(amount=1_000))

    assert result.status is RefundStatus.SUCCEEDED
    assert result.payment_status is PaymentStatus.PARTIALLY_REFUNDED
    assert [c.amount for c in desk.created] == [1_000]
    assert desk.created[0].refund_id == result.refund_id  # the gateway idempotency key
    assert (desk.refunded, desk.pending) == (1_000, 0)
    assert desk.balance() == {"merchant:refunds": 1_000, "gateway:stripe": -1_000}
    assert [s.step for s in result.history] == ["refund_reserved", "gateway_refund_created"]


async def test_refund_of_everything_left_refunds_the_payment(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    result = await run(time_skipping_env, desk, refund_request(amount=None))

    assert result.amount == CAPTURED
    assert result.payment_status is PaymentStatus.REFUNDED


async def test_gateway_refusal_releases_the_reservation_and_records_why(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.create_error = ApplicationError(
        "charge already refunded", type="invalid_request", non_retryable=True
    )
    result = await run(time_skipping_env, desk, refund_request())

    assert result.status is RefundStatus.FAILED
    assert result.failure_reason and "charge already refunded" in result.failure_reason
    assert (desk.refunded, desk.pending) == (0, 0)
    assert desk.balance() == {}
    assert desk.steps() == ["gateway_refused"]


async def test_over_refund_is_refused_before_the_gateway_hears_of_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    result = await run(time_skipping_env, desk, refund_request(amount=CAPTURED + 1))

    assert result.status is RefundStatus.REFUSED
    assert result.refusal_code == "refund_exceeds_available"
    assert desk.calls == 0 and desk.records == []


async def test_refund_whose_webhook_never_arrives_is_settled_by_polling(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.status_on_create = RefundStatus.PENDING
    desk.final_after_fetches = (1, RefundStatus.SUCCEEDED)
    result = await run(time_skipping_env, desk, refund_request(poll_interval_seconds=3600))

    assert result.status is RefundStatus.SUCCEEDED
    assert result.polls == 1
    assert desk.steps() == ["gateway_refund_created", "gateway_polled"]
    assert desk.refunded == 1_000


async def test_refund_pending_for_days_is_polled_until_it_settles(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.status_on_create = RefundStatus.PENDING
    desk.final_after_fetches = (10 * 24, RefundStatus.SUCCEEDED)  # ten days of hourly looks
    result = await run(time_skipping_env, desk, refund_request(poll_interval_seconds=3600))

    assert result.status is RefundStatus.SUCCEEDED
    assert desk.fetches == 10 * 24
    # nothing changed until the last look, so nothing was noted in between
    assert desk.steps() == ["gateway_refund_created", "gateway_polled"]
    assert (desk.refunded, desk.pending) == (1_000, 0)


async def test_webhook_signal_settles_the_refund_without_waiting_for_the_poll(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.status_on_create = RefundStatus.PENDING
    tq = f"refund-test-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, desk, tq):
        handle = await start(
            time_skipping_env.client, refund_request(poll_interval_seconds=30 * 86400), tq
        )
        state = await handle.query(RefundWorkflow.state)
        while state.gateway_refund_id is None:
            state = await handle.query(RefundWorkflow.state)
        desk.settle_at_gateway(state.gateway_refund_id, RefundStatus.SUCCEEDED)
        event = RefundEvent(
            event_id="evt_1",
            event_type="refund.updated",
            gateway_refund_id=state.gateway_refund_id,
            gateway_status="succeeded",
        )
        await handle.signal(RefundWorkflow.refund_event, event)
        await handle.signal(RefundWorkflow.refund_event, event)  # a duplicate webhook
        result = await handle.result()

    assert result.status is RefundStatus.SUCCEEDED
    assert result.polls == 0
    assert desk.steps() == ["gateway_refund_created", "webhook_refund_updated"]
    assert desk.refunded == 1_000


async def test_unknown_outcome_is_retried_without_a_second_refund(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.lose_first_answer = True
    result = await run(time_skipping_env, desk, refund_request())

    assert result.status is RefundStatus.SUCCEEDED
    assert desk.calls == 2
    assert len(desk.created) == 1 and len(desk.at_gateway) == 1
    assert desk.balance() == {"merchant:refunds": 1_000, "gateway:stripe": -1_000}


async def test_refund_requiring_action_then_canceled_releases_the_reservation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    desk.status_on_create = RefundStatus.REQUIRES_ACTION
    desk.final_after_fetches = (3, RefundStatus.CANCELED)
    result = await run(time_skipping_env, desk, refund_request(poll_interval_seconds=3600))

    assert result.status is RefundStatus.CANCELED
    assert [s.status for s in result.history][-2:] == [
        RefundStatus.REQUIRES_ACTION,
        RefundStatus.CANCELED,
    ]
    assert (desk.refunded, desk.pending) == (0, 0)
    assert desk.balance() == {}


async def test_razorpay_speed_change_is_recorded_while_pending(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds(Gateway.RAZORPAY)
    desk.status_on_create = RefundStatus.PENDING
    desk.final_after_fetches = (2, RefundStatus.SUCCEEDED)
    tq = f"refund-test-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, desk, tq):
        handle = await start(time_skipping_env.client, refund_request(), tq)
        state = await handle.query(RefundWorkflow.state)
        while state.gateway_refund_id is None:
            state = await handle.query(RefundWorkflow.state)
        desk.at_gateway[state.gateway_refund_id].speed = "instant"
        await handle.signal(
            RefundWorkflow.refund_event,
            RefundEvent(
                event_id="evt_speed",
                event_type="refund.speed_changed",
                gateway_refund_id=state.gateway_refund_id,
                gateway_status="pending",
            ),
        )
        result = await handle.result()

    assert result.status is RefundStatus.SUCCEEDED
    assert desk.steps() == ["gateway_refund_created", "speed_changed", "gateway_polled"]
    assert result.speed == "instant"


async def test_refund_made_at_the_dashboard_is_recorded_without_calling_the_gateway(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeRefunds()
    made = desk.refund_made_elsewhere(700, RefundStatus.SUCCEEDED)
    request = refund_request(
        amount=None,
        mode=RefundMode.OBSERVED,
        idempotency_key=made.gateway_refund_id,
        gateway=Gateway.STRIPE,
        gateway_refund_id=made.gateway_refund_id,
    )
    result = await run(time_skipping_env, desk, request)

    assert result.status is RefundStatus.SUCCEEDED
    assert result.amount == 700 and result.mode is RefundMode.OBSERVED
    assert desk.calls == 0
    assert desk.balance() == {"merchant:refunds": 700, "gateway:stripe": -700}


async def test_reservation_update_answers_with_the_ledger_decision(
    dev_server_env: WorkflowEnvironment,
) -> None:
    desk, tq = FakeRefunds(), f"refund-test-{uuid.uuid4().hex}"
    desk.status_on_create = RefundStatus.PENDING
    client = dev_server_env.client
    async with worker(client, desk, tq):
        accepted = await client.execute_update_with_start_workflow(
            RefundWorkflow.reservation,
            start_workflow_operation=with_start(refund_request(amount=4_000), tq),
        )
        refused = await client.execute_update_with_start_workflow(
            RefundWorkflow.reservation,
            start_workflow_operation=with_start(refund_request(amount=1_000), tq),
        )
        await client.get_workflow_handle(accepted.workflow_id).terminate("test over")

    assert (accepted.status, accepted.amount) == (RefundStatus.PENDING, 4_000)
    assert (refused.status, refused.refusal_code) == (
        RefundStatus.REFUSED,
        "refund_exceeds_available",
    )


def with_start(request: RefundRequest, task_queue: str) -> WithStartWorkflowOperation[Any, Any]:
    return WithStartWorkflowOperation(
        RefundWorkflow.run,
        request,
        id=names.own_refund_workflow_id(request.payment_id, "tests", request.idempotency_key),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
