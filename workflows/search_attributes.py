"""Custom search attributes: how operators find a payment's workflows in the Temporal UI, e.g.
`PaymentStatus = "authorized" AND Gateway = "stripe"` or `CustomerId = "c_42"`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from domain import names
from domain.checkout import CheckoutRequest, PaymentStatus

PAYMENT_ID = SearchAttributeKey.for_keyword("PaymentId")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
GATEWAY = SearchAttributeKey.for_keyword("Gateway")
PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
DISPUTE_STATUS = SearchAttributeKey.for_keyword("DisputeStatus")
REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
RISK_DECISION = SearchAttributeKey.for_keyword("RiskDecision")
"""`review` while a checkout waits for an operator's risk decision, then how the review ended."""

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
    RISK_DECISION,
]


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` arguments that register every attribute at start."""
    flags: list[str] = []
    for key in ALL:
        kind = "Int" if key is AMOUNT_MINOR else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags


def checkout_at_start(request: CheckoutRequest, workflow_id: str) -> TypedSearchAttributes:
    """What a checkout is found by from its first moment, set by whoever starts it (attributes
    given at start cost no Temporal action; the saga upserts only its status later)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(PAYMENT_ID, names.checkout_id_for(workflow_id)),
            SearchAttributePair(ORDER_ID, request.order_id),
            SearchAttributePair(CUSTOMER_ID, request.customer_id),
            SearchAttributePair(GATEWAY, request.gateway.value),
            SearchAttributePair(PAYMENT_STATUS, PaymentStatus.CREATED.value),
            SearchAttributePair(AMOUNT_MINOR, request.amount),
            SearchAttributePair(CURRENCY, request.currency),
        ]
    )


def refund_at_start(payment_id: str) -> TypedSearchAttributes:
    """A refund is found next to its payment from its first moment; the saga publishes its
    status when it changes."""
    return TypedSearchAttributes(
        [SearchAttributePair(PAYMENT_ID, payment_id), SearchAttributePair(REFUND_STATUS, "pending")]
    )
