"""One card-data detector for every caller-supplied string: numbers however they are written,
keys however they are spelled, in every free-text field; refused without echoing the value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.card_data import CARD_DATA_REFUSED, contains_card_number, is_card_data_key
from api.disputes import AcceptBody, EvidenceBody
from api.models import CancelBody, CreateCheckout, ReviewBody
from api.refunds import CreateRefund
from testkit.shop import new_order_id

VISA = "4111111111111111"


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "4111\t1111\t1111\t1111",
        "4111  1111  1111  1111",
        "card 4111 1111 1111 1111 exp 12/26",
        "4111 1111 1111 1111 12 26",  # the number followed by its expiry
        "4111111111111111 1226 123",
        "pay with 378282246310005 please",  # Amex, 15 digits
        "5555-5555-5555-4444",
        "x6011111111111117y",
    ],
)
def test_card_numbers_are_found_however_they_are_written(text: str) -> None:
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "order-1001",
        "4111111111111112",  # fails the Luhn check
        "1733011200000",  # a millisecond timestamp: no card industry starts with 1
        "9400100000000000000000",  # a USPS tracking number
        "call +1 415 555 0100",
        "2026-12-01T02:43:31Z",
        "INV-2026-000123",
    ],
)
def test_ordinary_strings_are_not_card_numbers(text: str) -> None:
    assert not contains_card_number(text)


@pytest.mark.parametrize(
    "key",
    ["card_number", "card-number", "Card Number", "cardNo", "pan", "cvv", "cvv_code", "CVC2",
     "security-code", "card_expiry", "exp_month", "expiry", "track2"],
)  # fmt: skip
def test_card_data_keys_are_known_however_they_are_spelled(key: str) -> None:
    assert is_card_data_key(key)


@pytest.mark.parametrize("key", ["order_ref", "customer_tier", "campaign", "cid", "expected"])
def test_ordinary_keys_are_not_card_data(key: str) -> None:
    assert not is_card_data_key(key)


CHECKOUT: dict[str, Any] = {
    "order_id": "o1",
    "amount": 2500,
    "currency": "USD",
    "gateway": "stripe",
    "customer_id": "c_42",
}

SECRET_PAN = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (CreateCheckout, {**CHECKOUT, "metadata": {"note": f"card {SECRET_PAN} exp 12/26"}}),
        (CreateCheckout, {**CHECKOUT, "metadata": {"cvv_code": "123"}}),
        (CreateCheckout, {**CHECKOUT, "metadata": {"card-number": "x"}}),
        (CreateCheckout, {**CHECKOUT, "order_id": "4111111111111111"}),
        (CreateCheckout, {**CHECKOUT, "customer_id": "4111-1111-1111-1111"}),
        (CreateCheckout, {**CHECKOUT, "customer_email": "4111111111111111@example.com"}),
        (CancelBody, {"reason": f"customer read me {SECRET_PAN}"}),
        (CreateRefund, {"reason": "requested_by_customer", "note": f"refund to {SECRET_PAN}"}),
        (ReviewBody, {"decision": "approve", "note": f"card was {SECRET_PAN}"}),
        (EvidenceBody, {"product_description": f"bought with {SECRET_PAN}"}),
        (EvidenceBody, {"uncategorized_text": f"card {SECRET_PAN}"}),
        (AcceptBody, {"note": SECRET_PAN}),
    ],
)
def test_every_request_body_refuses_card_data_without_echoing_it(
    model: type[BaseModel], body: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    errors = refused.value.errors(include_input=False)
    assert [e["type"] for e in errors] == [CARD_DATA_REFUSED]
    assert "1111" not in str(errors)


async def test_the_api_answers_card_data_refused_and_never_echoes_it() -> None:
    import httpx
    from fastapi import FastAPI

    from api.problems import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/cancel")
    async def cancel(body: CancelBody) -> dict[str, str]:
        return {"reason": body.reason}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        answer = await c.post("/cancel", json={"reason": f"card {SECRET_PAN} cvv 123"})
    assert answer.status_code == 422
    assert answer.json()["code"] == CARD_DATA_REFUSED
    assert "1111" not in answer.text and "123" not in answer.text.replace("422", "")


def test_the_test_kits_order_ids_never_look_like_card_numbers() -> None:
    """16 random hex digits held a Luhn-valid card-like run about once in 1,400 ids, which the
    benchmark's thousands of checkouts met (a 422 mid-run)."""
    assert not any(contains_card_number(new_order_id("bench")) for _ in range(20_000))
