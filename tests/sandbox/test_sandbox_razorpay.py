"""The Razorpay emulator, driven through the official ``razorpay`` SDK."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import razorpay
from razorpay.errors import BadRequestError

from tests.sandbox.conftest import MANUAL_CAPTURE

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver, Sandbox, SandboxFactory


def _order(sandbox_api: Sandbox, receipt: str = "rcpt-1", amount: int = 5000) -> dict[str, Any]:
    order: dict[str, Any] = sandbox_api.razorpay.order.create(
        {
            "amount": amount,
            "currency": "INR",
            "receipt": receipt,
            "notes": {"order_id": "o-1"},
            **MANUAL_CAPTURE,
        }
    )
    return order


def _pay(sandbox_api: Sandbox, order_id: str, outcome: str = "success") -> Any:
    return sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order_id}/pay", json={"outcome": outcome, "method": "card"}
    )


def _captured_payment(sandbox_api: Sandbox, amount: int = 5000) -> dict[str, Any]:
    order = _order(sandbox_api, amount=amount)
    payment_id = _pay(sandbox_api, order["id"]).json()["razorpay_payment_id"]
    payment: dict[str, Any] = sandbox_api.razorpay.payment.capture(
        payment_id, amount, {"currency": "INR"}
    )
    return payment


def _events(sandbox_api: Sandbox, receiver: Receiver, count: int) -> list[dict[str, Any]]:
    received = receiver.wait_for("/razorpay", count)
    for r in received:
        sandbox_api.razorpay.utility.verify_webhook_signature(
            r.body.decode(),
            r.headers["x-razorpay-signature"],
            sandbox_api.config.razorpay_webhook_secret,
        )
    assert len({r.headers["x-razorpay-event-id"] for r in received}) == len(received)
    return [json.loads(r.body) for r in received]


def test_order_pay_capture_flow(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    order = _order(sandbox_api)
    assert order["id"].startswith("order_") and len(order["id"]) == len("order_") + 14
    assert (order["status"], order["amount_due"], order["currency"]) == ("created", 5000, "INR")
    _order(sandbox_api, receipt="rcpt-other")
    found = sandbox_api.razorpay.order.all({"receipt": "rcpt-1"})
    assert (found["entity"], found["count"], found["items"][0]["id"]) == (
        "collection",
        1,
        order["id"],
    )

    checkout = _pay(sandbox_api, order["id"]).json()
    assert sandbox_api.razorpay.utility.verify_payment_signature(checkout)
    payment_id = checkout["razorpay_payment_id"]
    payment = sandbox_api.razorpay.payment.fetch(payment_id)
    assert (payment["status"], payment["captured"], payment["order_id"]) == (
        "authorized",
        False,
        order["id"],
    )
    assert payment["notes"] == {"order_id": "o-1"} and payment["error_code"] is None
    assert sandbox_api.razorpay.order.fetch(order["id"])["status"] == "attempted"

    with pytest.raises(BadRequestError, match="Capture amount must be equal"):
        sandbox_api.razorpay.payment.capture(payment_id, 4000, {"currency": "INR"})
    payment = sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})
    assert (payment["status"], payment["captured"]) == ("captured", True)
    with pytest.raises(BadRequestError, match="already been captured"):
        sandbox_api.razorpay.payment.capture(payment_id, 5000, {"currency": "INR"})

    order = sandbox_api.razorpay.order.fetch(order["id"])
    assert (order["status"], order["amount_paid"], order["amount_due"], order["attempts"]) == (
        "paid",
        5000,
        0,
        1,
    )
    assert [p["id"] for p in sandbox_api.razorpay.order.payments(order["id"])["items"]] == [
        payment_id
    ]
    assert [(m["kind"], m["payment"]) for m in sandbox_api.movements(payment=order["id"])] == [
        ("authorization", payment_id),
        ("capture", payment_id),
    ]

    events = _events(sandbox_api, sandbox_receiver, 3)
    assert [e["event"] for e in events] == ["payment.authorized", "payment.captured", "order.paid"]
    assert events[2]["contains"] == ["payment", "order"]
    assert events[2]["payload"]["order"]["entity"]["status"] == "paid"
    assert events[1]["payload"]["payment"]["entity"]["status"] == "captured"


def test_failed_payment_then_retry(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    order = _order(sandbox_api)
    failed = _pay(sandbox_api, order["id"], "failure")
    assert failed.status_code == 402
    failed_id = failed.json()["error"]["metadata"]["payment_id"]
    payment = sandbox_api.razorpay.payment.fetch(failed_id)
    assert (payment["status"], payment["error_code"], payment["error_reason"]) == (
        "failed",
        "BAD_REQUEST_ERROR",
        "payment_failed",
    )
    with pytest.raises(BadRequestError):
        sandbox_api.razorpay.payment.capture(failed_id, 5000, {"currency": "INR"})

    paid = _pay(sandbox_api, order["id"]).json()["razorpay_payment_id"]
    assert sandbox_api.razorpay.order.fetch(order["id"])["attempts"] == 2
    assert len(sandbox_api.razorpay.order.payments(order["id"])["items"]) == 2
    assert [m["payment"] for m in sandbox_api.movements(payment=order["id"])] == [paid]
    events = _events(sandbox_api, sandbox_receiver, 2)
    assert [e["event"] for e in events] == ["payment.failed", "payment.authorized"]


def test_refund_rules_and_idempotency(sandbox_api: Sandbox, sandbox_receiver: Receiver) -> None:
    order = _order(sandbox_api)
    authorized = _pay(sandbox_api, order["id"]).json()["razorpay_payment_id"]
    with pytest.raises(BadRequestError, match="captured"):
        sandbox_api.razorpay.payment.refund(authorized, {"amount": 100})

    payment = _captured_payment(sandbox_api)
    key = {"X-Refund-Idempotency": "refund-key-0001"}
    refund = sandbox_api.razorpay.payment.refund(
        payment["id"], {"amount": 1000, "notes": {"why": "damaged"}}, headers=key
    )
    assert refund["id"].startswith("rfnd_")
    assert (refund["status"], refund["amount"], refund["payment_id"]) == (
        "processed",
        1000,
        payment["id"],
    )
    again = sandbox_api.razorpay.payment.refund(
        payment["id"], {"amount": 1000, "notes": {"why": "damaged"}}, headers=key
    )
    assert again["id"] == refund["id"]
    other_body = sandbox_api.http.post(
        f"/razorpay/v1/payments/{payment['id']}/refund",
        json={"amount": 1500},
        headers={"X-Refund-Idempotency": "refund-key-0001"},
        auth=(sandbox_api.config.razorpay_key_id, sandbox_api.config.razorpay_key_secret),
    )
    assert other_body.status_code == 400
    assert other_body.json()["error"]["description"].startswith("Different request")
    assert len(sandbox_api.movements(payment=payment["id"])) == 3

    with pytest.raises(BadRequestError, match="greater than amount captured"):
        sandbox_api.razorpay.payment.refund(payment["id"], {"amount": 4001})
    rest = sandbox_api.razorpay.payment.refund(payment["id"], {"speed": "optimum"})
    assert (rest["amount"], rest["speed_processed"]) == (4000, "instant")
    with pytest.raises(BadRequestError, match="fully refunded already"):
        sandbox_api.razorpay.payment.refund(payment["id"], {})

    payment = sandbox_api.razorpay.payment.fetch(payment["id"])
    assert (payment["status"], payment["amount_refunded"], payment["refund_status"]) == (
        "refunded",
        5000,
        "full",
    )
    assert sandbox_api.razorpay.refund.fetch(refund["id"])["notes"] == {"why": "damaged"}
    listed = sandbox_api.razorpay.payment.fetch_multiple_refund(payment["id"])
    assert [r["id"] for r in listed["items"]] == [rest["id"], refund["id"]]

    refund_events = [
        e for e in _events(sandbox_api, sandbox_receiver, 8) if "refund" in e["contains"]
    ]
    assert [e["event"] for e in refund_events] == [
        "refund.created",
        "refund.processed",
        "refund.created",
        "refund.processed",
    ]
    assert refund_events[0]["contains"] == ["refund", "payment"]
    assert refund_events[0]["payload"]["payment"]["entity"]["refund_status"] == "partial"


def test_pending_refunds_settle(
    sandbox_factory: SandboxFactory, sandbox_receiver: Receiver
) -> None:
    sandbox_api = sandbox_factory(refund_mode="pending")
    payment = _captured_payment(sandbox_api)
    first = sandbox_api.razorpay.payment.refund(payment["id"], {"amount": 2000})
    assert (first["status"], first["speed_processed"]) == ("pending", None)
    assert [m["kind"] for m in sandbox_api.movements(payment=payment["id"])] == [
        "authorization",
        "capture",
    ]
    sandbox_api.http.post(f"/sandbox/refunds/{first['id']}/settle", json={"outcome": "succeeded"})
    assert sandbox_api.razorpay.refund.fetch(first["id"])["status"] == "processed"
    assert sandbox_api.movements(payment=payment["id"])[-1]["object_id"] == first["id"]

    second = sandbox_api.razorpay.payment.refund(payment["id"], {})
    assert sandbox_api.razorpay.payment.fetch(payment["id"])["status"] == "refunded"
    sandbox_api.http.post(f"/sandbox/refunds/{second['id']}/settle", json={"outcome": "failed"})
    assert sandbox_api.razorpay.refund.fetch(second["id"])["status"] == "failed"
    payment = sandbox_api.razorpay.payment.fetch(payment["id"])
    assert (payment["status"], payment["amount_refunded"], payment["refund_status"]) == (
        "captured",
        2000,
        "partial",
    )
    events = _events(sandbox_api, sandbox_receiver, 7)
    assert [e["event"] for e in events[3:]] == [
        "refund.created",
        "refund.processed",
        "refund.created",
        "refund.failed",
    ]


def test_auth_and_unknown_ids(sandbox_api: Sandbox) -> None:
    wrong = razorpay.Client(
        auth=("rzp_test_sandbox", "nope"), base_url=f"{sandbox_api.url}/razorpay"
    )
    with pytest.raises(BadRequestError, match="Authentication failed"):
        wrong.order.create({"amount": 5000, "currency": "INR"})
    for fetch in (sandbox_api.razorpay.order.fetch, sandbox_api.razorpay.payment.fetch):
        with pytest.raises(BadRequestError, match="The id provided does not exist"):
            fetch("pay_DoesNotExist00")
    with pytest.raises(BadRequestError, match="minimum amount"):
        sandbox_api.razorpay.order.create({"amount": 50, "currency": "INR"})
