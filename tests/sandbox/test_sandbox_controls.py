"""Faults, the movement log, webhook redelivery, persistence and the checkout pages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import razorpay
import requests
import stripe

from tests.sandbox.conftest import MANUAL_CAPTURE

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver, Sandbox, SandboxFactory


def _fault(sandbox_api: Sandbox, **fault: Any) -> None:
    sandbox_api.http.post("/sandbox/faults", json=fault).raise_for_status()


async def _paid_intent(sandbox_api: Sandbox, **params: Any) -> stripe.PaymentIntent:
    body: Any = {
        "amount": 1000,
        "currency": "usd",
        "confirm": True,
        "payment_method": "pm_card_visa",
        **params,
    }
    return await sandbox_api.stripe.v1.payment_intents.create_async(body)


async def test_stripe_error_500_is_replayed_to_its_key_until_the_key_expires(
    sandbox_api: Sandbox,
) -> None:
    intent = await _paid_intent(sandbox_api)
    _fault(sandbox_api, gateway="stripe", operation="refunds.create", kind="error_500")
    refund: Any = {"payment_intent": intent.id}
    for replayed in (None, "true"):
        with pytest.raises(stripe.APIError) as failed:
            await sandbox_api.stripe.v1.refunds.create_async(
                refund, options={"idempotency_key": "refund-1"}
            )
        assert failed.value.http_status == 500
        assert failed.value.headers is not None
        assert failed.value.headers.get("idempotent-replayed") == replayed
    assert (
        await sandbox_api.stripe.v1.refunds.list_async({"payment_intent": intent.id})
    ).data == [], "a 500 applies nothing"

    expired = sandbox_api.http.post("/sandbox/stripe/idempotency_keys/expire").json()
    assert expired["expired"] >= 1
    refund_made = await sandbox_api.stripe.v1.refunds.create_async(
        refund, options={"idempotency_key": "refund-1"}
    )
    assert refund_made.status == "succeeded"


async def test_stripe_applied_but_lost_then_replay(sandbox_api: Sandbox) -> None:
    intent = await _paid_intent(sandbox_api)
    _fault(sandbox_api, gateway="stripe", operation="refunds.create", kind="applied_but_lost")
    with pytest.raises(stripe.APIError) as lost:
        await sandbox_api.stripe.v1.refunds.create_async(
            {"payment_intent": intent.id, "amount": 400}, options={"idempotency_key": "lost-1"}
        )
    assert lost.value.http_status == 502
    applied = await sandbox_api.stripe.v1.refunds.list_async({"payment_intent": intent.id})
    assert len(applied.data) == 1
    retry = await sandbox_api.stripe.v1.refunds.create_async(
        {"payment_intent": intent.id, "amount": 400}, options={"idempotency_key": "lost-1"}
    )
    assert retry.id == applied.data[0].id
    refunds = [m for m in sandbox_api.movements(payment=intent.id) if m["kind"] == "refund"]
    assert len(refunds) == 1, "a replay moves no money"


async def test_stripe_applied_then_500_changes_the_object_and_replays_the_500(
    sandbox_api: Sandbox,
) -> None:
    intent = await _paid_intent(sandbox_api, capture_method="manual")
    _fault(
        sandbox_api, gateway="stripe", operation="payment_intents.capture", kind="applied_then_500"
    )
    key: Any = {"idempotency_key": "capture-applied-1"}
    for replayed in (None, "true"):
        with pytest.raises(stripe.APIError) as failed:
            await sandbox_api.stripe.v1.payment_intents.capture_async(intent.id, options=key)
        assert failed.value.http_status == 500
        assert failed.value.headers is not None
        assert failed.value.headers.get("idempotent-replayed") == replayed
    looked_up = await sandbox_api.stripe.v1.payment_intents.retrieve_async(intent.id)
    assert looked_up.status == "succeeded", "only a look-up shows the capture happened"
    kinds = [m["kind"] for m in sandbox_api.movements(payment=intent.id)]
    assert kinds == ["authorization", "capture"]


async def test_stripe_search_finds_payment_intents_by_metadata_and_status(
    sandbox_api: Sandbox,
) -> None:
    mine = await sandbox_api.stripe.v1.payment_intents.create_async(
        {"amount": 700, "currency": "usd", "metadata": {"checkout_id": "pay_search_1"}}
    )
    await sandbox_api.stripe.v1.payment_intents.create_async(
        {"amount": 700, "currency": "usd", "metadata": {"checkout_id": "pay_search_2"}}
    )
    found = await sandbox_api.stripe.v1.payment_intents.search_async(
        {"query": "metadata['checkout_id']:'pay_search_1' AND status:'requires_payment_method'"}
    )
    assert [intent.id for intent in found.data] == [mine.id]
    none = await sandbox_api.stripe.v1.payment_intents.search_async(
        {"query": "metadata['checkout_id']:'pay_search_1' AND status:'succeeded'"}
    )
    assert none.data == []
    with pytest.raises(stripe.InvalidRequestError):
        await sandbox_api.stripe.v1.payment_intents.search_async({"query": "amount>5"})


async def test_stripe_timeout_applies_late(sandbox_api: Sandbox) -> None:
    intent = await sandbox_api.stripe.v1.payment_intents.create_async(
        {"amount": 700, "currency": "usd", "capture_method": "manual"}
    )
    _fault(
        sandbox_api,
        gateway="stripe",
        operation="payment_intents.confirm",
        kind="timeout",
        delay_seconds=0.6,
    )
    impatient = stripe.StripeClient(
        sandbox_api.config.stripe_secret_key,
        base_addresses={"api": f"{sandbox_api.url}/stripe"},
        http_client=stripe.HTTPXClient(timeout=0.2),
        max_network_retries=0,
    )
    confirm: Any = {"payment_method": "pm_card_visa"}
    key: Any = {"idempotency_key": "confirm-1"}
    with pytest.raises(stripe.APIConnectionError):
        await impatient.v1.payment_intents.confirm_async(intent.id, confirm, options=key)
    with pytest.raises(stripe.APIError) as in_flight:
        await sandbox_api.stripe.v1.payment_intents.confirm_async(intent.id, confirm, options=key)
    assert in_flight.value.http_status == 409
    assert in_flight.value.error is not None
    assert in_flight.value.error.code == "idempotency_key_in_use"
    await asyncio.sleep(0.6)
    assert sandbox_api.movements(payment=intent.id)[0]["kind"] == "authorization"
    replay = await sandbox_api.stripe.v1.payment_intents.confirm_async(
        intent.id, confirm, options=key
    )
    assert replay.status == "requires_capture"
    assert len(sandbox_api.movements(payment=intent.id)) == 1


def test_razorpay_faults(sandbox_api: Sandbox) -> None:
    client = sandbox_api.razorpay
    order_params = {"amount": 5000, "currency": "INR", "receipt": "rcpt-faults", **MANUAL_CAPTURE}
    _fault(sandbox_api, gateway="razorpay", operation="orders.create", kind="error_500")
    with pytest.raises(razorpay.errors.ServerError):
        client.order.create(order_params)
    assert client.order.all({"receipt": "rcpt-faults"})["count"] == 0

    _fault(sandbox_api, gateway="razorpay", operation="orders.create", kind="applied_but_lost")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        client.order.create(order_params)
    found = client.order.all({"receipt": "rcpt-faults"})
    assert found["count"] == 1, "the lost create happened; the receipt finds it"

    order_id = found["items"][0]["id"]
    paid = sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order_id}/pay", json={"outcome": "success"}
    )
    payment_id = paid.json()["razorpay_payment_id"]
    _fault(
        sandbox_api,
        gateway="razorpay",
        operation="payments.capture",
        kind="timeout",
        delay_seconds=0.5,
    )
    with pytest.raises(requests.exceptions.Timeout):
        client.payment.capture(payment_id, 5000, {"currency": "INR"}, timeout=0.1)
    time.sleep(0.6)
    assert client.payment.fetch(payment_id)["status"] == "captured"

    _fault(sandbox_api, gateway="razorpay", operation="payments.refund", kind="applied_then_500")
    with pytest.raises(razorpay.errors.ServerError):
        client.payment.refund(
            payment_id, {"amount": 500}, headers={"X-Refund-Idempotency": "r-500-0001"}
        )
    made = client.payment.fetch_multiple_refund(payment_id)["items"]
    assert [r["amount"] for r in made] == [500], "applied all the same"
    again = client.payment.refund(
        payment_id, {"amount": 500}, headers={"X-Refund-Idempotency": "r-500-0001"}
    )
    assert again["id"] == made[0]["id"], "the key replays the refund it made"

    _fault(sandbox_api, gateway="razorpay", operation="payments.refund", kind="applied_but_lost")
    key = {"X-Refund-Idempotency": "refund-lost-0001"}
    with pytest.raises(requests.exceptions.JSONDecodeError):
        client.payment.refund(payment_id, {"amount": 1000}, headers=key)
    refund = client.payment.refund(payment_id, {"amount": 1000}, headers=key)
    assert client.payment.fetch_multiple_refund(payment_id)["items"][0] == refund
    kinds = [m["kind"] for m in sandbox_api.movements(gateway="razorpay", payment=payment_id)]
    assert kinds == ["authorization", "capture", "refund", "refund"]


def test_fault_controls(sandbox_api: Sandbox) -> None:
    bad = sandbox_api.http.post(
        "/sandbox/faults",
        json={"gateway": "stripe", "operation": "orders.create", "kind": "timeout"},
    )
    assert bad.status_code == 422
    _fault(sandbox_api, gateway="razorpay", operation="orders.fetch", kind="error_500", times=5)
    assert sandbox_api.http.delete("/sandbox/faults").status_code == 200
    order = sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR"})
    assert sandbox_api.razorpay.order.fetch(order["id"])["id"] == order["id"]


async def test_movements_filter(sandbox_api: Sandbox) -> None:
    intent = await _paid_intent(sandbox_api)
    order = sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR", **MANUAL_CAPTURE})
    sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order['id']}/pay", json={"outcome": "success"}
    )
    assert {m["gateway"] for m in sandbox_api.movements()} == {"stripe", "razorpay"}
    assert [m["kind"] for m in sandbox_api.movements(gateway="stripe")] == [
        "authorization",
        "capture",
    ]
    (authorization,) = sandbox_api.movements(gateway="razorpay", payment=order["id"])
    assert authorization["object_id"].startswith("pay_")
    assert authorization["order"] == order["id"] and authorization["currency"] == "INR"
    assert sandbox_api.movements(gateway="razorpay", payment=intent.id) == []


async def test_webhook_redelivery(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    sandbox_receiver.fail_next = 2
    order = sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR"})
    sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order['id']}/pay", json={"outcome": "failure"}
    )
    sandbox_receiver.wait_for("/razorpay", 1)
    attempts = [r for r in sandbox_receiver.requests if r.path == "/razorpay"]
    assert [r.status for r in attempts] == [500, 500, 200]
    assert len({r.headers["x-razorpay-event-id"] for r in attempts}) == 1
    assert len({r.body for r in attempts}) == 1
    deadline = time.monotonic() + 5
    while True:  # the receiver may have answered before the sandbox noted the answer
        deliveries = sandbox_api.http.get("/sandbox/webhooks/deliveries").json()
        if deliveries[-1]["status"] is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [(d["type"], d["attempt"], d["status"]) for d in deliveries] == [
        ("payment.failed", 1, 500),
        ("payment.failed", 2, 500),
        ("payment.failed", 3, 200),
    ]


async def test_webhook_gives_up_and_never_blocks(sandbox_factory: SandboxFactory) -> None:
    sandbox_api = sandbox_factory(
        stripe_webhook_url="http://127.0.0.1:1/unreachable", webhook_max_attempts=3
    )
    intent = await _paid_intent(sandbox_api)
    assert intent.status == "succeeded"
    deadline = time.monotonic() + 5
    while True:  # an attempt is listed when it starts and gets its error when it fails
        deliveries = sandbox_api.http.get("/sandbox/webhooks/deliveries").json()
        if len(deliveries) == 6 and all(d["error"] for d in deliveries):
            break
        assert time.monotonic() < deadline, deliveries
        await asyncio.sleep(0.05)
    assert {d["attempt"] for d in deliveries} == {1, 2, 3}
    assert all(d["status"] is None and d["error"] for d in deliveries)


async def test_state_survives_restart(sandbox_factory: SandboxFactory) -> None:
    first = sandbox_factory()
    intent = await first.stripe.v1.payment_intents.create_async(
        {"amount": 900, "currency": "usd", "capture_method": "manual"},
        options={"idempotency_key": "persist-1"},
    )
    await first.stripe.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}
    )
    order = first.razorpay.order.create({"amount": 100, "currency": "INR", "receipt": "kept"})
    first.stop()
    assert first.config.state_file is not None
    assert json.loads(first.config.state_file.read_text())["movements"]

    second = sandbox_factory()
    kept = await second.stripe.v1.payment_intents.retrieve_async(intent.id)
    assert kept.status == "requires_capture"
    again = await second.stripe.v1.payment_intents.create_async(
        {"amount": 900, "currency": "usd", "capture_method": "manual"},
        options={"idempotency_key": "persist-1"},
    )
    assert again.id == intent.id
    assert second.razorpay.order.all({"receipt": "kept"})["items"][0]["id"] == order["id"]
    assert [m["kind"] for m in second.movements()] == ["authorization"]
    captured = await second.stripe.v1.payment_intents.capture_async(intent.id)
    assert captured.status == "succeeded"


async def test_checkout_pages_and_health(sandbox_api: Sandbox) -> None:
    assert sandbox_api.http.get("/health").json() == {"status": "ok"}
    intent = await sandbox_api.stripe.v1.payment_intents.create_async(
        {"amount": 1234, "currency": "usd"}
    )
    page = sandbox_api.http.get(f"/checkout/stripe/{intent.id}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Pay (insufficient funds)" in page.text and str(intent.client_secret) in page.text
    assert "<script src" not in page.text and "<link" not in page.text
    order = sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR"})
    page = sandbox_api.http.get(f"/checkout/razorpay/{order['id']}")
    assert "Pay (decline)" in page.text and "razorpay_signature" in page.text
    assert sandbox_api.http.get("/checkout/razorpay/order_missing").status_code == 404


async def test_refund_mode_switches_at_run_time(sandbox_api: Sandbox) -> None:
    assert sandbox_api.http.get("/sandbox/refunds/mode").json() == {"mode": "instant"}
    switched = sandbox_api.http.post("/sandbox/refunds/mode", json={"mode": "pending"})
    assert switched.json() == {"mode": "pending"}
    intent = await _paid_intent(sandbox_api)
    refund = await sandbox_api.stripe.v1.refunds.create_async({"payment_intent": intent.id})
    assert refund.status == "pending"
    assert sandbox_api.http.post("/sandbox/refunds/mode", json={"mode": "later"}).status_code == 422


async def test_an_outage_fails_every_call_until_the_gateway_is_back_and_razorpay_announces_it(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    sandbox_api.http.post("/sandbox/outages", json={"gateway": "razorpay"}).raise_for_status()
    sandbox_api.http.post(
        "/sandbox/outages", json={"gateway": "stripe", "announce": True}
    ).raise_for_status()
    with pytest.raises(razorpay.errors.ServerError):
        sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR"})
    with pytest.raises(razorpay.errors.ServerError):
        sandbox_api.razorpay.order.all({"receipt": "r1"})
    with pytest.raises(stripe.APIError):
        await _paid_intent(sandbox_api)
    sandbox_api.http.delete("/sandbox/outages/razorpay").raise_for_status()
    sandbox_api.http.delete("/sandbox/outages/stripe").raise_for_status()
    assert sandbox_api.razorpay.order.create({"amount": 100, "currency": "INR"})["id"]
    assert (await _paid_intent(sandbox_api)).status == "succeeded"

    def downtimes() -> list[dict[str, Any]]:
        bodies = [json.loads(r.body) for r in sandbox_receiver.of("/razorpay")]
        return [b for b in bodies if b["event"].startswith("payment.downtime.")]

    for _ in range(100):
        if len(downtimes()) >= 2:
            break
        await asyncio.sleep(0.05)
    started, resolved = downtimes()[-2:]
    assert (started["event"], resolved["event"]) == (
        "payment.downtime.started", "payment.downtime.resolved"
    )  # fmt: skip
    entity = resolved["payload"]["payment.downtime"]["entity"]
    assert (entity["method"], entity["status"], entity["severity"]) == ("card", "resolved", "high")
    assert entity["id"] == started["payload"]["payment.downtime"]["entity"]["id"]
    assert not [
        r for r in sandbox_receiver.requests if r.path == "/stripe" and b"downtime" in r.body
    ]
