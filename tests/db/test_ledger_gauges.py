"""The API's internal metrics address serves the ledger gauges the dashboards and alerts read,
computed from PostgreSQL at scrape time, and still answers (with up = 0) when the ledger cannot."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import serve_metrics
from db.migrate import apply_migrations
from devstack.stack import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(address: str) -> Samples:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{address}/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def seed(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO payments (payment_id, order_id, workflow_id, customer_id, gateway, capture_mode,
                              amount, currency, status, updated_at)
        VALUES ('pay_u1', 'o1', 'checkout-o1', 'c', 'stripe', 'automatic', 100, 'USD', 'unknown',
                now() - interval '2 hours'),
               ('pay_u2', 'o2', 'checkout-o2', 'c', 'stripe', 'automatic', 100, 'USD', 'unknown',
                now() - interval '1 minute'),
               ('pay_r1', 'o3', 'checkout-o3', 'c', 'razorpay', 'automatic', 100, 'INR',
                'needs_review', now() - interval '10 minutes'),
               ('pay_c1', 'o4', 'checkout-o4', 'c', 'razorpay', 'automatic', 100, 'INR', 'captured',
                now() - interval '3 days')
        """
    )
    await pool.execute("UPDATE payments SET amount_captured = 100 WHERE payment_id = 'pay_c1'")
    await pool.execute(
        """
        INSERT INTO refunds (refund_id, payment_id, workflow_id, gateway, amount, currency, status,
                             reason, mode, idempotency_key, updated_at)
        VALUES ('rfd_1', 'pay_c1', 'refund-1', 'razorpay', 50, 'INR', 'pending', 'other', 'own',
                'k1', now() - interval '30 minutes'),
               ('rfd_2', 'pay_c1', 'refund-2', 'razorpay', 10, 'INR', 'succeeded', 'other', 'own',
                'k2', now())
        """
    )
    await pool.execute(
        """
        INSERT INTO disputes (dispute_id, gateway, gateway_dispute_id, workflow_id, amount,
                              currency, stage, status, due_by)
        VALUES ('dsp_1', 'stripe', 'dp_1', 'dispute-stripe-dp_1', 100, 'USD', 'chargeback', 'open',
                now() + interval '1 day'),
               ('dsp_2', 'stripe', 'dp_2', 'dispute-stripe-dp_2', 100, 'USD', 'chargeback', 'open',
                now() + interval '5 days'),
               ('dsp_3', 'stripe', 'dp_3', 'dispute-stripe-dp_3', 100, 'USD', 'chargeback', 'won',
                now() - interval '5 days')
        """
    )
    await pool.execute(
        """
        INSERT INTO webhook_inbox (gateway, event_id, event_type, payload, received_at,
                                   delivered_at, state)
        VALUES ('stripe', 'evt_1', 'charge.refunded', '{}', now() - interval '15 minutes', NULL,
                'pending'),
               ('stripe', 'evt_2', 'charge.refunded', '{}', now() - interval '1 minute', NULL,
                'pending'),
               ('stripe', 'evt_3', 'charge.refunded', '{}', now(), now(), 'delivered'),
               ('stripe', 'evt_4', 'charge.refunded', '{}', now() - interval '2 hours', NULL,
                'dead')
        """
    )
    await pool.execute(
        """
        INSERT INTO reconciliation_flags (run_id, object_kind, object_id, payment_id,
                                          ledger_status, gateway_status, detail)
        VALUES ('run_1', 'payment', 'pay_c1', 'pay_c1', 'voided', 'captured', 'captured later')
        """
    )
    await pool.execute(
        """
        INSERT INTO reconciliation_runs (run_id, trigger, started_at, finished_at, checked,
                                         changed, flagged, unreachable)
        VALUES ('run_1', 'schedule', to_timestamp(1000), to_timestamp(1060), 4, 0, 1, 0)
        """
    )
    await pool.execute(
        """
        INSERT INTO gateway_downtimes (gateway, downtime_id, method, status, severity)
        VALUES ('razorpay', 'down_1', 'upi', 'started', 'high')
        """
    )


async def test_ledger_gauges_are_served_on_the_internal_address(pool: asyncpg.Pool) -> None:
    await apply_migrations(pool)
    await seed(pool)
    address = f"127.0.0.1:{free_port()}"
    stop = serve_metrics(address, pool, CollectorRegistry())
    try:
        samples = await scrape(address)
    finally:
        stop()

    assert value(samples, "payments_ledger_metrics_up") == 1
    assert value(samples, "payments_open_payments", gateway="stripe", status="unknown") == 2
    age = value(samples, "payments_open_payment_oldest_seconds", gateway="stripe", status="unknown")
    assert 2 * 3600 <= age < 3 * 3600
    assert value(samples, "payments_open_payments", gateway="razorpay", status="needs_review") == 1
    assert not any(
        name == "payments_open_payments" and ("status", "captured") in labels
        for name, labels in samples
    )
    assert value(samples, "payments_refunds", gateway="razorpay", status="pending") == 1
    assert value(samples, "payments_refunds", gateway="razorpay", status="succeeded") == 1
    refund_age = value(
        samples, "payments_open_refund_oldest_seconds", gateway="razorpay", status="pending"
    )
    assert 30 * 60 <= refund_age < 60 * 60
    assert value(samples, "payments_disputes", gateway="stripe", status="open") == 2
    deadline = value(samples, "payments_dispute_undecided_deadline_seconds", gateway="stripe")
    assert 23 * 3600 < deadline <= 24 * 3600  # the nearest of the open ones, not the closed one
    assert value(samples, "payments_webhook_inbox_backlog", state="pending") == 2
    assert value(samples, "payments_webhook_inbox_backlog", state="dead") == 1
    assert 15 * 60 <= value(samples, "payments_webhook_inbox_oldest_pending_seconds") < 30 * 60
    assert value(samples, "payments_reconciliation_open_flags", kind="payment") == 1
    assert value(samples, "payments_reconciliation_last_run_timestamp_seconds") == 1060
    assert value(samples, "payments_gateway_healthy", gateway="razorpay") == 0
    assert value(samples, "payments_gateway_healthy", gateway="stripe") == 1


async def test_without_the_ledger_the_scrape_still_answers_with_up_zero(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert pool is not None
    await apply_migrations(pool)
    address = f"127.0.0.1:{free_port()}"
    registry = CollectorRegistry()
    stop = serve_metrics(address, pool, registry)
    try:
        assert value(await scrape(address), "payments_ledger_metrics_up") == 1
        await pool.close()
        samples = await scrape(address)
    finally:
        stop()
    assert value(samples, "payments_ledger_metrics_up") == 0
    assert not any(name == "payments_open_payments" for name, _ in samples)
    assert list(registry.collect()) == []  # stopping unregistered the gauges
