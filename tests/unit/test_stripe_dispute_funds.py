"""Stripe dispute funds are counted in the dispute's currency: a dispute's balance transactions are
in the account's settlement currency (https://docs.stripe.com/api/balance_transactions/object,
`exchange_rate`), while the ledger posts the dispute in the payment's currency."""

from __future__ import annotations

from typing import Any

import stripe

from activities.gateways.stripe.adapter import _dispute


def stripe_dispute(status: str, transactions: list[dict[str, Any]]) -> stripe.Dispute:
    return stripe.Dispute.construct_from(
        {
            "id": "dp_1",
            "object": "dispute",
            "amount": 1000,
            "currency": "eur",
            "status": status,
            "reason": "fraudulent",
            "payment_intent": "pi_1",
            "charge": "ch_1",
            "evidence_details": {"due_by": 1_700_000_000},
            "balance_transactions": transactions,
        },
        "sk_test_unit",
    )


def transaction(amount: int, category: str) -> dict[str, Any]:
    """A USD balance transaction of a EUR dispute: 10.00 EUR settled as 12.34 USD."""
    return {
        "id": f"txn_{category}",
        "object": "balance_transaction",
        "amount": amount,
        "currency": "usd",
        "exchange_rate": 1.234,
        "reporting_category": category,
    }


def test_withdrawal_in_the_settlement_currency_counts_the_disputed_amount() -> None:
    parsed = _dispute(stripe_dispute("needs_response", [transaction(-1234, "dispute")]))

    assert (parsed.amount, parsed.currency) == (1000, "EUR")
    assert (parsed.amount_withdrawn, parsed.amount_reinstated) == (1000, 0)


def test_withdrawal_and_reinstatement_each_count_the_disputed_amount_once() -> None:
    parsed = _dispute(
        stripe_dispute(
            "won", [transaction(-1234, "dispute"), transaction(1250, "dispute_reversal")]
        )
    )

    assert (parsed.amount_withdrawn, parsed.amount_reinstated) == (1000, 1000)


def test_no_balance_transaction_means_no_funds_moved() -> None:
    parsed = _dispute(stripe_dispute("warning_needs_response", []))

    assert (parsed.amount_withdrawn, parsed.amount_reinstated) == (0, 0)
