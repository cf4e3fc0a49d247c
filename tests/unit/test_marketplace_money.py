"""Splits and the proportional arithmetic of payouts: nothing lost, nothing created, no part
gives back more than it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.checkout import Gateway
from domain.marketplace import Payout, PayoutTransfer, allocate, reversal_for
from domain.splits import SellerShare, ShareKind, Splits, SplitsError, check_splits

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def splits(*amounts: int, fee: int) -> Splits:
    return Splits(
        shares=[SellerShare(seller_id=f"s{i}", amount=a) for i, a in enumerate(amounts)],
        platform_fee=fee,
    )


def test_splits_that_add_up_to_the_amount_are_accepted() -> None:
    check_splits(splits(7_000, 2_000, fee=1_000), 10_000, NOW + timedelta(days=30), NOW)


@pytest.mark.parametrize("amount", [9_999, 10_001])
def test_splits_that_do_not_add_up_are_refused_with_a_code(amount: int) -> None:
    with pytest.raises(SplitsError) as refused:
        check_splits(splits(7_000, 2_000, fee=1_000), amount, None, NOW)
    assert refused.value.code == "splits_do_not_add_up"


def test_a_release_date_in_the_past_is_refused() -> None:
    with pytest.raises(SplitsError) as refused:
        check_splits(splits(9_000, fee=1_000), 10_000, NOW - timedelta(seconds=1), NOW)
    assert refused.value.code == "release_at_in_the_past"


def test_shares_are_positive_and_one_per_seller_and_kind() -> None:
    with pytest.raises(ValidationError):
        splits(0, fee=1)
    with pytest.raises(ValidationError):
        Splits(shares=[SellerShare(seller_id="a", amount=1)] * 2, platform_fee=0)
    royalty = Splits(
        shares=[
            SellerShare(seller_id="a", amount=1),
            SellerShare(seller_id="a", amount=1, kind=ShareKind.ROYALTY),
        ],
        platform_fee=0,
    )
    assert royalty.total == 2


def test_allocate_uses_largest_remainders() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [7_000, 2_000, 1_000]) == [7, 2, 1]
    assert allocate(1, [1, 2]) == [0, 1]
    assert allocate(0, [0, 0]) == [0, 0]


@given(
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8),
    fraction=st.fractions(min_value=0, max_value=1),
)
def test_allocate_loses_and_creates_nothing_and_stays_within_each_weight(
    weights: list[int], fraction: object
) -> None:
    total = sum(weights)
    amount = int(total * fraction)  # type: ignore[operator]
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    assert all(0 <= p <= w for p, w in zip(parts, weights, strict=True))


def payout(amounts: list[int], fee: int) -> Payout:
    return Payout(
        payment_id="pay_1",
        gateway=Gateway.STRIPE,
        currency="USD",
        gateway_payment_id="pi_1",
        platform_fee=fee,
        transfers=[
            PayoutTransfer(
                transfer_id=f"tr_{i}", seller_id=f"s{i}", gateway_account_id="acct", amount=a
            )
            for i, a in enumerate(amounts)
        ],
    )


def apply(p: Payout, clawback: int) -> Payout:
    reversal = reversal_for(p, clawback)
    if reversal is None:
        return p
    by_id = {line.transfer_id: line.amount for line in reversal.lines}
    return p.model_copy(
        update={
            "transfers": [
                t.model_copy(update={"reversed": t.reversed + by_id.get(t.transfer_id, 0)})
                for t in p.transfers
            ],
            "fee_reversed": p.fee_reversed + reversal.fee_amount,
            "clawed_back": reversal.clawed_back_to,
        }
    )


def test_a_partial_refund_is_taken_from_every_share_and_the_fee_in_proportion() -> None:
    reversal = reversal_for(payout([7_000, 2_000], 1_000), 2_500)
    assert reversal is not None
    assert [(line.transfer_id, line.amount) for line in reversal.lines] == [
        ("tr_0", 1_750),
        ("tr_1", 500),
    ]
    assert reversal.fee_amount == 250
    assert reversal.key == "pay_1:clawback:2500"


def test_the_same_clawback_twice_reverses_nothing_more() -> None:
    p = apply(payout([7_000, 2_000], 1_000), 2_500)
    assert reversal_for(p, 2_500) is None


@given(
    amounts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=5),
    fee=st.integers(min_value=0, max_value=10**6),
    steps=st.lists(st.integers(min_value=0, max_value=3 * 10**6), min_size=1, max_size=6),
)
def test_successive_clawbacks_never_reverse_more_than_the_parts_hold(
    amounts: list[int], fee: int, steps: list[int]
) -> None:
    p = payout(amounts, fee)
    total = sum(amounts) + fee
    clawback = 0
    for step in steps:
        clawback += step
        p = apply(p, clawback)
        assert all(0 <= t.reversed <= t.amount for t in p.transfers)
        assert 0 <= p.fee_reversed <= p.platform_fee
        given_back = sum(t.reversed for t in p.transfers) + p.fee_reversed
        assert given_back == p.clawed_back == min(clawback, total)
