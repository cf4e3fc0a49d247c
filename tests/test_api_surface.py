"""What the API shows to whoever reaches it without a token: no reference in production, Swagger
UI from the API itself in development, methods it does not implement refused before any work,
and a webhook signature it cannot read refused as one (never a 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from activities.gateways.registry import KITS
from api.app import create_app
from api.context import AppContext
from settings import Environment, Settings, development_settings
from tests.unit.test_security_settings import LIVE


def production_app() -> FastAPI:
    return create_app(Settings(_env_file=None, **LIVE))  # type: ignore[call-arg]


def development_app() -> FastAPI:
    return create_app(development_settings(_env_file=None))


async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as c:
        yield c


@pytest.fixture
async def production() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_of(production_app()):
        yield client


@pytest.fixture
async def development() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_of(development_app()):
        yield client


@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"]
)
async def test_production_serves_no_api_reference(production: httpx.AsyncClient, path: str) -> None:
    assert production_app().openapi_url is None
    answer = await production.get(path)
    assert answer.status_code == 404


async def test_development_serves_swagger_ui_from_the_api_itself(
    development: httpx.AsyncClient,
) -> None:
    page = await development.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text and "https://" not in page.text.split("<body>")[0]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await development.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert (await development.get("/docs/assets/swagger-ui.css")).status_code == 200
    assert (await development.get("/openapi.json")).json()["paths"]
    assert (await development.get("/redoc")).status_code == 404  # Redoc would need a CDN


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "CONNECT", "BREW"])
async def test_methods_the_api_does_not_implement_are_refused_first(
    production: httpx.AsyncClient, method: str
) -> None:
    # No lifespan ran: any handler, dependency or body read would fail with a 500.
    answer = await production.request(method, "/v1/checkouts", content=b"x" * 10)
    assert answer.status_code == 501
    assert answer.json()["code"] == "method_not_implemented"
    assert answer.headers["content-type"] == "application/problem+json"


class _NoDatabase:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError("a refused webhook must not reach the database")


@pytest.mark.parametrize(
    ("gateway", "header"), [("stripe", "Stripe-Signature"), ("razorpay", "X-Razorpay-Signature")]
)
@pytest.mark.parametrize(
    "value", ["t=1,v1=caf\u00e9".encode(), "\u20ac\u00e9".encode(), b"\xff\xfe"]
)
async def test_a_non_ascii_signature_is_refused_as_invalid(
    gateway: str, header: str, value: bytes
) -> None:
    settings = development_settings(_env_file=None)
    app = development_app()
    app.state.context = AppContext(
        settings=settings,
        pool=cast(Any, _NoDatabase()),
        temporal=cast(Any, None),
        razorpay_verifier=cast(Any, None),
        razorpay=cast(Any, None),
        webhook_configs={g: kit.webhook_config(settings) for g, kit in KITS.items()},
    )
    async for client in client_of(app):
        answer = await client.post(
            f"/v1/webhooks/{gateway}",
            content=b'{"id": "evt_1", "type": "charge.succeeded"}',
            headers=[(header.encode(), value), (b"content-type", b"application/json")],
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_signature"
    assert settings.environment is Environment.DEVELOPMENT
