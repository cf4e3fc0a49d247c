"""What the reconciler calls a disagreement between the ledger's payment and the gateway's, the
refunded totals included: a refund in flight agrees, one nobody recorded does not."""

from __future__ import annotations

import pytest

from activities.reconcile import payment_disagreement
from domain.checkout import Gateway, GatewayPayment, GatewayPaymentRef, PaymentStatus
from domain.reconcile import Candidate, ObjectKind

REF = GatewayPaymentRef(gateway=Gateway.STRIPE, gateway_payment_id="pi_1")


def ledger(status: str, refunded: int = 0, pending: int = 0) -> Candidate:
    return Candidate(
        kind=ObjectKind.PAYMENT,
        object_id="pay_1",
        payment_id="pay_1",
        workflow_id="checkout-o1",
        gateway=Gateway.STRIPE,
        ledger_status=status,
        amount=2_500,
        currency="USD",
        amount_captured=2_500,
        amount_refunded=refunded,
        amount_refund_pending=pending,
        payment_ref=REF,
        closed=True,
    )


def gateway(refunded: int) -> GatewayPayment:
    return GatewayPayment(
        ref=REF,
        status=PaymentStatus.CAPTURED,
        amount=2_500,
        currency="USD",
        amount_captured=2_500,
        amount_refunded=refunded,
    )


@pytest.mark.parametrize(
    ("status", "ours", "pending", "theirs"),
    [
        ("captured", 0, 0, 0),
        ("partially_refunded", 700, 0, 700),
        ("partially_refunded", 700, 500, 700),  # the second refund has not reached it yet
        ("partially_refunded", 700, 500, 1_200),  # it has, and its webhook is on its way
        ("refunded", 2_500, 0, 2_500),
    ],
)
def test_refunded_totals_that_agree(status: str, ours: int, pending: int, theirs: int) -> None:
    assert payment_disagreement(ledger(status, ours, pending), gateway(theirs)) is None


def test_a_refund_made_without_us_is_a_disagreement() -> None:
    disagreement = payment_disagreement(ledger("captured"), gateway(700))

    assert disagreement == "gateway refunded 700, the ledger 0 with 0 pending"


def test_more_refunded_than_ours_and_pending_together_is_a_disagreement() -> None:
    assert payment_disagreement(ledger("partially_refunded", 700, 500), gateway(1_500))


def test_a_refund_the_ledger_holds_but_the_gateway_never_made_is_a_disagreement() -> None:
    disagreement = payment_disagreement(ledger("partially_refunded", 700), gateway(0))

    assert disagreement == "gateway refunded 0, the ledger 700 with 0 pending"
