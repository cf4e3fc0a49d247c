"""`python -m bench.routing`: what auto routing adds to creating a checkout — the API's routing
decision (each gateway's breaker and announced downtimes read from PostgreSQL, then the pure
choice) timed on its own, with the breakers' rows as busy as a failing gateway keeps them.
Writes bench/results/routing.json; compare with the create latency of `python -m bench`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from api.context import AppContext
from api.gateways import choose_gateway
from api.models import CreateCheckout
from bench.common import latency_summary, measure_on_scratch_database
from db import health
from db.migrate import apply_migrations
from db.pool import create_pool, ensure_database
from settings import development_settings

RESULTS = Path(__file__).parent / "results" / "routing.json"
DECISIONS = 2000


async def _measure(database_url: str) -> dict[str, Any]:
    await ensure_database(database_url)
    pool = await create_pool(database_url, 4)
    try:
        await apply_migrations(pool)
        settings = development_settings(database_url=database_url)
        ctx = cast(AppContext, SimpleNamespace(pool=pool, settings=settings))
        body = CreateCheckout(
            order_id="bench-1", amount=2500, currency="INR", gateway="auto", customer_id="c"
        )
        for _ in range(3):  # a gateway failing: its row is written while routing reads it
            await health.record_failure(
                pool, "stripe", datetime.now(UTC), settings.breaker, "gateway_error"
            )
        named = body.model_copy(update={"gateway": "stripe"})
        auto = [await _timed(ctx, body) for _ in range(DECISIONS)]
        explicit = [await _timed(ctx, named) for _ in range(DECISIONS)]
        return {
            "decisions": DECISIONS,
            "auto_routing": latency_summary(auto[100:]),  # after warm-up
            "named_gateway": latency_summary(explicit[100:]),
        }
    finally:
        await pool.close()


async def _timed(ctx: AppContext, body: CreateCheckout) -> float:
    started = time.perf_counter()
    await choose_gateway(ctx, body)
    return time.perf_counter() - started


def main() -> None:
    measure_on_scratch_database("payments_bench_routing", _measure, RESULTS)


if __name__ == "__main__":
    main()
