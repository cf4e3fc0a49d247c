"""The API is safe on a network: tokens and roles, ownership, idempotency, limits, clean errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from pydantic import ValidationError

from api.auth import Role
from api.idempotency import request_hash
from api.models import CreateCheckout
from devstack.stack import ROOT, Stack
from settings import SANDBOX_JWT_SECRET, Environment, Settings, development_settings
from tests.e2e.conftest import (
    CORS_ORIGIN,
    READ_LIMIT,
    bearer,
    checkout_body,
    create_checkout,
    new_key,
)

PAN = "4242 4242 4242 4242"
HUGE_METADATA = {f"k{i}": "v" * 200 for i in range(15)}
ALL_ROLES = [None, Role.MERCHANT, Role.CUSTOMER, Role.OPERATOR, Role.ADMIN]


def headers_for(role: Role | None, **extra: str) -> dict[str, str]:
    if role is None:
        return dict(extra)
    customer = "c_someone_else" if role is Role.CUSTOMER else None
    return {**bearer(role, subject=f"matrix-{role}", customer_id=customer), **extra}


def expected_for(role: Role, allowed: set[Role]) -> set[int]:
    return set(range(200, 500)) - {401, 403} if role in allowed else {403}


async def test_every_endpoint_checks_the_callers_role(api: httpx.AsyncClient) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    cid = checkout["checkout_id"]
    confirm = {
        "razorpay_payment_id": "pay_x",
        "razorpay_order_id": "order_x",
        "razorpay_signature": "0" * 64,
    }
    matrix: list[tuple[str, str, Any, set[Role]]] = [
        ("POST", "/v1/checkouts", checkout_body("stripe"), {Role.MERCHANT, Role.ADMIN}),
        ("GET", f"/v1/checkouts/{cid}", None, {Role.MERCHANT, Role.OPERATOR, Role.ADMIN}),
        ("POST", f"/v1/checkouts/{cid}/capture", {}, {Role.MERCHANT, Role.ADMIN}),
        (
            "POST",
            f"/v1/checkouts/{cid}/razorpay/confirm",
            confirm,
            {Role.MERCHANT, Role.OPERATOR, Role.ADMIN},
        ),
        ("POST", f"/v1/payments/{cid}/refunds", {"reason": "other"}, {Role.OPERATOR, Role.ADMIN}),
        ("GET", f"/v1/payments/{cid}/refunds", None, {Role.MERCHANT, Role.OPERATOR, Role.ADMIN}),
        ("GET", "/v1/webhooks/events", None, {Role.OPERATOR, Role.ADMIN}),
        ("GET", "/v1/webhooks/dead-letters", None, {Role.OPERATOR, Role.ADMIN}),
        (
            "POST",
            "/v1/webhooks/dead-letters/stripe/evt_none/replay",
            None,
            {Role.OPERATOR, Role.ADMIN},
        ),
        ("GET", "/v1/disputes", None, {Role.OPERATOR, Role.ADMIN}),
        ("GET", "/v1/reconciliation/runs", None, {Role.OPERATOR, Role.ADMIN}),
        ("POST", f"/v1/payments/{cid}/reconcile", None, {Role.OPERATOR, Role.ADMIN}),
        ("POST", f"/v1/payments/{cid}/retry", None, {Role.OPERATOR, Role.ADMIN}),
        ("GET", "/v1/gateways/health", None, {Role.OPERATOR, Role.ADMIN}),
    ]
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as bare:
        for method, path, body, allowed in matrix:
            for role in ALL_ROLES:
                response = await bare.request(
                    method,
                    path,
                    json=body,
                    headers=headers_for(role, **{"Idempotency-Key": new_key()}),
                )
                customer_allowed = (method == "GET" and "/v1/payments/" in path) or (
                    "/v1/checkouts/" in path and not path.endswith("capture")
                )
                if role is None:
                    expected = {401}
                elif role is Role.CUSTOMER and customer_allowed:
                    expected = {404}  # someone else's checkout: as if it did not exist
                else:
                    expected = expected_for(role, allowed)
                assert response.status_code in expected, (method, path, role, response.text)
                if response.status_code == 401:
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert response.headers["content-type"].startswith("application/")


async def test_bad_tokens_are_refused_with_401(api: httpx.AsyncClient) -> None:
    settings = development_settings()
    now = int(time.time())
    good = {
        "sub": "x",
        "roles": ["admin"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "exp": now + 600,
    }
    tokens = {
        "expired": jwt.encode({**good, "exp": now - 120}, SANDBOX_JWT_SECRET, "HS256"),
        "wrong secret": jwt.encode(good, "another-secret-of-enough-length-0123456789", "HS256"),
        "wrong issuer": jwt.encode({**good, "iss": "evil"}, SANDBOX_JWT_SECRET, "HS256"),
        "wrong audience": jwt.encode({**good, "aud": "other"}, SANDBOX_JWT_SECRET, "HS256"),
        "no expiry": jwt.encode(
            {k: v for k, v in good.items() if k != "exp"}, SANDBOX_JWT_SECRET, "HS256"
        ),
        "algorithm none": jwt.encode(good, "", "none"),
        "HS512 not allowed": jwt.encode(good, SANDBOX_JWT_SECRET, "HS512"),
        "not a jwt": "abc.def",
    }
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as bare:
        for case, token in tokens.items():
            response = await bare.get(
                "/v1/gateways/health", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, case
            assert response.json()["code"] == "unauthenticated"
        basic = await bare.get("/v1/gateways/health", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401


async def test_a_customer_reads_and_cancels_only_its_own_checkout(api: httpx.AsyncClient) -> None:
    checkout = await create_checkout(api, checkout_body("stripe", customer_id="c_owner"))
    path = f"/v1/checkouts/{checkout['checkout_id']}"
    owner = bearer(Role.CUSTOMER, subject="owner", customer_id="c_owner")
    stranger = bearer(Role.CUSTOMER, subject="stranger", customer_id="c_stranger")
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as bare:
        mine = await bare.get(path, headers=owner)
        theirs = await bare.get(path, headers=stranger)
        unknown = await bare.get("/v1/checkouts/pay_" + "0" * 24, headers=stranger)
        steal_cancel = await bare.post(f"{path}/cancel", json={}, headers=stranger)
        own_cancel = await bare.post(f"{path}/cancel", json={}, headers=owner)

    assert mine.status_code == 200
    assert theirs.status_code == unknown.status_code == steal_cancel.status_code == 404
    assert theirs.json()["detail"].replace(checkout["checkout_id"], "X") == unknown.json()[
        "detail"
    ].replace("pay_" + "0" * 24, "X")
    assert own_cancel.status_code == 200 and own_cancel.json()["status"] == "canceled"


async def test_idempotency_keys_are_scoped_to_the_caller_and_refuse_in_flight_reuse(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = new_key()
    first = checkout_body("stripe")
    second = checkout_body("stripe")
    a = await api.post(
        "/v1/checkouts",
        json=first,
        headers={**bearer(Role.MERCHANT, subject="m-a"), "Idempotency-Key": key},
    )
    b = await api.post(
        "/v1/checkouts",
        json=second,
        headers={**bearer(Role.MERCHANT, subject="m-b"), "Idempotency-Key": key},
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["checkout_id"] != b.json()["checkout_id"]

    in_flight = new_key()
    body = checkout_body("stripe")
    await db.execute(
        "INSERT INTO idempotency_records (scope, key, request_hash) VALUES ($1, $2, $3)",
        "checkouts:e2e-admin",
        in_flight,
        request_hash(CreateCheckout.model_validate(body)),
    )
    busy = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": in_flight})
    assert busy.status_code == 409
    assert busy.json()["code"] == "request_in_progress"
    assert busy.headers["Retry-After"] == "1"


async def test_hostile_bodies_get_a_4xx_and_write_nothing(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT count(*) FROM payments")
    cases: list[tuple[str, Any, int]] = [
        ("card number in metadata", checkout_body("stripe", metadata={"note": PAN}), 422),
        ("cvv key", checkout_body("stripe", metadata={"cvv": "123"}), 422),
        ("amount above maximum", checkout_body("stripe", amount=10**12), 422),
        ("boolean amount", checkout_body("stripe", amount=True), 422),
        ("huge metadata", checkout_body("stripe", metadata=HUGE_METADATA), 422),
        ("overlong id", checkout_body("stripe", order_id="o" * 65), 422),
        ("sql in id", checkout_body("stripe", order_id="x'; DROP TABLE payments;--"), 422),
        ("array body", [1, 2, 3], 422),
        ("oversized", {"order_id": "x" * 100_000}, 413),
    ]
    for case, body, status in cases:
        response = await api.post(
            "/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()}
        )
        assert response.status_code == status, (case, response.text[:300])
        assert response.headers["content-type"] == "application/problem+json", case
    not_json = await api.post(
        "/v1/checkouts",
        content=b"\xff\xfe{",
        headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "malformed_request"

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    chunked = await api.post(
        "/v1/checkouts",
        content=stream(),  # streamed, no Content-Length
        headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert await db.fetchval("SELECT count(*) FROM payments") == before


async def test_rate_limit_is_hit_then_recovers(api: httpx.AsyncClient) -> None:
    prober = bearer(Role.OPERATOR, subject=f"prober-{uuid.uuid4().hex[:6]}")
    statuses = [
        (await api.get("/v1/gateways/health", headers=prober)).status_code
        for _ in range(READ_LIMIT + 5)
    ]
    assert statuses.count(200) == READ_LIMIT and statuses[-1] == 429
    limited = await api.get("/v1/gateways/health", headers=prober)
    retry_after = int(limited.headers["Retry-After"])
    assert limited.json()["code"] == "rate_limited" and 1 <= retry_after <= 6
    other = await api.get("/v1/gateways/health", headers=bearer(Role.OPERATOR, subject="calm"))
    assert other.status_code == 200  # limits are per caller
    await asyncio.sleep(retry_after)
    assert (await api.get("/v1/gateways/health", headers=prober)).status_code == 200


async def test_security_headers_cors_and_request_ids(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/gateways/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "max-age" in response.headers["Strict-Transport-Security"]
    assert response.headers["X-Request-ID"]

    preflight = {"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = await api.options("/v1/checkouts", headers=preflight)
    refused = await api.options(
        "/v1/checkouts", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert allowed.headers.get("access-control-allow-origin") == CORS_ORIGIN
    assert "access-control-allow-origin" not in refused.headers


async def test_openapi_documents_the_error_statuses(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    create = spec["paths"]["/v1/checkouts"]["post"]
    assert {"201", "200", "401", "403", "409", "422", "429", "503"} <= set(create["responses"])
    assert any("HTTPBearer" in s for s in spec["components"]["securitySchemes"])
    text = json.dumps(spec)
    for secret in ("whsec_sandbox", "rzp_test_secret_sandbox", SANDBOX_JWT_SECRET):
        assert secret not in text


@pytest.mark.parametrize(
    "program", [["-m", "uvicorn", "api.app:create_app", "--factory"], ["worker.py"]]
)
def test_production_mode_refuses_sandbox_settings_and_names_them(
    stack: Stack, program: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "RAZORPAY"))}
    env.update(ENVIRONMENT="production", DATABASE_URL=stack.database_url)
    result = subprocess.run(
        [sys.executable, *program], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    for setting in (
        "STRIPE_API_BASE",
        "STRIPE_SECRET_KEY",
        "RAZORPAY_WEBHOOK_SECRET",
        "JWT_SECRET",
        "SANDBOX_CHECKOUT_BASE",
    ):
        assert setting in result.stderr, setting
    assert "sk_test_sandbox" not in result.stderr  # names the setting, never the secret


def test_production_settings_accept_a_real_configuration() -> None:
    settings = Settings(
        environment=Environment.PRODUCTION,
        stripe_api_base="https://api.stripe.com",
        stripe_secret_key="sk_live_abc",  # type: ignore[arg-type]
        stripe_webhook_secret="whsec_live",  # type: ignore[arg-type]
        razorpay_api_base="https://api.razorpay.com",
        razorpay_key_id="rzp_live_abc",
        razorpay_key_secret="live-secret",  # type: ignore[arg-type]
        razorpay_webhook_secret="live-webhook-secret",  # type: ignore[arg-type]
        merchant_callback_secret="9f2c4e7a1b3d5f8e0a6c2b4d7e9f1a3c",  # type: ignore[arg-type]
        payload_encryption_keys="live-1:" + "B" * 43 + "=",  # type: ignore[arg-type]
        jwt_secret="a-production-secret-of-at-least-32-chars",  # type: ignore[arg-type]
        sandbox_checkout_base=None,
    )
    assert settings.environment is Environment.PRODUCTION
    with pytest.raises(ValidationError, match="JWT_ALGORITHMS"):
        Settings(jwt_algorithms="none")
