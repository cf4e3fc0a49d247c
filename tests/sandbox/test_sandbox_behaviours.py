"""The gateways' real behaviours the sandbox models by default, and the faults that go with them:
Razorpay's automatic capture and late authorization, rate limits, writes that commit after the
client gave up, Stripe's idempotency replay, and the one reset that restores every default."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import razorpay
import requests
import stripe
from razorpay.errors import BadRequestError

from tests.sandbox.conftest import MANUAL_CAPTURE

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver, Sandbox, SandboxFactory


def _post(sandbox_api: Sandbox, path: str, body: Any = None) -> Any:
    response = sandbox_api.http.post(path, json=body)
    assert response.is_success, response.text
    return response.json()


def _fault(sandbox_api: Sandbox, **fault: Any) -> None:
    _post(sandbox_api, "/sandbox/faults", fault)


def _order(sandbox_api: Sandbox, **params: Any) -> dict[str, Any]:
    order: dict[str, Any] = sandbox_api.razorpay.order.create(
        {"amount": 5000, "currency": "INR", **params}
    )
    return order


def _pay(sandbox_api: Sandbox, order: dict[str, Any], outcome: str = "success") -> Any:
    return sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order['id']}/pay", json={"outcome": outcome}
    )


def _razorpay_events(receiver: Receiver, count: int) -> list[str]:
    return [json.loads(r.body)["event"] for r in receiver.wait_for("/razorpay", count)]


def _kinds(sandbox_api: Sandbox, payment: str) -> list[str]:
    return [m["kind"] for m in sandbox_api.movements(payment=payment)]


def _in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run a blocking SDK call in a thread; the list gets its result or exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


# Razorpay: automatic capture, account settings, late authorization


def test_razorpay_captures_by_itself_unless_the_order_asks_for_manual_capture(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    automatic = _order(sandbox_api)
    paid = _pay(sandbox_api, automatic).json()
    assert sandbox_api.razorpay.utility.verify_payment_signature(paid)
    payment = sandbox_api.razorpay.payment.fetch(paid["razorpay_payment_id"])
    assert (payment["status"], payment["captured"]) == ("captured", True)
    assert sandbox_api.razorpay.order.fetch(automatic["id"])["status"] == "paid"
    assert _kinds(sandbox_api, automatic["id"]) == ["authorization", "capture"]
    assert _razorpay_events(sandbox_receiver, 3) == [
        "payment.authorized",
        "payment.captured",
        "order.paid",
    ]
    authorized_event = json.loads(sandbox_receiver.of("/razorpay")[0].body)
    assert authorized_event["payload"]["payment"]["entity"]["status"] == "authorized"
    with pytest.raises(BadRequestError, match="This payment has already been captured"):
        sandbox_api.razorpay.payment.capture(payment["id"], 5000, {"currency": "INR"})

    for manual in (MANUAL_CAPTURE, {"payment_capture": 0}, {"payment_capture": False}):
        order = _order(sandbox_api, **manual)
        payment_id = _pay(sandbox_api, order).json()["razorpay_payment_id"]
        assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "authorized"
    legacy_automatic = _order(sandbox_api, payment_capture=1)
    payment_id = _pay(sandbox_api, legacy_automatic).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "captured"


def test_razorpay_refuses_capture_settings_it_does_not_allow(sandbox_api: Sandbox) -> None:
    refused = [
        ({"capture": "later"}, "payment.capture"),
        ({"capture": "automatic"}, "payment.capture_options.automatic_expiry_period"),
        (
            {"capture": "automatic", "capture_options": {"automatic_expiry_period": 5,
                                                         "refund_speed": "normal"}},
            "payment.capture_options.automatic_expiry_period",
        ),
        (
            {"capture": "manual", "capture_options": {"manual_expiry_period": 7201,
                                                      "refund_speed": "normal"}},
            "payment.capture_options.manual_expiry_period",
        ),
        (
            {"capture": "manual", "capture_options": {"manual_expiry_period": 60}},
            "payment.capture_options.refund_speed",
        ),
    ]  # fmt: skip
    for payment, field in refused:
        with pytest.raises(BadRequestError, match=field.replace(".", r"\.")):
            _order(sandbox_api, payment=payment)
    raw = sandbox_api.http.post(
        "/razorpay/v1/orders",
        json={"amount": 5000, "currency": "INR", "payment": {"capture": "later"}},
        auth=(sandbox_api.config.razorpay_key_id, sandbox_api.config.razorpay_key_secret),
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["field"] == "payment.capture"


def test_razorpay_account_capture_settings(sandbox_api: Sandbox) -> None:
    assert sandbox_api.http.get("/sandbox/razorpay/account").json() == {
        "capture": "automatic",
        "automatic_expiry_minutes": 4320,
        "direct_settlement": False,
    }
    _post(sandbox_api, "/sandbox/razorpay/account", {"capture": "manual"})
    follows_account = _order(sandbox_api)
    payment_id = _pay(sandbox_api, follows_account).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "authorized"
    asks_automatic = _order(
        sandbox_api,
        payment={
            "capture": "automatic",
            "capture_options": {"automatic_expiry_period": 12, "refund_speed": "optimum"},
        },
    )
    payment_id = _pay(sandbox_api, asks_automatic).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "captured"

    _post(sandbox_api, "/sandbox/razorpay/account", {"direct_settlement": True})
    asks_manual = _order(sandbox_api, **MANUAL_CAPTURE)
    payment_id = _pay(sandbox_api, asks_manual).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "captured", (
        "Direct Settlement accounts are captured whatever the order asks"
    )
    invalid = sandbox_api.http.post("/sandbox/razorpay/account", json={"capture": "sometimes"})
    assert invalid.status_code == 422


def test_a_late_authorization_is_captured_per_the_capture_settings(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    order = _order(sandbox_api)
    left = _pay(sandbox_api, order, "pending")
    assert left.status_code == 202 and "razorpay_signature" not in left.json()
    payment_id = left.json()["razorpay_payment_id"]
    payment = sandbox_api.razorpay.payment.fetch(payment_id)
    assert (payment["status"], payment["captured"]) == ("created", False)
    assert sandbox_api.razorpay.order.fetch(order["id"])["status"] == "attempted"
    assert sandbox_api.movements(payment=order["id"]) == []
    with pytest.raises(BadRequestError, match="authorized"):
        sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})

    late = _post(sandbox_api, f"/sandbox/razorpay/payments/{payment_id}/authorize")
    assert late["status"] == "captured"
    assert _kinds(sandbox_api, order["id"]) == ["authorization", "capture"]
    assert _razorpay_events(sandbox_receiver, 3) == [
        "payment.authorized",
        "payment.captured",
        "order.paid",
    ]
    again = sandbox_api.http.post(f"/sandbox/razorpay/payments/{payment_id}/authorize")
    assert again.status_code == 400

    # authorized after the order's auto-capture period: it waits for a manual capture
    window = {"automatic_expiry_period": 12, "manual_expiry_period": 7200, "refund_speed": "normal"}
    order = _order(sandbox_api, payment={"capture": "automatic", "capture_options": window})
    payment_id = _pay(sandbox_api, order, "pending").json()["razorpay_payment_id"]
    late = _post(
        sandbox_api,
        f"/sandbox/razorpay/payments/{payment_id}/authorize",
        {"minutes_since_creation": 30},
    )
    assert (late["status"], late["captured"]) == ("authorized", False)
    captured = sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})
    assert captured["status"] == "captured"


# Rate limits


async def test_rate_limits_answer_429_with_the_gateways_bodies(sandbox_api: Sandbox) -> None:
    _fault(sandbox_api, gateway="stripe", operation="payment_intents.create", kind="rate_limited")
    params: Any = {"amount": 1000, "currency": "usd"}
    key: Any = {"idempotency_key": "limited-1"}
    with pytest.raises(stripe.RateLimitError) as limited:
        await sandbox_api.stripe.v1.payment_intents.create_async(params, options=key)
    assert limited.value.http_status == 429
    assert limited.value.error is not None and limited.value.error.code == "rate_limit"
    created = await sandbox_api.stripe.v1.payment_intents.create_async(params, options=key)
    assert created.status == "requires_payment_method", "a refused request saves nothing"

    _fault(sandbox_api, gateway="razorpay", operation="orders.create", kind="rate_limited")
    with pytest.raises(BadRequestError, match="Too many requests"):
        _order(sandbox_api, receipt="limited")
    assert sandbox_api.razorpay.order.all({"receipt": "limited"})["count"] == 0
    _fault(sandbox_api, gateway="razorpay", operation="orders.fetch", kind="rate_limited")
    raw = sandbox_api.http.get(
        "/razorpay/v1/orders/order_any",
        auth=(sandbox_api.config.razorpay_key_id, sandbox_api.config.razorpay_key_secret),
    )
    assert raw.status_code == 429
    assert raw.json() == {
        "error": {
            "code": "BAD_REQUEST_ERROR",
            "description": "Too many requests",
            "source": "NA",
            "step": "NA",
            "reason": "NA",
            "metadata": {},
        }
    }


# Slow commits


def test_a_slow_razorpay_capture_lands_late_and_a_retry_finds_it_captured(
    sandbox_api: Sandbox,
) -> None:
    order = _order(sandbox_api, **MANUAL_CAPTURE)
    payment_id = _pay(sandbox_api, order).json()["razorpay_payment_id"]
    _fault(
        sandbox_api,
        gateway="razorpay",
        operation="payments.capture",
        kind="slow_commit",
        delay_seconds=1.5,
    )
    with pytest.raises(requests.exceptions.JSONDecodeError):  # the 502 page of a lost answer
        sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "authorized"

    with pytest.raises(BadRequestError, match="This payment has already been captured"):
        sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "captured"
    assert _kinds(sandbox_api, payment_id) == ["authorization", "capture"]


def test_a_slow_razorpay_refund_holds_its_key_until_it_lands(sandbox_api: Sandbox) -> None:
    payment_id = _pay(sandbox_api, _order(sandbox_api)).json()["razorpay_payment_id"]
    _fault(
        sandbox_api,
        gateway="razorpay",
        operation="payments.refund",
        kind="slow_commit",
        delay_seconds=1.5,
    )
    key = {"X-Refund-Idempotency": "slow-refund-01"}
    refund = sandbox_api.razorpay.payment.refund
    with pytest.raises(requests.exceptions.JSONDecodeError):
        refund(payment_id, {"amount": 1000}, headers=key)
    assert sandbox_api.razorpay.payment.fetch_multiple_refund(payment_id)["count"] == 0
    with pytest.raises(BadRequestError, match="being processed"):
        refund(payment_id, {"amount": 1000}, headers=key)
    other = refund(payment_id, {"amount": 500})  # another refund waits for the first to land
    assert other["amount"] == 500
    listed = sandbox_api.razorpay.payment.fetch_multiple_refund(payment_id)["items"]
    assert [r["amount"] for r in listed] == [500, 1000]
    assert refund(payment_id, {"amount": 1000}, headers=key)["id"] == listed[1]["id"]


async def test_a_slow_stripe_capture_holds_its_key_then_replays(sandbox_api: Sandbox) -> None:
    intents = sandbox_api.stripe.v1.payment_intents
    intent = await intents.create_async(
        {
            "amount": 1000,
            "currency": "usd",
            "capture_method": "manual",
            "confirm": True,
            "payment_method": "pm_card_visa",
        }
    )
    _fault(
        sandbox_api,
        gateway="stripe",
        operation="payment_intents.capture",
        kind="slow_commit",
        delay_seconds=1.5,
    )
    key: Any = {"idempotency_key": "slow-capture-1"}
    with pytest.raises(stripe.APIError) as lost:
        await intents.capture_async(intent.id, options=key)
    assert lost.value.http_status == 502
    assert (await intents.retrieve_async(intent.id)).status == "requires_capture"
    with pytest.raises(stripe.APIError) as in_flight:
        await intents.capture_async(intent.id, options=key)
    assert in_flight.value.http_status == 409
    assert in_flight.value.error is not None
    assert in_flight.value.error.code == "idempotency_key_in_use"

    with pytest.raises(stripe.InvalidRequestError) as behind:  # waits for the commit to land
        await intents.capture_async(intent.id, options={"idempotency_key": "slow-capture-2"})
    assert behind.value.code == "payment_intent_unexpected_state"
    replayed = await intents.capture_async(intent.id, options=key)
    assert replayed.status == "succeeded"
    assert replayed.last_response is not None
    assert replayed.last_response.headers["idempotent-replayed"] == "true"
    assert _kinds(sandbox_api, intent.id) == ["authorization", "capture"]


@pytest.mark.parametrize("kind", ["slow_commit", "applied_then_500"])
def test_only_writes_commit_late_or_apply_then_fail(sandbox_api: Sandbox, kind: str) -> None:
    refused = sandbox_api.http.post(
        "/sandbox/faults",
        json={"gateway": "razorpay", "operation": "payments.fetch", "kind": kind},
    )
    assert refused.status_code == 422
    assert f"{kind} applies a write" in refused.text


def test_writes_to_one_payment_wait_for_each_other_but_reads_do_not(
    sandbox_api: Sandbox,
) -> None:
    order = _order(sandbox_api, **MANUAL_CAPTURE)
    payment_id = _pay(sandbox_api, order).json()["razorpay_payment_id"]
    _fault(
        sandbox_api,
        gateway="razorpay",
        operation="payments.capture",
        kind="timeout",
        delay_seconds=1.5,
    )
    capture = sandbox_api.razorpay.payment.capture
    first, first_outcome = _in_background(
        lambda: capture(payment_id, 5000, {"currency": "INR"}, timeout=10)
    )
    deadline = time.monotonic() + 5
    while sandbox_api.http.get("/sandbox/faults").json():  # the first capture has begun
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "authorized"
    with pytest.raises(BadRequestError, match="already been captured"):
        capture(payment_id, 5000, {"currency": "INR"})
    first.join(10)
    assert first_outcome[0]["status"] == "captured"


# Stripe idempotency keys


async def test_stripe_keys_are_forgotten_after_24_hours(sandbox_factory: SandboxFactory) -> None:
    first = sandbox_factory()
    params: Any = {"amount": 900, "currency": "usd"}
    key: Any = {"idempotency_key": "day-old-1"}
    intent = await first.stripe.v1.payment_intents.create_async(params, options=key)
    first.stop()
    assert first.config.state_file is not None
    saved = json.loads(first.config.state_file.read_text())
    for record in saved["tables"]["stripe_idempotency"].values():
        record["at"] -= 24 * 3600
    first.config.state_file.write_text(json.dumps(saved))

    second = sandbox_factory()
    again = await second.stripe.v1.payment_intents.create_async(params, options=key)
    assert again.id != intent.id, "a key older than 24 hours makes a new request"


# One reset


async def test_one_reset_restores_every_default(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    held_order = _order(sandbox_api)
    _post(sandbox_api, "/sandbox/webhooks/hold")
    _pay(sandbox_api, held_order)
    for gateway, operation in (("stripe", "payment_intents.create"), ("razorpay", "orders.create")):
        _fault(sandbox_api, gateway=gateway, operation=operation, kind="error_500", times=5)
    _post(sandbox_api, "/sandbox/refunds/mode", {"mode": "pending"})
    _post(sandbox_api, "/sandbox/razorpay/account", {"capture": "manual"})
    with pytest.raises(razorpay.errors.ServerError):
        _order(sandbox_api)
    assert sandbox_receiver.of("/razorpay") == []

    _post(sandbox_api, "/sandbox/reset-behaviour")

    assert _razorpay_events(sandbox_receiver, 3)[0] == "payment.authorized", "held ones are sent"
    assert sandbox_api.http.get("/sandbox/faults").json() == []
    assert sandbox_api.http.get("/sandbox/refunds/mode").json() == {"mode": "instant"}
    assert sandbox_api.http.get("/sandbox/razorpay/account").json()["capture"] == "automatic"
    intent = await sandbox_api.stripe.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd"}
    )
    assert intent.status == "requires_payment_method"
    payment_id = _pay(sandbox_api, _order(sandbox_api)).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.payment.fetch(payment_id)["status"] == "captured"
