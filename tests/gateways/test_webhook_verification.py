"""Webhook verification of both gateways, without a stack: signatures made by the official SDKs
verify, everything else is a typed refusal (never an exception), whatever the headers carry."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import razorpay
import stripe

from activities.gateways.razorpay import signature as razorpay_signature
from activities.gateways.stripe import signature as stripe_signature
from domain.checkout import Gateway
from domain.webhooks import Refused, VerifiedEvent, WebhookConfig

STRIPE = WebhookConfig(("whsec_current", "whsec_next"), 300)
RAZORPAY = WebhookConfig(("rzp_current", "rzp_next"), 3600)
NOW = time.time()


def stripe_body(**fields: object) -> bytes:
    event = {"id": "evt_1", "object": "event", "type": "customer.created", "data": {"object": {}}}
    return json.dumps({**event, **fields}).encode()


def stripe_header(body: bytes, secret: str = "whsec_current", at: float = NOW) -> str:
    """Signed as Stripe signs, over bytes (the SDK's helper takes only text)."""
    signed = f"{int(at)}.".encode() + body
    return f"t={int(at)},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def rzp_body(**fields: object) -> bytes:
    event = {"entity": "event", "event": "invoice.paid", "payload": {}, "created_at": int(NOW)}
    return json.dumps({**event, **fields}).encode()


def rzp_headers(
    body: bytes, secret: str = "rzp_current", event_id: str = "evt_r1"
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # the vector must verify with the official SDK's own utility
    assert razorpay.Client(auth=("k", "s")).utility.verify_webhook_signature(
        body.decode(), signature, secret
    )
    return {"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": event_id}


def test_stripe_signature_made_by_the_sdk_verifies() -> None:
    body = stripe_body()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_current")
    assert header == stripe_header(body, at=int(header.split(",")[0][2:]))
    event = stripe_signature.verify(body, {"Stripe-Signature": header}, STRIPE, time.time())
    assert isinstance(event, VerifiedEvent)
    assert (event.gateway, event.event_id, event.event_type) == (
        Gateway.STRIPE,
        "evt_1",
        "customer.created",
    )
    assert event.body_sha256 is None and not event.stale


def test_stripe_accepts_a_rotated_secret_and_any_matching_v1() -> None:
    body = stripe_body()
    rotated = stripe_header(body, "whsec_next")
    good = rotated.split(",")[1]
    two_v1 = f"t={int(NOW)},v1={'0' * 64},{good}"
    for header in (rotated, two_v1):
        assert isinstance(
            stripe_signature.verify(body, {"Stripe-Signature": header}, STRIPE, NOW),
            VerifiedEvent,
        )


@pytest.mark.parametrize(
    ("case", "header"),
    [
        ("stale", stripe_header(stripe_body(), at=NOW - 301)),
        ("future", stripe_header(stripe_body(), at=NOW + 301)),
        ("wrong secret", stripe_header(stripe_body(), "whsec_wrong")),
        ("garbage", "t=abc,v1=xyz"),
        ("no v1", f"t={int(NOW)}"),
        ("empty", ""),
        ("non-ASCII", "t=1,v1=caf\u00e9"),
        ("latin-1 decoded UTF-8", "t=1,v1=\u00c3\u00a9"),
        ("huge", "v1=" + "a" * 5000),
    ],
    ids=[
        "stale",
        "future",
        "wrong secret",
        "garbage",
        "no v1",
        "empty",
        "non-ASCII",
        "latin-1",
        "huge",
    ],  # the headers hold the time: ids that do not change from one second to the next
)
def test_stripe_refusals_are_typed(case: str, header: str) -> None:
    refusal = stripe_signature.verify(stripe_body(), {"Stripe-Signature": header}, STRIPE, NOW)
    assert refusal == Refused("invalid_signature", refusal.detail), case  # type: ignore[union-attr]


def test_stripe_missing_header_is_refused() -> None:
    assert isinstance(stripe_signature.verify(stripe_body(), {}, STRIPE, NOW), Refused)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'"a string"',
        b"[1, 2]",
        b"\xff\xfe invalid utf-8",
        b"[" * 100_000 + b"]" * 100_000,
        stripe_body(type=7),
        stripe_body(id={"nested": "object"}),
        stripe_body(id=""),
        json.dumps({"type": "customer.created"}).encode(),
    ],
)
def test_stripe_signed_bodies_that_are_not_events_are_malformed(body: bytes) -> None:
    refusal = stripe_signature.verify(body, {"Stripe-Signature": stripe_header(body)}, STRIPE, NOW)
    assert isinstance(refusal, Refused) and refusal.code == "malformed_event"


def test_razorpay_signature_verifies_and_carries_the_body_hash() -> None:
    body = rzp_body()
    event = razorpay_signature.verify(body, rzp_headers(body), RAZORPAY, NOW)
    assert isinstance(event, VerifiedEvent)
    assert (event.gateway, event.event_id, event.event_type) == (
        Gateway.RAZORPAY,
        "evt_r1",
        "invoice.paid",
    )
    assert event.body_sha256 == hashlib.sha256(body).hexdigest()
    again = razorpay_signature.verify(body, rzp_headers(body, event_id="evt_other"), RAZORPAY, NOW)
    assert isinstance(again, VerifiedEvent) and again.body_sha256 == event.body_sha256
    rotated = razorpay_signature.verify(body, rzp_headers(body, "rzp_next"), RAZORPAY, NOW)
    assert isinstance(rotated, VerifiedEvent)


@pytest.mark.parametrize(
    ("case", "signature"),
    [
        ("wrong", "0" * 64),
        ("empty", ""),
        ("non-ASCII", "caf\u00e9"),
        ("latin-1 decoded UTF-8", "\u00c3\u00a9" * 32),
        ("huge", "a" * 5000),
    ],
)
def test_razorpay_bad_signatures_are_refused(case: str, signature: str) -> None:
    headers = {"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": "evt_1"}
    refusal = razorpay_signature.verify(rzp_body(), headers, RAZORPAY, NOW)
    assert isinstance(refusal, Refused) and refusal.code == "invalid_signature", case


@pytest.mark.parametrize("event_id", ["", "x" * 101, "evt_\u00e9", "evt\x01"])
def test_razorpay_event_id_header_is_required_and_bounded(event_id: str) -> None:
    body = rzp_body()
    headers = {**rzp_headers(body), "X-Razorpay-Event-Id": event_id}
    refusal = razorpay_signature.verify(body, headers, RAZORPAY, NOW)
    assert isinstance(refusal, Refused) and refusal.code == "malformed_event"


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[" * 100_000 + b"]" * 100_000,
        rzp_body(event=7),
        rzp_body(created_at="yesterday"),
        rzp_body(created_at=True),
    ],
    ids=["not json", "deeply nested", "event not a string", "created_at a word", "created_at true"],
)
def test_razorpay_signed_bodies_that_are_not_events_are_malformed(body: bytes) -> None:
    headers = {
        "X-Razorpay-Signature": hmac.new(b"rzp_current", body, hashlib.sha256).hexdigest(),
        "X-Razorpay-Event-Id": "evt_1",
    }
    refusal = razorpay_signature.verify(body, headers, RAZORPAY, NOW)
    assert isinstance(refusal, Refused) and refusal.code == "malformed_event"


def test_razorpay_events_outside_the_replay_window_are_stale() -> None:
    old = rzp_body(created_at=int(NOW) - 3601)
    fresh = rzp_body(created_at=int(NOW) - 3599)
    undated = json.dumps({"event": "invoice.paid", "payload": {}}).encode()
    stale = [
        razorpay_signature.verify(body, rzp_headers(body), RAZORPAY, NOW)
        for body in (old, fresh, undated)
    ]
    assert [e.stale for e in stale if isinstance(e, VerifiedEvent)] == [True, False, True]
