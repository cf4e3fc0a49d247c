"""The contract types: what crosses Temporal tolerates fields it does not know (a field removed in a
deploy must not break in-flight histories); what arrives over HTTP refuses them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from api.disputes import EvidenceBody
from api.models import CreateCheckout
from domain.checkout import CheckoutState, PaymentEvent
from domain.refund import RefundRequest

STATE = {
    "checkout_id": "pay_" + "0" * 24,
    "workflow_id": "checkout-o1",
    "order_id": "o1",
    "customer_id": "c_42",
    "gateway": "stripe",
    "capture_mode": "automatic",
    "amount": 2500,
    "currency": "USD",
    "status": "created",
    "idempotency_key": "key-00000001",
    "history": [{"at": datetime.now(UTC).isoformat(), "step": "s", "status": "created"}],
}


def test_workflow_state_from_an_older_or_newer_version_loads_without_its_unknown_fields() -> None:
    state = CheckoutState.model_validate({**STATE, "field_removed_in_a_deploy": 7})
    assert state.amount == 2500
    assert "field_removed_in_a_deploy" not in state.model_dump()
    event = PaymentEvent.model_validate(
        {"event_id": "e", "kind": "authorized", "gateway_payment_id": "pi", "new_hint": {}}
    )
    assert event.kind == "authorized"
    request = RefundRequest.model_validate({"payment_id": "p", "idempotency_key": "k", "x": 1})
    assert request.amount is None


def test_http_bodies_refuse_fields_they_do_not_know() -> None:
    body = {
        "order_id": "o1",
        "amount": 2500,
        "currency": "USD",
        "gateway": "stripe",
        "customer_id": "c_42",
    }
    CreateCheckout.model_validate(body)
    with pytest.raises(ValidationError, match="extra"):
        CreateCheckout.model_validate({**body, "amount_refunded": 0})
    with pytest.raises(ValidationError, match="extra"):
        EvidenceBody.model_validate({"product_description": "a mug", "shipping_label": "x"})
