"""The dispute saga over weeks on the time-skipping server, its activities replaced by doubles:
deadlines three weeks out, polls every day and continue-as-new pass in moments. The operator's
updates run on the dev server (the time-skipping server is weak on updates)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from domain.checkout import Gateway, PaymentStatus
from domain.dispute import (
    AcceptDispute,
    DeadlinePolicy,
    DisputeEvent,
    DisputeEvidence,
    DisputeRequest,
    DisputeState,
    DisputeStatus,
    SubmitEvidence,
)
from settings import Settings
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.dispute_doubles import AMOUNT, FakeDispute
from workflows.dispute import DisputeWorkflow

EVIDENCE = DisputeEvidence(
    product_description="a blue scarf, delivered",
    receipt=["file_receipt1"],
    shipping_tracking_number="1Z999",
)


def event(desk: FakeDispute, kind: str, event_id: str | None = None) -> DisputeEvent:
    return DisputeEvent(
        event_id=event_id or f"evt_{uuid.uuid4().hex[:10]}",
        event_type=kind,
        gateway_dispute_id=desk.gateway_dispute_id,
    )


async def start(
    client: Client, desk: FakeDispute, request: DisputeRequest, first: DisputeEvent, tq: str
) -> WorkflowHandle[DisputeWorkflow, DisputeState]:
    """What webhook routing does: signal-with-start."""
    return await client.start_workflow(
        DisputeWorkflow.run,
        request,
        id=names.dispute_workflow_id(desk.gateway, desk.gateway_dispute_id),
        task_queue=tq,
        start_signal=names.DISPUTE_EVENT,
        start_signal_args=[first],
    )


def worker(client: Client, desk: FakeDispute, tq: str) -> Worker:
    return Worker(
        client,
        task_queue=tq,
        workflows=[DisputeWorkflow],
        activities=desk.activities(),
        deployment_config=TEST_DEPLOYMENT,
    )


async def run(
    env: WorkflowEnvironment, desk: FakeDispute, request: DisputeRequest, first: DisputeEvent
) -> DisputeState:
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(env.client, desk, tq):
        return await (await start(env.client, desk, request, first, tq)).result()


# Time skipping: nobody acts, over weeks


async def test_no_decision_accepts_by_policy_a_margin_before_the_deadline(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(due_in=timedelta(days=21))
    result = await run(
        time_skipping_env,
        desk,
        desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_ACCEPT),
        event(desk, "charge.dispute.created"),
    )

    assert result.status is DisputeStatus.LOST
    assert result.deadline_action == "accepted"
    assert desk.accepts == 1
    accepted_at = next(s.at for s in result.history if s.step == "deadline_accepted")
    assert result.due_by is not None
    assert result.due_by - accepted_at == pytest.approx(timedelta(days=2), abs=timedelta(hours=1))
    assert result.payment_status is PaymentStatus.DISPUTE_LOST
    assert desk.balance() == {"merchant:disputes": AMOUNT, "gateway:stripe": -AMOUNT}
    assert desk.notices == ["dispute.opened:open", "dispute.closed:lost"]


async def test_no_decision_with_leave_policy_waits_weeks_for_the_issuer(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(Gateway.RAZORPAY, due_in=timedelta(days=10), withdrawn_at_open=False)
    desk.outcome_after_fetches = (30, "lost")  # a month of daily looks
    result = await run(
        time_skipping_env,
        desk,
        desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE),
        event(desk, "payment.dispute.created"),
    )

    assert result.status is DisputeStatus.LOST
    assert result.deadline_action == "left"
    assert desk.accepts == 0
    assert "deadline_left" in desk.steps()
    assert desk.balance() == {"merchant:disputes": AMOUNT, "gateway:razorpay": -AMOUNT}
    assert result.history[-1].at - result.history[0].at > timedelta(days=28)


async def test_a_dispute_arriving_inside_the_margin_is_not_conceded_on_arrival(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(due_in=timedelta(days=1))  # less than the 2-day margin left
    desk.outcome_after_fetches = (4, "lost")
    result = await run(
        time_skipping_env,
        desk,
        desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_ACCEPT),
        event(desk, "charge.dispute.created"),
    )

    assert desk.accepts == 0
    assert result.deadline_action == "left"
    left = next(s for s in result.history if s.step == "deadline_left")
    assert "less than the margin" in left.detail
    # halfway between its arrival and its deadline, not at once
    assert left.at - result.history[0].at == pytest.approx(
        timedelta(hours=12), abs=timedelta(minutes=5)
    )
    assert result.status is DisputeStatus.LOST  # the issuer's decision, not ours


async def test_a_flagged_dispute_is_left_for_an_operator_not_conceded(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(payment_status=PaymentStatus.REFUNDED)  # flagged when recorded
    desk.outcome_after_fetches = (25, "lost")
    result = await run(
        time_skipping_env,
        desk,
        desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_ACCEPT),
        event(desk, "charge.dispute.created"),
    )

    assert result.flagged is not None
    assert desk.accepts == 0 and result.deadline_action == "left"
    left = next(s for s in result.history if s.step == "deadline_left")
    assert "flagged" in left.detail


async def test_a_dispute_whose_payment_has_a_refund_pending_is_left_and_says_why(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(due_in=timedelta(days=21))
    desk.refund_pending = 1_000  # a refund of the disputed payment is on its way
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, desk, tq):
        handle = await start(
            time_skipping_env.client,
            desk,
            desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_ACCEPT),
            event(desk, "charge.dispute.created"),
            tq,
        )
        await time_skipping_env.sleep(timedelta(days=20))  # past due_by - margin
        state = await handle.query(DisputeWorkflow.state)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        desk.decide("lost")
        await handle.signal(DisputeWorkflow.dispute_event, event(desk, "charge.dispute.closed"))
        result = await handle.result()

    assert state.deadline_action == "left" and desk.accepts == 0
    left = next(s for s in state.history if s.step == "deadline_left")
    assert "refund" in left.detail and "10.00 USD pending" in left.detail
    assert "left" in metadata.current_details and "10.00 USD pending" in metadata.current_details
    assert result.status is DisputeStatus.LOST


async def test_the_default_policy_submits_a_draft_or_leaves_it_never_concedes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    assert Settings.model_fields["dispute_deadline_policy"].default is (
        DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE
    )
    desk = FakeDispute(due_in=timedelta(days=21))
    desk.outcome_after_fetches = (25, "won")
    result = await run(
        time_skipping_env, desk, desk.request(), event(desk, "charge.dispute.created")
    )

    assert desk.accepts == 0 and result.deadline_action == "left"
    assert result.status is DisputeStatus.WON
    assert desk.balance() == {}


async def test_closed_before_created_records_the_outcome_the_gateway_holds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute()
    desk.decide("won")  # the dispute is over before its first event reaches us
    result = await run(
        time_skipping_env, desk, desk.request(), event(desk, "charge.dispute.closed")
    )

    assert result.status is DisputeStatus.WON
    assert desk.opened == 1
    assert desk.postings == []  # withdrawn and reinstated before we looked: nothing net
    assert desk.steps() == ["gateway_fetched"]
    assert result.payment_status is PaymentStatus.CAPTURED


async def test_duplicate_webhooks_are_looked_at_once_and_terminal_absorbs_the_rest(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute()
    tq = f"dispute-test-{uuid.uuid4().hex}"
    created = event(desk, "charge.dispute.created", "evt_created")
    async with worker(time_skipping_env.client, desk, tq):
        handle = await start(time_skipping_env.client, desk, desk.request(), created, tq)
        for _ in range(3):
            await handle.signal(DisputeWorkflow.dispute_event, created)
        await asyncio.sleep(0.5)
        fetches = desk.fetches
        desk.decide("lost")
        closed = event(desk, "charge.dispute.closed", "evt_closed")
        await handle.signal(DisputeWorkflow.dispute_event, closed)
        await handle.signal(DisputeWorkflow.dispute_event, closed)
        result = await handle.result()

    assert fetches == 1
    assert result.status is DisputeStatus.LOST
    assert result.seen_events == ["evt_created", "evt_closed"]
    assert desk.balance() == {"merchant:disputes": AMOUNT, "gateway:stripe": -AMOUNT}


async def test_dispute_on_a_refunded_payment_is_flagged_for_the_operator(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(payment_status=PaymentStatus.REFUNDED)
    desk.outcome_after_fetches = (2, "won")
    result = await run(
        time_skipping_env, desk, desk.request(), event(desk, "charge.dispute.created")
    )

    assert result.flagged is not None and "refunded" in result.flagged
    assert "flagged" in result.history[0].detail
    assert result.status is DisputeStatus.WON


async def test_a_dispute_the_gateway_does_not_know_ends_flagged_for_an_operator(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute()
    desk.unknown_at_gateway = True
    result = await run(
        time_skipping_env, desk, desk.request(), event(desk, "charge.dispute.created")
    )

    assert result.status is DisputeStatus.UNVERIFIED
    assert result.flagged is not None and "resource_missing" in result.flagged
    assert [s.step for s in result.history] == ["dispute_unverified"]
    assert [(u.gateway_dispute_id, u.gateway_answer) for u in desk.unverified] == [
        (desk.gateway_dispute_id, "invalid_request:resource_missing")
    ]
    assert desk.opened == 0 and desk.records == [] and desk.notices == []


async def test_a_dispute_open_for_weeks_continues_as_new_and_keeps_its_state(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(due_in=timedelta(days=60))
    desk.outcome_after_fetches = (450, "won")  # hourly looks for almost three weeks
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, desk, tq):
        handle = await start(
            time_skipping_env.client,
            desk,
            desk.request(poll_interval_seconds=3600),
            event(desk, "charge.dispute.created"),
            tq,
        )
        result = await handle.result()
        description = await handle.describe()

    assert result.status is DisputeStatus.WON
    assert result.polls >= 440
    assert description.run_id != handle.first_execution_run_id  # continued as new
    assert desk.opened == 1
    assert desk.balance() == {}


# Dev server: the operator's updates


async def test_evidence_submitted_on_time_is_won_and_reinstated(
    dev_server_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute()
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, desk, tq):
        handle = await start(
            dev_server_env.client, desk, desk.request(), event(desk, "charge.dispute.created"), tq
        )
        draft = await execute(handle, SubmitEvidence(evidence=EVIDENCE, submit=False))
        assert (draft.status, draft.submitted) == (DisputeStatus.OPEN, False)
        submitted = await execute(handle, SubmitEvidence(evidence=EVIDENCE, submit=True))
        assert (submitted.status, submitted.submitted) == (DisputeStatus.CHALLENGED, True)
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await execute(handle, SubmitEvidence(evidence=EVIDENCE, submit=True))
        assert refusal(again.value) == "evidence_already_submitted"
        with pytest.raises(WorkflowUpdateFailedError) as late_accept:
            await handle.execute_update(DisputeWorkflow.accept, AcceptDispute())
        assert refusal(late_accept.value) == "evidence_already_submitted"
        desk.decide("won")
        await handle.signal(DisputeWorkflow.dispute_event, event(desk, "charge.dispute.closed"))
        result = await handle.result()

    assert [c.submit for c in desk.evidence_calls] == [False, True]
    assert result.status is DisputeStatus.WON
    assert result.evidence == EVIDENCE
    assert desk.balance() == {}
    assert desk.steps() == [
        "gateway_fetched",  # the funds Stripe withdrew when it opened the dispute
        "evidence_saved",
        "evidence_submitted",
        "webhook_charge_dispute_closed",
    ]
    assert [line.amount for line in desk.postings] == [AMOUNT, -AMOUNT, -AMOUNT, AMOUNT]


async def test_accepting_concedes_and_keeps_the_withdrawal(
    dev_server_env: WorkflowEnvironment,
) -> None:
    desk = FakeDispute(Gateway.RAZORPAY, withdrawn_at_open=False)
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, desk, tq):
        handle = await start(
            dev_server_env.client, desk, desk.request(), event(desk, "payment.dispute.created"), tq
        )
        no_documents = SubmitEvidence(
            evidence=DisputeEvidence(uncategorized_text="it was delivered"), submit=True
        )
        with pytest.raises(WorkflowUpdateFailedError) as incomplete:
            await execute(handle, no_documents)
        assert refusal(incomplete.value) == "evidence_incomplete"
        accepted = await handle.execute_update(
            DisputeWorkflow.accept, AcceptDispute(note="customer is right")
        )
        assert accepted.status is DisputeStatus.LOST
        result = await handle.result()

    assert result.accepted and desk.accepts == 1
    assert result.payment_status is PaymentStatus.DISPUTE_LOST
    assert desk.balance() == {"merchant:disputes": AMOUNT, "gateway:razorpay": -AMOUNT}


async def test_evidence_after_the_deadline_is_refused(dev_server_env: WorkflowEnvironment) -> None:
    desk = FakeDispute(due_in=timedelta(seconds=-60))
    tq = f"dispute-test-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, desk, tq):
        handle = await start(
            dev_server_env.client,
            desk,
            desk.request(deadline_policy=DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE),
            event(desk, "charge.dispute.created"),
            tq,
        )
        await wait_for(handle, lambda s: s.deadline_action == "left")
        with pytest.raises(WorkflowUpdateFailedError) as late:
            await execute(handle, SubmitEvidence(evidence=EVIDENCE, submit=True))
        assert refusal(late.value) == "evidence_deadline_passed"
        desk.decide("lost")
        await handle.signal(DisputeWorkflow.dispute_event, event(desk, "charge.dispute.closed"))
        result = await handle.result()

    assert result.status is DisputeStatus.LOST
    assert desk.evidence_calls == []


async def execute(
    handle: WorkflowHandle[DisputeWorkflow, DisputeState], request: SubmitEvidence
) -> DisputeState:
    return await handle.execute_update(DisputeWorkflow.submit_evidence, request)


async def wait_for(
    handle: WorkflowHandle[DisputeWorkflow, DisputeState], until: object
) -> DisputeState:
    assert callable(until)
    for _ in range(100):
        state = await handle.query(DisputeWorkflow.state)
        if until(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"dispute stuck: {state.history}")


def refusal(error: WorkflowUpdateFailedError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None
