"""Money stays right when the gateways behave as the real ones do, end to end over HTTP: a payment
Razorpay captures after its checkout ended is given back (by its webhook, or by the reconciler when
the webhook is lost), an order whose checkout ended without money is paid again, and an outage
creating the payment is a 503 the client retries, not a failed order."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from tests.e2e.conftest import (
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    new_key,
    pay,
    wait_for_status,
)


async def direct_settlement(sandbox: httpx.AsyncClient) -> None:
    """A Razorpay account whose payments are captured whatever the order asks."""
    answer = await sandbox.post("/sandbox/razorpay/account", json={"direct_settlement": True})
    assert answer.status_code == 200, answer.text


async def canceled_razorpay_checkout(api: httpx.AsyncClient) -> dict[str, Any]:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    canceled = await api.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel", json={})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    return checkout


async def ledger_status(db: asyncpg.Connection, payment_id: str, within: float = 30) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status: str = await db.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment_id
        )
        if status == "refunded" or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.2)


async def test_money_razorpay_captures_after_the_checkout_ended_is_given_back(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await direct_settlement(sandbox)
    checkout = await canceled_razorpay_checkout(api)
    await pay(sandbox, checkout)  # the customer's page was still open: Razorpay captures

    assert await ledger_status(db, checkout["checkout_id"]) == "refunded"
    order = checkout["gateway_payment_id"]
    assert await movements(sandbox, order) == ["authorization", "capture", "refund"]
    view = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
    assert view["amount_captured"] == view["amount_refunded"] == checkout["amount"]
    balance = await db.fetch(
        "SELECT account, sum(amount) AS total FROM ledger_entries WHERE payment_id = $1"
        " GROUP BY account ORDER BY account",
        checkout["checkout_id"],
    )
    assert {r["account"]: r["total"] for r in balance} == {
        "gateway:razorpay": 0, "merchant:refunds": 2_500, "merchant:sales": -2_500,
    }  # fmt: skip


async def test_a_late_payment_whose_webhooks_were_lost_is_given_back_by_the_reconciler(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await direct_settlement(sandbox)
    checkout = await canceled_razorpay_checkout(api)
    await sandbox.post("/sandbox/webhooks/hold")
    await pay(sandbox, checkout)
    await sandbox.post("/sandbox/webhooks/release", json={"drop": True})  # never delivered

    reconciled = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")
    assert reconciled.status_code == 200, reconciled.text
    assert reconciled.json()["findings"] == {checkout["checkout_id"]: "given_back"}
    assert await ledger_status(db, checkout["checkout_id"]) == "refunded"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == [
        "authorization", "capture", "refund",
    ]  # fmt: skip


async def test_an_order_whose_checkout_ended_without_money_is_paid_again(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    body = checkout_body("stripe")
    first = await create_checkout(api, body)
    canceled = await api.post(f"/v1/checkouts/{first['checkout_id']}/cancel", json={})
    assert canceled.json()["status"] == "canceled"

    again = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert again.status_code == 201, again.text
    second = again.json()
    assert second["checkout_id"] != first["checkout_id"] and second["attempt"] == 2
    await pay(sandbox, second)
    captured = await wait_for_status(api, second["checkout_id"], TERMINAL)
    assert captured["status"] == "captured"

    third = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert third.status_code == 200  # the order is paid: its checkout, never a second charge
    assert third.json()["checkout_id"] == second["checkout_id"]


async def test_an_outage_creating_the_payment_answers_503_and_the_checkout_waits(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    fault = {"gateway": "razorpay", "operation": "orders.create", "kind": "error_500", "times": 3}
    assert (await sandbox.post("/sandbox/faults", json=fault)).status_code in (200, 201)
    body, key = checkout_body("razorpay"), new_key()

    first = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 503, first.text
    problem = first.json()
    assert problem["code"] == "gateway_unavailable" and first.headers["Retry-After"]
    checkout_id = problem["checkout_id"]
    view = (await api.get(f"/v1/checkouts/{checkout_id}")).json()
    assert view["status"] == "created" and view["history"][-1]["step"] == "gateway_unavailable"
