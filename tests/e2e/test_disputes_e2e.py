"""Disputes end to end, for both gateways: a sandbox dispute on a captured payment → signed
webhooks → DisputeWorkflow → ledger; the operator's evidence or acceptance through the API; the
issuer's decision → the ledger's final balance."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import stripe

from settings import SANDBOX_STRIPE_WEBHOOK_SECRET
from tests.e2e.conftest import movements, new_key
from tests.e2e.test_refunds_e2e import balance, captured_checkout

EVIDENCE = {
    "product_description": "Blue scarf, size M, delivered on the 3rd",
    "receipt": ["file_receipt_1"],
    "shipping_documentation": ["doc_shipping_1"],
    "shipping_carrier": "DHL",
    "shipping_tracking_number": "1Z999AA10123456784",
}


async def open_dispute(sandbox: httpx.AsyncClient, gateway: str, payment: str) -> dict[str, Any]:
    response = await sandbox.post(
        "/sandbox/disputes", json={"gateway": gateway, "payment": payment, "reason": "fraudulent"}
    )
    assert response.status_code == 200, response.text
    dispute: dict[str, Any] = response.json()
    return dispute


async def wait_for_dispute(
    api: httpx.AsyncClient, payment_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    for _ in range(150):
        response = await api.get("/v1/disputes", params={"payment_id": payment_id})
        assert response.status_code == 200, response.text
        found = response.json()["items"]
        if found and until(found[0]):
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"dispute not as expected: {found}")


async def test_stripe_dispute_with_evidence_is_won_and_the_funds_come_back(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, "stripe")
    payment_id, intent = checkout["checkout_id"], checkout["gateway_payment_id"]
    at_gateway = await open_dispute(sandbox, "stripe", intent)

    opened = await wait_for_dispute(api, payment_id, lambda d: d["amount_withdrawn"] == 2_500)
    assert (opened["gateway_dispute_id"], opened["status"]) == (at_gateway["id"], "open")
    assert opened["payment_status"] == "disputed" and opened["due_by"] is not None
    assert await balance(db, payment_id) == {"gateway:stripe": 0, "merchant:sales": -2_500,
                                             "merchant:disputes": 2_500}  # fmt: skip

    key = new_key()
    submitted = await api.post(
        f"/v1/disputes/{opened['dispute_id']}/evidence",
        json={**EVIDENCE, "submit": True},
        headers={"Idempotency-Key": key},
    )
    assert submitted.status_code == 200, submitted.text
    assert (submitted.json()["status"], submitted.json()["submitted"]) == ("challenged", True)
    replay = await api.post(
        f"/v1/disputes/{opened['dispute_id']}/evidence",
        json={**EVIDENCE, "submit": True},
        headers={"Idempotency-Key": key},
    )
    assert replay.json() == submitted.json()
    again = await api.post(
        f"/v1/disputes/{opened['dispute_id']}/evidence",
        json={**EVIDENCE, "submit": True},
        headers={"Idempotency-Key": new_key()},
    )
    assert (again.status_code, again.json()["code"]) == (409, "evidence_already_submitted")

    resolved = await sandbox.post(
        f"/sandbox/disputes/{at_gateway['id']}/resolve", json={"outcome": "won"}
    )
    assert resolved.status_code == 200, resolved.text
    won = await wait_for_dispute(api, payment_id, lambda d: d["status"] == "won")

    assert won["amount_withdrawn"] == 0 and won["payment_status"] == "captured"
    assert won["evidence"]["shipping_carrier"] == "DHL"
    assert await balance(db, payment_id) == {"gateway:stripe": 2_500, "merchant:sales": -2_500,
                                             "merchant:disputes": 0}  # fmt: skip
    assert await movements(sandbox, intent) == [
        "authorization", "capture", "dispute_withdrawal", "dispute_reinstatement",
    ]  # fmt: skip
    steps = [s["step"] for s in won["timeline"]]
    assert steps[0] == "dispute_opened" and "evidence_submitted" in steps


async def test_razorpay_dispute_accepted_is_lost_and_the_deduction_stays(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, "razorpay")
    payment_id = checkout["checkout_id"]
    razorpay_payment = await db.fetchval(
        "SELECT gateway_charge_id FROM payments WHERE payment_id = $1", payment_id
    )
    at_gateway = await open_dispute(sandbox, "razorpay", razorpay_payment)
    opened = await wait_for_dispute(api, payment_id, lambda d: d["payment_status"] == "disputed")
    assert (opened["status"], opened["stage"], opened["amount_withdrawn"]) == (
        "open", "chargeback", 0,
    )  # fmt: skip

    incomplete = await api.post(
        f"/v1/disputes/{opened['dispute_id']}/evidence",
        json={"uncategorized_text": "delivered", "submit": True},
        headers={"Idempotency-Key": new_key()},
    )
    assert (incomplete.status_code, incomplete.json()["code"]) == (409, "evidence_incomplete")
    accepted = await api.post(
        f"/v1/disputes/{opened['dispute_id']}/accept",
        json={"note": "the customer never received it"},
        headers={"Idempotency-Key": new_key()},
    )
    assert accepted.status_code == 200, accepted.text
    lost = await wait_for_dispute(api, payment_id, lambda d: d["status"] == "lost")

    assert lost["payment_status"] == "dispute_lost" and lost["amount_withdrawn"] == 2_500
    assert await balance(db, payment_id) == {"gateway:razorpay": 0, "merchant:sales": -2_500,
                                             "merchant:disputes": 2_500}  # fmt: skip
    kinds = await movements(sandbox, razorpay_payment)
    assert kinds.count("dispute_withdrawal") == 1
    late = await sandbox.post(
        f"/sandbox/disputes/{at_gateway['id']}/resolve", json={"outcome": "won"}
    )
    assert late.status_code == 409  # the gateway's decision is final too


async def test_evidence_for_an_unknown_dispute_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/disputes/dsp_000000000000000000000000/accept",
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code == 404


async def test_an_event_for_a_dispute_stripe_does_not_know_is_flagged_for_an_operator(
    api: httpx.AsyncClient,
) -> None:
    """A correctly signed event whose dispute the gateway has never heard of: the workflow asks,
    records nothing, and leaves a `dispute` flag beside the reconciler's."""
    gateway_dispute_id = f"dp_{uuid.uuid4().hex[:24]}"
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": "charge.dispute.created",
            "created": int(time.time()),
            "data": {"object": {"id": gateway_dispute_id, "object": "dispute"}},
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(
        body, SANDBOX_STRIPE_WEBHOOK_SECRET, int(time.time())
    )
    delivered = await api.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    assert delivered.status_code == 200, delivered.text

    for _ in range(150):
        runs = await api.get("/v1/reconciliation/runs")
        assert runs.status_code == 200, runs.text
        flags = [f for f in runs.json()["open_flags"] if gateway_dispute_id in f["detail"]]
        if flags:
            break
        await asyncio.sleep(0.2)
    assert [(f["object_kind"], f["payment_id"], f["gateway_status"]) for f in flags] == [
        ("dispute", None, "invalid_request:resource_missing")
    ]
    listed = await api.get("/v1/disputes", params={"status": "open"})
    assert gateway_dispute_id not in listed.text
