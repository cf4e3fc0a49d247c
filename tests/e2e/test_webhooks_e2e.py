"""Gateway webhooks end to end: verified, kept and acknowledged whatever they carry, deduplicated,
delivered by the relay in any order and whatever is down, routed by the ledger alone, never lost.
What each event type means is tested without a stack (tests/gateways)."""

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
from domain import names
from settings import SANDBOX_RAZORPAY_WEBHOOK_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET
from tests.e2e.conftest import (
    NEXT_RAZORPAY_SECRET,
    NEXT_STRIPE_SECRET,
    RAZORPAY_MAX_AGE,
    RELAY_MAX_FAILURES,
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    pay,
    wait_for_status,
)
from tests.e2e.test_refunds_e2e import ask_refund, captured_checkout, wait_for_refund


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
    assert edge.status_code == 200 and edge.json() == {"status": "accepted"}
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
    assert rotated.status_code == 200 and rotated.json() == {"status": "accepted"}

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
        assert response.json() == {"status": "accepted"}
        for _ in range(150):
            health = {h["gateway"]: h for h in (await api.get("/v1/gateways/health")).json()}
            open_ids = [d["downtime_id"] for d in health["razorpay"]["open_downtimes"]]
            if (downtime["id"] in open_ids) is (status == "started"):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the {status} downtime never showed in the gateways' health")
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


async def inbox_row(db: asyncpg.Connection, gateway: str, event_id: str) -> Any:
    return await db.fetchrow(
        "SELECT * FROM webhook_inbox WHERE gateway = $1 AND event_id = $2", gateway, event_id
    )


async def wait_for_inbox(
    db: asyncpg.Connection, gateway: str, event_id: str, state: str, within: float = 30
) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        row = await inbox_row(db, gateway, event_id)
        if row is not None and row["state"] == state:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{gateway} event {event_id} not {state}: {row and dict(row)}")
        await asyncio.sleep(0.1)


async def answered_stripe_delivery(
    sandbox: httpx.AsyncClient, db: asyncpg.Connection, event_type: str, object_id: str
) -> tuple[dict[str, Any], Any]:
    """The sandbox's delivery of a Stripe `event_type` about `object_id`, once answered, and the
    event's row in the inbox."""
    for _ in range(150):
        deliveries = (await sandbox.get("/sandbox/webhooks/deliveries")).json()
        for delivery in deliveries:
            if delivery["type"] != event_type or delivery["status"] is None:
                continue
            row = await inbox_row(db, "stripe", delivery["event_id"])
            if row is not None and json.loads(row["payload"])["data"]["object"]["id"] == object_id:
                return delivery, row
        await asyncio.sleep(0.2)
    raise AssertionError(f"no answered {event_type} about {object_id}")


async def test_webhook_while_temporal_is_down_is_acknowledged_and_delivered_on_its_return(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    intent = checkout["gateway_payment_id"]
    temporal = stack.children["temporal"]
    temporal.stop()
    try:
        await pay(sandbox, checkout)
        delivery, row = await answered_stripe_delivery(
            sandbox, db, "payment_intent.amount_capturable_updated", intent
        )
        assert delivery["status"] == 200  # acknowledged at once: intake never waits for Temporal
        assert row["state"] == "pending"
    finally:
        temporal.start()
    # within a minute of Temporal's return, the relay has delivered it to the checkout
    delivered = await wait_for_inbox(db, "stripe", row["event_id"], "delivered", within=60)
    assert (delivered["outcome"], delivered["workflow_id"]) == (
        "delivered",
        names.checkout_workflow_id(checkout["order_id"]),
    )
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=90)
    assert captured["status"] == "captured"
    assert await movements(sandbox, intent) == ["authorization", "capture"]


async def test_other_methods_on_the_webhook_paths_are_refused_before_any_work(
    api: httpx.AsyncClient,
) -> None:
    for gateway in ("stripe", "razorpay"):
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            response = await api.request(method, f"/v1/webhooks/{gateway}", content=b"{}")
            assert response.status_code == 405, (method, gateway, response.text)
            assert response.json()["code"] == "method_not_allowed"
        # a method HTTP does not know never reaches the application: the parser refuses it
        invented = await api.request("BREW", f"/v1/webhooks/{gateway}", content=b"{}")
        assert invented.status_code == 400


async def test_non_ascii_signature_headers_are_400_on_both_webhooks(
    api: httpx.AsyncClient,
) -> None:
    body = stripe_event("customer.created")
    for header in ("t=1,v1=café".encode(), "café".encode("latin-1"), b"\xff\xfe"):
        stripe_answer = await api.post(
            "/v1/webhooks/stripe", content=body, headers={b"Stripe-Signature": header}
        )
        razorpay_answer = await api.post(
            "/v1/webhooks/razorpay",
            content=body,
            headers={b"X-Razorpay-Signature": header, b"X-Razorpay-Event-Id": b"evt_nonascii"},
        )
        for answer in (stripe_answer, razorpay_answer):
            assert answer.status_code == 400, answer.text
            assert answer.json()["code"] == "invalid_signature"


UNEXPECTED_STRIPE_SHAPES: list[dict[str, Any]] = [
    {"type": "payment_intent.payment_failed", "data": "x"},
    {"type": "payment_intent.payment_failed", "data": {"object": "x"}},
    {"type": "payment_intent.succeeded", "data": {"object": {"id": {"nested": 1}}}},
    {"type": "payment_intent.payment_failed",
     "data": {"object": {"id": "pi_x", "last_payment_error": "declined", "metadata": "m"}}},
    {"type": "refund.updated", "data": {"object": {"object": "refund", "id": 5}}},
    {"type": "charge.dispute.created", "data": {"object": {"object": "dispute", "id": ["dp"]}}},
    {"type": 7, "data": {}},
    {"type": "customer.created"},
]  # fmt: skip
UNEXPECTED_RAZORPAY_SHAPES: list[dict[str, Any]] = [
    {"event": "payment.failed", "payload": "x"},
    {"event": "payment.failed", "payload": {"payment": {"entity": {"order_id": 5}}}},
    {"event": "payment.captured", "payload": {"payment": {"entity": {"order_id": {"id": "o"}}}}},
    {"event": "refund.processed", "payload": {"refund": {"entity": {"id": True}}}},
    {"event": "payment.dispute.created", "payload": {"dispute": "x"}},
    {"event": "payment.downtime.started",
     "payload": {"payment.downtime": {"entity": {"id": "d", "begin": "soon"}}}},
    {"event": 7, "payload": {}},
    {"event": "payment.failed", "created_at": "yesterday"},
]  # fmt: skip


async def test_signed_events_of_unexpected_shape_are_kept_or_refused_never_a_500(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    kept: list[tuple[str, str]] = []
    for shape in UNEXPECTED_STRIPE_SHAPES:
        body = json.dumps({"id": f"evt_{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                           **shape})  # fmt: skip
        sign = stripe.WebhookSignature.generate_signature_header
        response = await post_stripe(api, body, sign(body, SANDBOX_STRIPE_WEBHOOK_SECRET))
        if isinstance(shape["type"], str):
            assert response.json() == {"status": "accepted"}, (shape, response.text)
            kept.append(("stripe", json.loads(body)["id"]))
        else:
            assert response.status_code == 400 and response.json()["code"] == "malformed_event"
            assert not await stored(db, body)
    for shape in UNEXPECTED_RAZORPAY_SHAPES:
        body = json.dumps({"entity": "event", "created_at": int(time.time()), **shape})
        event_id = f"evt_{uuid.uuid4().hex[:14]}"
        response = await post_razorpay(api, body, event_id, razorpay_signature(body))
        if isinstance(shape["event"], str) and isinstance(json.loads(body)["created_at"], int):
            assert response.json() == {"status": "accepted"}, (shape, response.text)
            kept.append(("razorpay", event_id))
        else:
            assert response.status_code == 400 and response.json()["code"] == "malformed_event"
            assert await inbox_row(db, "razorpay", event_id) is None
    for gateway, event_id in kept:  # each read as a fact or no action, nothing left half-done
        row = await wait_for_inbox(db, gateway, event_id, "delivered")
        assert row["outcome"] in {"no_action", "gateway_health", "delivered"}, dict(row)


async def test_a_body_postgres_cannot_store_is_refused_cleanly(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = json.dumps({"id": f"evt_{uuid.uuid4().hex[:24]}", "type": "customer.created",
                       "data": {"object": {"name": "\u0000"}}})  # fmt: skip
    sign = stripe.WebhookSignature.generate_signature_header
    response = await post_stripe(api, body, sign(body, SANDBOX_STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 400 and response.json()["code"] == "malformed_event"
    assert not await stored(db, body)


def razorpay_failed_payment(order_id: str, notes: dict[str, str] | None = None) -> str:
    payment = {"id": f"pay_{uuid.uuid4().hex[:14]}", "entity": "payment", "order_id": order_id,
               "status": "failed", "amount": 2_500, "currency": "INR", "captured": False,
               "error_code": "BAD_REQUEST_ERROR", "error_description": "Payment failed",
               "notes": notes or {}}  # fmt: skip
    return razorpay_event("payment.failed", {"payment": payment})


async def test_the_same_signed_razorpay_body_under_new_event_ids_is_delivered_once(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    body = razorpay_failed_payment(checkout["payment"]["razorpay_order_id"])
    ids = [f"evt_{uuid.uuid4().hex[:14]}" for _ in range(3)]
    answers = [await post_razorpay(api, body, i, razorpay_signature(body)) for i in ids]
    assert [a.json()["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]

    await wait_for_inbox(db, "razorpay", ids[0], "delivered")
    for _ in range(150):
        state = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if state["attempts"]:
            break
        await asyncio.sleep(0.2)
    assert [a["outcome"] for a in state["attempts"]] == ["failed"]
    assert [await inbox_row(db, "razorpay", i) for i in ids[1:]] == [None, None]


def crafted_events(victim: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Signed events about payments the ledger does not hold, whose notes or metadata name the
    victim's checkout: (gateway, event id, body)."""
    notes = {
        "workflow_id": names.checkout_workflow_id(victim["order_id"]),
        "checkout_id": victim["checkout_id"],
    }
    if victim["gateway"] == "razorpay":
        authorized = {"id": f"pay_{uuid.uuid4().hex[:14]}", "status": "authorized",
                      "order_id": f"order_{uuid.uuid4().hex[:14]}", "notes": notes}  # fmt: skip
        bodies = [
            razorpay_failed_payment(f"order_{uuid.uuid4().hex[:14]}", notes),
            razorpay_event("payment.authorized", {"payment": authorized}),
        ]
        return [("razorpay", f"evt_{uuid.uuid4().hex[:14]}", body) for body in bodies]
    events = []
    for event_type in ("payment_intent.payment_failed", "payment_intent.succeeded"):
        intent = {"id": f"pi_{uuid.uuid4().hex[:24]}", "object": "payment_intent",
                  "metadata": notes, "last_payment_error": {"code": "card_declined"}}  # fmt: skip
        body = stripe_event(event_type, intent)
        events.append(("stripe", json.loads(body)["id"], body))
    return events


async def test_a_payer_crafted_payment_naming_another_checkout_does_not_reach_it(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Razorpay payment notes are set by whoever pays, and Stripe metadata is no proof either:
    an event about a payment the ledger does not hold reaches no checkout, whatever it names."""
    victims = [await create_checkout(api, checkout_body(g)) for g in ("razorpay", "stripe")]
    crafted = [event for victim in victims for event in crafted_events(victim)]
    for gateway, event_id, body in crafted:
        if gateway == "razorpay":
            answer = await post_razorpay(api, body, event_id, razorpay_signature(body))
        else:
            sign = stripe.WebhookSignature.generate_signature_header
            answer = await post_stripe(api, body, sign(body, SANDBOX_STRIPE_WEBHOOK_SECRET))
        assert answer.json() == {"status": "accepted"}
    for gateway, event_id, _ in crafted:
        row = await wait_for_inbox(db, gateway, event_id, "delivered")
        assert (row["outcome"], row["workflow_id"]) == ("no_action", None)
    for victim in victims:
        state = (await api.get(f"/v1/checkouts/{victim['checkout_id']}")).json()
        assert state["status"] == "created" and state["attempts"] == [], state["history"]


POISON = "[]"  # a row no parser can read: what a bug in one row looks like to the relay


async def test_a_poison_event_is_parked_as_a_dead_letter_and_replayed_by_an_operator(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    event_id = f"evt_poison_{uuid.uuid4().hex[:12]}"
    await db.execute(
        "INSERT INTO webhook_inbox (gateway, event_id, event_type, payload)"
        " VALUES ('stripe', $1, 'payment_intent.succeeded', $2::jsonb)",
        event_id,
        POISON,
    )
    dead = await wait_for_inbox(db, "stripe", event_id, "dead")
    assert dead["failures"] == RELAY_MAX_FAILURES and "AttributeError" in dead["last_error"]

    # the relay kept going: a checkout paid meanwhile is captured
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay(sandbox, checkout)
    assert (await wait_for_status(api, checkout["checkout_id"], TERMINAL))["status"] == "captured"

    listed = (await api.get("/v1/webhooks/dead-letters")).json()["events"]
    (mine,) = [e for e in listed if e["event_id"] == event_id]
    assert (mine["state"], mine["failures"]) == ("dead", RELAY_MAX_FAILURES)
    assert mine["last_error"].startswith("AttributeError")

    # the cause fixed, an operator replays it
    fixed = stripe_event("customer.created")
    await db.execute(
        "UPDATE webhook_inbox SET payload = $2::jsonb WHERE event_id = $1", event_id, fixed
    )
    replayed = await api.post(f"/v1/webhooks/dead-letters/stripe/{event_id}/replay")
    assert replayed.status_code == 202 and replayed.json() == {"status": "requeued"}
    delivered = await wait_for_inbox(db, "stripe", event_id, "delivered")
    assert delivered["outcome"] == "no_action"
    again = await api.post(f"/v1/webhooks/dead-letters/stripe/{event_id}/replay")
    assert again.status_code == 404 and again.json()["code"] == "dead_letter_not_found"
    assert again.headers["content-type"] == "application/problem+json"


async def test_postgres_down_answers_503_and_the_relay_recovers(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    body = razorpay_failed_payment(checkout["payment"]["razorpay_order_id"])
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    try:
        await asyncio.to_thread(stack.stop_postgres)
    except RuntimeError:
        pytest.skip("only the embedded PostgreSQL can be stopped by the test stack")
    try:
        down = await post_razorpay(api, body, event_id, razorpay_signature(body))
    finally:
        await asyncio.to_thread(stack.start_postgres)
    assert down.status_code == 503, down.text
    assert down.json()["code"] == "database_unavailable" and down.headers["Retry-After"]

    for _ in range(150):  # the gateway retries until we answer 2xx
        back = await post_razorpay(api, body, event_id, razorpay_signature(body))
        if back.status_code != 503:
            break
        await asyncio.sleep(0.2)
    assert back.json() == {"status": "accepted"}
    for _ in range(150):
        state = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if state["attempts"]:
            break
        await asyncio.sleep(0.2)
    assert [a["outcome"] for a in state["attempts"]] == ["failed"]


async def test_a_refund_event_claiming_our_refund_id_for_another_payment_reaches_no_refund(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Our refund id in a refund's metadata is only a hint: the ledger must hold that refund
    for the refund's own payment before its workflow hears of it."""
    checkout = await captured_checkout(api, sandbox, "stripe")
    asked = await ask_refund(api, checkout["checkout_id"], amount=500)
    ours = await wait_for_refund(api, asked.json()["refund_id"])
    workflow_id = await db.fetchval(
        "SELECT workflow_id FROM refunds WHERE refund_id = $1", ours["refund_id"]
    )
    claim = {"refund_id": ours["refund_id"], "workflow_id": workflow_id}
    refund = {"id": f"re_{uuid.uuid4().hex[:24]}", "object": "refund", "status": "succeeded",
              "payment_intent": f"pi_{uuid.uuid4().hex[:24]}", "metadata": claim}  # fmt: skip
    body = stripe_event("refund.updated", refund)
    sign = stripe.WebhookSignature.generate_signature_header
    answer = await post_stripe(api, body, sign(body, SANDBOX_STRIPE_WEBHOOK_SECRET))
    assert answer.json() == {"status": "accepted"}

    row = await wait_for_inbox(db, "stripe", json.loads(body)["id"], "delivered")
    assert (row["outcome"], row["workflow_id"]) == ("no_action", None)
