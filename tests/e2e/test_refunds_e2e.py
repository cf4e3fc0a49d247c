"""Refunds end to end, for both gateways: API → RefundWorkflow → ledger reservation → sandbox
gateway → webhooks or polls → ledger settlement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from settings import SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET, SANDBOX_STRIPE_KEY
from tests.e2e.conftest import (
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    new_key,
    pay,
    wait_for_status,
)

FINAL = {"succeeded", "failed", "canceled"}
GATEWAYS = pytest.mark.parametrize("gateway", ["stripe", "razorpay"])


async def captured_checkout(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, gateway: str
) -> dict[str, Any]:
    checkout = await create_checkout(api, checkout_body(gateway))
    proof = await pay(sandbox, checkout)
    if gateway == "razorpay":
        confirm = await api.post(
            f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof
        )
        assert confirm.status_code == 202, confirm.text
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured", captured["history"]
    return captured


async def ask_refund(
    api: httpx.AsyncClient, payment_id: str, key: str | None = None, **body: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"reason": "requested_by_customer", **body},
        headers={"Idempotency-Key": key or new_key()},
    )


async def wait_for_refund(
    api: httpx.AsyncClient,
    refund_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda r: r["status"] in FINAL,
) -> dict[str, Any]:
    for _ in range(150):
        response = await api.get(f"/v1/refunds/{refund_id}")
        assert response.status_code == 200, response.text
        refund: dict[str, Any] = response.json()
        if until(refund):
            return refund
        await asyncio.sleep(0.2)
    raise AssertionError(f"refund stuck in {refund['status']}: {refund['timeline']}")


def at_the_gateway(refund: dict[str, Any]) -> bool:
    return refund["gateway_refund_id"] is not None


async def balance(db: asyncpg.Connection, payment_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT account, sum(amount) AS total FROM ledger_entries WHERE payment_id = $1"
        " GROUP BY account",
        payment_id,
    )
    return {r["account"]: r["total"] for r in rows}


@pytest.fixture
async def pending_refunds(sandbox: httpx.AsyncClient) -> AsyncIterator[None]:
    """The sandbox leaves new refunds pending until /sandbox/refunds/{id}/settle."""
    assert (await sandbox.post("/sandbox/refunds/mode", json={"mode": "pending"})).is_success
    try:
        yield
    finally:
        await sandbox.post("/sandbox/refunds/mode", json={"mode": "instant"})


@GATEWAYS
async def test_partial_partial_and_remaining_refunds_refund_the_payment_once_each(
    gateway: str, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, gateway)
    payment_id = checkout["checkout_id"]

    key = new_key()
    first = await ask_refund(api, payment_id, key, amount=1_000, note="wrong size")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending" and first.json()["amount"] == 1_000
    again = await ask_refund(api, payment_id, key, amount=1_000, note="wrong size")
    assert (again.status_code, again.json()) == (202, first.json())
    other_body = await ask_refund(api, payment_id, key, amount=999)
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_key_reused"
    settled = await wait_for_refund(api, first.json()["refund_id"])
    assert settled["status"] == "succeeded", settled["timeline"]
    assert settled["payment_status"] == "partially_refunded"
    assert settled["gateway_refund_id"]

    second = await ask_refund(api, payment_id, amount=500, reason="duplicate")
    assert second.status_code == 202, second.text
    assert (await wait_for_refund(api, second.json()["refund_id"]))["status"] == "succeeded"
    rest = await ask_refund(api, payment_id)  # no amount: all that is left
    assert rest.status_code == 202, rest.text
    assert rest.json()["amount"] == 1_000
    last = await wait_for_refund(api, rest.json()["refund_id"])
    assert last["status"] == "succeeded" and last["payment_status"] == "refunded"

    listed = (await api.get(f"/v1/payments/{payment_id}/refunds")).json()
    assert [(r["amount"], r["status"], r["mode"]) for r in listed] == [
        (1_000, "succeeded", "own"),
        (500, "succeeded", "own"),
        (1_000, "succeeded", "own"),
    ]
    assert listed[0]["timeline"][0]["step"] == "refund_reserved"
    kinds = await movements(sandbox, checkout["gateway_payment_id"])
    assert kinds == ["authorization", "capture", "refund", "refund", "refund"]
    assert await balance(db, payment_id) == {
        f"gateway:{gateway}": 0, "merchant:sales": -2_500, "merchant:refunds": 2_500,
    }  # fmt: skip
    payment = await db.fetchrow(
        "SELECT status, amount_refunded, amount_refund_pending FROM payments WHERE payment_id = $1",
        payment_id,
    )
    assert dict(payment) == {
        "status": "refunded", "amount_refunded": 2_500, "amount_refund_pending": 0,
    }  # fmt: skip
    after = await ask_refund(api, payment_id, amount=1)
    assert after.status_code == 409 and after.json()["code"] == "refund_exceeds_available"


async def test_over_refund_and_refund_of_an_unpaid_payment_are_refused(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, "stripe")
    payment_id = checkout["checkout_id"]
    too_much = await ask_refund(api, payment_id, amount=2_501)
    assert too_much.status_code == 409, too_much.text
    assert too_much.headers["content-type"] == "application/problem+json"
    assert too_much.json()["code"] == "refund_exceeds_available"
    assert "25.00 USD is left to refund" in too_much.json()["detail"]

    unpaid = await create_checkout(api, checkout_body("stripe"))
    not_captured = await ask_refund(api, unpaid["checkout_id"], amount=100)
    assert not_captured.status_code == 409
    assert not_captured.json()["code"] == "payment_not_refundable"

    for body in ({"amount": 0}, {"amount": -5}, {"amount": 1.5}, {"reason": "bored"}):
        invalid = await ask_refund(api, payment_id, **body)
        assert invalid.status_code == 422, body
        assert invalid.json()["code"] == "validation_error"
    no_key = await api.post(f"/v1/payments/{payment_id}/refunds", json={"reason": "other"})
    assert no_key.status_code == 422
    unknown = await ask_refund(api, "pay_000000000000000000000000", amount=100)
    assert unknown.status_code == 404
    assert (await api.get("/v1/refunds/rfd_000000000000000000000000")).status_code == 404

    assert await db.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", payment_id) == 0
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


@GATEWAYS
async def test_concurrent_refunds_of_the_last_amount_exactly_one_wins(
    gateway: str, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, gateway)
    payment_id = checkout["checkout_id"]

    answers = await asyncio.gather(*(ask_refund(api, payment_id, amount=2_500) for _ in range(3)))

    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409, 409], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 202)
    assert (await wait_for_refund(api, winner["refund_id"]))["status"] == "succeeded"
    assert (await movements(sandbox, checkout["gateway_payment_id"])).count("refund") == 1
    assert (await balance(db, payment_id))["merchant:refunds"] == 2_500


async def _refund_at_the_dashboard(
    sandbox: httpx.AsyncClient, gateway: str, checkout: dict[str, Any], amount: int
) -> str:
    """What the merchant's staff do in the gateway's dashboard: the service is not asked."""
    if gateway == "stripe":
        response = await sandbox.post(
            "/stripe/v1/refunds",
            data={"payment_intent": checkout["gateway_payment_id"], "amount": str(amount)},
            headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"},
        )
    else:
        response = await sandbox.post(
            f"/razorpay/v1/payments/{checkout['gateway_charge_id']}/refund",
            json={"amount": amount},
            auth=(SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET),
        )
    assert response.status_code == 200, response.text
    refund_id: str = response.json()["id"]
    return refund_id


@GATEWAYS
async def test_refund_made_at_the_gateway_dashboard_is_recorded_from_its_webhook(
    gateway: str, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, gateway)
    payment_id = checkout["checkout_id"]
    gateway_refund_id = await _refund_at_the_dashboard(sandbox, gateway, checkout, 700)

    for _ in range(150):
        listed = (await api.get(f"/v1/payments/{payment_id}/refunds")).json()
        if listed and listed[0]["status"] in FINAL:
            break
        await asyncio.sleep(0.2)
    assert len(listed) == 1, listed
    observed = listed[0]
    assert (observed["mode"], observed["status"], observed["amount"]) == (
        "observed",
        "succeeded",
        700,
    )
    assert observed["gateway_refund_id"] == gateway_refund_id
    assert observed["payment_status"] == "partially_refunded"
    assert await balance(db, payment_id) == {
        f"gateway:{gateway}": 1_800, "merchant:sales": -2_500, "merchant:refunds": 700,
    }  # fmt: skip
    # what is left is still ours to refund, and no more
    too_much = await ask_refund(api, payment_id, amount=1_801)
    assert too_much.status_code == 409
    rest = await ask_refund(api, payment_id, amount=1_800)
    assert rest.status_code == 202, rest.text


@GATEWAYS
@pytest.mark.usefixtures("pending_refunds")
async def test_pending_refund_settles_by_webhook_and_a_failed_one_gives_its_amount_back(
    gateway: str, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await captured_checkout(api, sandbox, gateway)
    payment_id = checkout["checkout_id"]

    first = (await ask_refund(api, payment_id, amount=1_000)).json()
    pending = await wait_for_refund(api, first["refund_id"], at_the_gateway)
    await asyncio.sleep(2.5)  # a poll or two: the gateway still says pending
    pending = await wait_for_refund(api, first["refund_id"], at_the_gateway)
    assert pending["status"] == "pending", pending["timeline"]
    blocked = await ask_refund(api, payment_id, amount=1_501)  # 1 000 of 2 500 is reserved
    assert blocked.status_code == 409
    settle = await sandbox.post(
        f"/sandbox/refunds/{pending['gateway_refund_id']}/settle", json={"outcome": "succeeded"}
    )
    assert settle.status_code == 200, settle.text
    assert (await wait_for_refund(api, first["refund_id"]))["status"] == "succeeded"

    second = (await ask_refund(api, payment_id)).json()
    assert second["amount"] == 1_500
    second = await wait_for_refund(api, second["refund_id"], at_the_gateway)
    settle = await sandbox.post(
        f"/sandbox/refunds/{second['gateway_refund_id']}/settle", json={"outcome": "failed"}
    )
    assert settle.status_code == 200, settle.text
    failed = await wait_for_refund(api, second["refund_id"])
    assert failed["status"] == "failed" and failed["failure_reason"]
    assert failed["payment_status"] == "partially_refunded"

    payment = await db.fetchrow(
        "SELECT amount_refunded, amount_refund_pending FROM payments WHERE payment_id = $1",
        payment_id,
    )
    assert (payment["amount_refunded"], payment["amount_refund_pending"]) == (1_000, 0)
    assert (await balance(db, payment_id))["merchant:refunds"] == 1_000
