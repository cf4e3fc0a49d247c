"""The webhook inbox on a real PostgreSQL: deduplication (Razorpay on the signed body too),
claims that replicas share and that keep one subject's events in order, backoff, dead letters,
replay, the wake-up notification and the retention purge."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from db import inbox

SECONDS = 60.0


def new_event(
    subject: str | None = "payment:pi_1",
    *,
    gateway: str = "stripe",
    body: str | None = None,
    body_sha256: str | None = None,
    no_action: str | None = None,
    event_id: str | None = None,
    fact_key: str | None = None,
) -> inbox.NewEvent:
    return inbox.NewEvent(
        gateway=gateway,
        event_id=event_id or f"evt_{uuid.uuid4().hex[:12]}",
        event_type="payment_intent.payment_failed",
        body=body or json.dumps({"id": "x"}),
        body_sha256=body_sha256,
        subject=subject,
        no_action=no_action,
        fact_key=fact_key,
    )


async def states(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT event_id, state FROM webhook_inbox")
    return {r["event_id"]: r["state"] for r in rows}


async def test_an_event_is_kept_once_per_id(pool: asyncpg.Pool) -> None:
    event = new_event()
    assert await inbox.receive(pool, event) is True
    assert await inbox.receive(pool, event) is False
    assert await inbox.seen(pool, "stripe", event.event_id)
    other_gateway = new_event(gateway="razorpay", event_id=event.event_id)
    assert await inbox.receive(pool, other_gateway) is True


async def test_the_same_signed_razorpay_body_under_new_ids_is_kept_once(pool: asyncpg.Pool) -> None:
    body = json.dumps({"event": "payment.failed"})
    first = new_event(gateway="razorpay", body=body, body_sha256="a" * 64)
    again = new_event(gateway="razorpay", body=body, body_sha256="a" * 64)
    assert await inbox.receive(pool, first) is True
    assert await inbox.receive(pool, again) is False
    assert list(await states(pool)) == [first.event_id]


async def test_events_needing_no_action_are_stored_settled(pool: asyncpg.Pool) -> None:
    event = new_event(subject=None, no_action="charge events mirror their payment intent's")
    await inbox.receive(pool, event)
    row = await pool.fetchrow("SELECT * FROM webhook_inbox")
    assert (row["state"], row["outcome"], row["detail"]) == (
        "delivered",
        "no_action",
        event.no_action,
    )
    assert row["delivered_at"] is not None
    assert await inbox.claim(pool, 10, SECONDS) == []


async def test_a_json_body_postgres_cannot_hold_is_a_data_error(pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.DataError):
        await inbox.receive(pool, new_event(body='{"a": "\\u0000"}'))
    assert await states(pool) == {}


async def test_a_pending_event_wakes_the_listeners(pool: asyncpg.Pool) -> None:
    notified = asyncio.Queue[str]()

    def wake(*args: object) -> None:
        notified.put_nowait(str(args[2]))  # the channel

    async with pool.acquire() as listener:
        await listener.add_listener(inbox.CHANNEL, wake)
        await inbox.receive(pool, new_event(subject=None, no_action="nothing to do"))
        await inbox.receive(pool, new_event())
        # Notifications arrive in commit order: had the settled event notified, two would.
        assert await asyncio.wait_for(notified.get(), 10) == inbox.CHANNEL
        await listener.execute("SELECT 1")  # a round trip: anything pending has arrived
        assert notified.empty()
        await listener.remove_listener(inbox.CHANNEL, wake)


async def test_claims_take_the_oldest_due_events_first(pool: asyncpg.Pool) -> None:
    events = [new_event("payment:a"), new_event("payment:b"), new_event("payment:a"), new_event()]
    for event in events:
        await inbox.receive(pool, event)

    first = await inbox.claim(pool, 2, SECONDS)
    assert [(c.event_id, c.subject) for c in first] == [
        (events[0].event_id, "payment:a"),
        (events[1].event_id, "payment:b"),
    ]
    rest = await inbox.claim(pool, 10, SECONDS)
    assert [c.event_id for c in rest] == [events[2].event_id, events[3].event_id]
    assert await inbox.claim(pool, 10, SECONDS) == []  # all claimed


async def test_concurrent_relays_never_claim_the_same_event(pool: asyncpg.Pool) -> None:
    events = [new_event(f"payment:{i}") for i in range(200)]
    for event in events:
        await inbox.receive(pool, event)
    batches = await asyncio.gather(*(inbox.claim(pool, 30, SECONDS) for _ in range(8)))
    claimed = [c.event_id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed)) == 200


async def test_a_lapsed_claim_is_taken_again(pool: asyncpg.Pool) -> None:
    event = new_event()
    await inbox.receive(pool, event)
    assert len(await inbox.claim(pool, 1, 0)) == 1  # a relay that crashed right after its claim
    again = await inbox.claim(pool, 1, SECONDS)
    assert [c.event_id for c in again] == [event.event_id]
    attempts = await pool.fetchval("SELECT delivery_attempts FROM webhook_inbox")
    assert attempts == 2


async def test_settling_records_the_lag_once(pool: asyncpg.Pool) -> None:
    await inbox.receive(pool, new_event())
    (claimed,) = await inbox.claim(pool, 1, SECONDS)
    lag = await inbox.settle(pool, claimed.seq, "delivered", "checkout-x", "checkout failed")
    assert lag is not None and lag >= 0
    assert await inbox.settle(pool, claimed.seq, "delivered", "checkout-x", "") is None


async def test_failures_back_off_then_park_a_dead_letter_that_replays(pool: asyncpg.Pool) -> None:
    event = new_event()
    await inbox.receive(pool, event)
    for failure in range(1, 4):
        await pool.execute("UPDATE webhook_inbox SET next_attempt_at = now()")  # skip the wait
        (claimed,) = await inbox.claim(pool, 1, SECONDS)
        state = await inbox.record_failure(
            pool, claimed.seq, "ValueError: boom",
            max_failures=3, retry_base_seconds=10, retry_cap_seconds=25,
        )  # fmt: skip
        assert state == ("dead" if failure == 3 else "pending")
        if failure < 3:
            delay = await pool.fetchval(
                "SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_inbox"
            )
            assert 0 < delay <= min(10 * 2 ** (failure - 1), 25)
            assert await inbox.claim(pool, 1, SECONDS) == []  # not before its retry time
    await pool.execute("UPDATE webhook_inbox SET next_attempt_at = now()")
    assert await inbox.claim(pool, 1, SECONDS) == []  # dead letters are not delivered
    (dead,) = await inbox.dead_letters(pool, None, 10)
    assert (dead["event_id"], dead["failures"], dead["last_error"]) == (
        event.event_id,
        3,
        "ValueError: boom",
    )
    assert await inbox.backlog(pool) == {"pending": 0, "dead": 1}

    assert await inbox.replay(pool, "stripe", event.event_id) is True
    assert await inbox.replay(pool, "stripe", event.event_id) is False  # no longer a dead letter
    (claimed,) = await inbox.claim(pool, 1, SECONDS)
    assert claimed.failures == 0


async def test_temporal_away_does_not_count_against_the_event(pool: asyncpg.Pool) -> None:
    await inbox.receive(pool, new_event())
    (claimed,) = await inbox.claim(pool, 1, SECONDS)
    await inbox.retry_later(pool, claimed.seq, 0, "RPCError: unavailable")
    row = await pool.fetchrow("SELECT * FROM webhook_inbox")
    assert (row["failures"], row["state"], row["last_error"]) == (
        0,
        "pending",
        "RPCError: unavailable",
    )
    assert len(await inbox.claim(pool, 1, SECONDS)) == 1


async def test_retention_purges_only_old_delivered_events(pool: asyncpg.Pool) -> None:
    old, recent, waiting, dead = (new_event(None, no_action="x"), new_event(None, no_action="x"),
                                  new_event(), new_event("payment:dead"))  # fmt: skip
    for event in (old, recent, waiting, dead):
        await inbox.receive(pool, event)
    await pool.execute(
        "UPDATE webhook_inbox SET delivered_at = now() - interval '31 days', "
        " received_at = now() - interval '31 days' WHERE event_id = $1",
        old.event_id,
    )
    await pool.execute(
        "UPDATE webhook_inbox SET state = 'dead', dead_lettered_at = now(),"
        " received_at = now() - interval '40 days' WHERE event_id = $1",
        dead.event_id,
    )
    assert await inbox.purge_delivered(pool, 30) == 1
    assert set(await states(pool)) == {recent.event_id, waiting.event_id, dead.event_id}


async def test_the_same_fact_told_twice_is_delivered_once_and_kept_for_the_record(
    pool: asyncpg.Pool,
) -> None:
    told = {"gateway": "razorpay", "fact_key": "authorized:pay_1"}
    client = new_event(event_id="client-confirmation:pay_1", **told)
    webhook = new_event(event_id="evt_webhook_1", **told)

    assert await inbox.receive(pool, client) is True
    assert await inbox.receive(pool, webhook) is False  # answered as a duplicate
    assert await states(pool) == {
        "client-confirmation:pay_1": "pending",
        "evt_webhook_1": "delivered",  # settled at once: never signaled
    }


async def test_the_same_fact_told_at_once_by_two_messages_keeps_both(pool: asyncpg.Pool) -> None:
    """Told concurrently, one message wins the fact and the other is kept as its duplicate: an
    event we answered 2xx is never missing from the inbox. The first message's insert is held
    open in a transaction so the second one meets it uncommitted, as under load."""
    told = {"gateway": "stripe", "fact_key": "captured:ch_race"}
    first, second = (new_event(event_id=f"evt_race_{n}", **told) for n in (1, 2))
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, event_type, payload, subject, state,"
            " outcome, detail, fact_key) VALUES ($1, $2, $3, $4::jsonb, $5, 'pending',"
            " 'received', '', $6)",
            first.gateway, first.event_id, first.event_type, first.body, first.subject,
            first.fact_key,
        )  # fmt: skip
        racing = asyncio.create_task(inbox.receive(pool, second))
        await asyncio.sleep(0.3)  # it now waits on the unique fact index
        assert not racing.done()
    assert await racing is False
    assert await states(pool) == {first.event_id: "pending", second.event_id: "delivered"}
