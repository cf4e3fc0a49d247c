"""The API's metrics are for the scraper only and cannot be grown by a client: the public app has
no `/metrics`, and invented methods or paths add no label values."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.app import create_app
from api.metrics import METHODS, UNMATCHED_ROUTE
from settings import development_settings


def app() -> FastAPI:
    # No lifespan: these requests reach no handler that needs PostgreSQL or Temporal.
    return create_app(development_settings(_env_file=None))


def request_series() -> set[tuple[str, str, str]]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for metric in REGISTRY.collect()
        if metric.name == "payments_api_requests"
        for s in metric.samples
        if s.name == "payments_api_requests_total"
    }


async def test_the_public_app_serves_no_metrics() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app()), base_url="http://api"
    ) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 404
    assert "payments_api_requests_total" not in answer.text


async def test_invented_methods_and_paths_add_no_series() -> None:
    public = app()
    templates = set(public.openapi()["paths"]) | {"/docs", "/docs/assets", "/openapi.json"}

    async def invent(start: int, count: int) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(public), base_url="http://api"
        ) as client:
            for i in range(start, start + count):
                await client.request(f"INVENTED{i}", "/v1/checkouts")
                await client.request(f"X-{i}", f"/made/up/{i}")
                await client.get(f"/v1/checkouts/pay_{i}/nothing-here-{i}")

    await invent(0, 200)
    after_first = request_series()
    await invent(200, 200)
    after_second = request_series()

    assert after_second == after_first  # 400 more invented requests, not one more series
    assert {method for method, _, _ in after_second} <= METHODS | {"OTHER"}
    assert {route for _, route, _ in after_second} <= templates | {UNMATCHED_ROUTE}
    assert ("GET", UNMATCHED_ROUTE, "404") in after_second
