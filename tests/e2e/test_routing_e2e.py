"""Gateway routing over the whole stack: `"gateway": "auto"` picks by currency and health; a
Stripe outage moves INR checkouts to Razorpay (Stripe left holding nothing) and they come back
once Stripe's breaker half-opens and a probe succeeds; an operator forces a gateway down; a
downtime Razorpay announces shows in the health page until it is resolved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from devstack.stack import Stack
from domain import names
from settings import SANDBOX_STRIPE_KEY
from tests.e2e.conftest import (
    BREAKER_OPEN_SECONDS,
    checkout_body,
    create_checkout,
    movements,
    pay,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
async def healthy_gateways(db: asyncpg.Connection) -> AsyncIterator[None]:
    """Each test starts (and leaves) every breaker closed and no override set, and starts with no
    downtime announced: other tests' faults and webhooks feed the same shared health."""

    async def reset() -> None:
        await db.execute(
            "UPDATE gateway_health SET state = 'closed', failures = 0, window_started_at = NULL,"
            " opened_at = NULL, override = 'auto', override_by = NULL, override_reason = NULL"
        )

    await reset()
    # downtimes other tests announced and left open would keep a gateway out of auto routing
    await db.execute("UPDATE gateway_downtimes SET status = 'resolved'")
    yield
    await reset()


def auto(currency: str, **overrides: Any) -> dict[str, Any]:
    return checkout_body("auto", currency=currency, **overrides)


async def health_of(api: httpx.AsyncClient, gateway: str) -> dict[str, Any]:
    response = await api.get("/v1/gateways/health")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(h for h in response.json() if h["gateway"] == gateway)
    return found


async def closed_checkout(api: httpx.AsyncClient, checkout_id: str) -> dict[str, Any]:
    """The checkout once its saga has ended (read from the ledger), releases included."""
    for _ in range(600):
        checkout: dict[str, Any] = (await api.get(f"/v1/checkouts/{checkout_id}")).json()
        if checkout["source"] == "ledger":
            return checkout
        await asyncio.sleep(0.2)
    raise AssertionError(f"checkout {checkout_id} never ended")


async def stripe_intents_of(stack: Stack, checkout_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"{stack.sandbox_url}/stripe", timeout=10) as stripe:
        response = await stripe.get(
            "/v1/payment_intents/search",
            params={"query": f"metadata['checkout_id']:'{checkout_id}'"},
            headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"},
        )
    response.raise_for_status()
    intents: list[dict[str, Any]] = response.json()["data"]
    return intents


async def test_auto_routing_picks_the_gateway_by_currency(api: httpx.AsyncClient) -> None:
    usd = await create_checkout(api, auto("USD"))
    myr = await create_checkout(api, auto("MYR"))
    inr = await create_checkout(api, auto("INR"))

    assert (usd["gateway"], myr["gateway"], inr["gateway"]) == ("stripe", "razorpay", "stripe")
    assert inr["routing_reason"] == "auto: stripe is the first healthy gateway for INR"
    assert "auto: razorpay" in myr["history"][0]["detail"]
    unroutable = await api.post(
        "/v1/checkouts", json=auto("GBP"), headers={"Idempotency-Key": "key-unroutable-gbp"}
    )
    assert unroutable.status_code == 422 and unroutable.json()["code"] == "no_gateway_for_payment"


async def test_a_stripe_outage_moves_inr_checkouts_to_razorpay_and_back_when_it_recovers(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, stack: Stack
) -> None:
    (await sandbox.post("/sandbox/outages", json={"gateway": "stripe"})).raise_for_status()
    moved = await create_checkout(api, auto("INR"))

    assert moved["gateway"] == "razorpay" and moved["abandoned_gateways"] == ["stripe"]
    assert moved["routing_reason"].startswith("failover: stripe unavailable")
    # the create's and the look-up's failures opened Stripe's breaker, shared by every replica
    stripe_health = await health_of(api, "stripe")
    assert stripe_health["breaker"] == "open" and not stripe_health["healthy"]
    routed_away = await create_checkout(api, auto("INR"))
    assert routed_away["gateway"] == "razorpay" and routed_away["abandoned_gateways"] == []
    assert "skipped stripe: breaker open" in routed_away["routing_reason"]

    await pay(sandbox, moved)
    captured = await wait_for_status(api, moved["checkout_id"], {"captured"}, within=60)
    assert captured["gateway"] == "razorpay"
    (await sandbox.delete("/sandbox/outages/stripe")).raise_for_status()
    # nothing of the checkout is live at Stripe: its release there ends before the checkout does
    closed = await closed_checkout(api, moved["checkout_id"])
    steps = [s["step"] for s in closed["history"]]
    assert steps.index("gateway_failover") < steps.index("gateway_payment_created")
    left_at_stripe = await stripe_intents_of(stack, moved["checkout_id"])
    assert all(i["status"] == "canceled" for i in left_at_stripe)
    for intent in left_at_stripe:
        assert await movements(sandbox, intent["id"]) == []  # never authorized at Stripe

    await asyncio.sleep(BREAKER_OPEN_SECONDS)  # the open period ends: the next payment probes
    assert (await health_of(api, "stripe"))["breaker"] == "half_open"
    back = await create_checkout(api, auto("INR"))
    assert back["gateway"] == "stripe"
    assert (await health_of(api, "stripe"))["breaker"] == "closed"


async def test_an_operator_forces_a_gateway_down_and_up(api: httpx.AsyncClient) -> None:
    forced = await api.post(
        "/v1/gateways/stripe/override", json={"override": "down", "reason": "card network incident"}
    )
    assert forced.status_code == 200, forced.text
    assert (forced.json()["override"], forced.json()["override_by"]) == ("down", "e2e-admin")
    assert forced.json()["why"] == "forced down by e2e-admin"
    audit = await api.get("/v1/audit", params={"action": "gateway.override", "target_id": "stripe"})
    assert audit.status_code == 200, audit.text
    assert audit.json()["entries"][0]["subject"] == "e2e-admin"

    inr = await create_checkout(api, auto("INR"))
    assert inr["gateway"] == "razorpay"
    assert "skipped stripe: forced down by e2e-admin" in inr["routing_reason"]
    usd = await api.post(
        "/v1/checkouts", json=auto("USD"), headers={"Idempotency-Key": "key-usd-forced"}
    )
    assert usd.status_code == 503 and usd.json()["code"] == "gateways_unavailable"
    named = await create_checkout(api, checkout_body("stripe"))  # a named gateway still works
    assert named["gateway"] == "stripe"

    back = await api.post(
        "/v1/gateways/stripe/override", json={"override": "auto", "reason": "incident over"}
    )
    assert back.json()["healthy"]
    assert (await create_checkout(api, auto("INR")))["gateway"] == "stripe"


async def test_a_downtime_razorpay_announces_keeps_auto_routing_away_until_resolved(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    (await sandbox.post("/sandbox/outages", json={"gateway": "razorpay"})).raise_for_status()
    for _ in range(100):  # other tests' downtimes (other methods) may be open already
        razorpay = await health_of(api, "razorpay")
        if not razorpay["healthy"]:
            break
        await asyncio.sleep(0.1)
    assert not razorpay["healthy"] and razorpay["why"] == "the gateway announced a downtime"
    assert ("card", "started") in {(d["method"], d["status"]) for d in razorpay["open_downtimes"]}

    (await sandbox.delete("/sandbox/outages/razorpay")).raise_for_status()
    for _ in range(100):
        if (await health_of(api, "razorpay"))["healthy"]:
            break
        await asyncio.sleep(0.1)
    assert (await health_of(api, "razorpay"))["healthy"]


async def test_a_declined_customer_retries_on_the_other_gateway_and_is_never_paid_twice(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Declined on Razorpay, the customer pays on Stripe; the Razorpay order the checkout left
    cannot be canceled, so when the customer pays it too, that payment goes to the left order's
    own ledger row and its late-payment refund — the checkout's capture on Stripe is untouched."""
    # Stripe's breaker open for a while: INR is routed to Razorpay, Stripe its fallback
    await db.execute(
        "UPDATE gateway_health SET state = 'open', failures = 5,"
        " opened_at = now() + interval '1 hour' WHERE gateway = 'stripe'"
    )
    first = await create_checkout(api, auto("INR"))
    await db.execute(
        "UPDATE gateway_health SET state = 'closed', failures = 0, opened_at = NULL"
        " WHERE gateway = 'stripe'"
    )
    checkout_id = first["checkout_id"]
    assert first["gateway"] == "razorpay"
    refused = await api.post(f"/v1/checkouts/{checkout_id}/switch-gateway", json={})
    assert refused.status_code == 409 and refused.json()["code"] == "checkout_not_switchable"

    await pay(sandbox, first, succeed=False)
    for _ in range(150):
        seen = (await api.get(f"/v1/checkouts/{checkout_id}")).json()
        if any(a["outcome"] == "failed" for a in seen["attempts"]):
            break
        await asyncio.sleep(0.2)
    switched = await api.post(f"/v1/checkouts/{checkout_id}/switch-gateway", json={})
    assert switched.status_code == 200, switched.text
    moved = switched.json()
    assert (moved["gateway"], moved["abandoned_gateways"]) == ("stripe", ["razorpay"])
    assert moved["payment"]["stripe_client_secret"] and moved["status"] == "created"
    audit = await api.get(
        "/v1/audit", params={"action": "checkout.switch_gateway", "target_id": checkout_id}
    )
    assert audit.status_code == 200, audit.text
    assert audit.json()["entries"][0]["subject"] == "e2e-admin"

    await pay(sandbox, moved)
    captured = await wait_for_status(api, checkout_id, {"captured"})
    assert captured["gateway"] == "stripe" and captured["amount_captured"] == 2_500

    # the customer pays the Razorpay order the checkout left
    await pay(sandbox, first)
    order_id = first["payment"]["razorpay_order_id"]
    left_id = names.checkout_id_for(
        names.left_payment_key(names.checkout_workflow_id(first["order_id"]), 1)
    )
    for _ in range(150):
        routed = await db.fetchval(
            "SELECT workflow_id FROM webhook_inbox WHERE gateway = 'razorpay'"
            " AND event_type = 'payment.authorized' AND outcome = 'delivered'"
            " AND payload::text LIKE '%' || $1 || '%'",
            order_id,
        )
        if routed:
            break
        await asyncio.sleep(0.2)
    assert routed is not None and routed.startswith(f"refund-{left_id}-late-")
    rows = {
        r["payment_id"]: r
        for r in await db.fetch(
            "SELECT payment_id, gateway, status, amount_captured, left_for FROM payments"
            " WHERE order_id = $1",
            first["order_id"],
        )
    }
    assert set(rows) == {checkout_id, left_id}
    assert (rows[checkout_id]["gateway"], rows[checkout_id]["amount_captured"]) == ("stripe", 2_500)
    assert (rows[left_id]["gateway"], rows[left_id]["left_for"]) == ("razorpay", checkout_id)
    # manual capture: Razorpay holds the authorization until its capture period ends, then
    # refunds it; nothing was captured on the order the checkout left
    assert "capture" not in await movements(sandbox, order_id)
