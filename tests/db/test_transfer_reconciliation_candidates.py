"""Which sellers' transfers the reconciler asks the gateways about, and what the ledger expects
the gateway to say of each: against PostgreSQL, through the payout's own ledger writes."""

from __future__ import annotations

import asyncpg

from activities.reconcile import ReconcileActivities
from db import marketplace, reconciliation
from domain.checkout import Gateway
from domain.reconcile import Candidate, ObjectKind, ReconcileRequest
from tests.db.test_payout_ledger import _split_payment


async def _transfers(pool: asyncpg.Pool, payment_id: str | None = None) -> list[Candidate]:
    found = await ReconcileActivities(pool, {}, {}, 24).find_reconciliation_candidates(
        ReconcileRequest(payment_id=payment_id)
    )
    return [c for c in found if c.kind is ObjectKind.TRANSFER]


async def test_only_transfers_the_gateway_has_are_candidates(pool: asyncpg.Pool) -> None:
    await _split_payment(pool, captured=10_000)
    await marketplace.open_payout(pool, "pay_1")

    assert await _transfers(pool) == []  # Stripe's platform still holds both shares


async def test_a_released_transfer_expects_what_reached_the_gateway(pool: asyncpg.Pool) -> None:
    await _split_payment(pool, captured=10_000)
    reseller, venue = (await marketplace.open_payout(pool, "pay_1")).transfers
    await marketplace.record_reversal(pool, "k:held", venue.transfer_id, 500, None)
    await marketplace.record_release(pool, reseller.transfer_id, "tr_g1", 7_000)
    await marketplace.record_release(pool, venue.transfer_id, "tr_g2", 1_500)
    await marketplace.record_reversal(pool, "k:paid", venue.transfer_id, 300, "trr_1")

    found = {c.object_id: c for c in await _transfers(pool)}

    v = found[venue.transfer_id]
    # 500 was taken back before the release (only in the ledger): the gateway transferred 1,500
    # and reversed 300 of it, to the venue's connected account.
    assert (v.amount, v.amount_reversed, v.destination, v.on_hold) == (
        1_500,
        300,
        "acct_venue",
        False,
    )
    assert (v.gateway_transfer_id, v.ledger_status, v.workflow_id) == (
        "tr_g2", "released", "payout-pay_1"
    )  # fmt: skip
    assert v.closed  # never signalled: a disagreement is an operator's flag
    r = found[reseller.transfer_id]
    assert (r.amount, r.amount_reversed, r.destination) == (7_000, 0, "acct_reseller")


async def test_a_checked_transfer_waits_until_it_changes_but_one_payment_asks_again(
    pool: asyncpg.Pool,
) -> None:
    await _split_payment(pool, captured=10_000)
    reseller, venue = (await marketplace.open_payout(pool, "pay_1")).transfers
    await marketplace.record_release(pool, reseller.transfer_id, "tr_g1", 7_000)
    await marketplace.record_release(pool, venue.transfer_id, "tr_g2", 2_000)
    first = await _transfers(pool)
    await reconciliation.mark_reconciled(pool, first[0])

    assert [c.object_id for c in await _transfers(pool)] == [first[1].object_id]
    assert len(await _transfers(pool, "pay_1")) == 2


async def test_a_transfer_the_gateway_holds_is_asked_about_every_run(pool: asyncpg.Pool) -> None:
    await _split_payment(pool, captured=10_000)
    reseller, _ = (await marketplace.open_payout(pool, "pay_1")).transfers
    await marketplace.record_held_transfer(pool, reseller.transfer_id, "trf_held")
    await pool.execute("UPDATE transfers SET updated_at = now() - interval '30 days'")
    held = await _transfers(pool)
    await reconciliation.mark_reconciled(pool, held[0])

    again = await _transfers(pool)
    assert [(c.gateway_transfer_id, c.amount, c.on_hold) for c in again] == [
        ("trf_held", 7_000, True)
    ]
    assert again[0].gateway is Gateway.STRIPE  # the seeded seller's gateway
