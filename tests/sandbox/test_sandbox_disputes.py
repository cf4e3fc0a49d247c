"""Disputes in the sandbox, through the official SDKs: opened on a captured payment, evidence,
acceptance, the issuer's decision, the webhooks both gateways send and the funds they move."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import stripe
from razorpay.errors import BadRequestError

from tests.sandbox.conftest import MANUAL_CAPTURE

if TYPE_CHECKING:
    from tests.sandbox.conftest import Receiver, Sandbox


def _open(sandbox_api: Sandbox, gateway: str, payment: str, **extra: Any) -> dict[str, Any]:
    response = sandbox_api.http.post(
        "/sandbox/disputes", json={"gateway": gateway, "payment": payment, **extra}
    )
    assert response.status_code == 200, response.text
    dispute: dict[str, Any] = response.json()
    return dispute


def _types(receiver: Receiver, path: str, count: int) -> list[str]:
    """The dispute webhooks received on `path`, once there are `count` of them."""
    deadline = time.monotonic() + 5
    while True:
        bodies = [json.loads(r.body) for r in receiver.of(path)]
        types = [b.get("type") or b["event"] for b in bodies]
        disputes = [t for t in types if "dispute" in t]
        if len(disputes) >= count or time.monotonic() > deadline:
            return disputes
        time.sleep(0.02)


async def _captured_intent(sandbox_api: Sandbox) -> stripe.PaymentIntent:
    body: Any = {
        "amount": 1000,
        "currency": "usd",
        "confirm": True,
        "payment_method": "pm_card_visa",
    }
    return await sandbox_api.stripe.v1.payment_intents.create_async(body)


async def test_stripe_dispute_withdraws_then_evidence_and_a_win_reinstate(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    intent = await _captured_intent(sandbox_api)
    opened = _open(sandbox_api, "stripe", intent.id, amount=600)
    dispute = await sandbox_api.stripe.v1.disputes.retrieve_async(opened["id"])
    assert (dispute.status, dispute.amount, dispute.payment_intent) == (
        "needs_response", 600, intent.id,
    )  # fmt: skip
    assert (dispute.evidence_details.due_by or 0) > 0
    assert [t.amount for t in dispute.balance_transactions] == [-600]

    draft = await sandbox_api.stripe.v1.disputes.update_async(
        dispute.id, {"evidence": {"product_description": "a scarf"}, "submit": False}
    )
    assert draft.status == "needs_response"
    submitted = await sandbox_api.stripe.v1.disputes.update_async(
        dispute.id, {"evidence": {"receipt": "file_1"}, "submit": True}
    )
    assert submitted.status == "under_review"
    assert submitted.evidence.product_description == "a scarf"
    with pytest.raises(stripe.InvalidRequestError):
        await sandbox_api.stripe.v1.disputes.update_async(dispute.id, {"submit": True})

    won = sandbox_api.http.post(f"/sandbox/disputes/{dispute.id}/resolve", json={"outcome": "won"})
    assert won.json()["status"] == "won"
    assert [m["kind"] for m in sandbox_api.movements(payment=intent.id)][-2:] == [
        "dispute_withdrawal", "dispute_reinstatement",
    ]  # fmt: skip
    assert _types(sandbox_receiver, "/stripe", 6) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated",
        "charge.dispute.updated", "charge.dispute.funds_reinstated", "charge.dispute.closed",
    ]  # fmt: skip


async def test_stripe_close_concedes(sandbox_api: Sandbox) -> None:
    intent = await _captured_intent(sandbox_api)
    opened = _open(sandbox_api, "stripe", intent.id)
    closed = await sandbox_api.stripe.v1.disputes.close_async(opened["id"])
    assert (closed.status, closed.amount) == ("lost", 1000)
    again = sandbox_api.http.post(
        f"/sandbox/disputes/{opened['id']}/resolve", json={"outcome": "won"}
    )
    assert again.status_code == 409


def _captured_razorpay(sandbox_api: Sandbox) -> dict[str, Any]:
    """A payment Razorpay captured by itself, as the account's default capture setting says."""
    order = sandbox_api.razorpay.order.create({"amount": 5000, "currency": "INR", "receipt": "r1"})
    paid = sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order['id']}/pay", json={"outcome": "success"}
    ).json()
    payment: dict[str, Any] = sandbox_api.razorpay.payment.fetch(paid["razorpay_payment_id"])
    assert payment["status"] == "captured"
    return payment


def test_razorpay_contest_needs_a_document_and_a_loss_deducts(
    sandbox_api: Sandbox, sandbox_receiver: Receiver
) -> None:
    payment = _captured_razorpay(sandbox_api)
    opened = _open(sandbox_api, "razorpay", payment["id"], respond_within_seconds=3600)
    dispute = sandbox_api.razorpay.dispute.fetch(opened["id"])
    assert (dispute["status"], dispute["phase"], dispute["amount_deducted"]) == (
        "open", "chargeback", 0,
    )  # fmt: skip
    with pytest.raises(BadRequestError):
        sandbox_api.razorpay.dispute.contest(dispute["id"], {"summary": "x", "action": "submit"})
    draft = sandbox_api.razorpay.dispute.contest(
        dispute["id"], {"shipping_proof": ["doc_1"], "action": "draft"}
    )
    assert draft["status"] == "open"
    submitted = sandbox_api.razorpay.dispute.contest(dispute["id"], {"action": "submit"})
    assert submitted["status"] == "under_review"
    lost = sandbox_api.http.post(
        f"/sandbox/disputes/{dispute['id']}/resolve", json={"outcome": "lost"}
    )
    assert (lost.json()["status"], lost.json()["amount_deducted"]) == ("lost", 5000)
    assert [m["kind"] for m in sandbox_api.movements(payment=payment["id"])][-1] == (
        "dispute_withdrawal"
    )
    assert _types(sandbox_receiver, "/razorpay", 3) == [
        "payment.dispute.created", "payment.dispute.under_review", "payment.dispute.lost",
    ]  # fmt: skip


def test_razorpay_accept_loses_the_dispute(sandbox_api: Sandbox) -> None:
    payment = _captured_razorpay(sandbox_api)
    opened = _open(sandbox_api, "razorpay", payment["id"])
    accepted = sandbox_api.razorpay.dispute.accept(opened["id"])
    assert (accepted["status"], accepted["amount_deducted"]) == ("lost", 5000)
    with pytest.raises(BadRequestError):
        sandbox_api.razorpay.dispute.accept(opened["id"])


def test_a_dispute_needs_a_captured_payment(sandbox_api: Sandbox) -> None:
    order = sandbox_api.razorpay.order.create(
        {"amount": 5000, "currency": "INR", "receipt": "r2", **MANUAL_CAPTURE}
    )
    paid = sandbox_api.http.post(
        f"/sandbox/razorpay/orders/{order['id']}/pay", json={"outcome": "success"}
    ).json()
    refused = sandbox_api.http.post(
        "/sandbox/disputes", json={"gateway": "razorpay", "payment": paid["razorpay_payment_id"]}
    )
    assert refused.status_code == 409
