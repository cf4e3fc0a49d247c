"""The Stripe emulator, driven through the official ``stripe`` SDK."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import stripe

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver, Sandbox, SandboxFactory


async def _create(sandbox_api: Sandbox, **params: Any) -> stripe.PaymentIntent:
    body: Any = {"amount": 1000, "currency": "USD", "metadata": {"order_id": "o-1"}, **params}
    return await sandbox_api.stripe.v1.payment_intents.create_async(body)


def _pay(sandbox_api: Sandbox, intent: stripe.PaymentIntent, method: str) -> Any:
    return sandbox_api.http.post(
        f"/sandbox/stripe/payment_intents/{intent.id}/pay",
        json={"client_secret": intent.client_secret, "payment_method": method},
    )


def _pay_partly(sandbox_api: Sandbox, intent: stripe.PaymentIntent, approved: int) -> Any:
    """The customer's card has only ``approved`` left."""
    return sandbox_api.http.post(
        f"/sandbox/stripe/payment_intents/{intent.id}/pay",
        json={
            "client_secret": intent.client_secret,
            "payment_method": "pm_card_visa",
            "authorized_amount": approved,
        },
    )


def _events(sandbox_api: Sandbox, receiver: Receiver, count: int) -> list[stripe.Event]:
    return [
        stripe.Webhook.construct_event(
            r.body.decode(), r.headers["stripe-signature"], sandbox_api.config.stripe_webhook_secret
        )
        for r in receiver.wait_for("/stripe", count)
    ]


async def test_manual_capture_flow(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    intent = await _create(sandbox_api, capture_method="manual", payment_method_types=["card"])
    assert intent.id.startswith("pi_")
    assert str(intent.client_secret).startswith(f"{intent.id}_secret_")
    assert (intent.status, intent.currency, intent.metadata["order_id"]) == (
        "requires_payment_method",
        "usd",
        "o-1",
    )
    assert intent.latest_charge is None and intent.livemode is False

    paid = _pay(sandbox_api, intent, "pm_card_visa")
    assert paid.status_code == 200 and paid.json()["status"] == "requires_capture"

    intent = await sandbox_api.stripe.v1.payment_intents.retrieve_async(intent.id)
    assert intent.amount_capturable == 1000 and str(intent.latest_charge).startswith("ch_")

    intent = await sandbox_api.stripe.v1.payment_intents.capture_async(
        intent.id, {"amount_to_capture": 600}
    )
    assert (intent.status, intent.amount_received, intent.amount_capturable) == (
        "succeeded",
        600,
        0,
    )
    assert [(m["kind"], m["amount"]) for m in sandbox_api.movements(payment=intent.id)] == [
        ("authorization", 1000),
        ("capture", 600),
        ("void", 400),
    ]

    events = _events(sandbox_api, sandbox_receiver, 3)
    assert [e.type for e in events] == [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
    ]
    assert events[2].data.object["amount_received"] == 600
    assert events[0].api_version == "2024-06-20" and events[0].id.startswith("evt_")


async def test_create_and_confirm_automatic(sandbox_api: Sandbox) -> None:
    intent = await _create(sandbox_api, confirm=True, payment_method="pm_card_visa")
    assert (intent.status, intent.amount_received) == ("succeeded", 1000)
    assert str(intent.payment_method).startswith("pm_")
    kinds = [m["kind"] for m in sandbox_api.movements(payment=intent.id)]
    assert kinds == ["authorization", "capture"]


async def test_declines_leave_the_intent_payable(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    intent = await _create(sandbox_api)
    with pytest.raises(stripe.CardError) as declined:
        await sandbox_api.stripe.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": "pm_card_chargeDeclined"}
        )
    assert declined.value.http_status == 402 and declined.value.error is not None
    assert (declined.value.code, declined.value.error.decline_code) == (
        "card_declined",
        "generic_decline",
    )
    error_body: Any = declined.value.json_body
    assert error_body["error"]["payment_intent"]["id"] == intent.id

    answer = _pay(sandbox_api, intent, "4000000000009995")
    assert answer.status_code == 402
    assert answer.json()["error"]["decline_code"] == "insufficient_funds"

    intent = await sandbox_api.stripe.v1.payment_intents.retrieve_async(intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == "insufficient_funds"
    assert sandbox_api.movements(payment=intent.id) == []

    intent = await sandbox_api.stripe.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "4242424242424242"}
    )
    assert intent.status == "succeeded" and intent.last_payment_error is None
    types = [e.type for e in _events(sandbox_api, sandbox_receiver, 4)]
    assert types == [
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


async def test_cancel_and_state_rules(sandbox_api: Sandbox) -> None:
    intent = await _create(
        sandbox_api, capture_method="manual", confirm=True, payment_method="pm_card_visa"
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await sandbox_api.stripe.v1.payment_intents.capture_async(
            intent.id, {"amount_to_capture": 1001}
        )
    assert too_much.value.code == "amount_too_large"

    intent = await sandbox_api.stripe.v1.payment_intents.cancel_async(
        intent.id, {"cancellation_reason": "requested_by_customer"}
    )
    assert (intent.status, intent.cancellation_reason) == ("canceled", "requested_by_customer")
    assert [m["kind"] for m in sandbox_api.movements(payment=intent.id)] == [
        "authorization",
        "void",
    ]

    for action in (
        sandbox_api.stripe.v1.payment_intents.cancel_async,
        sandbox_api.stripe.v1.payment_intents.capture_async,
        sandbox_api.stripe.v1.payment_intents.confirm_async,
    ):
        with pytest.raises(stripe.InvalidRequestError) as wrong_state:
            await action(intent.id)
        assert wrong_state.value.code == "payment_intent_unexpected_state"

    unpaid = await _create(sandbox_api)
    unpaid = await sandbox_api.stripe.v1.payment_intents.cancel_async(unpaid.id)
    assert unpaid.status == "canceled" and sandbox_api.movements(payment=unpaid.id) == []


async def test_refunds(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    refunds = sandbox_api.stripe.v1.refunds
    intent = await _create(sandbox_api, confirm=True, payment_method="pm_card_visa")
    partial = await refunds.create_async(
        {
            "payment_intent": intent.id,
            "amount": 300,
            "reason": "requested_by_customer",
            "metadata": {"refund_id": "r-1"},
        }
    )
    assert partial.id.startswith("re_")
    assert (partial.status, partial.amount, partial.charge) == (
        "succeeded",
        300,
        intent.latest_charge,
    )
    assert partial.metadata is not None and partial.metadata["refund_id"] == "r-1"

    with pytest.raises(stripe.InvalidRequestError) as too_large:
        await refunds.create_async({"charge": str(intent.latest_charge), "amount": 701})
    assert too_large.value.code == "amount_too_large"

    rest = await refunds.create_async({"charge": str(intent.latest_charge)})
    assert (rest.amount, rest.payment_intent) == (700, intent.id)
    with pytest.raises(stripe.InvalidRequestError) as again:
        await refunds.create_async({"payment_intent": intent.id})
    assert again.value.code == "charge_already_refunded"

    listed = await refunds.list_async({"payment_intent": intent.id})
    assert [r.id for r in listed.data] == [rest.id, partial.id]
    assert (await refunds.retrieve_async(partial.id)).amount == 300
    refund_moves = [m for m in sandbox_api.movements(payment=intent.id) if m["kind"] == "refund"]
    assert [(m["object_id"], m["amount"]) for m in refund_moves] == [
        (partial.id, 300),
        (rest.id, 700),
    ]

    types = [e.type for e in _events(sandbox_api, sandbox_receiver, 6)]
    assert types[2:] == ["charge.refunded", "refund.created", "charge.refunded", "refund.created"]

    unpaid = await _create(sandbox_api)
    with pytest.raises(stripe.InvalidRequestError):
        await refunds.create_async({"payment_intent": unpaid.id})


async def test_pending_refunds_settle(
    sandbox_factory: SandboxFactory, sandbox_receiver: Receiver
) -> None:
    sandbox_api = sandbox_factory(refund_mode="pending")
    refunds = sandbox_api.stripe.v1.refunds
    intent = await _create(sandbox_api, confirm=True, payment_method="pm_card_visa")
    first = await refunds.create_async({"payment_intent": intent.id, "amount": 400})
    assert first.status == "pending"
    assert [m["kind"] for m in sandbox_api.movements(payment=intent.id)] == [
        "authorization",
        "capture",
    ]

    settled = sandbox_api.http.post(
        f"/sandbox/refunds/{first.id}/settle", json={"outcome": "succeeded"}
    )
    assert settled.status_code == 200
    assert (await refunds.retrieve_async(first.id)).status == "succeeded"
    assert sandbox_api.movements(payment=intent.id)[-1]["object_id"] == first.id

    second = await refunds.create_async({"payment_intent": intent.id})
    assert second.amount == 600
    sandbox_api.http.post(f"/sandbox/refunds/{second.id}/settle", json={"outcome": "failed"})
    assert (await refunds.retrieve_async(second.id)).status == "failed"
    assert len(sandbox_api.movements(payment=intent.id)) == 3
    again = sandbox_api.http.post(
        f"/sandbox/refunds/{second.id}/settle", json={"outcome": "failed"}
    )
    assert again.status_code == 409

    third = await refunds.create_async({"payment_intent": intent.id})
    assert third.amount == 600, "a failed refund gives its amount back"
    types = [e.type for e in _events(sandbox_api, sandbox_receiver, 11)]
    assert types[2:] == [
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refunded",
        "refund.created",
    ]


async def test_idempotent_replay_and_conflict(sandbox_api: Sandbox) -> None:
    intents = sandbox_api.stripe.v1.payment_intents
    params: Any = {"amount": 2500, "currency": "eur", "capture_method": "manual"}
    first = await intents.create_async(params, options={"idempotency_key": "create-1"})
    replay = await intents.create_async(params, options={"idempotency_key": "create-1"})
    assert replay.id == first.id
    assert replay.last_response is not None
    assert replay.last_response.headers["idempotent-replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        await intents.create_async(
            {**params, "amount": 2600},  # type: ignore[typeddict-item]
            options={"idempotency_key": "create-1"},
        )

    await intents.confirm_async(first.id, {"payment_method": "pm_card_visa"})
    captured = await intents.capture_async(first.id, options={"idempotency_key": "cap-1"})
    moves = sandbox_api.movements(payment=first.id)
    again = await intents.capture_async(first.id, options={"idempotency_key": "cap-1"})
    assert again.to_dict() == captured.to_dict()
    assert sandbox_api.movements(payment=first.id) == moves

    declined = await intents.create_async({"amount": 100, "currency": "usd"})
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            await intents.confirm_async(
                declined.id,
                {"payment_method": "pm_card_chargeDeclined"},
                options={"idempotency_key": "decline-1"},
            )


async def test_auth_and_unknown_ids(sandbox_api: Sandbox) -> None:
    wrong = stripe.StripeClient(
        "sk_test_wrong",
        base_addresses={"api": f"{sandbox_api.url}/stripe"},
        http_client=stripe.HTTPXClient(timeout=5),
        max_network_retries=0,
    )
    with pytest.raises(stripe.AuthenticationError):
        await wrong.v1.payment_intents.create_async({"amount": 100, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await sandbox_api.stripe.v1.payment_intents.retrieve_async("pi_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as no_amount:
        await sandbox_api.stripe.v1.payment_intents.create_async({"currency": "usd"})  # type: ignore[typeddict-item]
    assert no_amount.value.param == "amount"
    body = json.loads(str(no_amount.value.http_body))
    assert body["error"]["type"] == "invalid_request_error"


async def test_a_partial_authorization_leaves_less_to_capture_than_the_amount(
    sandbox_api: Sandbox,
) -> None:
    asks = await _create(
        sandbox_api,
        capture_method="manual",
        payment_method_options={"card": {"request_partial_authorization": "if_available"}},
    )
    paid = _pay_partly(sandbox_api, asks, 600)
    assert paid.status_code == 200, paid.text
    intent = await sandbox_api.stripe.v1.payment_intents.retrieve_async(asks.id)
    assert (intent.status, intent.amount, intent.amount_capturable) == (
        "requires_capture",
        1000,
        600,
    )
    assert [(m["kind"], m["amount"]) for m in sandbox_api.movements(payment=asks.id)] == [
        ("authorization", 600)
    ]
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await sandbox_api.stripe.v1.payment_intents.capture_async(
            asks.id, {"amount_to_capture": 1000}
        )
    assert too_much.value.code == "amount_too_large"
    captured = await sandbox_api.stripe.v1.payment_intents.capture_async(asks.id)
    assert captured.amount_received == 600

    does_not_ask = await _create(sandbox_api, capture_method="manual")
    declined = _pay_partly(sandbox_api, does_not_ask, 600)
    assert declined.status_code == 402
    assert declined.json()["error"]["decline_code"] == "insufficient_funds"
    with pytest.raises(stripe.InvalidRequestError) as invalid:
        await _create(
            sandbox_api,
            payment_method_options={"card": {"request_partial_authorization": "always"}},
        )
    assert invalid.value.param == "payment_method_options[card][request_partial_authorization]"
