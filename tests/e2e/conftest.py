"""The whole stack for end-to-end tests: Temporal dev server, PostgreSQL, sandbox, dev merchant,
worker and API as separate processes, driven over HTTP like a merchant and a customer would."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import Role, mint_token
from devstack.stack import Ports, Stack
from settings import (
    SANDBOX_RAZORPAY_WEBHOOK_SECRET,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    development_settings,
)

NEXT_STRIPE_SECRET = "whsec_rotated_in"
NEXT_RAZORPAY_SECRET = "rzp_webhook_rotated_in"
RAZORPAY_MAX_AGE = 3600
RELAY_MAX_FAILURES = 3
READ_LIMIT = 300  # per caller per 5 seconds; polling tests stay far below it
CORS_ORIGIN = "https://shop.example"
ROUTING_RULES = [
    {"gateway": "stripe", "currencies": ["USD", "EUR", "INR"]},
    {"gateway": "razorpay", "currencies": ["INR", "MYR"]},
]
BREAKER_OPEN_SECONDS = 2
TERMINAL = {"captured", "voided", "expired", "canceled", "failed", "refunded"}


def _fresh_database_url() -> str | None:
    """A new database on DATABASE_URL's server when one is given; else the stack embeds one."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        return None
    address, _, query = base.partition("?")
    server = address.rpartition("/")[0]
    return f"{server}/payments_test_{uuid.uuid4().hex[:10]}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("stack")
    running = Stack(
        data_dir,
        Ports.free(),
        database_url=_fresh_database_url(),
        with_ui=False,
        extra_env={
            "GATEWAY_TIMEOUT_SECONDS": "3",
            # a second secret of each gateway, as during a rotation
            "STRIPE_WEBHOOK_SECRET": f"{SANDBOX_STRIPE_WEBHOOK_SECRET},{NEXT_STRIPE_SECRET}",
            "RAZORPAY_WEBHOOK_SECRET": f"{SANDBOX_RAZORPAY_WEBHOOK_SECRET},{NEXT_RAZORPAY_SECRET}",
            "RAZORPAY_WEBHOOK_MAX_AGE_SECONDS": str(RAZORPAY_MAX_AGE),
            "RATE_LIMIT_READ": f"{READ_LIMIT}/5 seconds",
            "RATE_LIMIT_REFUND": "300/minute",
            "CORS_ORIGINS": CORS_ORIGIN,
            # the reconciler's schedule exists but the tests trigger it; anything open is stale
            "RECONCILE_INTERVAL_SECONDS": "3600",
            "RECONCILE_STALE_AFTER_SECONDS": json.dumps(
                dict.fromkeys(
                    [
                        "unknown",
                        "processing",
                        "pending",
                        "created",
                        "requires_action",
                        "authorized",
                        "needs_review",
                    ],
                    1,
                )
            ),
            # pending refunds whose webhook is lost are looked up at the gateway this often
            "REFUND_POLL_INTERVAL_SECONDS": "2",
            # a poison webhook is parked as a dead letter after a few quick retries
            "WEBHOOK_RELAY_MAX_FAILURES": str(RELAY_MAX_FAILURES),
            "WEBHOOK_RELAY_RETRY_BASE_SECONDS": "0.2",
            # auto routing: INR prefers Stripe and may fail over to Razorpay; MYR is Razorpay's
            "ROUTING_RULES": json.dumps(ROUTING_RULES),
            "BREAKER_OPEN_SECONDS": str(BREAKER_OPEN_SECONDS),
            # a declined customer may retry on the other gateway routing allowed
            "DECLINED_RETRY_ON_OTHER_GATEWAY": "true",
        },
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def token(*roles: Role, subject: str = "e2e-admin", customer_id: str | None = None) -> str:
    return mint_token(development_settings(), subject, list(roles), customer_id=customer_id)


def bearer(
    *roles: Role, subject: str = "e2e-admin", customer_id: str | None = None
) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, subject=subject, customer_id=customer_id)}"}


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The API as an admin (every role's rights); role tests pass their own Authorization."""
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=bearer(Role.ADMIN)
    ) as client:
        yield client


@pytest.fixture
async def sandbox(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's controls; whatever a test switched is back to the gateways' defaults after
    it, passed or failed."""
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30) as client:
        try:
            yield client
        finally:
            (await client.post("/sandbox/reset-behaviour")).raise_for_status()


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        yield conn
    finally:
        await conn.close()


def checkout_body(gateway: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": f"order-{uuid.uuid4().hex[:12]}",
        "amount": 2_500,
        "currency": "INR" if gateway == "razorpay" else "USD",
        "gateway": gateway,
        "customer_id": "c_42",
        "customer_email": "asha@example.com",
        "metadata": {"cart": "3 items"},
    }
    body.update(overrides)
    return body


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def create_checkout(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 201, response.text
    checkout: dict[str, Any] = response.json()
    return checkout


async def wait_for_status(
    api: httpx.AsyncClient, checkout_id: str, statuses: set[str], within: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await api.get(f"/v1/checkouts/{checkout_id}")
        assert response.status_code == 200, response.text
        checkout: dict[str, Any] = response.json()
        if checkout["status"] in statuses:
            return checkout
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"checkout stuck in {checkout['status']}: {checkout['history']}")
        await asyncio.sleep(0.2)


async def wait_for_source(api: httpx.AsyncClient, checkout_id: str, source: str) -> None:
    for _ in range(150):
        if (await api.get(f"/v1/checkouts/{checkout_id}")).json()["source"] == source:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"checkout {checkout_id} never read from the {source}")


async def pay(sandbox: httpx.AsyncClient, checkout: dict[str, Any], *, succeed: bool = True) -> Any:
    """What the customer does on the gateway's page."""
    if checkout["gateway"] == "stripe":
        pi = checkout["gateway_payment_id"]
        response = await sandbox.post(
            f"/sandbox/stripe/payment_intents/{pi}/pay",
            json={
                "client_secret": checkout["payment"]["stripe_client_secret"],
                "payment_method": "pm_card_visa" if succeed else "pm_card_chargeDeclined",
            },
        )
    else:
        order = checkout["payment"]["razorpay_order_id"]
        response = await sandbox.post(
            f"/sandbox/razorpay/orders/{order}/pay",
            json={"outcome": "success" if succeed else "failure", "method": "card"},
        )
    assert response.status_code == (200 if succeed else 402), response.text
    return response.json()


async def movements(sandbox: httpx.AsyncClient, payment: str) -> list[str]:
    response = await sandbox.get("/sandbox/movements", params={"payment": payment})
    assert response.status_code == 200, response.text
    return [m["kind"] for m in response.json()]
