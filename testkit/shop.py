"""A merchant and customer driving the stack over HTTP, and a ledger watcher for statuses: what
the benchmark, the fault campaign and the end-to-end tests share."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from api.auth import Role, mint_token
from devstack.stack import Stack
from settings import development_settings
from temporal_client import connect_temporal

TERMINAL = frozenset(
    {
        "captured",
        "voided",
        "expired",
        "canceled",
        "failed",
        "refunded",
        "partially_refunded",
        "dispute_lost",
    }
)


@dataclass(frozen=True)
class Endpoints:
    """Where the stack under test listens; `stack` is None when it runs elsewhere (attached)."""

    api_url: str
    sandbox_url: str
    temporal_address: str
    database_url: str
    stack: Stack | None = None

    @classmethod
    def of(cls, stack: Stack) -> Endpoints:
        return cls(
            stack.api_url, stack.sandbox_url, stack.temporal_address, stack.database_url, stack
        )

    def worker_pid(self) -> int | None:
        """The worker's pid: the stack's child, else a process running `worker.py`."""
        if self.stack is not None:
            process = self.stack.children["worker"].process
            return process.pid if process is not None and process.poll() is None else None
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if any(part.endswith(b"worker.py") for part in cmdline):
                    return int(entry.name)
        return None


def new_order_id(prefix: str) -> str:
    """Twelve hex digits: never the 13-19 digits in a row the card-data check refuses
    (api/card_data.py), which 16 could be, now and then, by chance."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


Waiter = tuple[frozenset[str], "asyncio.Future[tuple[str, float]]"]


class StatusWatcher:
    """Notices status changes of many payments at once by polling the ledger every `interval`
    seconds in one query, so waiting for thousands of checkouts costs the API nothing."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 0.02) -> None:
        self._pool = pool
        self._interval = interval
        self._waiting: dict[str, list[Waiter]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StatusWatcher:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def wait(
        self, payment_id: str, statuses: Iterable[str], within: float
    ) -> tuple[str, float]:
        """The first status among `statuses` and the perf_counter time it was seen."""
        future: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(payment_id, []).append((frozenset(statuses), future))
        try:
            return await asyncio.wait_for(future, within)
        finally:
            waiters = self._waiting.get(payment_id, [])
            self._waiting[payment_id] = [w for w in waiters if w[1] is not future]
            if not self._waiting[payment_id]:
                del self._waiting[payment_id]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._waiting:
                continue
            try:
                rows = await self._pool.fetch(
                    "SELECT payment_id, status FROM payments WHERE payment_id = ANY($1)",
                    list(self._waiting),
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue  # the database may be down during a fault; keep watching
            seen = time.perf_counter()
            for row in rows:
                for statuses, future in self._waiting.get(row["payment_id"], []):
                    if row["status"] in statuses and not future.done():
                        future.set_result((row["status"], seen))


@dataclass
class Shop:
    """A merchant backend and its customers: creates checkouts, pays them at the sandbox,
    confirms Razorpay payments, asks for refunds."""

    endpoints: Endpoints
    api: httpx.AsyncClient = field(init=False)
    sandbox: httpx.AsyncClient = field(init=False)
    pool: asyncpg.Pool = field(init=False)

    async def __aenter__(self) -> Shop:
        token = mint_token(
            development_settings(), "bench-admin", [Role.ADMIN], ttl_seconds=6 * 3600
        )
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        self.api = httpx.AsyncClient(
            base_url=self.endpoints.api_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=limits,
        )
        self.sandbox = httpx.AsyncClient(
            base_url=self.endpoints.sandbox_url, timeout=60, limits=limits
        )
        pool = await asyncpg.create_pool(self.endpoints.database_url, min_size=1, max_size=4)
        assert pool is not None
        self.pool = pool
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.api.aclose()
        await self.sandbox.aclose()
        await self.pool.close()

    async def create_checkout(
        self, gateway: str, order_id: str, *, amount: int = 2_500, retry: bool = False
    ) -> dict[str, Any]:
        """POST /v1/checkouts; with `retry`, 5xx and transport errors are retried with the same
        Idempotency-Key, as a merchant's backend would during an outage."""
        body = {
            "order_id": order_id,
            "amount": amount,
            "currency": "INR" if gateway == "razorpay" else "USD",
            "gateway": gateway,
            "customer_id": "c_bench",
            "customer_email": "bench@example.com",
            "metadata": {"source": "bench"},
        }
        headers = {"Idempotency-Key": f"bench-{order_id}"}
        response = await self._post(self.api, "/v1/checkouts", body, headers, retry=retry)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"create {order_id}: {response.status_code} {response.text[:300]}")
        checkout: dict[str, Any] = response.json()
        return checkout

    async def pay(self, checkout: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        """What the customer does on the gateway's page; a Razorpay proof is returned."""
        if checkout["gateway"] == "stripe":
            path = f"/sandbox/stripe/payment_intents/{checkout['gateway_payment_id']}/pay"
            body = {
                "client_secret": checkout["payment"]["stripe_client_secret"],
                "payment_method": "pm_card_visa",
            }
        else:
            path = f"/sandbox/razorpay/orders/{checkout['payment']['razorpay_order_id']}/pay"
            body = {"outcome": "success", "method": "card"}
        response = await self._post(self.sandbox, path, body, {}, retry=retry)
        if response.status_code != 200:
            raise RuntimeError(f"pay {checkout['checkout_id']}: {response.status_code}")
        proof: dict[str, Any] = response.json()
        return proof

    async def confirm_razorpay(
        self, checkout: dict[str, Any], proof: dict[str, Any], *, retry: bool = False
    ) -> int:
        response = await self._post(
            self.api,
            f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm",
            proof,
            {},
            retry=retry,
        )
        return response.status_code

    async def refund(
        self, payment_id: str, key: str, amount: int | None, *, retry: bool = False
    ) -> httpx.Response:
        body: dict[str, Any] = {"reason": "requested_by_customer"}
        if amount is not None:
            body["amount"] = amount
        return await self._post(
            self.api,
            f"/v1/payments/{payment_id}/refunds",
            body,
            {"Idempotency-Key": key},
            retry=retry,
        )

    async def _post(
        self,
        client: httpx.AsyncClient,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        retry: bool,
        within: float = 180,
    ) -> httpx.Response:
        deadline = time.monotonic() + within
        while True:
            try:
                response = await client.post(path, json=body, headers=headers)
                status = response.status_code
                if not retry or (status < 500 and status not in (409, 429)):
                    return response
                if status == 409 and "request_in_progress" not in response.text:
                    return response
            except httpx.TransportError:
                if not retry:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"POST {path} kept failing for {within}s")
            await asyncio.sleep(1)


async def connect_dev_temporal(temporal_address: str) -> Client:
    """The development stack's Temporal, connected as its API and worker connect (the same data
    converter and codec), so what the bench and the tests read and write is encoded alike."""
    return await connect_temporal(development_settings(temporal_address=temporal_address))
