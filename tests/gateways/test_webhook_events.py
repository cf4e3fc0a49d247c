"""The pure parsers: every event type of both gateways, and every payload of an unexpected shape,
reads as a typed fact or as no action with a reason — never an exception."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.gateways.razorpay import events as razorpay_events
from activities.gateways.registry import KITS
from domain.checkout import (
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    PaymentEventKind,
    PaymentSnapshot,
    PaymentStatus,
)
from domain.webhooks import (
    DisputeFact,
    DowntimeFact,
    GatewayEvent,
    NoAction,
    PaymentFact,
    RefundFact,
    SellerAccountFact,
    VerifiedEvent,
    WebhookConfig,
)

STRIPE_EVENT_TYPES = {
    "payment_intent.created": NoAction,
    "payment_intent.processing": NoAction,
    "payment_intent.requires_action": PaymentFact,
    "payment_intent.amount_capturable_updated": PaymentFact,
    "payment_intent.succeeded": PaymentFact,
    "payment_intent.payment_failed": PaymentFact,
    "payment_intent.canceled": PaymentFact,
    "payment_intent.partially_funded": NoAction,
    "charge.succeeded": NoAction,
    "charge.failed": NoAction,
    "charge.captured": NoAction,
    "charge.refunded": NoAction,
    "charge.updated": NoAction,
    "charge.pending": NoAction,
    "charge.expired": NoAction,
    "charge.refund.updated": RefundFact,
    "refund.created": RefundFact,
    "refund.updated": RefundFact,
    "refund.failed": RefundFact,
    "charge.dispute.created": DisputeFact,
    "charge.dispute.updated": DisputeFact,
    "charge.dispute.closed": DisputeFact,
    "charge.dispute.funds_withdrawn": DisputeFact,
    "charge.dispute.funds_reinstated": DisputeFact,
    "account.updated": SellerAccountFact,
    "customer.created": NoAction,
    "invoice.paid": NoAction,
}
RAZORPAY_EVENT_TYPES = {
    "payment.authorized": PaymentFact,
    "payment.failed": PaymentFact,
    "payment.captured": PaymentFact,
    "payment.dispute.created": DisputeFact,
    "payment.dispute.won": DisputeFact,
    "payment.dispute.lost": DisputeFact,
    "payment.dispute.closed": DisputeFact,
    "payment.dispute.under_review": DisputeFact,
    "payment.dispute.action_required": DisputeFact,
    "payment.downtime.started": DowntimeFact,
    "payment.downtime.updated": DowntimeFact,
    "payment.downtime.resolved": DowntimeFact,
    "order.paid": NoAction,
    "order.notification.delivered": NoAction,
    "order.notification.failed": NoAction,
    "invoice.paid": NoAction,
    "invoice.partially_paid": NoAction,
    "invoice.expired": NoAction,
    "fund_account.validation.completed": NoAction,
    "fund_account.validation.failed": NoAction,
    "refund.created": RefundFact,
    "refund.processed": RefundFact,
    "refund.failed": RefundFact,
    "refund.speed_changed": RefundFact,
    "account.instantly_activated": NoAction,
    "account.activated_kyc_pending": NoAction,
    "payment_link.paid": NoAction,
    "payment_link.partially_paid": NoAction,
    "payment_link.expired": NoAction,
    "payment_link.cancelled": NoAction,
}

STRIPE_OBJECTS: dict[str, dict[str, Any]] = {
    "payment_intent": {
        "id": "pi_1", "object": "payment_intent", "status": "requires_payment_method",
        "latest_charge": "ch_1", "metadata": {"workflow_id": "checkout-someone-else"},
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                               "message": "Your card has insufficient funds."},
    },
    "refund": {
        "id": "re_1", "object": "refund", "status": "succeeded", "payment_intent": "pi_1",
        "reason": "requested_by_customer", "metadata": {"refund_id": "rfd_ours"},
    },
    "dispute": {"id": "dp_1", "object": "dispute", "status": "needs_response"},
    "charge": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"},
    "account": {
        "id": "acct_1", "object": "account", "charges_enabled": True, "payouts_enabled": True,
        "details_submitted": True, "capabilities": {"transfers": "active"},
    },
}  # fmt: skip
RAZORPAY_ENTITIES: dict[str, dict[str, Any]] = {
    "payment": {
        "id": "pay_1", "entity": "payment", "order_id": "order_1", "status": "failed",
        "captured": True, "error_code": "BAD_REQUEST_ERROR",
        "error_description": "Payment failed", "notes": {"workflow_id": "checkout-someone-else"},
    },
    "refund": {
        "id": "rfnd_1", "entity": "refund", "payment_id": "pay_1", "status": "processed",
        "receipt": "rfd_ours", "notes": {"refund_id": "rfd_ours"},
    },
    "dispute": {"id": "disp_1", "entity": "dispute", "status": "open"},
    "payment.downtime": {
        "id": "down_1", "entity": "payment.downtime", "method": "upi", "status": "started",
        "severity": "high", "begin": 1_700_000_000, "end": None,
    },
}  # fmt: skip


def stripe_event(event_type: str, obj: Any) -> VerifiedEvent:
    payload = {"id": "evt_1", "object": "event", "type": event_type, "data": {"object": obj}}
    return VerifiedEvent(Gateway.STRIPE, "evt_1", event_type, payload, json.dumps(payload))


def razorpay_event(event_type: str, payload: Any) -> VerifiedEvent:
    body = {"entity": "event", "event": event_type, "payload": payload, "created_at": 1}
    return VerifiedEvent(Gateway.RAZORPAY, "evt_r1", event_type, body, json.dumps(body))


def stripe_object_for(event_type: str) -> dict[str, Any]:
    if event_type.startswith("payment_intent."):
        return STRIPE_OBJECTS["payment_intent"]
    if event_type.startswith("refund.") or event_type == "charge.refund.updated":
        return STRIPE_OBJECTS["refund"]
    if event_type.startswith("charge.dispute."):
        return STRIPE_OBJECTS["dispute"]
    if event_type.startswith("account."):
        return STRIPE_OBJECTS["account"]
    return STRIPE_OBJECTS["charge"]


def razorpay_payload() -> dict[str, Any]:
    """Every entity a Razorpay event may carry."""
    return {name: {"entity": entity} for name, entity in RAZORPAY_ENTITIES.items()}


def parse(event: VerifiedEvent) -> GatewayEvent:
    return KITS[event.gateway].parse(event)


@pytest.mark.parametrize(("event_type", "expected"), STRIPE_EVENT_TYPES.items())
def test_every_stripe_event_type_is_classified(event_type: str, expected: type) -> None:
    event = parse(stripe_event(event_type, stripe_object_for(event_type)))
    assert isinstance(event, expected), event
    if isinstance(event, NoAction):
        assert event.reason


@pytest.mark.parametrize(("event_type", "expected"), RAZORPAY_EVENT_TYPES.items())
def test_every_razorpay_event_type_is_classified(event_type: str, expected: type) -> None:
    event = parse(razorpay_event(event_type, razorpay_payload()))
    assert isinstance(event, expected), event
    if isinstance(event, NoAction):
        assert event.reason


def test_every_listed_event_type_is_known_to_the_metrics() -> None:
    assert set(STRIPE_EVENT_TYPES) - KITS[Gateway.STRIPE].event_types == {
        "customer.created",
        "invoice.paid",
    }
    assert set(RAZORPAY_EVENT_TYPES) == KITS[Gateway.RAZORPAY].event_types


def test_stripe_declined_payment_reads_as_a_failed_attempt_of_its_intent() -> None:
    event = parse(stripe_event("payment_intent.payment_failed", STRIPE_OBJECTS["payment_intent"]))
    assert event == PaymentFact(
        gateway=Gateway.STRIPE, event_id="evt_1", kind=PaymentEventKind.FAILED,
        gateway_payment_id="pi_1", gateway_charge_id="ch_1", error_code="insufficient_funds",
        error_message="Your card has insufficient funds.",
    )  # fmt: skip
    assert event.subject == "payment:pi_1"


def test_stripe_expanded_charge_reads_as_its_id() -> None:
    intent = {**STRIPE_OBJECTS["payment_intent"], "latest_charge": {"id": "ch_9"}}
    event = parse(stripe_event("payment_intent.succeeded", intent))
    assert isinstance(event, PaymentFact) and event.gateway_charge_id == "ch_9"


def test_stripe_refund_carries_our_refund_id_only_as_a_hint() -> None:
    event = parse(stripe_event("refund.updated", STRIPE_OBJECTS["refund"]))
    assert event == RefundFact(
        gateway=Gateway.STRIPE, event_id="evt_1", event_type="refund.updated",
        gateway_refund_id="re_1", gateway_status="succeeded", gateway_payment_id="pi_1",
        our_refund_id="rfd_ours", reason="requested_by_customer",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "active"),
        ({"capabilities": {"transfers": "inactive"}}, "restricted"),
        ({"payouts_enabled": False}, "restricted"),
        ({"charges_enabled": False, "capabilities": {}}, "restricted"),
        ({"charges_enabled": False, "details_submitted": False}, "pending"),
    ],
)
def test_stripe_account_updated_reads_as_the_sellers_onboarding(
    changes: dict[str, Any], state: str
) -> None:
    event = parse(stripe_event("account.updated", {**STRIPE_OBJECTS["account"], **changes}))
    assert event == SellerAccountFact(
        gateway=Gateway.STRIPE, event_id="evt_1", gateway_account_id="acct_1",
        onboarding_state=state,  # type: ignore[arg-type]
    )  # fmt: skip
    assert event.subject == "account:acct_1"


def test_stripe_account_updated_without_an_account_needs_no_action() -> None:
    event = parse(stripe_event("account.updated", STRIPE_OBJECTS["charge"]))
    assert isinstance(event, NoAction) and "account" in event.reason


def test_razorpay_payment_reads_as_an_event_of_its_order() -> None:
    event = parse(razorpay_event("payment.failed", razorpay_payload()))
    assert event == PaymentFact(
        gateway=Gateway.RAZORPAY, event_id="evt_r1", kind=PaymentEventKind.FAILED,
        gateway_payment_id="order_1", gateway_charge_id="pay_1", error_code="BAD_REQUEST_ERROR",
        error_message="Payment failed",
    )  # fmt: skip


def test_razorpay_refund_names_its_payment_and_our_receipt() -> None:
    event = parse(razorpay_event("refund.processed", razorpay_payload()))
    assert event == RefundFact(
        gateway=Gateway.RAZORPAY, event_id="evt_r1", event_type="refund.processed",
        gateway_refund_id="rfnd_1", gateway_status="processed", gateway_charge_id="pay_1",
        our_refund_id="rfd_ours",
    )  # fmt: skip


def test_razorpay_auto_refund_of_an_uncaptured_authorization_needs_no_action() -> None:
    payload = razorpay_payload()
    payload["payment"] = {"entity": {**RAZORPAY_ENTITIES["payment"], "captured": False}}
    assert isinstance(parse(razorpay_event("refund.processed", payload)), NoAction)


def test_razorpay_downtime_reads_its_window() -> None:
    event = parse(razorpay_event("payment.downtime.started", razorpay_payload()))
    assert isinstance(event, DowntimeFact)
    assert (event.downtime_id, event.method, event.status, event.severity) == (
        "down_1",
        "upi",
        "started",
        "high",
    )
    assert event.began_at is not None and event.began_at.year == 2023 and event.ends_at is None


ODD_VALUES: list[Any] = ["x", 7, 5.5, None, True, [], ["pi_1"], {"id": {"id": "x"}}, "é" * 300]


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("event_type", sorted(STRIPE_EVENT_TYPES))
def test_stripe_objects_of_unexpected_shape_never_break_the_parser(
    event_type: str, value: Any
) -> None:
    for obj in (value, {**stripe_object_for(event_type), "id": value}):
        event = parse(stripe_event(event_type, obj))
        assert isinstance(event, GatewayEvent)
    data_is_text = stripe_event(event_type, None)
    data_is_text.payload["data"] = value
    assert isinstance(parse(data_is_text), GatewayEvent)


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("event_type", sorted(RAZORPAY_EVENT_TYPES))
def test_razorpay_entities_of_unexpected_shape_never_break_the_parser(
    event_type: str, value: Any
) -> None:
    payloads: list[Any] = [value, {name: value for name in RAZORPAY_ENTITIES}]
    for name, entity in RAZORPAY_ENTITIES.items():
        for key in ("id", "order_id", "payment_id", "status", "receipt", "begin", "captured"):
            odd = {**entity, key: value}
            payloads.append({**razorpay_payload(), name: {"entity": odd}})
    for payload in payloads:
        assert isinstance(parse(razorpay_event(event_type, payload)), GatewayEvent)


def test_a_numeric_order_id_is_no_checkout_of_ours() -> None:
    payload = razorpay_payload()
    payload["payment"] = {"entity": {**RAZORPAY_ENTITIES["payment"], "order_id": 5}}
    assert isinstance(parse(razorpay_event("payment.failed", payload)), NoAction)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
STRIPE_TYPES = st.sampled_from(sorted(STRIPE_EVENT_TYPES)) | st.text(min_size=1, max_size=30)
RAZORPAY_TYPES = st.sampled_from(sorted(RAZORPAY_EVENT_TYPES)) | st.text(min_size=1, max_size=30)


def _with_known_keys(draw: st.DrawFn, keys: list[str]) -> dict[str, Any]:
    return {key: draw(json_values) for key in keys if draw(st.booleans())}


@st.composite
def stripe_bodies(draw: st.DrawFn) -> dict[str, Any]:
    obj = _with_known_keys(draw, ["id", "object", "status", "latest_charge", "metadata",
                                  "last_payment_error", "payment_intent", "reason"])  # fmt: skip
    return {
        "id": draw(st.text(max_size=30) | json_values),
        "type": draw(STRIPE_TYPES | json_values),
        "data": draw(st.just({"object": obj}) | json_values),
    }


@st.composite
def razorpay_bodies(draw: st.DrawFn) -> dict[str, Any]:
    entities = {
        name: {"entity": _with_known_keys(draw, list(entity))}
        for name, entity in RAZORPAY_ENTITIES.items()
        if draw(st.booleans())
    }
    return {
        "event": draw(RAZORPAY_TYPES | json_values),
        "created_at": int(time.time()),
        "payload": draw(st.just(entities) | json_values),
    }


CONFIG = WebhookConfig(("secret",), 3600)


@settings(max_examples=300, deadline=None)
@given(stripe_bodies())
def test_signed_random_stripe_events_verify_and_parse_or_are_refused(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    now = int(time.time())
    signed = hmac.new(b"secret", f"{now}.".encode() + raw, hashlib.sha256).hexdigest()
    kit = KITS[Gateway.STRIPE]
    verified = kit.verify(raw, {"Stripe-Signature": f"t={now},v1={signed}"}, CONFIG, now)
    if isinstance(verified, VerifiedEvent):
        assert isinstance(kit.parse(verified), GatewayEvent)
    else:
        assert verified.code == "malformed_event"


@settings(max_examples=300, deadline=None)
@given(razorpay_bodies())
def test_signed_random_razorpay_events_verify_and_parse_or_are_refused(
    body: dict[str, Any],
) -> None:
    raw = json.dumps(body).encode()
    headers = {
        "X-Razorpay-Signature": hmac.new(b"secret", raw, hashlib.sha256).hexdigest(),
        "X-Razorpay-Event-Id": "evt_random",
    }
    kit = KITS[Gateway.RAZORPAY]
    verified = kit.verify(raw, headers, CONFIG, time.time())
    if isinstance(verified, VerifiedEvent):
        assert isinstance(kit.parse(verified), GatewayEvent)
    else:
        assert verified.code == "malformed_event"


def test_a_signed_authorization_carries_its_snapshot_and_a_malformed_one_does_not() -> None:
    intent = {
        "id": "pi_1", "status": "requires_capture", "amount": 2_500, "currency": "usd",
        "amount_capturable": 1_000, "amount_received": 0, "latest_charge": "ch_1",
    }  # fmt: skip
    event = parse(stripe_event("payment_intent.amount_capturable_updated", intent))
    assert isinstance(event, PaymentFact)
    assert event.snapshot == PaymentSnapshot(
        status=PaymentStatus.AUTHORIZED, amount=2_500, currency="USD", amount_capturable=1_000
    )
    assert event.fact_key == "authorized:ch_1"
    for broken in ({"amount": "2500"}, {"amount": True}, {"currency": 7}, {"status": "x"}):
        odd = parse(stripe_event("payment_intent.succeeded", {**intent, **broken}))
        assert isinstance(odd, PaymentFact) and odd.snapshot is None  # the saga looks it up
    payment = {"id": "pay_1", "order_id": "order_1", "status": "captured", "amount": 900,
               "currency": "INR", "captured": True}  # fmt: skip
    razorpay = parse(razorpay_event("payment.captured", {"payment": {"entity": payment}}))
    assert isinstance(razorpay, PaymentFact) and razorpay.snapshot == PaymentSnapshot(
        status=PaymentStatus.CAPTURED, amount=900, currency="INR", amount_captured=900
    )


def test_a_client_confirmation_reads_as_the_authorization_razorpay_showed() -> None:
    def read(payment_id: str, status: PaymentStatus) -> GatewayPayment:
        ref = GatewayPaymentRef(
            gateway=Gateway.RAZORPAY, gateway_payment_id="order_1", gateway_charge_id=payment_id
        )
        return GatewayPayment(
            ref=ref, status=status, amount=900, currency="INR", amount_capturable=900
        )

    fact = parse(razorpay_events.client_confirmation("order_1", "pay_1", None))
    assert isinstance(fact, PaymentFact)
    assert (fact.kind, fact.gateway_payment_id, fact.gateway_charge_id) == (
        PaymentEventKind.AUTHORIZED, "order_1", "pay_1",
    )  # fmt: skip
    assert fact.snapshot is None and fact.fact_key == "authorized:pay_1"  # the saga looks

    read_now = parse(
        razorpay_events.client_confirmation(
            "order_1", "pay_1", read("pay_1", PaymentStatus.AUTHORIZED)
        )
    )
    assert isinstance(read_now, PaymentFact) and read_now.snapshot == PaymentSnapshot(
        status=PaymentStatus.AUTHORIZED, amount=900, currency="INR", amount_capturable=900
    )
    for odd in (read("pay_2", PaymentStatus.AUTHORIZED), read("pay_1", PaymentStatus.FAILED)):
        unread = parse(razorpay_events.client_confirmation("order_1", "pay_1", odd))
        assert isinstance(unread, PaymentFact) and unread.snapshot is None


def test_a_stripe_payment_intent_that_requires_action_carries_what_the_client_must_do() -> None:
    next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks/3ds"}}
    intent = {
        **STRIPE_OBJECTS["payment_intent"], "status": "requires_action",
        "next_action": next_action, "amount": 2500, "currency": "eur",
    }  # fmt: skip
    fact = parse(stripe_event("payment_intent.requires_action", intent))
    assert isinstance(fact, PaymentFact) and fact.kind is PaymentEventKind.REQUIRES_ACTION
    assert fact.snapshot is not None
    assert fact.snapshot.status is PaymentStatus.REQUIRES_ACTION
    assert fact.snapshot.next_action == next_action
