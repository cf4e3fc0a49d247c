"""Customer authentication (3-D Secure) in the checkout saga (time-skipping): the bank's request
for authentication reaches the client through the checkout's state, a failed authentication is a
recorded failed attempt the customer may retry until the deadline, and one never completed
expires the checkout with the payment released."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from domain.checkout import (
    CheckoutState,
    PaymentEvent,
    PaymentEventKind,
    PaymentSnapshot,
    PaymentStatus,
)
from tests.workflows.doubles import AMOUNT, FakeGateway, checkout_request, start, wait_for, worker
from workflows.checkout import CheckoutWorkflow

CHALLENGE = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://bank/3ds"}}


def queue() -> str:
    return f"checkout-3ds-{uuid.uuid4().hex}"


def authentication_required() -> PaymentEvent:
    return PaymentEvent(
        event_id=f"evt_{uuid.uuid4().hex}",
        kind=PaymentEventKind.REQUIRES_ACTION,
        gateway_payment_id="pi_1",
        snapshot=PaymentSnapshot(
            status=PaymentStatus.REQUIRES_ACTION, amount=AMOUNT, currency="USD",
            next_action=CHALLENGE,
        ),
    )  # fmt: skip


def authentication_failed() -> PaymentEvent:
    return PaymentEvent(
        event_id=f"evt_{uuid.uuid4().hex}",
        kind=PaymentEventKind.FAILED,
        gateway_payment_id="pi_1",
        error_code="payment_intent_authentication_failure",
        error_message="The provided PaymentMethod has failed authentication.",
    )


def waiting_for_authentication(state: CheckoutState) -> bool:
    return state.status is PaymentStatus.REQUIRES_ACTION


async def test_a_failed_authentication_is_a_failed_attempt_and_the_customer_may_retry(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await handle.execute_update(CheckoutWorkflow.checkout_ready)
        await handle.signal(CheckoutWorkflow.payment_event, authentication_required())
        asked = await wait_for(handle, waiting_for_authentication)
        assert asked.instructions.next_action == CHALLENGE
        assert asked.instructions.stripe_client_secret == "pi_1_secret_x"
        await handle.signal(CheckoutWorkflow.payment_event, authentication_failed())
        retry = await wait_for(handle, lambda s: s.status is PaymentStatus.CREATED)
        assert retry.instructions.next_action is None
        await handle.signal(CheckoutWorkflow.payment_event, authentication_required())
        await wait_for(handle, waiting_for_authentication)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()

    assert result.status is PaymentStatus.CAPTURED
    assert [a.error_code for a in result.attempts] == [
        "payment_intent_authentication_failure", None
    ]  # fmt: skip
    assert [s for s in fake.steps() if s != "merchant_confirmed"][2:] == [
        "authentication_required", "payment_attempt_failed", "authentication_required",
        "authorized", "captured",
    ]  # fmt: skip


async def test_an_authentication_never_completed_expires_and_releases_the_payment(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake, tq = FakeGateway(), queue()
    async with worker(time_skipping_env.client, fake, tq):
        handle = await start(time_skipping_env.client, checkout_request(), tq)
        await handle.execute_update(CheckoutWorkflow.checkout_ready)
        fake.status = PaymentStatus.REQUIRES_ACTION
        await handle.signal(CheckoutWorkflow.payment_event, authentication_required())
        await wait_for(handle, waiting_for_authentication)
        result = await handle.result()

    assert result.status is PaymentStatus.EXPIRED
    assert len(fake.releases) == 1 and fake.status is PaymentStatus.CANCELED
