"""Checkouts end to end: API → Temporal → worker → sandbox gateways → signed webhooks → API."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from devstack.stack import Stack
from tests.e2e.conftest import (
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    new_key,
    pay,
    wait_for_source,
    wait_for_status,
)


async def test_stripe_checkout_is_captured_once_after_the_customer_pays(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    assert checkout["status"] == "created"
    assert checkout["payment"]["stripe_client_secret"].startswith(checkout["gateway_payment_id"])
    assert checkout["payment"]["sandbox_checkout_url"].endswith(checkout["gateway_payment_id"])

    await pay(sandbox, checkout)
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert captured["status"] == "captured", captured["history"]
    assert captured["amount_captured"] == 2_500
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]
    balance = await db.fetch(
        "SELECT account, sum(amount) AS total FROM ledger_entries WHERE payment_id = $1"
        " GROUP BY account ORDER BY account",
        checkout["checkout_id"],
    )
    assert [(r["account"], r["total"]) for r in balance] == [
        ("gateway:stripe", 2_500),
        ("merchant:sales", -2_500),
    ]


async def test_razorpay_checkout_is_captured_after_a_verified_client_confirmation(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    assert checkout["payment"]["razorpay_order_id"] == checkout["gateway_payment_id"]
    assert checkout["payment"]["razorpay_key_id"].startswith("rzp_test_")

    proof = await pay(sandbox, checkout)
    confirm = await api.post(
        f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof
    )
    assert confirm.status_code == 202, confirm.text
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert captured["status"] == "captured", captured["history"]
    assert captured["gateway_charge_id"] == proof["razorpay_payment_id"]
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_razorpay_confirmation_with_a_bad_signature_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    forged = {
        "razorpay_order_id": checkout["gateway_payment_id"],
        "razorpay_payment_id": "pay_forged0000001",
        "razorpay_signature": "0" * 64,
    }
    response = await api.post(
        f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=forged
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_signature"
    after = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
    assert after["status"] == "created" and after["history"] == checkout["history"]


async def test_stripe_merchant_refusal_voids_the_authorization(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe", order_id="refuse-s-1"))
    await pay(sandbox, checkout)
    voided = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert voided["status"] == "voided"
    assert voided["last_error"] == "merchant refused: out of stock"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "void"]


async def test_razorpay_merchant_refusal_releases_without_capture(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay", order_id="refuse-r-1"))
    proof = await pay(sandbox, checkout)
    await api.post(f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof)
    voided = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert voided["status"] == "voided"
    # Razorpay cannot void: the authorization is refunded by Razorpay itself; we never capture.
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization"]


async def test_declined_card_is_recorded_and_a_second_card_pays(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay(sandbox, checkout, succeed=False)
    for _ in range(100):
        attempts = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()["attempts"]
        if attempts:
            break
        await asyncio.sleep(0.1)
    assert attempts[0]["outcome"] == "failed"
    await pay(sandbox, checkout)
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured"


async def test_cancel_before_payment_cancels_at_the_gateway_and_cancel_after_capture_is_refused(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    canceled = await api.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel", json={})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    intent = (
        await sandbox.get("/sandbox/movements", params={"payment": checkout["gateway_payment_id"]})
    ).json()
    assert intent == []

    paid = await create_checkout(api, checkout_body("stripe"))
    await pay(sandbox, paid)
    await wait_for_status(api, paid["checkout_id"], TERMINAL)
    refused = await api.post(f"/v1/checkouts/{paid['checkout_id']}/cancel", json={})
    assert refused.status_code == 409
    assert refused.json()["code"] in {"checkout_closed", "checkout_not_cancelable"}


async def test_same_key_same_body_gives_the_same_answer_and_other_body_is_refused(
    api: httpx.AsyncClient,
) -> None:
    body, key = checkout_body("stripe"), new_key()
    first = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})
    again = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})
    other = await api.post(
        "/v1/checkouts", json={**body, "amount": 9_999}, headers={"Idempotency-Key": key}
    )

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_second_checkout_for_an_order_returns_the_existing_one(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    body = checkout_body("stripe")
    first = await create_checkout(api, body)
    second = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    conflicting = await api.post(
        "/v1/checkouts", json={**body, "amount": 1}, headers={"Idempotency-Key": new_key()}
    )

    assert second.status_code == 200
    assert second.json()["checkout_id"] == first["checkout_id"]
    assert conflicting.status_code == 409
    assert conflicting.json()["checkout_id"] == first["checkout_id"]

    await pay(sandbox, first)
    await wait_for_status(api, first["checkout_id"], TERMINAL)
    await wait_for_source(api, first["checkout_id"], "ledger")  # the workflow has closed
    after_close = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert after_close.status_code == 200
    assert after_close.json()["checkout_id"] == first["checkout_id"]
    assert after_close.json()["source"] == "ledger"
    assert await movements(sandbox, first["gateway_payment_id"]) == ["authorization", "capture"]


async def test_bad_input_is_a_problem_document_and_writes_nothing(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bad_bodies = [
        checkout_body("stripe", amount=-5),
        checkout_body("stripe", amount=10.5),
        checkout_body("stripe", amount="100"),
        checkout_body("stripe", currency="XYZ"),
        checkout_body("razorpay", currency="KWD"),
        checkout_body("paypal"),
        checkout_body("stripe", order_id="../etc"),
        checkout_body("stripe", unexpected=True),
    ]
    before = await db.fetchval("SELECT count(*) FROM payments")
    for body in bad_bodies:
        response = await api.post(
            "/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()}
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_error"
    missing_key = await api.post("/v1/checkouts", json=checkout_body("stripe"))
    assert missing_key.status_code == 422
    unknown = await api.get("/v1/checkouts/pay_000000000000000000000000")
    assert unknown.status_code == 404
    assert await db.fetchval("SELECT count(*) FROM payments") == before


async def test_worker_killed_mid_checkout_still_captures_exactly_once(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    worker = stack.children["worker"]
    worker.kill()
    try:
        await pay(sandbox, checkout)  # the webhook's signal waits in Temporal for a worker
    finally:
        worker.start()
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)

    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_the_dev_stack_revives_a_crashed_worker_and_the_checkout_completes(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    crashed = stack.children["worker"].process
    assert crashed is not None
    crashed.kill()  # a crash, not a stop: the stack's own bookkeeping does not know of it
    crashed.wait()
    await pay(sandbox, checkout)

    assert await asyncio.to_thread(stack.revive_exited) == ["worker"]
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)
    assert captured["status"] == "captured"
    assert await asyncio.to_thread(stack.revive_exited) == []


async def test_capture_whose_answer_is_lost_is_retried_without_a_second_capture(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    for gateway, operation in (
        ("stripe", "payment_intents.capture"),
        ("razorpay", "payments.capture"),
    ):
        fault = {"gateway": gateway, "operation": operation, "kind": "applied_but_lost", "times": 1}
        assert (await sandbox.post("/sandbox/faults", json=fault)).status_code in (200, 201)
        checkout = await create_checkout(api, checkout_body(gateway))
        proof = await pay(sandbox, checkout)
        if gateway == "razorpay":
            await api.post(f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof)
        captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)

        assert captured["status"] == "captured", captured["history"]
        assert await movements(sandbox, checkout["gateway_payment_id"]) == [
            "authorization",
            "capture",
        ]
