"""Custom search attributes: how operators find a payment's workflows in the Temporal UI, e.g.
`PaymentStatus = "authorized" AND Gateway = "stripe"` or `CustomerId = "c_42"`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PAYMENT_ID = SearchAttributeKey.for_keyword("PaymentId")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
GATEWAY = SearchAttributeKey.for_keyword("Gateway")
PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
DISPUTE_STATUS = SearchAttributeKey.for_keyword("DisputeStatus")
REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")

ALL: list[SearchAttributeKey[str] | SearchAttributeKey[int]] = [
    PAYMENT_ID,
    ORDER_ID,
    CUSTOMER_ID,
    GATEWAY,
    PAYMENT_STATUS,
    AMOUNT_MINOR,
    CURRENCY,
    DISPUTE_STATUS,
    REFUND_STATUS,
]


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` arguments that register every attribute at start."""
    flags: list[str] = []
    for key in ALL:
        kind = "Int" if key is AMOUNT_MINOR else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
