"""The webhook relay: delivers the events intake committed to the inbox to their workflows.

**Where it runs: in every API process**, beside intake, or, with `WEBHOOK_RELAY_IN_API=false`,
as its own process (`python -m api.relay`, as the dev stack runs it). It needs what the API already
holds (the PostgreSQL pool and the Temporal client) and nothing of the worker, so no other process
has to be deployed, supervised and scaled for it; each API replica adds a relay, and replicas share
the work through the inbox itself (claims with `FOR UPDATE SKIP LOCKED` and a lease that a crashed
relay's claims outlive by at most `WEBHOOK_RELAY_LEASE_SECONDS`). Intake never waits for it: a
webhook's answer depends only on the inbox commit. Not in the worker, whose event loop runs the
activities whose latency the sagas feel, and which should not need to serve webhooks' backlog.

**How**: woken by PostgreSQL `LISTEN/NOTIFY` (a trigger notifies when a row becomes pending) and
by a periodic sweep as the fallback, it claims due rows in batches and keeps up to
`WEBHOOK_RELAY_CONCURRENCY` deliveries in flight. A relay delivers one subject's events (a
payment's, a refund's, a dispute's) in the order received; two replicas may overlap on one
subject, which the workflows tolerate as they tolerate the gateways' own reordering. Exactly once
per event: a row is settled after its signal, and a signal repeated after a crash is dropped by
the workflow, which deduplicates by event id.

**Supervised, never stopping**: Temporal or PostgreSQL unreachable pauses the relay with backoff
(up to 15 s) and does not count against the event; any other failure (a bug, a poison row) is
logged and retried with backoff and, after `WEBHOOK_RELAY_MAX_FAILURES`, parks the event as a
dead letter that operators list and replay. Nothing ends the loop but shutdown.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
from contextlib import suppress
from datetime import timedelta

import asyncpg
import structlog
from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.gateways.registry import KITS
from api.event_routing import Delivery, RoutingPolicy, resolve
from api.metrics import WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_LAG
from db import inbox, marketplace
from db.pool import DATABASE_UNAVAILABLE, create_pool
from domain.checkout import Gateway
from domain.webhooks import DowntimeFact, NoAction, SellerAccountFact, VerifiedEvent
from observability import configure_logging
from settings import Settings, get_settings
from temporal_client import connect_temporal

log = structlog.get_logger("api.relay")

RPC_TIMEOUT = timedelta(seconds=10)
POOL_SIZE = 4
"""The relay's own connections: a delivery runs two short statements around its signal, and a
pool apart from intake's means intake never waits for a connection the relay holds."""
COALESCE_SECONDS = 0.01
SHUTDOWN_GRACE_SECONDS = 10.0
RETENTION_INTERVAL_SECONDS = 3600.0
_TEMPORAL_AWAY = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


class Backoff:
    """Doubling pauses from `first` to `cap` seconds while something stays away."""

    def __init__(self, first: float = 1.0, cap: float = 15.0) -> None:
        self._first, self._cap = first, cap
        self._current = 0.0

    @property
    def active(self) -> bool:
        return self._current > 0

    def next(self) -> float:
        self._current = min(max(self._current * 2, self._first), self._cap)
        return self._current

    def reset(self) -> None:
        self._current = 0.0


def unreachable(error: BaseException) -> bool:
    """Temporal or PostgreSQL is away: the event is not at fault."""
    if isinstance(error, RPCError):
        return error.status in _TEMPORAL_AWAY
    if isinstance(error, RuntimeError):  # how the lazy Temporal client says it cannot connect
        return str(error).startswith("Failed client connect")
    return isinstance(error, DATABASE_UNAVAILABLE)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Until one of `events` is set, or `seconds` have passed."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Relay:
    def __init__(self, pool: asyncpg.Pool, temporal: Client, settings: Settings) -> None:
        self._pool = pool
        self._temporal = temporal
        self._settings = settings
        self._policy = RoutingPolicy.of(settings)
        self._wake = asyncio.Event()
        self._away = Backoff()
        self._paused_until = 0.0
        self._retry_at = math.inf
        """When this relay's earliest failed delivery is due again (others' at the sweep)."""
        self._last_of_subject: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; in-flight deliveries get a grace period to finish."""
        listener = asyncio.create_task(self._listen(stop))
        in_flight: set[asyncio.Task[None]] = set()
        concurrency = self._settings.webhook_relay_concurrency
        next_sweep = 0.0

        def room(in_flight: set[asyncio.Task[None]]) -> bool:
            """Claim in batches (a quarter of the slots, or whatever is due when idle), not once
            per notification or per finished delivery."""
            return concurrency - len(in_flight) >= max(1, concurrency // 4) or not in_flight

        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + self._settings.webhook_relay_sweep_seconds
                if now >= self._retry_at:
                    self._retry_at = math.inf
                if now >= self._paused_until and room(in_flight):
                    self._wake.clear()
                    free = concurrency - len(in_flight)
                    in_flight |= {self._start(event) for event in await self._claim(free)}
                wake_at = min(next_sweep, self._retry_at)
                if self._paused_until > now:
                    wake_at = min(wake_at, self._paused_until)
                # A notification matters only when the relay may claim; it stays set until then.
                unpaused = self._paused_until <= now
                wake = (self._wake, stop) if unpaused and room(in_flight) else (stop,)
                waiters = [asyncio.create_task(e.wait()) for e in wake]
                await asyncio.wait(
                    {*in_flight, *waiters},
                    timeout=max(wake_at - time.monotonic(), 0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()
                if self._wake.is_set() and not stop.is_set():
                    await asyncio.sleep(COALESCE_SECONDS)  # let a burst's notifications gather
                in_flight = {task for task in in_flight if not task.done()}
        finally:
            if in_flight:
                await asyncio.wait(in_flight, timeout=SHUTDOWN_GRACE_SECONDS)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def _start(self, event: inbox.Claimed) -> asyncio.Task[None]:
        """Deliver `event`, after the delivery of its subject's previous event if one is still
        under way here: one relay delivers a subject's events in the order received."""
        before = self._last_of_subject.get(event.subject) if event.subject else None
        task = asyncio.create_task(self._deliver(event, after=before))
        if event.subject:
            subject = event.subject
            self._last_of_subject[subject] = task

            def forget(done: asyncio.Task[None]) -> None:
                if self._last_of_subject.get(subject) is done:
                    del self._last_of_subject[subject]

            task.add_done_callback(forget)
        return task

    def _pause(self, reason: str, error: BaseException) -> float:
        if not self._away.active:
            log.warning("webhook relay paused", reason=reason, error=_describe(error))
        seconds = self._away.next()
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        return seconds

    async def _claim(self, free: int) -> list[inbox.Claimed]:
        try:
            return await inbox.claim(self._pool, free, self._settings.webhook_relay_lease_seconds)
        except DATABASE_UNAVAILABLE as error:
            self._pause("postgres unreachable", error)
            return []

    async def _deliver(self, event: inbox.Claimed, after: asyncio.Task[None] | None = None) -> None:
        if after is not None:
            await asyncio.wait([after])  # its outcome is its own; only the order matters here
        try:
            outcome, lag = await self._attempt(event)
        except Exception as error:
            try:
                await self._failed(event, error)
            except Exception as again:  # PostgreSQL went too: the claim lapses, then a retry
                log.warning(
                    "webhook relay could not record a failure",
                    event_id=event.event_id, error=_describe(again),
                )  # fmt: skip
            return
        self._away.reset()
        WEBHOOK_DELIVERIES.labels(event.gateway, outcome).inc()
        if lag is not None:
            WEBHOOK_DELIVERY_LAG.observe(lag)

    async def _attempt(self, event: inbox.Claimed) -> tuple[str, float | None]:
        """Parse, resolve, signal, settle. The outcome and the delivery lag."""
        gateway = Gateway(event.gateway)
        verified = VerifiedEvent(
            gateway, event.event_id, event.event_type, json.loads(event.body), event.body
        )
        fact = KITS[gateway].parse(verified)
        if isinstance(fact, DowntimeFact):
            async with self._pool.acquire() as conn, conn.transaction():
                await inbox.record_downtime(conn, fact)
                detail = f"downtime {fact.status} for {fact.method}"
                return "gateway_health", await inbox.settle(
                    conn, event.seq, "gateway_health", None, detail
                )
        if isinstance(fact, SellerAccountFact):
            async with self._pool.acquire() as conn, conn.transaction():
                seller = await marketplace.record_onboarding_state(
                    conn, fact.gateway, fact.gateway_account_id, fact.onboarding_state
                )
                if seller is None:
                    reason = "an account no seller of ours has"
                    return "no_action", await inbox.settle(
                        conn, event.seq, "no_action", None, reason
                    )
                detail = f"seller {seller} onboarding {fact.onboarding_state}"
                return "seller_onboarding", await inbox.settle(
                    conn, event.seq, "seller_onboarding", None, detail
                )
        if isinstance(fact, NoAction):
            return "no_action", await inbox.settle(
                self._pool, event.seq, "no_action", None, fact.reason
            )
        delivery = await resolve(self._pool, fact, self._policy)
        if isinstance(delivery, NoAction):
            return "no_action", await inbox.settle(
                self._pool, event.seq, "no_action", None, delivery.reason
            )
        try:
            await self._send(delivery)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND or delivery.start is not None:
                raise
            outcome = "workflow_closed"  # the saga is over; the ledger keeps the event
        else:
            outcome = "delivered"
        lag = await inbox.settle(
            self._pool, event.seq, outcome, delivery.workflow_id, delivery.reason
        )
        return outcome, lag

    async def _send(self, delivery: Delivery) -> None:
        start = delivery.start
        if start is None:
            await self._temporal.get_workflow_handle(delivery.workflow_id).signal(
                delivery.signal, delivery.arg, rpc_timeout=RPC_TIMEOUT
            )
            return
        await self._temporal.start_workflow(
            start.workflow,
            start.arg,
            id=delivery.workflow_id,
            task_queue=self._settings.task_queue,
            start_signal=delivery.signal,
            start_signal_args=[delivery.arg],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=start.summary,
            search_attributes=start.search_attributes,
            rpc_timeout=RPC_TIMEOUT,
        )

    async def _failed(self, event: inbox.Claimed, error: Exception) -> None:
        if unreachable(error):
            seconds = self._pause("temporal or postgres unreachable", error)
            WEBHOOK_DELIVERIES.labels(event.gateway, "temporal_unavailable").inc()
            await inbox.retry_later(self._pool, event.seq, seconds, _describe(error))
            return
        s = self._settings
        state = await inbox.record_failure(
            self._pool, event.seq, _describe(error),
            max_failures=s.webhook_relay_max_failures,
            retry_base_seconds=s.webhook_relay_retry_base_seconds,
            retry_cap_seconds=s.webhook_relay_retry_cap_seconds,
        )  # fmt: skip
        dead = state == inbox.DEAD
        if not dead:
            delay = min(
                s.webhook_relay_retry_base_seconds * 2**event.failures,
                s.webhook_relay_retry_cap_seconds,
            )
            self._retry_at = min(self._retry_at, time.monotonic() + delay)
        WEBHOOK_DELIVERIES.labels(event.gateway, "dead_lettered" if dead else "failed").inc()
        log.error(
            "webhook parked as a dead letter" if dead else "webhook delivery failed",
            gateway=event.gateway, event_id=event.event_id, event_type=event.event_type,
            failures=event.failures + 1, error=_describe(error),
        )  # fmt: skip

    async def _listen(self, stop: asyncio.Event) -> None:
        """Keep one connection LISTENing; reconnect when it is lost. Every (re)connection wakes
        the relay, since rows may have arrived while nobody listened."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self._settings.database_url, timeout=10)
            except DATABASE_UNAVAILABLE as error:
                log.warning("webhook relay cannot listen", error=_describe(error))
                await _first(stop, seconds=backoff.next())
                continue
            try:
                await conn.add_listener(inbox.CHANNEL, lambda *_: self._wake.set())
                backoff.reset()
                await self._listen_on(conn, stop)
            except DATABASE_UNAVAILABLE as error:
                log.warning("webhook relay lost its listening connection", error=_describe(error))
            finally:
                conn.terminate()
            await _first(stop, seconds=backoff.next())

    async def _listen_on(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        self._wake.set()
        while not (stop.is_set() or lost.is_set()):
            await _first(stop, lost, seconds=self._settings.webhook_relay_sweep_seconds)
            if not (stop.is_set() or lost.is_set()):
                await conn.execute("SELECT 1")  # a dead socket shows itself here


async def run_retention(pool: asyncpg.Pool, retention_days: int, stop: asyncio.Event) -> None:
    """Forget delivered webhook events older than the retention, hourly."""
    while not stop.is_set():
        with suppress(*DATABASE_UNAVAILABLE):
            purged = await inbox.purge_delivered(pool, retention_days)
            if purged:
                log.info("webhook inbox purged", events=purged, retention_days=retention_days)
        await _first(stop, seconds=RETENTION_INTERVAL_SECONDS)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """The relay as its own process, until `stop`."""
    pool = await create_pool(settings.database_url, POOL_SIZE)
    metrics = None
    if settings.relay_metrics_address:  # deliveries and lag; the API serves the ledger gauges
        host, _, port = settings.relay_metrics_address.rpartition(":")
        metrics, _ = start_http_server(int(port), host)
    try:
        temporal = await connect_temporal(settings, lazy=True)
        log.info("relay running", concurrency=settings.webhook_relay_concurrency)
        await Relay(pool, temporal, settings).run(stop)
    finally:
        if metrics is not None:
            metrics.shutdown()
        await pool.close()


def main() -> None:
    settings = get_settings()
    configure_logging("relay", settings.log_level)

    async def until_signaled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(until_signaled())


if __name__ == "__main__":
    main()
