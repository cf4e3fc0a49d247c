"""Every branch of the checkout saga, with its activities replaced by doubles.

Timers run on the time-skipping server; updates (cancel, capture) on the dev server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.checkout import (
    CancelCheckout,
    CaptureCheckout,
    CaptureMode,
    MerchantDecision,
    PaymentEvent,
    PaymentEventKind,
    PaymentStatus,
)
from tests.workflows.doubles import (
    AMOUNT,
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
from workflows.policies import BACKGROUND


def queue() -> str:
    return f"checkout-test-{uuid.uuid4().hex}"


async def test_paid_checkout_is_confirmed_captured_and_recorded(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()
        described = await handle.describe()

    assert result.status is PaymentStatus.CAPTURED
    assert result.amount_captured == AMOUNT
    found = described.typed_search_attributes
    assert found.get(search.PAYMENT_STATUS) == "captured"
    assert found.get(search.PAYMENT_ID) == result.checkout_id
    assert found.get(search.AMOUNT_MINOR) == AMOUNT
    assert (await described.memo_value("captured")) == "49.99 USD"
    assert [c.amount for c in fake.captures] == [AMOUNT]
    assert fake.releases == [] and fake.refunds == []
    assert fake.steps() == [
        "checkout_created", "gateway_payment_created", "authorized", "merchant_confirmed",
        "captured",
    ]  # fmt: skip
    assert fake.ledger_balance() == {"gateway:stripe": AMOUNT, "merchant:sales": -AMOUNT}


async def test_declined_attempt_is_recorded_and_the_customer_may_pay_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    declined = PaymentEvent(
        event_id="evt_declined",
        kind=PaymentEventKind.FAILED,
        gateway_payment_id="pi_1",
        error_code="insufficient_funds",
        error_message="Your card has insufficient funds.",
    )
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, declined)
        await handle.signal(CheckoutWorkflow.payment_event, declined)  # a duplicate webhook
        state = await wait_for(handle, lambda s: len(s.attempts) == 1)
        assert state.status is PaymentStatus.CREATED
        assert state.last_error and "insufficient_funds" in state.last_error
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert [a.outcome for a in result.attempts] == ["failed", "authorized"]
    assert fake.steps().count("payment_attempt_failed") == 1
    assert len(fake.captures) == 1


async def test_unpaid_checkout_expires_at_the_deadline_and_is_canceled_at_the_gateway(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()  # the server skips the 15 minutes

    assert result.status is PaymentStatus.EXPIRED
    assert len(fake.releases) == 1
    assert fake.captures == []
    assert fake.ledger_balance() == {}


async def test_a_capture_landing_between_the_deadlines_look_and_release_is_refunded(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The release is refused (captured meanwhile): the checkout looks again and gives it back."""
    fake, tq = FakeGateway(), queue()
    fake.captured_after_the_look = True
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        result = await handle.result()

    assert result.status is PaymentStatus.REFUNDED and fake.releases == []
    assert [r.amount for r in fake.refunds] == [AMOUNT]
    assert "release_refused" not in [step.step for step in result.history]


async def test_an_event_arriving_while_the_checkout_expires_leaves_its_release_its_own(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The reconciler's look-again can reach a checkout while its deadline's release is under way
    (the bench's deadline storm does). The release is the checkout's own act, recorded as its
    expiry, never as the gateway canceling on its own. It was not when the release ran as a local
    activity: the event failed that workflow task, whose release the history then lacked, and the
    retried task read the event first and took the release it did not know for the gateway's own
    (80 of 200 storm checkouts ended `canceled_at_gateway`)."""
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)

        async def reconciler_looks_again() -> None:
            await handle.signal(
                CheckoutWorkflow.payment_event,
                PaymentEvent(
                    event_id="reconcile:run-1:pi_1",
                    kind=PaymentEventKind.RECONCILE,
                    gateway_payment_id=fake.payment_id,
                ),
            )

        fake.during_expiry = reconciler_looks_again
        result = await handle.result()

    assert result.status is PaymentStatus.EXPIRED
    assert "canceled_at_gateway" not in [step.step for step in result.history]
    assert len(fake.releases) == 1


def gateway_call_priorities(history: WorkflowHistory) -> dict[str, set[int]]:
    """Activity type → the priority keys its scheduled tasks carried (0: the server default)."""
    keys: dict[str, set[int]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            keys.setdefault(scheduled.activity_type.name, set()).add(
                scheduled.priority.priority_key
            )
    return keys


async def test_an_expiring_checkout_yields_its_gateway_calls_to_live_ones(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await handle.result()
        keys = gateway_call_priorities(await handle.fetch_history())

    background = BACKGROUND.priority_key
    assert keys == {"create_gateway_payment": {0}, "expire_gateway_payment": {background}}


async def test_an_expiring_checkout_looks_and_releases_in_one_call(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Deadline storms are the background load (BENCHMARKS.md): each task they spare counts."""
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await handle.result()
        history = await handle.fetch_history()

    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["create_gateway_payment", "expire_gateway_payment"]
    assert fake.fetches == 1 and len(fake.releases) == 1


async def test_merchant_refusal_voids_the_authorization(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.merchant = MerchantDecision(accepted=False, reason="out of stock")
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.VOIDED
    assert result.last_error == "merchant refused: out of stock"
    assert fake.captures == [] and fake.refunds == []
    assert len(fake.releases) == 1
    assert fake.ledger_balance() == {}


async def test_a_merchant_that_cannot_confirm_voids_the_authorization(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The confirmation is a local activity, whose failure arrives unwrapped (no ActivityError):
    the checkout still says why it voided."""
    fake, tq = FakeGateway(), queue()
    fake.merchant_error = ApplicationError(
        "the shop answered 400", type="merchant_misconfigured", non_retryable=True
    )
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.VOIDED
    assert result.last_error == (
        "merchant confirmation failed: merchant_misconfigured: the shop answered 400"
    )
    assert len(fake.releases) == 1 and fake.captures == []


async def test_capture_failing_for_good_voids_the_authorization(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.capture_error = ApplicationError(
        "authorization expired", type="invalid_request", non_retryable=True
    )
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.VOIDED
    assert result.last_error and "invalid_request" in result.last_error
    assert len(fake.releases) == 1 and fake.refunds == []


async def test_failure_after_capture_refunds_the_customer(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.refuse_record_step = "captured"
    result = await paid_checkout(time_skipping_env.client, fake, tq)

    assert result.status is PaymentStatus.REFUNDED
    assert [r.amount for r in fake.refunds] == [AMOUNT]
    assert fake.releases == []
    # the refund posting carries the capture it reverses: the gateway owes us nothing
    assert fake.ledger_balance() == {
        "gateway:stripe": 0, "merchant:sales": -AMOUNT, "merchant:refunds": AMOUNT,
    }  # fmt: skip


async def test_authorization_event_not_confirmed_by_the_gateway_is_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    forged = PaymentEvent(
        event_id="evt_forged", kind=PaymentEventKind.AUTHORIZED, gateway_payment_id="pi_1"
    )
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, forged)  # gateway still says created
        await wait_for(handle, lambda s: s.history[-1].step == "event_not_confirmed")
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert len(fake.captures) == 1


async def test_cancel_before_payment_cancels_at_the_gateway(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        state = await handle.execute_update(
            CheckoutWorkflow.cancel, CancelCheckout(reason="changed mind")
        )
        result = await handle.result()

    assert state.status is PaymentStatus.CANCELED
    assert result.status is PaymentStatus.CANCELED
    assert len(fake.releases) == 1 and fake.captures == []
    # A customer's cancel is live work: its release keeps the default priority.
    keys = gateway_call_priorities(await handle.fetch_history())
    assert keys["release_gateway_payment"] == {0}


async def test_cancel_after_authorization_voids_it_in_manual_capture(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, lambda s: s.status is PaymentStatus.AUTHORIZED)
        state = await handle.execute_update(CheckoutWorkflow.cancel, CancelCheckout())

    assert state.status is PaymentStatus.CANCELED
    assert len(fake.releases) == 1 and fake.captures == []


async def test_cancel_is_refused_once_capture_has_started(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    fake.capture_gate = asyncio.Event()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        for _ in range(100):
            if fake.captures:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(CheckoutWorkflow.cancel, CancelCheckout())
        fake.capture_gate.set()
        result = await handle.result()

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "checkout_not_cancelable"
    assert result.status is PaymentStatus.CAPTURED
    assert fake.releases == []


async def test_manual_capture_takes_a_partial_amount(dev_server_env: WorkflowEnvironment) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        with pytest.raises(WorkflowUpdateFailedError):  # not authorized yet
            await handle.execute_update(CheckoutWorkflow.capture, CaptureCheckout())
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, lambda s: s.status is PaymentStatus.AUTHORIZED)
        with pytest.raises(WorkflowUpdateFailedError):  # more than authorized
            await handle.execute_update(
                CheckoutWorkflow.capture, CaptureCheckout(amount=AMOUNT + 1)
            )
        state = await handle.execute_update(CheckoutWorkflow.capture, CaptureCheckout(amount=1000))

    assert state.status is PaymentStatus.CAPTURED
    assert state.amount_captured == 1000
    assert [c.amount for c in fake.captures] == [1000]


def reconcile_request() -> PaymentEvent:
    return PaymentEvent(
        event_id=f"reconcile:{uuid.uuid4().hex}",
        kind=PaymentEventKind.RECONCILE,
        gateway_payment_id="pi_1",
    )


async def test_reconciliation_finds_an_authorization_whose_webhook_was_lost(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, reconcile_request())
        await wait_for(handle, lambda s: s.history[-1].step == "reconciled")
        fake.customer_pays()  # the customer paid; the webhook never came
        await handle.signal(CheckoutWorkflow.payment_event, reconcile_request())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert len(fake.captures) == 1


async def test_authorization_canceled_at_the_gateway_ends_a_manual_capture_checkout(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        await wait_for(handle, lambda s: s.status is PaymentStatus.AUTHORIZED)
        await handle.signal(CheckoutWorkflow.payment_event, reconcile_request())
        await wait_for(handle, lambda s: s.history[-1].step == "reconciled")
        fake.status = PaymentStatus.CANCELED  # canceled on the gateway's dashboard
        await handle.signal(CheckoutWorkflow.payment_event, reconcile_request())
        result = await handle.result()

    assert result.status is PaymentStatus.VOIDED
    assert result.last_error and "the gateway says canceled" in result.last_error
    assert fake.captures == [] and fake.releases == []


async def test_manual_capture_window_expires_and_voids(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(CaptureMode.MANUAL), tq)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()  # six days pass

    assert result.status is PaymentStatus.EXPIRED
    assert len(fake.releases) == 1 and fake.captures == []
