"""Gateway webhooks: verified, deduplicated, routed in any order, never lost."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import razorpay
import stripe

from devstack.stack import Stack
from settings import SANDBOX_RAZORPAY_WEBHOOK_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET
from tests.e2e.conftest import (
    NEXT_RAZORPAY_SECRET,
    NEXT_STRIPE_SECRET,
    RAZORPAY_MAX_AGE,
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    pay,
    wait_for_status,
)

RAZORPAY_EVENT_TYPES = [
    "payment.authorized", "payment.failed", "payment.captured",
    "payment.dispute.created", "payment.dispute.won", "payment.dispute.lost",
    "payment.dispute.closed", "payment.dispute.under_review", "payment.dispute.action_required",
    "payment.downtime.started", "payment.downtime.updated", "payment.downtime.resolved",
    "order.paid", "order.notification.delivered", "order.notification.failed",
    "invoice.paid", "invoice.partially_paid", "invoice.expired",
    "fund_account.validation.completed", "fund_account.validation.failed",
    "refund.created", "refund.processed", "refund.failed", "refund.speed_changed",
    "account.instantly_activated", "account.activated_kyc_pending",
    "payment_link.paid", "payment_link.partially_paid", "payment_link.expired",
    "payment_link.cancelled",
]  # fmt: skip
STRIPE_EVENT_TYPES = [
    "payment_intent.created", "payment_intent.processing", "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated", "payment_intent.succeeded",
    "payment_intent.payment_failed", "payment_intent.canceled", "payment_intent.partially_funded",
    "charge.succeeded", "charge.failed", "charge.captured", "charge.refunded", "charge.updated",
    "charge.pending", "charge.expired", "charge.refund.updated",
    "refund.created", "refund.updated", "refund.failed",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
    "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
    "customer.created", "invoice.paid",
]  # fmt: skip


def stripe_event(event_type: str, obj: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj or {"id": f"obj_{uuid.uuid4().hex[:8]}", "object": "unknown"}},
        }
    )


async def post_stripe(api: httpx.AsyncClient, body: str, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return await api.post("/v1/webhooks/stripe", content=body, headers=headers)


def razorpay_event(event_type: str, payload: dict[str, Any], *, age_seconds: int = 0) -> str:
    return json.dumps(
        {
            "entity": "event",
            "account_id": "acc_test",
            "event": event_type,
            "contains": list(payload),
            "payload": {name: {"entity": entity} for name, entity in payload.items()},
            "created_at": int(time.time()) - age_seconds,
        }
    )


def razorpay_signature(body: str, secret: str = SANDBOX_RAZORPAY_WEBHOOK_SECRET) -> str:
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    # the vector must verify with the official SDK's own utility
    assert razorpay.Client(auth=("k", "s")).utility.verify_webhook_signature(
        body, signature, secret
    )
    return signature


async def post_razorpay(
    api: httpx.AsyncClient, body: str, event_id: str | None, signature: str
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Razorpay-Signature": signature}
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    return await api.post("/v1/webhooks/razorpay", content=body, headers=headers)


async def stored(db: asyncpg.Connection, body: str) -> bool:
    event_id = json.loads(body).get("id", "")
    return bool(await db.fetchval("SELECT true FROM webhook_inbox WHERE event_id = $1", event_id))


async def test_stripe_signatures_are_checked_with_a_300_second_tolerance(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    secret = SANDBOX_STRIPE_WEBHOOK_SECRET
    sign = stripe.WebhookSignature.generate_signature_header
    now = int(time.time())
    body = stripe_event("customer.created")
    refused = {
        "stale": sign(body, secret, now - 301),
        "future": sign(body, secret, now + 301),
        "wrong secret": sign(body, "whsec_wrong", now),
        "garbage": "t=abc,v1=xyz",
    }
    for case, header in refused.items():
        response = await post_stripe(api, body, header)
        assert response.status_code == 400, case
        assert response.json()["code"] == "invalid_signature"
    missing = await post_stripe(api, body, None)
    assert missing.status_code == 400
    assert not await stored(db, body)

    edge = await post_stripe(api, body, sign(body, secret, now - 290))
    assert edge.status_code == 200 and edge.json() == {"status": "no_action"}
    assert await stored(db, body)


async def test_stripe_accepts_several_signatures_and_rotated_secrets(
    api: httpx.AsyncClient,
) -> None:
    sign = stripe.WebhookSignature.generate_signature_header
    body = stripe_event("customer.created")
    good = sign(body, NEXT_STRIPE_SECRET).split(",")[1]
    two_v1 = f"t={int(time.time())},v1={'0' * 64},{good}"

    assert (await post_stripe(api, body, two_v1)).status_code == 200
    other = stripe_event("customer.created")
    rotated = await post_stripe(api, other, sign(other, SANDBOX_STRIPE_WEBHOOK_SECRET))
    assert rotated.status_code == 200


async def test_razorpay_signature_event_id_and_replay_window(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = razorpay_event("invoice.paid", {"invoice": {"id": "inv_1"}})
    event_id = f"evt_{uuid.uuid4().hex[:14]}"

    bad = await post_razorpay(api, body, event_id, "0" * 64)
    no_id = await post_razorpay(api, body, None, razorpay_signature(body))
    assert bad.status_code == no_id.status_code == 400
    assert bad.json()["code"] == "invalid_signature"
    assert not await db.fetchval("SELECT true FROM webhook_inbox WHERE event_id = $1", event_id)

    rotated = await post_razorpay(
        api, body, event_id, razorpay_signature(body, NEXT_RAZORPAY_SECRET)
    )
    assert rotated.status_code == 200 and rotated.json() == {"status": "no_action"}

    old = razorpay_event("invoice.paid", {"invoice": {}}, age_seconds=RAZORPAY_MAX_AGE + 60)
    unseen = await post_razorpay(api, old, f"evt_{uuid.uuid4().hex[:14]}", razorpay_signature(old))
    assert unseen.status_code == 400 and unseen.json()["code"] == "stale_event"

    nearly_old = razorpay_event("invoice.paid", {"invoice": {}}, age_seconds=RAZORPAY_MAX_AGE - 2)
    seen_id = f"evt_{uuid.uuid4().hex[:14]}"
    first = await post_razorpay(api, nearly_old, seen_id, razorpay_signature(nearly_old))
    await asyncio.sleep(3)  # now older than the window, but accepted once already
    again = await post_razorpay(api, nearly_old, seen_id, razorpay_signature(nearly_old))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"status": "duplicate"}


async def test_malformed_but_signed_events_are_refused_cleanly(api: httpx.AsyncClient) -> None:
    body = "not json at all"
    stripe_header = stripe.WebhookSignature.generate_signature_header(
        body, SANDBOX_STRIPE_WEBHOOK_SECRET
    )
    assert (await post_stripe(api, body, stripe_header)).status_code == 400
    response = await post_razorpay(api, body, "evt_malformed0001", razorpay_signature(body))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_event"


@pytest.mark.parametrize("event_type", RAZORPAY_EVENT_TYPES)
async def test_every_razorpay_event_type_is_accepted_and_classified(
    api: httpx.AsyncClient, event_type: str
) -> None:
    entity = {"id": f"x_{uuid.uuid4().hex[:10]}", "entity": "thing", "amount": 100, "notes": []}
    body = razorpay_event(event_type, {"thing": entity})
    response = await post_razorpay(
        api, body, f"evt_{uuid.uuid4().hex[:14]}", razorpay_signature(body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] in {"no_action", "delivered", "gateway_health"}


@pytest.mark.parametrize("event_type", STRIPE_EVENT_TYPES)
async def test_every_stripe_event_type_is_accepted_and_classified(
    api: httpx.AsyncClient, event_type: str
) -> None:
    body = stripe_event(event_type)
    header = stripe.WebhookSignature.generate_signature_header(body, SANDBOX_STRIPE_WEBHOOK_SECRET)
    response = await post_stripe(api, body, header)
    assert response.status_code == 200, response.text
    assert response.json()["status"] in {"no_action", "delivered"}


async def test_razorpay_downtime_events_update_gateway_health(api: httpx.AsyncClient) -> None:
    downtime = {"id": f"down_{uuid.uuid4().hex[:10]}", "entity": "payment.downtime",
                "method": "upi", "status": "started", "severity": "high",
                "begin": int(time.time()), "end": None}  # fmt: skip
    for event_type, status in (("payment.downtime.started", "started"),
                               ("payment.downtime.resolved", "resolved")):  # fmt: skip
        body = razorpay_event(event_type, {"payment.downtime": {**downtime, "status": status}})
        response = await post_razorpay(
            api, body, f"evt_{uuid.uuid4().hex[:14]}", razorpay_signature(body)
        )
        assert response.json() == {"status": "gateway_health"}
        health = {h["gateway"]: h for h in (await api.get("/v1/gateways/health")).json()}
        open_ids = [d["downtime_id"] for d in health["razorpay"]["open_downtimes"]]
        assert (downtime["id"] in open_ids) is (status == "started")
        assert health["stripe"]["healthy"] is True


async def test_duplicate_webhooks_are_acknowledged_and_signal_once(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await sandbox.post("/sandbox/webhooks/hold")
    await pay(sandbox, checkout)
    sent = (await sandbox.post("/sandbox/webhooks/release", json={"duplicate": True})).json()
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]
    authorized = [e for e in sent["sending"] if sent["sending"].count(e) == 2]
    assert authorized, "the sandbox sent each held event twice"
    inbox = (await api.get("/v1/webhooks/events", params={"gateway": "stripe"})).json()
    ids = {e["event_id"] for e in inbox["events"]}
    assert set(authorized) <= ids
    redelivered = await sandbox.post(f"/sandbox/webhooks/{authorized[0]}/redeliver")
    assert redelivered.status_code == 200


async def test_events_in_reverse_order_leave_the_checkout_captured_once(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await sandbox.post("/sandbox/webhooks/hold")
    await pay(sandbox, checkout, succeed=False)
    await pay(sandbox, checkout)  # declined first, then paid; the webhooks arrive paid-first
    await sandbox.post("/sandbox/webhooks/release", json={"reverse": True})
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    await asyncio.sleep(1)  # let the late decline arrive

    after = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
    assert captured["status"] == after["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_checkout_driven_only_by_razorpay_webhooks(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    await pay(sandbox, checkout)  # no client confirmation: only the payment.authorized webhook
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_webhook_while_temporal_is_down_is_kept_and_delivered_exactly_once(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    temporal = stack.children["temporal"]
    temporal.stop()
    try:
        await pay(sandbox, checkout)
        for _ in range(100):
            page = (await api.get("/v1/webhooks/events", params={"delivered": "false"})).json()
            if any(e["outcome"] == "delivery_failed" for e in page["events"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the webhook never reached the inbox while Temporal was down")
    finally:
        temporal.start()
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=90)

    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]
