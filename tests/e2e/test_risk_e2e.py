"""Risk screening end to end: velocity under a concurrent burst, a blocked checkout that never
reaches the gateway, and a checkout held for review that an operator approves over the API."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx

from api.auth import Role
from tests.e2e.conftest import (
    TERMINAL,
    bearer,
    checkout_body,
    create_checkout,
    new_key,
    pay,
    wait_for_status,
)

LIMIT = 5
BURST = 12


async def stripe_movements(sandbox: httpx.AsyncClient) -> list[Any]:
    response = await sandbox.get("/sandbox/movements", params={"gateway": "stripe"})
    assert response.status_code == 200, response.text
    moves: list[Any] = response.json()
    return moves


async def test_a_burst_from_one_customer_stops_exactly_at_the_velocity_limit_without_gateway_calls(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    customer = f"c_burst_{uuid.uuid4().hex[:8]}"
    before = await stripe_movements(sandbox)
    await db.execute(
        "UPDATE risk_rules SET enabled = true, params = $1::jsonb WHERE rule = 'velocity_customer'",
        json.dumps({"limit": LIMIT, "window_seconds": 600}),
    )
    try:
        answers = await asyncio.gather(
            *(
                api.post(
                    "/v1/checkouts",
                    json=checkout_body("stripe", customer_id=customer),
                    headers={"Idempotency-Key": new_key()},
                )
                for _ in range(BURST)
            )
        )
    finally:
        await db.execute("UPDATE risk_rules SET enabled = false WHERE rule = 'velocity_customer'")

    created = [a.json() for a in answers if a.status_code == 201]
    blocked = [a for a in answers if a.status_code == 422]
    assert (len(created), len(blocked)) == (LIMIT, BURST - LIMIT), [a.text for a in answers]
    for answer in blocked:
        problem = answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert (problem["code"], problem["reason"]) == ("risk_blocked", "too_many_attempts")
    # the blocked ones never reached the gateway: no gateway payment, no movement
    rows = await db.fetch(
        "SELECT status, gateway_payment_id FROM payments WHERE customer_id = $1", customer
    )
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == BURST - LIMIT
    assert all(r["gateway_payment_id"] is None for r in failed)
    assert await stripe_movements(sandbox) == before
    decisions = await db.fetch(
        "SELECT decision, count(*) AS n FROM risk_assessments WHERE customer_id = $1"
        " GROUP BY decision ORDER BY decision",
        customer,
    )
    assert [(r["decision"], r["n"]) for r in decisions] == [
        ("allow", LIMIT),
        ("block", BURST - LIMIT),
    ]
    for checkout in created:
        cancel = await api.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel")
        assert cancel.status_code == 200, cancel.text


async def test_a_checkout_held_for_review_is_approved_by_an_operator_and_captured(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    customer = f"c_new_{uuid.uuid4().hex[:8]}"
    # a first purchase over the default first-purchase threshold (2,000.00 USD)
    body = checkout_body("stripe", customer_id=customer, amount=300_000, client_ip="203.0.113.7")
    held = await create_checkout(api, body)
    assert held["status"] == "needs_review" and held["gateway_payment_id"] is None
    assert held["review_deadline"] is not None
    checkout_id = held["checkout_id"]

    operator = bearer(Role.OPERATOR, subject="ops-anna")
    queue = await api.get("/v1/reviews", params={"customer_id": customer}, headers=operator)
    assert queue.status_code == 200, queue.text
    (item,) = queue.json()["reviews"]
    assert (item["checkout_id"], item["status"]) == (checkout_id, "pending")
    assert [h["rule"] for h in item["hits"]] == ["first_purchase"]

    as_merchant = await api.post(
        f"/v1/checkouts/{checkout_id}/review", json={"decision": "approve"},
        headers=bearer(Role.MERCHANT),
    )  # fmt: skip
    assert as_merchant.status_code == 403
    invalid = await api.post(
        f"/v1/checkouts/{checkout_id}/review", json={"decision": "maybe"}, headers=operator
    )
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")

    approved = await api.post(
        f"/v1/checkouts/{checkout_id}/review",
        json={"decision": "approve", "note": "called the customer"},
        headers=operator,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "created"
    again = await api.post(
        f"/v1/checkouts/{checkout_id}/review", json={"decision": "reject"}, headers=operator
    )
    assert (again.status_code, again.json()["code"]) == (409, "no_review_pending")

    payable = await wait_for_status(api, checkout_id, {"created"})
    for _ in range(100):
        if payable["gateway_payment_id"] is not None:
            break
        await asyncio.sleep(0.1)
        payable = (await api.get(f"/v1/checkouts/{checkout_id}")).json()
    await pay(sandbox, payable)
    captured = await wait_for_status(api, checkout_id, TERMINAL)

    assert captured["status"] == "captured", captured["history"]
    steps = [h["step"] for h in captured["history"]]
    assert [s for s in steps if s != "checkout_created"][:3] == [
        "risk_review", "risk_approved", "gateway_payment_created",
    ], steps  # fmt: skip
    review = await db.fetchrow(
        "SELECT review_status, reviewer, review_note FROM risk_assessments"
        " WHERE checkout_id = $1 AND stage = 'create'",
        checkout_id,
    )
    assert review is not None
    assert tuple(review) == ("approved", "ops-anna", "called the customer")
    card = await db.fetchrow(
        "SELECT decision, card_fingerprint, card_country FROM risk_assessments"
        " WHERE checkout_id = $1 AND stage = 'authorization'",
        checkout_id,
    )
    assert card is not None and card["decision"] == "allow"
    assert card["card_fingerprint"] and card["card_country"] == "US"
