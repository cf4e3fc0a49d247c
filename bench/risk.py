"""`python -m bench.risk`: what risk screening adds to creating a checkout — the assessment the
checkout runs before its gateway payment (rules read from the ledger, velocity counted per
customer, email and IP under their advisory locks, the assessment stored), timed on its own
against a ledger that already holds recent history. The checkout's payment row, which the same
local activity writes first, is written by every checkout with or without screening, so it is
not counted. Writes bench/results/risk.json; compare with the create latency of `python -m bench`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import latency_summary, measure_on_scratch_database
from db import risk
from db.migrate import apply_migrations
from db.pool import create_pool, ensure_database
from domain.risk import AssessCheckout, RiskStage

RESULTS = Path(__file__).parent / "results" / "risk.json"
HISTORY = 5000
"""Assessments written before timing: the velocity windows count over them."""
CUSTOMERS = 500
ASSESSMENTS = 2000
CONCURRENCY = 8


def _request(n: int) -> AssessCheckout:
    customer = n % CUSTOMERS
    return AssessCheckout(
        stage=RiskStage.CREATE,
        checkout_id=f"pay_{uuid.uuid4().hex[:24]}",
        workflow_id=f"checkout-bench-risk-{n}",
        customer_id=f"c_{customer}",
        customer_email=f"shopper{customer}@example.com",
        client_ip=f"10.0.{customer % 250}.{customer % 7}",
        customer_country="IN",
        amount=2_500 + n % 50_000,
        currency="INR",
        gateway="razorpay",
    )


async def _timed(pool: asyncpg.Pool, n: int) -> float:
    started = time.perf_counter()
    await risk.assess_checkout(pool, _request(n))
    return time.perf_counter() - started


async def _measure(database_url: str) -> dict[str, Any]:
    await ensure_database(database_url)
    pool = await create_pool(database_url, CONCURRENCY)
    try:
        await apply_migrations(pool)
        for n in range(HISTORY):
            await risk.assess_checkout(pool, _request(n))
        one_at_a_time = [await _timed(pool, HISTORY + n) for n in range(ASSESSMENTS)]

        async def loop(first: int) -> list[float]:
            return [
                await _timed(pool, first + n * CONCURRENCY)
                for n in range(ASSESSMENTS // CONCURRENCY)
            ]

        start = HISTORY + ASSESSMENTS
        loops = await asyncio.gather(*(loop(start + i) for i in range(CONCURRENCY)))
        return {
            "history_assessments": HISTORY,
            "customers": CUSTOMERS,
            "one_at_a_time": latency_summary(one_at_a_time),
            f"concurrency_{CONCURRENCY}": latency_summary(t for ts in loops for t in ts),
        }
    finally:
        await pool.close()


def main() -> None:
    measure_on_scratch_database("payments_bench_risk", _measure, RESULTS)


if __name__ == "__main__":
    main()
