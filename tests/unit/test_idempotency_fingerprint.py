"""The fingerprint of a request body survives a release that adds an optional field."""

import hashlib
import json

from api.idempotency import request_hash
from api.models import CreateCheckout


def test_a_retry_across_a_release_that_added_optional_fields_keeps_its_fingerprint() -> None:
    body = {
        "order_id": "order-1",
        "amount": 1500,
        "currency": "USD",
        "gateway": "stripe",
        "customer_id": "cus-1",
    }
    request = CreateCheckout.model_validate(body)
    # What the release before risk screening stored: the body's fields with their defaults,
    # without client_ip and customer_country (added later, both optional).
    before = request.model_dump(mode="json", exclude={"client_ip", "customer_country"})
    before = {k: v for k, v in before.items() if v is not None}
    stored = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()

    assert request_hash(request) == stored


def test_another_body_has_another_fingerprint() -> None:
    one = CreateCheckout.model_validate(
        {
            "order_id": "o",
            "amount": 1500,
            "currency": "USD",
            "gateway": "stripe",
            "customer_id": "c",
        }
    )
    assert request_hash(one) != request_hash(one.model_copy(update={"amount": 1501}))
