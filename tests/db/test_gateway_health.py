"""Gateway health in a real PostgreSQL: failures recorded by many replicas at once count
exactly, so the breaker opens at its threshold; a success on a healthy gateway writes nothing;
an operator's override is stored with its caller and audited; the gauges show both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry

from api.metrics import serve_metrics
from db import health
from devstack.stack import free_port
from domain.health import BreakerConfig, BreakerState, Override
from tests.db.test_ledger_gauges import scrape, value

CONFIG = BreakerConfig(failure_threshold=5, window_seconds=60, open_seconds=30)


async def test_concurrent_failures_open_the_breaker_at_exactly_its_threshold(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    await asyncio.gather(
        *(health.record_failure(pool, "stripe", now, CONFIG, "gateway_error") for _ in range(4))
    )
    assert (await health.all_health(pool))["stripe"].failures == 4
    opened = await health.record_failure(pool, "stripe", now, CONFIG, "gateway_error: 500")
    assert opened.state is BreakerState.OPEN
    stored = (await health.all_health(pool))["stripe"]
    assert stored.state is BreakerState.OPEN and stored.last_failure == "gateway_error: 500"


async def test_a_probe_success_after_the_open_period_closes_the_breaker(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    for _ in range(5):
        await health.record_failure(pool, "razorpay", now, CONFIG, "gateway_unreachable")
    assert await health.record_success(pool, "razorpay", now + timedelta(seconds=5), CONFIG)
    assert (await health.all_health(pool))["razorpay"].state is BreakerState.OPEN
    later = now + timedelta(seconds=31)
    closed = await health.record_success(pool, "razorpay", later, CONFIG)
    assert closed is not None and closed.state is BreakerState.CLOSED
    assert await health.record_success(pool, "razorpay", later, CONFIG) is None  # nothing to write


async def test_an_override_is_stored_with_its_caller_and_audited(pool: asyncpg.Pool) -> None:
    forced = await health.set_override(pool, "stripe", Override.DOWN, "ops@shop", "maintenance")
    assert (forced.override, forced.override_by, forced.override_reason) == (
        Override.DOWN, "ops@shop", "maintenance"
    )  # fmt: skip
    await health.set_override(pool, "stripe", Override.AUTO, "ops@shop", "back")
    audit = await pool.fetch("SELECT override, set_by FROM gateway_overrides ORDER BY id")
    assert [(r["override"], r["set_by"]) for r in audit] == [
        ("down", "ops@shop"), ("auto", "ops@shop")
    ]  # fmt: skip


async def test_card_downtimes_under_way_make_a_gateway_down(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        """
        INSERT INTO gateway_downtimes (gateway, downtime_id, method, status, severity)
        VALUES ('razorpay', 'down_1', 'card', 'started', 'high'),
               ('razorpay', 'down_2', 'upi', 'started', 'high'),
               ('stripe', 'down_4', 'card', 'scheduled', 'high'),
               ('stripe', 'down_3', 'card', 'resolved', 'high')
        """
    )
    assert await health.announced_down(pool) == frozenset({"razorpay"})


async def test_the_gauges_show_each_breaker_state_and_override(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    for _ in range(5):
        await health.record_failure(pool, "stripe", now, CONFIG, "gateway_error")
    await health.set_override(pool, "razorpay", Override.UP, "ops@shop", "probe by hand")
    address = f"127.0.0.1:{free_port()}"
    stop = serve_metrics(address, pool, CollectorRegistry())
    try:
        samples = await scrape(address)
    finally:
        stop()
    state = "payments_gateway_breaker_state"
    assert value(samples, state, gateway="stripe", state="open") == 1
    assert value(samples, state, gateway="stripe", state="closed") == 0
    assert value(samples, state, gateway="razorpay", state="closed") == 1
    assert value(samples, "payments_gateway_override", gateway="razorpay", override="up") == 1
