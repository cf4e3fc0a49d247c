"""The payout saga with its activities replaced by doubles: escrow held for a month passes in
moments on the time-skipping server; operators' updates run on the dev server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from domain.marketplace import HoldPayout, Payout, PayoutNudge, PayoutState, ReleasePayoutEarly
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.payout_doubles import PAYMENT, FakePayouts
from workflows.payout import RELEASE_DATE_CALLER, PayoutWorkflow

VENUE, ARTIST = f"tr_{PAYMENT}_0", f"tr_{PAYMENT}_1"


def worker(client: Client, fake: FakePayouts, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[PayoutWorkflow],
        activities=fake.activities(),
        deployment_config=TEST_DEPLOYMENT,
    )


async def start(
    client: Client, task_queue: str, nudge: PayoutNudge | None = None
) -> WorkflowHandle[PayoutWorkflow, Payout]:
    return await client.start_workflow(
        PayoutWorkflow.run,
        PAYMENT,
        id=f"{names.payout_workflow_id(PAYMENT)}-{task_queue}",
        task_queue=task_queue,
        start_signal=names.PAYOUT_NUDGE if nudge else None,
        start_signal_args=[nudge] if nudge else [],
    )


async def test_shares_are_held_until_the_release_date_then_transferred(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    release_at = await time_skipping_env.get_current_time() + timedelta(days=45)
    fake = FakePayouts(release_at)
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, fake, tq):
        payout = await (await start(time_skipping_env.client, tq)).result()

    assert await time_skipping_env.get_current_time() >= release_at
    assert payout.state is PayoutState.RELEASED
    assert fake.released_by == [RELEASE_DATE_CALLER]
    assert fake.transferred == {VENUE: 7_000, ARTIST: 2_000}


async def test_a_refund_before_the_release_comes_out_of_the_held_shares_and_the_fee(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    release_at = await time_skipping_env.get_current_time() + timedelta(days=30)
    fake = FakePayouts(release_at)
    fake.clawback = 2_500  # a partial refund settled before the payout looked
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, fake, tq):
        payout = await (await start(time_skipping_env.client, tq)).result()

    assert fake.reversed_at_gateway == []  # nothing had been transferred yet
    assert fake.transferred == {VENUE: 7_000 - 1_750, ARTIST: 2_000 - 500}
    assert payout.fee_reversed == 250
    assert payout.clawed_back == 2_500


async def test_a_refund_after_the_release_reverses_the_transfers_in_proportion(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakePayouts(release_at=None)  # released as soon as captured
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, fake, tq):
        await (await start(time_skipping_env.client, tq)).result()
        assert fake.transferred == {VENUE: 7_000, ARTIST: 2_000}

        fake.clawback = 1_000  # the refund's ledger activity signals-with-start again
        payout = await (
            await start(time_skipping_env.client, tq, PayoutNudge(reason="refund re_1"))
        ).result()

    assert fake.reversed_at_gateway == [(VENUE, 700), (ARTIST, 200)]
    assert payout.fee_reversed == 100
    assert fake.released_by == [RELEASE_DATE_CALLER]  # released once


async def test_a_lost_dispute_after_the_release_takes_everything_back_and_no_more(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakePayouts(release_at=None)
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(time_skipping_env.client, fake, tq):
        await (await start(time_skipping_env.client, tq)).result()
        fake.clawback = 3_000  # a partial refund
        await (await start(time_skipping_env.client, tq, PayoutNudge(reason="refund"))).result()
        fake.clawback = 3_000 + 10_000  # then a dispute lost for the whole amount
        payout = await (
            await start(time_skipping_env.client, tq, PayoutNudge(reason="dispute lost"))
        ).result()

    assert [t.reversed for t in payout.transfers] == [7_000, 2_000]
    assert payout.fee_reversed == 1_000
    assert payout.clawed_back == 10_000  # never more than the parts held
    assert sum(a for _, a in fake.reversed_at_gateway) == 9_000


async def test_an_operator_releases_early_and_is_recorded(
    dev_server_env: WorkflowEnvironment,
) -> None:
    release_at = await dev_server_env.get_current_time() + timedelta(days=90)
    fake = FakePayouts(release_at)
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, tq)
        released = await handle.execute_update(
            PayoutWorkflow.release_early, ReleasePayoutEarly(caller="ops:asha")
        )
        assert released.state is PayoutState.RELEASED
        await handle.result()

    assert fake.released_by == ["ops:asha"]
    assert fake.transferred == {VENUE: 7_000, ARTIST: 2_000}


async def test_a_held_payout_is_released_by_an_operator_not_by_its_date(
    dev_server_env: WorkflowEnvironment,
) -> None:
    release_at = await dev_server_env.get_current_time() + timedelta(hours=1)
    fake = FakePayouts(release_at)
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, tq)
        held = await handle.execute_update(
            PayoutWorkflow.hold, HoldPayout(reason="venue under review", caller="ops:ravi")
        )
        assert held.state is PayoutState.ON_HOLD
        assert fake.holds == [("venue under review", "ops:ravi")]
        await handle.execute_update(
            PayoutWorkflow.release_early, ReleasePayoutEarly(caller="ops:mia")
        )
        await handle.result()

    assert fake.released_by == ["ops:mia"]


async def test_a_transfer_the_gateway_refuses_leaves_the_payout_held_for_an_operator(
    dev_server_env: WorkflowEnvironment,
) -> None:
    fake = FakePayouts(release_at=None)
    fake.refuse_transfers = True
    tq = f"payout-{uuid.uuid4().hex}"
    async with worker(dev_server_env.client, fake, tq):
        handle = await start(dev_server_env.client, tq)
        await asyncio.wait_for(fake.held.wait(), timeout=60)
        assert fake.transferred == {}
        fake.refuse_transfers = False  # the seller's account is fixed
        await handle.execute_update(
            PayoutWorkflow.release_early, ReleasePayoutEarly(caller="ops:asha")
        )
        payout = await handle.result()

    assert fake.holds == [
        ("transfer refused: stripe: destination lacks the transfers capability", "gateway")
    ]
    assert payout.state is PayoutState.RELEASED
    assert fake.released_by == ["ops:asha"]
    assert fake.transferred == {VENUE: 7_000, ARTIST: 2_000}
