"""The fault campaign in small (testkit/campaign.py; `python -m bench.faults` runs it large): a
few dozen checkouts of both gateways, some disputed, while the worker is SIGKILLed at random
moments, then while gateway answers are lost after the money moved; nothing may be lost or doubled.
The campaign gives the shared stack back whole, even on failure."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from devstack.stack import Stack
from testkit.campaign import Campaign, Saga, check_invariants
from testkit.shop import Endpoints, Shop, StatusWatcher, connect_dev_temporal


def checkouts(count: int, rng: random.Random) -> list[Saga]:
    """Both gateways; a few left unpaid, which must still be waiting for the customer; some
    disputed by the customer's bank, won or lost."""
    sagas = [
        Saga("stripe" if i % 2 == 0 else "razorpay", pay=rng.random() > 0.1) for i in range(count)
    ]
    for i, saga in enumerate(sagas):
        if saga.pay and i % 5 == 1:
            saga.dispute = "won" if i % 2 else "lost"
    return sagas


async def test_worker_kills_and_lost_gateway_answers_neither_lose_nor_double_money(
    stack: Stack,
) -> None:
    since = datetime.now(UTC)
    temporal = await connect_dev_temporal(stack.temporal_address)
    async with Shop(Endpoints.of(stack)) as shop, StatusWatcher(shop.pool, 0.1) as watcher:
        campaign = Campaign(stack, shop, temporal, seed=13)
        sagas = checkouts(24, campaign.rng)
        try:
            await campaign.round(watcher, "worker_sigkill", sagas[:12])
            await campaign.round(watcher, "answers_lost", sagas[12:])
        finally:
            await campaign.restore()
        found = await check_invariants(shop, temporal, sagas, since)

    assert found.driver_errors == []
    assert found.violations() == []
    assert found.checkouts == len(sagas)
    assert found.captured + found.rightly_waiting == len(sagas)
    assert found.money_lost_or_doubled == 0
    assert found.disputes_decided == sum(1 for s in sagas if s.dispute)
