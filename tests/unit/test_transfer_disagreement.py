"""What the reconciler calls a disagreement between the ledger's transfer to a seller and the
gateway's: the amount transferred, what was reversed, the seller's account and the hold."""

from __future__ import annotations

import pytest

from activities.reconcile import transfer_disagreement, transfer_status
from domain.checkout import Gateway
from domain.marketplace import GatewayTransfer
from domain.reconcile import Candidate, ObjectKind


def ledger(on_hold: bool = False, reversed_: int = 0) -> Candidate:
    return Candidate(
        kind=ObjectKind.TRANSFER,
        object_id="pay_1:s1",
        payment_id="pay_1",
        workflow_id="payout-pay_1",
        gateway=Gateway.RAZORPAY,
        ledger_status="held" if on_hold else "released",
        amount=8_000,
        currency="INR",
        gateway_transfer_id="trf_1",
        destination="acc_1",
        amount_reversed=reversed_,
        on_hold=on_hold,
        closed=True,
    )


def gateway(**changes: object) -> GatewayTransfer:
    fields: dict[str, object] = {
        "gateway_transfer_id": "trf_1", "amount": 8_000, "amount_reversed": 0,
        "currency": "INR", "destination": "acc_1", "on_hold": False,
    }  # fmt: skip
    fields.update(changes)
    return GatewayTransfer.model_validate(fields)


def test_a_transfer_as_the_ledger_has_it_agrees() -> None:
    assert transfer_disagreement(ledger(), gateway()) is None
    assert transfer_disagreement(ledger(on_hold=True), gateway(on_hold=True)) is None
    assert transfer_disagreement(ledger(reversed_=1_600), gateway(amount_reversed=1_600)) is None


def test_a_gateway_that_cannot_hold_is_not_asked_about_holds() -> None:
    assert transfer_disagreement(ledger(on_hold=True), gateway(on_hold=None)) is None


@pytest.mark.parametrize(
    ("candidate", "theirs", "reason"),
    [
        (ledger(), gateway(amount=7_000), "gateway transferred 7000 INR, the ledger 8000 INR"),
        (ledger(), gateway(currency="USD"), "gateway transferred 8000 USD, the ledger 8000 INR"),
        (ledger(), gateway(amount_reversed=500), "gateway reversed 500, the ledger 0"),
        (ledger(reversed_=500), gateway(), "gateway reversed 0, the ledger 500"),
        (
            ledger(),
            gateway(destination="acc_2"),
            "paid account acc_2, the seller's account is acc_1",
        ),
        (ledger(on_hold=True), gateway(), "the ledger says held, the gateway on_hold=False"),
        (ledger(), gateway(on_hold=True), "the ledger says released, the gateway on_hold=True"),
    ],
)
def test_each_difference_is_named(
    candidate: Candidate, theirs: GatewayTransfer, reason: str
) -> None:
    disagreement = transfer_disagreement(candidate, theirs)
    assert disagreement is not None and reason in disagreement
    assert disagreement.startswith("transfer trf_1: ")


def test_the_gateway_status_in_a_word() -> None:
    assert transfer_status(gateway()) == "transferred"
    assert transfer_status(gateway(on_hold=True)) == "transferred_on_hold"
    assert transfer_status(gateway(amount_reversed=10)) == "partially_reversed"
    assert transfer_status(gateway(amount_reversed=8_000)) == "reversed"
