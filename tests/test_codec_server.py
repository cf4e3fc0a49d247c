"""The codec server opens sealed payloads for operators and admins only, and lets the Temporal
UI's origin call it from the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads

from api.app import create_app
from api.auth import Role, mint_token
from api.context import AppContext
from payload_codec import EncryptionCodec
from settings import Settings, development_settings
from tests.unit.test_security_settings import LIVE

UI = "https://temporal.example"


def with_context(app: FastAPI, settings: Settings) -> FastAPI:
    # The codec needs no database or Temporal: only the settings.
    app.state.context = AppContext(
        settings=settings, pool=cast(Any, None), temporal=cast(Any, None),
        razorpay_verifier=cast(Any, None), razorpay=cast(Any, None), webhook_configs={},
    )  # fmt: skip
    return app


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, **LIVE, temporal_ui_origin=UI)  # type: ignore[call-arg]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = with_context(create_app(settings), settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as c:
        yield c


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return MessageToDict(Payloads(payloads=payloads))


def headers(settings: Settings, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, 'ops-1', [role])}"}


async def test_operators_read_sealed_payloads(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    [sealed] = await EncryptionCodec(settings.payload_keys).encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=b'"asha@example.com"')]
    )
    for role in (Role.OPERATOR, Role.ADMIN):
        answer = await client.post(
            "/codec/decode", json=as_json([sealed]), headers=headers(settings, role)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == as_json(
            [Payload(metadata={"encoding": b"json/plain"}, data=b'"asha@example.com"')]
        )
    encoded = await client.post(
        "/codec/encode", json=as_json([sealed]), headers=headers(settings, Role.OPERATOR)
    )
    assert encoded.status_code == 200
    assert "asha" not in encoded.text


@pytest.mark.parametrize("role", [None, Role.MERCHANT, Role.CUSTOMER])
async def test_nobody_else_reads_them(
    client: httpx.AsyncClient, settings: Settings, role: Role | None
) -> None:
    answer = await client.post(
        "/codec/decode",
        json={"payloads": []},
        headers=headers(settings, role) if role else {},
    )
    assert answer.status_code == (401 if role is None else 403)


async def test_malformed_bodies_and_unknown_keys_are_400(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    staff = headers(settings, Role.OPERATOR)
    assert (
        await client.post("/codec/decode", json={"payloads": 3}, headers=staff)
    ).status_code == 400
    foreign = await EncryptionCodec({"other": b"k" * 32}).encode([Payload(data=b"x")])
    unknown = await client.post("/codec/decode", json=as_json(foreign), headers=staff)
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "payload_key_unknown"


async def test_the_temporal_ui_origin_may_call_it_from_the_browser(
    client: httpx.AsyncClient,
) -> None:
    preflight = await client.options(
        "/codec/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    other = await client.options(
        "/codec/decode",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_the_development_ui_needs_no_token() -> None:
    settings = development_settings(_env_file=None)
    app = with_context(create_app(settings), settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as c:
        answer = await c.post("/codec/decode", json={"payloads": []})
    assert answer.status_code == 200
