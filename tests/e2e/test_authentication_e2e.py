"""3-D Secure over the whole stack, with Stripe's authentication-required test card: the
checkout's view hands the client the bank's challenge; completing it captures the payment;
failing it is a failed attempt after which the customer pays again."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import checkout_body, create_checkout, wait_for_status

pytestmark = pytest.mark.e2e


async def pay_with_3ds(sandbox: httpx.AsyncClient, checkout: dict[str, Any]) -> dict[str, Any]:
    response = await sandbox.post(
        f"/sandbox/stripe/payment_intents/{checkout['gateway_payment_id']}/pay",
        json={
            "client_secret": checkout["payment"]["stripe_client_secret"],
            "payment_method": "pm_card_authenticationRequired",
        },
    )
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    assert intent["status"] == "requires_action"
    return intent


async def authenticate(sandbox: httpx.AsyncClient, checkout: dict[str, Any], outcome: str) -> None:
    response = await sandbox.post(
        f"/sandbox/stripe/payment_intents/{checkout['gateway_payment_id']}/authenticate",
        json={"outcome": outcome},
    )
    assert response.status_code == 200, response.text


async def test_a_3ds_card_that_passes_the_challenge_is_captured(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    intent = await pay_with_3ds(sandbox, checkout)

    asked = await wait_for_status(api, checkout["checkout_id"], {"requires_action"})
    assert asked["payment"]["next_action"] == intent["next_action"]
    assert asked["payment"]["stripe_client_secret"] == checkout["payment"]["stripe_client_secret"]
    challenge = await sandbox.get(intent["next_action"]["redirect_to_url"]["url"])
    assert challenge.status_code == 200 and "Complete authentication" in challenge.text

    await authenticate(sandbox, checkout, "complete")
    captured = await wait_for_status(api, checkout["checkout_id"], {"captured"})
    assert captured["payment"]["next_action"] is None
    steps = [s["step"] for s in captured["history"]]
    assert steps.index("authentication_required") < steps.index("authorized")


async def test_a_3ds_challenge_failed_is_a_failed_attempt_and_the_customer_pays_again(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay_with_3ds(sandbox, checkout)
    await wait_for_status(api, checkout["checkout_id"], {"requires_action"})

    await authenticate(sandbox, checkout, "fail")
    for _ in range(150):
        again = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if again["attempts"]:
            break
        await asyncio.sleep(0.1)
    assert again["status"] == "created" and again["payment"]["next_action"] is None
    assert again["attempts"][0]["error_code"] == "payment_intent_authentication_failure"

    paid = await sandbox.post(
        f"/sandbox/stripe/payment_intents/{checkout['gateway_payment_id']}/pay",
        json={
            "client_secret": checkout["payment"]["stripe_client_secret"],
            "payment_method": "pm_card_visa",
        },
    )
    assert paid.status_code == 200, paid.text
    captured = await wait_for_status(api, checkout["checkout_id"], {"captured"})
    assert [a["outcome"] for a in captured["attempts"]] == ["failed", "authorized"]


async def test_razorpay_keeps_the_payment_created_until_the_customer_authenticates(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    order = checkout["payment"]["razorpay_order_id"]

    async def pay_with_3ds() -> str:
        response = await sandbox.post(
            f"/sandbox/razorpay/orders/{order}/pay", json={"outcome": "authenticate"}
        )
        assert response.status_code == 202, response.text
        payment_id: str = response.json()["razorpay_payment_id"]
        return payment_id

    failed = await pay_with_3ds()
    answer = await sandbox.post(
        f"/sandbox/razorpay/payments/{failed}/authenticate", json={"outcome": "fail"}
    )
    assert answer.json()["error_reason"] == "authentication_failed"
    for _ in range(150):
        again = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if again["attempts"]:
            break
        await asyncio.sleep(0.1)
    assert again["status"] == "created"

    passed = await pay_with_3ds()
    answer = await sandbox.post(
        f"/sandbox/razorpay/payments/{passed}/authenticate", json={"outcome": "complete"}
    )
    assert answer.status_code == 200 and answer.json()["razorpay_signature"]
    captured = await wait_for_status(api, checkout["checkout_id"], {"captured"})
    assert [a["outcome"] for a in captured["attempts"]] == ["failed", "authorized"]
    assert captured["gateway_charge_id"] == passed
