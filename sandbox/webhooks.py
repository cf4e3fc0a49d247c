"""Webhook delivery, signed the way Stripe and Razorpay sign theirs.

Each event becomes one background task that retries with exponential backoff. Tasks
of the same chain (one payment and everything that happens to it) wait for their
predecessor, so a receiver sees a payment's events in the order they happened. An
API call only schedules the task; it never waits for, or fails because of, delivery.
"""

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.config import SandboxConfig
from sandbox.state import JSON, Gateway, new_id, now

STRIPE_API_VERSION = "2024-06-20"


def stripe_signature(secret: str, body: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def hmac_hex(secret: str, message: str) -> str:
    """Hex HMAC-SHA256, Razorpay's signature for webhooks and checkout results."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One event, ready to (re)send: the body is fixed, the headers are signed at send time."""

    gateway: Gateway
    url: str
    event_id: str
    event_type: str
    body: str
    headers: Callable[[], dict[str, str]]


class WebhookDispatcher:
    """Creates, signs and delivers webhook events; keeps a log of every attempt."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._client: httpx.AsyncClient | None = None
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent: dict[str, Delivery] = {}
        self._held: list[Delivery] | None = None
        self.deliveries: list[JSON] = []

    async def start(self) -> None:
        """Open the HTTP client used for deliveries."""
        self._client = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        """Abandon pending deliveries and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def stripe_event(self, chain: str, event_type: str, obj: JSON) -> None:
        """Send a Stripe event whose ``data.object`` is a snapshot of ``obj``."""
        url = self._config.stripe_webhook_url
        if url is None:
            return
        event_id = new_id("evt", 24)
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": STRIPE_API_VERSION,
                "created": now(),
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
                "data": {"object": obj},
            }
        )
        secret = self._config.stripe_webhook_secret

        def headers() -> dict[str, str]:
            return {"Stripe-Signature": stripe_signature(secret, body, int(time.time()))}

        self._schedule(chain, "stripe", url, event_id, event_type, body, headers)

    def razorpay_event(self, chain: str, event_type: str, entities: dict[str, JSON]) -> None:
        """Send a Razorpay event carrying ``entities`` (e.g. refund and payment)."""
        url = self._config.razorpay_webhook_url
        if url is None:
            return
        event_id = new_id("evt", 14)
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_sandbox",
                "event": event_type,
                "contains": list(entities),
                "payload": {name: {"entity": entity} for name, entity in entities.items()},
                "created_at": now(),
            }
        )
        fixed = {
            "X-Razorpay-Signature": hmac_hex(self._config.razorpay_webhook_secret, body),
            "x-razorpay-event-id": event_id,
        }
        self._schedule(chain, "razorpay", url, event_id, event_type, body, lambda: fixed)

    def _schedule(
        self,
        chain: str,
        gateway: Gateway,
        url: str,
        event_id: str,
        event_type: str,
        body: str,
        headers: Callable[[], dict[str, str]],
    ) -> None:
        delivery = Delivery(gateway, url, event_id, event_type, body, headers)
        self._sent[event_id] = delivery
        if self._held is not None:
            self._held.append(delivery)
            return
        previous = self._chains.get(chain)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._deliver(delivery)

        task = self._spawn(run())
        self._chains[chain] = task

        def forget_chain(done: asyncio.Task[None]) -> None:
            if self._chains.get(chain) is done:
                del self._chains[chain]

        task.add_done_callback(forget_chain)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def holding(self) -> bool:
        """Whether new events are being held back."""
        return self._held is not None

    def hold(self) -> None:
        """Keep every new event back until ``release``, to send them reordered or twice."""
        if self._held is None:
            self._held = []

    def release(self, reverse: bool, duplicate: bool, drop: bool = False) -> list[str]:
        """Send the held events one after another, newest first if ``reverse``, each twice if
        ``duplicate``, or none of them if ``drop``: a gateway that gave up (Stripe retries for up
        to three days, https://docs.stripe.com/webhooks#retries; Razorpay for 24 hours, then
        disables the endpoint, https://razorpay.com/docs/webhooks/best-practices). Later events
        are sent as they happen again."""
        held, self._held = ([] if drop else self._held or []), None
        ordered = list(reversed(held)) if reverse else held
        sequence = [d for d in ordered for _ in range(2 if duplicate else 1)]

        async def run() -> None:
            for delivery in sequence:
                await self._deliver(delivery)

        self._spawn(run())
        return [d.event_id for d in sequence]

    def redeliver(self, event_id: str) -> bool:
        """Send an already sent event again, with the same id, as a gateway's retry would."""
        delivery = self._sent.get(event_id)
        if delivery is None:
            return False
        self._spawn(self._deliver(delivery))
        return True

    async def _deliver(self, delivery: Delivery) -> None:
        assert self._client is not None, "dispatcher not started"
        backoff = self._config.webhook_initial_backoff_seconds
        for attempt in range(1, self._config.webhook_max_attempts + 1):
            record: JSON = {
                "gateway": delivery.gateway,
                "event_id": delivery.event_id,
                "type": delivery.event_type,
                "attempt": attempt,
                "status": None,
                "error": None,
                "at": datetime.now(UTC).isoformat(),
            }
            self.deliveries.append(record)
            try:
                response = await self._client.post(
                    delivery.url,
                    content=delivery.body.encode(),
                    headers={"Content-Type": "application/json", **delivery.headers()},
                )
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            else:
                record["status"] = response.status_code
                if response.is_success:
                    return
            if attempt < self._config.webhook_max_attempts:
                await asyncio.sleep(backoff)
                backoff *= 2
