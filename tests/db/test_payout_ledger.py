"""The payout's ledger writes: a partial capture split exactly, every write applied once however
often its activity is retried, and every posting balanced."""

from __future__ import annotations

import asyncpg

from db import marketplace
from domain.checkout import Gateway
from domain.marketplace import TransferStatus
from domain.splits import SellerShare, ShareKind, Splits


async def _split_payment(pool: asyncpg.Pool, captured: int) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway,
                              capture_mode, amount, currency, status, gateway_payment_id,
                              amount_captured)
        VALUES ('pay_1', 'o1', 'checkout-o1', 'c_1', 'stripe', 'manual', 10000, 'USD',
                'captured', 'pi_1', $1)
        """,
        captured,
    )
    for seller in ("venue", "reseller"):
        await marketplace.register_seller(
            pool, seller, Gateway.STRIPE, f"acct_{seller}", "", "active"
        )
    async with pool.acquire() as conn:
        await marketplace.record_payout_plan(
            conn,
            "pay_1",
            Splits(
                shares=[
                    SellerShare(seller_id="reseller", amount=7_000),
                    SellerShare(seller_id="venue", amount=2_000, kind=ShareKind.ROYALTY),
                ],
                platform_fee=1_000,
            ),
            None,
        )


async def _balances(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT account, sum(amount) AS total FROM ledger_entries GROUP BY account"
    )
    return {r["account"]: int(r["total"]) for r in rows}


async def test_a_partial_capture_is_split_exactly_and_opened_once(pool: asyncpg.Pool) -> None:
    await _split_payment(pool, captured=3_333)

    first = await marketplace.open_payout(pool, "pay_1")
    again = await marketplace.open_payout(pool, "pay_1")

    assert [t.amount for t in first.transfers] == [2_333, 667]
    assert first.platform_fee == 333
    assert again == first
    assert await _balances(pool) == {
        "merchant:sales": 3_333, "escrow:reseller": -2_333, "escrow:venue": -667,
        "platform:fees": -333,
    }  # fmt: skip


async def test_release_and_reversals_are_applied_once_and_balance(pool: asyncpg.Pool) -> None:
    await _split_payment(pool, captured=10_000)
    payout = await marketplace.open_payout(pool, "pay_1")
    reseller, venue = payout.transfers

    await marketplace.record_reversal(pool, "k:held", venue.transfer_id, 500, None)
    await marketplace.record_reversal(pool, "k:held", venue.transfer_id, 500, None)  # a retry
    for _ in range(2):
        await marketplace.record_release(pool, reseller.transfer_id, "tr_g1", 7_000)
        await marketplace.record_release(pool, venue.transfer_id, "tr_g2", 1_500)
        await marketplace.record_reversal(pool, "k:paid", reseller.transfer_id, 7_000, "trr_1")
        await marketplace.record_clawback(pool, "pay_1", "k", 1_000, 8_500)

    after = await marketplace.open_payout(pool, "pay_1")
    assert [(t.status, t.reversed) for t in after.transfers] == [
        (TransferStatus.REVERSED, 7_000),
        (TransferStatus.RELEASED, 500),
    ]
    assert (after.fee_reversed, after.clawed_back) == (1_000, 8_500)
    balances = await _balances(pool)
    assert sum(balances.values()) == 0
    assert balances["seller:reseller"] == 0 and balances["seller:venue"] == -1_500
    assert balances["escrow:reseller"] == 0 and balances["escrow:venue"] == 0
    assert balances["platform:fees"] == 0
    paid = await marketplace.seller_balances(pool, "venue")
    assert [(b.currency, b.held, b.paid) for b in paid] == [("USD", 0, 1_500)]
