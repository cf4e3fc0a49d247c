"""Risk screening in the checkout saga: a block ends it before any gateway call, a review waits for
an operator's update (approve, reject) or its deadline, before the payment and at the
authorization. Timers on the time-skipping server; updates on the dev server."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.checkout import CaptureMode, PaymentStatus
from domain.risk import ReviewDecision, ReviewOutcome, ReviewStatus, RiskDecision, RiskStage
from testkit.history_shape import shape_of
from tests.workflows.doubles import (
    FakeGateway,
    checkout_request,
    paid_checkout,
    payable,
    start,
    wait_for,
    worker,
)
from workflows import search_attributes as search
from workflows.checkout import CheckoutWorkflow


def queue() -> str:
    return f"checkout-risk-{uuid.uuid4().hex}"


def in_review(state: object) -> bool:
    return getattr(state, "status", None) is PaymentStatus.NEEDS_REVIEW


async def test_a_blocked_checkout_fails_with_its_reason_before_any_gateway_call(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.CREATE, RiskDecision.BLOCK)
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()

    assert result.status is PaymentStatus.FAILED
    assert result.risk_reason == "amount_not_accepted"
    assert result.last_error == "risk_blocked: amount_not_accepted"
    assert fake.creates == 0 and fake.fetches == 0 and fake.releases == []
    assert fake.steps() == ["risk_blocked"]
    (assessed,) = fake.assessments
    assert assessed.stage is RiskStage.CREATE and assessed.new_checkout is not None


async def test_an_allowed_checkout_is_assessed_before_the_payment_and_at_the_authorization(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.CAPTURED
    assert [a.stage for a in fake.assessments] == [RiskStage.CREATE, RiskStage.AUTHORIZATION]
    assert fake.assessments[1].gateway_payment_id == "pi_1"
    assert fake.reviews == []


async def test_a_review_before_the_payment_not_decided_in_time_takes_the_default(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.CREATE, RiskDecision.REVIEW, review_for=timedelta(minutes=10))
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()  # the server skips the review's ten minutes
        described = await handle.describe()

    assert result.status is PaymentStatus.FAILED
    assert result.last_error == "risk_rejected: amount_not_accepted (review timed_out_rejected)"
    assert fake.creates == 0
    assert [r.status for r in fake.reviews] == [ReviewStatus.TIMED_OUT_REJECTED]
    assert fake.steps() == ["risk_review", "risk_rejected"]
    assert described.typed_search_attributes.get(search.RISK_DECISION) == "timed_out_rejected"


async def test_a_review_of_an_authorization_ends_before_it_expires_and_voids_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.AUTHORIZATION, RiskDecision.REVIEW, review_for=timedelta(days=5))
    request = checkout_request(CaptureMode.MANUAL)
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, request, tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.VOIDED
    assert len(fake.releases) == 1 and fake.captures == []
    assert [r.status for r in fake.reviews] == [ReviewStatus.TIMED_OUT_REJECTED]
    review_by = fake.assessments[1].review_by
    assert review_by is not None and fake.assessments[0].review_by is not None
    window = timedelta(seconds=request.manual_capture_window_seconds)
    assert review_by < fake.assessments[0].review_by + window  # asked to end before expiry


async def test_a_review_whose_default_is_approve_goes_on_to_capture(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(
        RiskStage.AUTHORIZATION, RiskDecision.REVIEW, review_for=timedelta(hours=2),
        default=ReviewOutcome.APPROVED,
    )  # fmt: skip
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.CAPTURED
    assert [r.status for r in fake.reviews] == [ReviewStatus.TIMED_OUT_APPROVED]
    assert "risk_approved" in fake.steps()


async def test_a_block_at_the_authorization_voids_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.AUTHORIZATION, RiskDecision.BLOCK)
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.VOIDED
    assert result.risk_reason == "amount_not_accepted"
    assert len(fake.releases) == 1 and fake.captures == []


async def test_an_operator_approves_a_review_before_the_payment(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.CREATE, RiskDecision.REVIEW)
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        waiting = await wait_for(handle, in_review)
        assert waiting.review_deadline is not None and fake.creates == 0
        described = await handle.describe()
        assert described.typed_search_attributes.get(search.RISK_DECISION) == "review"
        state = await handle.execute_update(
            CheckoutWorkflow.review,
            ReviewDecision(outcome=ReviewOutcome.APPROVED, reviewer="operator-7", note="known"),
        )
        assert state.status is PaymentStatus.CREATED and state.review_deadline is None
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()
        described = await handle.describe()

    assert result.status is PaymentStatus.CAPTURED
    (review,) = fake.reviews
    assert (review.status, review.reviewer, review.note) == (
        ReviewStatus.APPROVED, "operator-7", "known",
    )  # fmt: skip
    assert described.typed_search_attributes.get(search.RISK_DECISION) == "approved"


async def test_an_operator_rejects_a_review_of_an_authorization(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.AUTHORIZATION, RiskDecision.REVIEW)
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, in_review)
        state = await handle.execute_update(
            CheckoutWorkflow.review,
            ReviewDecision(outcome=ReviewOutcome.REJECTED, reviewer="operator-7"),
        )
        result = await handle.result()

    assert state.status is PaymentStatus.VOIDED
    assert result.status is PaymentStatus.VOIDED
    assert result.last_error == "risk_rejected: amount_not_accepted (review rejected)"
    assert len(fake.releases) == 1 and fake.captures == []
    assert [(r.status, r.reviewer) for r in fake.reviews] == [(ReviewStatus.REJECTED, "operator-7")]


async def test_a_review_decision_without_a_review_is_refused(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                CheckoutWorkflow.review, ReviewDecision(outcome=ReviewOutcome.APPROVED)
            )
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        assert (await handle.result()).status is PaymentStatus.CAPTURED

    assert getattr(refused.value.cause, "type", None) == "no_review_pending"


async def test_screening_an_allowed_checkout_keeps_the_captured_checkouts_budget(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        assert (await handle.result()).status is PaymentStatus.CAPTURED
        shape = shape_of(await handle.fetch_history())

    # the two assessments are local activities: the one at the authorization shares its workflow
    # task's marker action with the merchant's confirmation; the one before the payment (with
    # the patch's marker) costs one action more than an unscreened checkout
    assert (shape.local_activities, shape.marker_tasks) == (2 + 2, 2), shape
    assert shape.actions <= 10, shape


async def test_a_review_of_a_manual_capture_authorization_does_not_extend_its_window(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(
        RiskStage.AUTHORIZATION, RiskDecision.REVIEW, review_for=timedelta(days=2),
        default=ReviewOutcome.APPROVED,
    )  # fmt: skip
    request = checkout_request(CaptureMode.MANUAL)
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, request, tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()  # nobody captures

    assert result.status is PaymentStatus.EXPIRED and len(fake.releases) == 1
    at = {step.step: step.at for step in result.history}
    window = timedelta(seconds=request.manual_capture_window_seconds)
    # the window counts from the authorization, the review included
    assert at["compensated"] - at["risk_review"] < window + timedelta(minutes=1)


async def test_an_approval_before_the_payment_does_not_decide_a_later_review(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.risk_says(RiskStage.CREATE, RiskDecision.REVIEW)
    fake.risk_says(RiskStage.AUTHORIZATION, RiskDecision.REVIEW, review_for=timedelta(seconds=2))
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        await wait_for(handle, in_review)
        await handle.execute_update(
            CheckoutWorkflow.review, ReviewDecision(outcome=ReviewOutcome.APPROVED)
        )
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()  # the second review times out: rejected by default

    assert result.status is PaymentStatus.VOIDED
    assert [r.status for r in fake.reviews] == [
        ReviewStatus.APPROVED, ReviewStatus.TIMED_OUT_REJECTED,
    ]  # fmt: skip
