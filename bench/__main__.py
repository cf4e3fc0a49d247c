"""`python -m bench`: the benchmark, in one run against a fresh local stack (or `--attach` to a
running one). Prints the figures and writes them to bench/results/ (JSON and a PNG chart).

1. floor: exactly a captured checkout's Temporal shape without I/O (bench/floor.py) on the same
   server and Worker settings;
2. checkouts end to end over HTTP at a fixed concurrency for each gateway, then paced at a fixed
   rate for the latencies (create; authorization → captured); then the shapes and Temporal Cloud
   actions of real sagas (a captured checkout per gateway, a partial refund), read from their
   histories: the run fails loudly if a checkout's shape is not the floor's;
3. open checkouts waiting for authorization, and the worker's RSS as they pile up;
4. signed webhooks at rising offered rates (80 % declined attempts of open checkouts, routed to
   their workflows; 10 % needing no action; 10 % redeliveries): intake latency and answers per
   step, then the relay's delivery lag and how long the backlog takes to drain.

5. isolation, on a second stack whose checkouts wait 60 s for payment: live checkouts at 2/s
   before and while 200 checkouts reach their deadline together and the reconciler runs.

`--webhooks-only` runs the warm-up and scenario 4 alone (on its own open checkouts);
`--isolation-only` scenario 5 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client

from bench.common import (
    cores,
    cpu_of_tree,
    cpu_seconds,
    latency_summary,
    rss_mib,
    start_stack,
)
from bench.floor import drive_floor
from bench.load import LeanClient
from devstack.stack import BIN, ROOT, Stack
from domain import names
from sandbox.webhooks import hmac_hex, stripe_signature
from settings import SANDBOX_RAZORPAY_WEBHOOK_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET, Settings
from testkit.history_shape import Shape, shape_of
from testkit.shop import (
    TERMINAL,
    Endpoints,
    Shop,
    StatusWatcher,
    connect_dev_temporal,
    new_order_id,
)

RESULTS = Path(__file__).resolve().parent / "results"
GATEWAYS = ("stripe", "razorpay")
TARGETS = {
    "ratio_to_floor_min": 0.85,
    "checkout_actions_max": 10,
    "checkout_events_max": 30,
    "refund_actions_max": 6,
    "create_p99_ms_max": 150,
    "authorization_to_captured_p99_ms_max": 500,
    "isolated_create_p99_ms_max": 300,
    "webhook_rate": 300,
    "webhook_p99_ms_max": 50,
    "worker_rss_mib_per_1000_open_max": 30,
}


@dataclass
class Sizes:
    concurrency: int = 8
    floor_seconds: float = 30
    checkout_seconds: float = 30
    paced_rate: float = 10
    paced_seconds: float = 15
    open_checkouts: int = 1200
    webhook_rates: tuple[int, ...] = (50, 100, 200, 300)
    webhook_step_seconds: float = 6
    routed_share: float = 0.8
    duplicate_share: float = 0.1
    storm_checkouts: int = 200
    live_rate: float = 2
    baseline_seconds: float = 20

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            concurrency=4, floor_seconds=8, checkout_seconds=8, paced_seconds=8,
            open_checkouts=300, webhook_rates=(100, 300), webhook_step_seconds=3,
            storm_checkouts=100, baseline_seconds=10,
        )  # fmt: skip


@dataclass
class Timings:
    create: list[float] = field(default_factory=list)
    authorized_to_captured: list[float] = field(default_factory=list)
    not_captured: int = 0


async def one_checkout(
    shop: Shop, watcher: StatusWatcher, gateway: str, timings: Timings, prefix: str = "bench"
) -> bool:
    """create → the customer pays (the sandbox authorizes and sends the signed webhook; a
    Razorpay client also posts its proof) → the saga confirms with the merchant and captures."""
    began = time.perf_counter()
    checkout = await shop.create_checkout(gateway, new_order_id(prefix))
    timings.create.append(time.perf_counter() - began)
    proof = await shop.pay(checkout)
    authorized = time.perf_counter()
    if gateway == "razorpay":
        await shop.confirm_razorpay(checkout, proof)
    status, seen = await watcher.wait(checkout["checkout_id"], TERMINAL, within=120)
    if status != "captured":
        timings.not_captured += 1
        return False
    timings.authorized_to_captured.append(seen - authorized)
    return True


async def closed_loop(
    shop: Shop, watcher: StatusWatcher, gateway: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` customers checking out one after another for `seconds`."""
    timings = Timings()
    done = 0
    stop_at = time.perf_counter() + seconds

    async def customer() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            if await one_checkout(shop, watcher, gateway, timings):
                done += 1

    began = time.perf_counter()
    await asyncio.gather(*(customer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "gateway": gateway,
        "concurrency": concurrency,
        "captured": done,
        "not_captured": timings.not_captured,
        "seconds": round(elapsed, 2),
        "per_second": round(done / elapsed, 2),
        "create": latency_summary(timings.create),
        "authorized_to_captured": latency_summary(timings.authorized_to_captured),
    }


async def paced(
    shop: Shop, watcher: StatusWatcher, rate: float, seconds: float
) -> tuple[dict[str, Any], dict[str, Timings]]:
    """Checkouts arriving at `rate` per second (open loop), gateways alternating."""
    timings = {g: Timings() for g in GATEWAYS}
    tasks = []
    began = time.perf_counter()
    count = int(rate * seconds)
    for i in range(count):
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        gateway = GATEWAYS[i % 2]
        tasks.append(asyncio.create_task(one_checkout(shop, watcher, gateway, timings[gateway])))
    captured = sum(await asyncio.gather(*tasks))
    both = Timings(
        create=[t for g in GATEWAYS for t in timings[g].create],
        authorized_to_captured=[t for g in GATEWAYS for t in timings[g].authorized_to_captured],
    )
    result = {
        "rate": rate,
        "offered": count,
        "captured": captured,
        "create": latency_summary(both.create),
        "authorized_to_captured": latency_summary(both.authorized_to_captured),
        "by_gateway": {
            g: {
                "create": latency_summary(timings[g].create),
                "authorized_to_captured": latency_summary(timings[g].authorized_to_captured),
            }
            for g in GATEWAYS
        },
    }
    return result, timings


async def open_checkouts(
    shop: Shop, endpoints: Endpoints, count: int, concurrency: int = 16
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`count` checkouts created and left waiting for the customer; the worker's RSS as they
    accumulate (sampled every 250)."""
    pid = endpoints.worker_pid()
    assert pid is not None, "no worker process to measure"
    await asyncio.sleep(2)  # let the previous phase's stragglers settle
    samples = [(0, rss_mib(pid))]
    created: list[dict[str, Any]] = []
    queue = iter(range(count))

    async def merchant() -> None:
        for i in queue:
            gateway = GATEWAYS[i % 2]
            created.append(await shop.create_checkout(gateway, new_order_id("open")))
            if len(created) % 250 == 0:
                samples.append((len(created), rss_mib(pid)))

    began = time.perf_counter()
    await asyncio.gather(*(merchant() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await asyncio.sleep(2)
    samples.append((len(created), rss_mib(pid)))
    # RSS grows while the workflow cache fills (WORKER_MAX_CACHED_WORKFLOWS, 50 by default) and
    # then by what an open checkout costs beyond it: the slope over the first 1000 open ones.
    first = [s for s in samples if s[0] <= 1000]
    per_1000 = (first[-1][1] - first[0][1]) / max(first[-1][0], 1) * 1000 if len(first) > 1 else 0.0
    overall = (samples[-1][1] - samples[0][1]) / max(len(created), 1) * 1000
    result = {
        "open": len(created),
        "create_per_second": round(len(created) / elapsed, 1),
        "rss_mib_samples": [[n, round(m, 1)] for n, m in samples],
        "rss_mib_per_1000_first_1000": round(per_1000, 1),
        "rss_mib_per_1000_overall": round(overall, 1),
        "rss_mib_at_end": round(samples[-1][1], 1),
    }
    return result, created


def stripe_failed_payment(intent_id: str) -> dict[str, Any]:
    return {
        "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
        "livemode": False, "type": "payment_intent.payment_failed",
        "data": {"object": {
            "id": intent_id, "object": "payment_intent", "status": "requires_payment_method",
            "metadata": {}, "latest_charge": None,
            "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline",
                                   "message": "Your card was declined."},
        }},
    }  # fmt: skip


def stripe_charge_updated(intent_id: str) -> dict[str, Any]:
    return {
        "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
        "livemode": False, "type": "charge.updated",
        "data": {"object": {"id": f"ch_{intent_id[3:]}", "object": "charge",
                            "payment_intent": intent_id, "description": "updated"}},
    }  # fmt: skip


def razorpay_order_notified(order_id: str) -> dict[str, Any]:
    return {
        "entity": "event", "account_id": "acc_sandbox", "event": "order.notification.delivered",
        "contains": ["order"], "created_at": int(time.time()),
        "payload": {"order": {"entity": {"id": order_id, "entity": "order"}}},
    }  # fmt: skip


def razorpay_failed_payment(order_id: str, payment_id: str) -> dict[str, Any]:
    return {
        "entity": "event", "account_id": "acc_sandbox", "event": "payment.failed",
        "contains": ["payment"], "created_at": int(time.time()),
        "payload": {"payment": {"entity": {
            "id": payment_id, "entity": "payment", "order_id": order_id, "status": "failed",
            "amount": 2_500, "currency": "INR", "error_code": "BAD_REQUEST_ERROR",
            "error_description": "Payment failed",
        }}},
    }  # fmt: skip


@dataclass(frozen=True)
class Webhook:
    gateway: str
    event_id: str
    body: dict[str, Any]

    def request(self) -> tuple[str, bytes, dict[str, str]]:
        """Path, raw body and headers, signed now as the gateway would."""
        if self.gateway == "stripe":
            raw = json.dumps({"id": self.event_id, **self.body})
            signature = stripe_signature(SANDBOX_STRIPE_WEBHOOK_SECRET, raw, int(time.time()))
            headers = {"Stripe-Signature": signature}
        else:
            raw = json.dumps(self.body)
            headers = {
                "X-Razorpay-Signature": hmac_hex(SANDBOX_RAZORPAY_WEBHOOK_SECRET, raw),
                "X-Razorpay-Event-Id": self.event_id,
            }
        headers["Content-Type"] = "application/json"
        return f"/v1/webhooks/{self.gateway}", raw.encode(), headers


def next_webhook(
    rng: random.Random, open_: list[dict[str, Any]], sent: list[Webhook], sizes: Sizes
) -> tuple[Webhook, bool]:
    """The mix, and whether the event is routed to a workflow: declined payment attempts of open
    checkouts (routed, `routed_share`), redeliveries of earlier events (`duplicate_share`), and
    events that need no action (Stripe `charge.updated`, Razorpay order notifications)."""
    draw = rng.random()
    if sent and draw < sizes.duplicate_share:
        return rng.choice(sent), False
    checkout = rng.choice(open_)
    pid = checkout["gateway_payment_id"]
    event_id = f"evt_bench{rng.getrandbits(64):016x}"
    routed = draw < sizes.duplicate_share + sizes.routed_share
    if checkout["gateway"] == "razorpay":
        if routed:
            body = razorpay_failed_payment(pid, f"pay_bench{rng.getrandbits(32):08x}")
        else:
            body = razorpay_order_notified(pid)
        return Webhook("razorpay", event_id, body), routed
    body = stripe_failed_payment(pid) if routed else stripe_charge_updated(pid)
    return Webhook("stripe", event_id, body), routed


async def delivery_lags(pool: asyncpg.Pool, routed: list[Webhook]) -> list[float]:
    """Seconds from the inbox commit to the signal, for the routed events delivered."""
    rows = await pool.fetch(
        """
        SELECT extract(epoch FROM delivered_at - received_at)::float8 AS lag
        FROM webhook_inbox WHERE event_id = ANY($1) AND outcome = 'delivered'
        """,
        [hook.event_id for hook in routed],
    )
    return [r["lag"] for r in rows]


async def wait_for_drain(pool: asyncpg.Pool, within: float = 600) -> float:
    """Seconds until the inbox holds no pending event."""
    began = time.perf_counter()
    while time.perf_counter() - began < within:
        if not await pool.fetchval("SELECT count(*) FROM webhook_inbox WHERE state = 'pending'"):
            return time.perf_counter() - began
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the webhook backlog did not drain within {within} s")


async def webhook_ingest(
    endpoints: Endpoints, pool: asyncpg.Pool, open_: list[dict[str, Any]], sizes: Sizes
) -> tuple[list[dict[str, Any]], dict[int, list[float]]]:
    """Open-loop steps at rising rates; per step: the answers and intake latency, then how long
    the relay takes to drain the backlog the step left, the routed events' delivery lag, and the
    cores each process of the stack used meanwhile (where the time goes)."""
    rng = random.Random(8)
    sent: list[Webhook] = []
    results = []
    latencies: dict[int, list[float]] = {}
    client = LeanClient(endpoints.api_url)

    async def send(hook: Webhook, outcome: dict[str, int], times: list[float]) -> None:
        path, raw, headers = hook.request()
        began = time.perf_counter()
        try:
            key = str(await client.post(path, raw, headers))
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            key = type(error).__name__
        times.append(time.perf_counter() - began)
        outcome[key] = outcome.get(key, 0) + 1

    for rate in sizes.webhook_rates:
        await client.close()  # the server has closed connections idle since the last step
        outcome: dict[str, int] = {}
        times: list[float] = []
        routed: list[Webhook] = []
        count = int(rate * sizes.webhook_step_seconds)
        tasks = []
        cpu = time.process_time()
        stack_cpu = cpu_seconds(endpoints.stack)
        began = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
            hook, is_routed = next_webhook(rng, open_, sent, sizes)
            sent.append(hook)
            if is_routed:
                routed.append(hook)
            tasks.append(asyncio.create_task(send(hook, outcome, times)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu_share = (time.process_time() - cpu) / elapsed
        drain = await wait_for_drain(pool)
        busy = time.perf_counter() - began
        cores_used = {
            name: round((used - stack_cpu[name]) / busy, 2)
            for name, used in cpu_seconds(endpoints.stack).items()
            if name in stack_cpu
        }
        lags = await delivery_lags(pool, routed)
        accepted = sum(n for k, n in outcome.items() if k.startswith("2"))
        latencies[rate] = times
        results.append({
            "offered_per_second": rate,
            "sent": count,
            "routed": len(routed),
            "accepted": accepted,
            "accepted_per_second": round(accepted / elapsed, 1),
            "all_2xx": accepted == count,
            "answers": outcome,
            "latency": latency_summary(times),
            "delivered": len(lags),
            "delivery_lag": latency_summary(lags),
            "backlog_drain_seconds": round(drain, 2),
            "cores_used_until_drained": cores_used,
            "load_generator_cpu_share": round(cpu_share, 2),
        })  # fmt: skip
        await asyncio.sleep(2)
    await client.close()
    return results, latencies


class ShapeMismatch(SystemExit):
    """The floor no longer has a captured checkout's shape: its figure would compare unlike
    things."""


async def saga_shapes(client: Client, shop: Shop, floor_workflow_id: str) -> dict[str, Any]:
    """The shape, events and Temporal Cloud actions of real sagas, read from their histories:
    the last captured checkout of each gateway, a partial refund of one (made here and waited
    for), and a floor run."""
    pool = shop.pool
    refunded = await pool.fetchrow(
        "SELECT payment_id, amount FROM payments WHERE status = 'captured' ORDER BY updated_at"
        " DESC LIMIT 1"
    )
    response = await shop.refund(refunded["payment_id"], "bench-refund", refunded["amount"] // 2)
    response.raise_for_status()
    for _ in range(600):
        refund = await pool.fetchrow(
            "SELECT workflow_id, status FROM refunds WHERE payment_id = $1",
            refunded["payment_id"],
        )
        if refund is not None and refund["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError("the bench's refund did not settle within a minute")
    workflows = {"floor": floor_workflow_id, "refund": refund["workflow_id"]}
    for gateway in GATEWAYS:
        workflows[f"checkout_{gateway}"] = await pool.fetchval(
            "SELECT workflow_id FROM payments WHERE gateway = $1 AND status = 'captured'"
            " ORDER BY updated_at DESC LIMIT 1",
            gateway,
        )
    shapes: dict[str, Shape] = {}
    for name, workflow_id in workflows.items():
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        shapes[name] = shape_of(history)
    return {
        name: shape.as_dict() | {"workflow_id": workflows[name]} for name, shape in shapes.items()
    } | {
        "floor_differences": {
            gateway: shapes["floor"].differences(shapes[f"checkout_{gateway}"])
            for gateway in GATEWAYS
        }
    }


STORM_WINDOW_SECONDS = 60
"""The isolation stack's authorization window: the storm's checkouts expire a minute after
they were created."""
STORM_ENV = {
    "AUTHORIZATION_WINDOW_SECONDS": str(STORM_WINDOW_SECONDS),
    # The reconciler finds the storm's checkouts (waiting for payment) stale, and asks the gateway.
    "RECONCILE_STALE_AFTER_SECONDS": json.dumps(
        {"unknown": 60, "processing": 60, "pending": 60, "created": 30, "requires_action": 30,
         "authorized": 60, "needs_review": 600}
    ),
}  # fmt: skip


async def isolation(endpoints: Endpoints, sizes: Sizes) -> dict[str, Any]:
    """Live checkouts (create → pay → capture) at `live_rate`, first alone, then while
    `storm_checkouts` checkouts reach their authorization deadline together (each looks at the
    gateway, releases, records) and the reconciler runs: create latency must stay low."""
    client = await connect_dev_temporal(endpoints.temporal_address)
    async with Shop(endpoints) as shop, StatusWatcher(shop.pool) as watcher:
        warm = Timings()
        await asyncio.gather(*(one_checkout(shop, watcher, g, warm) for g in GATEWAYS * 2))
        print(f"isolation: live checkouts at {sizes.live_rate}/s alone…", flush=True)
        baseline, _ = await paced(shop, watcher, sizes.live_rate, sizes.baseline_seconds)
        print(f"isolation: {sizes.storm_checkouts} checkouts left to expire…", flush=True)
        began = time.perf_counter()
        storm: list[dict[str, Any]] = []
        queue = iter(range(sizes.storm_checkouts))

        async def merchant() -> None:
            for i in queue:
                storm.append(await shop.create_checkout(GATEWAYS[i % 2], new_order_id("storm")))

        await asyncio.gather(*(merchant() for _ in range(16)))
        spread = time.perf_counter() - began
        await asyncio.sleep(max(0.0, began + STORM_WINDOW_SECONDS - 2 - time.perf_counter()))
        print("isolation: the deadlines pass and the reconciler runs…", flush=True)
        meter = CpuMeter(endpoints)
        await client.get_schedule_handle(names.RECONCILE_SCHEDULE_ID).trigger()
        during, _ = await paced(shop, watcher, sizes.live_rate, spread + 20)
        ids = [c["checkout_id"] for c in storm]
        for _ in range(1200):
            rows = await shop.pool.fetch(
                "SELECT status, count(*) AS n FROM payments WHERE payment_id = ANY($1)"
                " GROUP BY status",
                ids,
            )
            outcome = {r["status"]: r["n"] for r in rows}
            if outcome.get("expired", 0) == len(ids):
                break
            await asyncio.sleep(0.1)
        storm_done = time.perf_counter() - began - STORM_WINDOW_SECONDS
        cores_busy = meter.cores()
        reconciled = await shop.pool.fetchval("SELECT count(*) FROM reconciliation_runs")
    return {
        "live_rate": sizes.live_rate,
        "storm_checkouts": len(ids),
        "storm_created_within_seconds": round(spread, 1),
        "storm_outcome": outcome,
        "storm_expired_within_seconds_of_first_deadline": round(storm_done, 1),
        "reconciler_runs_recorded": reconciled,
        "cores_busy_from_deadline_to_last_expiry": cores_busy,
        "baseline": baseline,
        "during_storm": during,
    }


def chart(path: Path, series: dict[str, list[float]], webhooks: dict[int, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, data, title in (
        (axes[0], series, "Checkouts (paced): latency CDF"),
        (axes[1], {f"{r}/s offered": v for r, v in webhooks.items()}, "Webhooks: latency CDF"),
    ):
        for label, values in data.items():
            if not values:
                continue
            ms = sorted(v * 1000 for v in values)
            ax.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("share of requests at or below")
        ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
        ax.grid(True, which="both", linewidth=0.3)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def temporal_version() -> str:
    try:
        out = subprocess.run(
            [str(BIN / "temporal"), "--version"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    except OSError:
        return "unknown"


class CpuMeter:
    """CPU each process of the stack (the floor's worker and this driver included) spends from
    now, per saga completed: where a phase's time goes on the shared cores."""

    def __init__(self, endpoints: Endpoints, floor_worker: int | None = None) -> None:
        self._endpoints, self._floor_worker = endpoints, floor_worker
        self._start = self._now()
        self._began = time.perf_counter()

    def _now(self) -> dict[str, float]:
        floor = {} if self._floor_worker is None else {"floor_worker": self._floor_worker}
        return {
            **cpu_seconds(self._endpoints.stack),
            **{name: cpu_of_tree(pid) for name, pid in floor.items()},
            "driver": time.process_time(),
        }

    def _used(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}

    def per(self, completed: int) -> dict[str, float]:
        per = {name: round(s * 1000 / max(completed, 1), 1) for name, s in self._used().items()}
        return per | {"total": round(sum(per.values()), 1)}

    def cores(self) -> dict[str, float]:
        """Cores each process kept busy since the meter started, on average."""
        elapsed = time.perf_counter() - self._began
        busy = {name: round(s / elapsed, 2) for name, s in self._used().items()}
        return busy | {"total": round(sum(busy.values()), 2)}


def start_floor_worker(endpoints: Endpoints, log_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEMPORAL_ADDRESS": endpoints.temporal_address, "PYTHONUNBUFFERED": "1"}
    log = (log_dir / "floor-worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bench.floor"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def webhook_verdicts(steps: list[dict[str, Any]]) -> dict[str, bool]:
    at_target = [s for s in steps if s["offered_per_second"] >= TARGETS["webhook_rate"]]
    return {
        "webhooks at 300/s: intake p99 <= 50 ms, every answer 2xx": bool(at_target)
        and all(
            s["all_2xx"] and s["latency"]["p99_ms"] <= TARGETS["webhook_p99_ms_max"]
            for s in at_target
        ),
        "webhooks: every routed event delivered": all(s["delivered"] == s["routed"] for s in steps),
    }


def print_webhooks(steps: list[dict[str, Any]]) -> None:
    for s in steps:
        lag = s["delivery_lag"]
        print(
            f"webhooks offered {s['offered_per_second']}/s: {s['accepted']}/{s['sent']} 2xx,"
            f" intake p50 {s['latency']['p50_ms']} ms p99 {s['latency']['p99_ms']} ms;"
            f" {s['delivered']}/{s['routed']} routed delivered, lag p50 {lag['p50_ms']} ms"
            f" p99 {lag['p99_ms']} ms; backlog drained {s['backlog_drain_seconds']} s after"
            f" the step; {s['answers']}; cores used until drained: {s['cores_used_until_drained']}"
        )


def check(report: dict[str, Any]) -> dict[str, bool]:
    paced = report["checkouts_paced"]
    sagas = report["sagas"]
    checkouts = [sagas[f"checkout_{g}"] for g in GATEWAYS]
    return (
        {
            "ratio_to_floor >= 0.85": report["ratio_to_floor"] >= TARGETS["ratio_to_floor_min"],
            "captured checkout <= 10 actions, <= 30 events": all(
                c["actions"] <= TARGETS["checkout_actions_max"]
                and c["events"] <= TARGETS["checkout_events_max"]
                for c in checkouts
            ),
            "refund <= 6 actions": sagas["refund"]["actions"] <= TARGETS["refund_actions_max"],
            "create p99 <= 150 ms at 10/s": paced["create"]["p99_ms"]
            <= TARGETS["create_p99_ms_max"],
            "authorized -> captured p99 <= 500 ms": paced["authorized_to_captured"]["p99_ms"]
            <= TARGETS["authorization_to_captured_p99_ms_max"],
            "<= 30 MiB worker RSS per 1000 open": report["open_checkouts"][
                "rss_mib_per_1000_first_1000"
            ]
            <= TARGETS["worker_rss_mib_per_1000_open_max"],
        }
        | webhook_verdicts(report["webhooks"])
        | isolation_verdicts(report.get("isolation"))
    )


def isolation_verdicts(isolation: dict[str, Any] | None) -> dict[str, bool]:
    if isolation is None:
        return {}
    return {
        "create p99 <= 300 ms at 2/s while 200 checkouts expire and the reconciler runs": isolation[
            "during_storm"
        ]["create"]["p99_ms"]
        <= TARGETS["isolated_create_p99_ms_max"]
    }


def print_isolation(isolation: dict[str, Any]) -> None:
    for phase in ("baseline", "during_storm"):
        p = isolation[phase]
        print(
            f"isolation, {phase}: create p50 {p['create']['p50_ms']} ms p99 "
            f"{p['create']['p99_ms']} ms; authorized→captured p99 "
            f"{p['authorized_to_captured']['p99_ms']} ms ({p['captured']}/{p['offered']})"
        )
    print(
        f"isolation: {isolation['storm_checkouts']} storm checkouts {isolation['storm_outcome']},"
        f" all expired {isolation['storm_expired_within_seconds_of_first_deadline']} s after the"
        " first deadline"
    )
    busy = isolation["cores_busy_from_deadline_to_last_expiry"]
    print(f"isolation: cores busy from the first deadline to the last expiry: {busy}")


def print_report(report: dict[str, Any], verdicts: dict[str, bool]) -> None:
    print(f"\nmachine: {report['machine']['cores']} cores; {report['temporal']['persistence']}")
    f = report["floor"]
    print(f"floor: {f['per_second']} workflows/s at concurrency {report['sizes']['concurrency']}")
    for run in report["checkouts_closed_loop"]:
        print(
            f"checkouts {run['gateway']:<8}: {run['per_second']}/s "
            f"(create p50 {run['create']['p50_ms']} ms, p99 {run['create']['p99_ms']} ms; "
            f"authorized→captured p50 {run['authorized_to_captured']['p50_ms']} ms, "
            f"p99 {run['authorized_to_captured']['p99_ms']} ms)"
        )
    print(
        f"checkouts/s {report['checkouts_per_second']}, ratio to floor {report['ratio_to_floor']}"
    )
    print(f"CPU ms per floor workflow: {f['cpu_ms_per_workflow']}")
    for run in report["checkouts_closed_loop"]:
        print(f"CPU ms per {run['gateway']} checkout: {run['cpu_ms_per_checkout']}")
    for name, saga in report["sagas"].items():
        if name != "floor_differences":
            print(
                f"{name:<17}: {saga['actions']} actions, {saga['events']} events "
                f"({saga['activities']} activities, {saga['local_activities']} local, "
                f"{saga['signals']} signals, {saga['updates']} updates, {saga['timers']} timers, "
                f"{saga['upserts']} upserts, {saga['workflow_tasks']} workflow tasks)"
            )
    p = report["checkouts_paced"]
    print(
        f"paced {p['rate']}/s: create p50 {p['create']['p50_ms']} ms p99 {p['create']['p99_ms']}"
        f" ms; authorized→captured p50 {p['authorized_to_captured']['p50_ms']} ms"
        f" p99 {p['authorized_to_captured']['p99_ms']} ms ({p['captured']}/{p['offered']})"
    )
    o = report["open_checkouts"]
    print(
        f"open checkouts: {o['open']} ({o['create_per_second']}/s); worker RSS "
        f"{o['rss_mib_per_1000_first_1000']} MiB per 1000 (first 1000), "
        f"{o['rss_mib_per_1000_overall']} MiB per 1000 overall, {o['rss_mib_at_end']} MiB at end"
    )
    print_webhooks(report["webhooks"])
    if "isolation" in report:
        print_isolation(report["isolation"])
    print("\ntargets:")
    print_verdicts(verdicts)


async def run(endpoints: Endpoints, sizes: Sizes, log_dir: Path) -> dict[str, Any]:
    load = os.getloadavg()
    client = await connect_dev_temporal(endpoints.temporal_address)
    floor_worker = start_floor_worker(endpoints, log_dir)
    try:
        async with Shop(endpoints) as shop, StatusWatcher(shop.pool) as watcher:
            print("warming up…", flush=True)
            warm = Timings()
            await asyncio.gather(
                *(one_checkout(shop, watcher, GATEWAYS[i % 2], warm) for i in range(8))
            )
            await drive_floor(client, 2, 2)
            print(f"floor: {sizes.concurrency} loops for {sizes.floor_seconds}s…", flush=True)
            meter = CpuMeter(endpoints, floor_worker.pid)
            floor = await drive_floor(client, sizes.concurrency, sizes.floor_seconds)
            floor["cpu_ms_per_workflow"] = meter.per(int(floor["completed"]))
            closed = []
            for gateway in GATEWAYS:
                print(f"checkouts, {gateway}: {sizes.concurrency} loops…", flush=True)
                meter = CpuMeter(endpoints, floor_worker.pid)
                run_ = await closed_loop(
                    shop, watcher, gateway, sizes.concurrency, sizes.checkout_seconds
                )
                run_["cpu_ms_per_checkout"] = meter.per(run_["captured"])
                closed.append(run_)
            print("the sagas' shapes…", flush=True)
            sagas = await saga_shapes(client, shop, str(floor["sample_workflow_id"]))
            print(f"checkouts paced at {sizes.paced_rate}/s…", flush=True)
            paced_result, paced_timings = await paced(
                shop, watcher, sizes.paced_rate, sizes.paced_seconds
            )
            print(f"{sizes.open_checkouts} open checkouts…", flush=True)
            open_result, created = await open_checkouts(shop, endpoints, sizes.open_checkouts)
            print(f"webhooks at {sizes.webhook_rates}/s…", flush=True)
            webhook_steps, webhook_latencies = await webhook_ingest(
                endpoints, shop.pool, created, sizes
            )
    finally:
        floor_worker.terminate()
        floor_worker.wait(30)
    total = sum(r["captured"] for r in closed)
    per_second = total / sum(r["seconds"] for r in closed)
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": cores(),
            "python": platform.python_version(),
            "os": platform.system(),
            "load_average_before": [round(x, 2) for x in load],
        },
        "temporal": {
            "version": temporal_version(),
            "persistence": "Temporal dev server (temporal server start-dev), SQLite file",
            "worker": "worker.py defaults: max_cached_workflows"
            f" {Settings.model_fields['worker_max_cached_workflows'].default},"
            " max_concurrent_activities/workflow_tasks SDK defaults",
        },
        "sizes": sizes.__dict__ | {"webhook_rates": list(sizes.webhook_rates)},
        "targets": TARGETS,
        "floor": floor,
        "checkouts_closed_loop": closed,
        "checkouts_per_second": round(per_second, 2),
        "ratio_to_floor": round(per_second / float(floor["per_second"]), 3),
        "sagas": sagas,
        "checkouts_paced": paced_result,
        "open_checkouts": open_result,
        "webhooks": webhook_steps,
    }
    series = {f"create ({g})": paced_timings[g].create for g in GATEWAYS} | {
        f"authorized→captured ({g})": paced_timings[g].authorized_to_captured for g in GATEWAYS
    }
    chart(RESULTS / "benchmark.png", series, webhook_latencies)
    return report


async def run_webhooks(endpoints: Endpoints, sizes: Sizes) -> dict[str, Any]:
    """Scenario 4 alone: warm up, leave open checkouts, then the webhook steps."""
    load = os.getloadavg()
    async with Shop(endpoints) as shop, StatusWatcher(shop.pool) as watcher:
        print("warming up…", flush=True)
        warm = Timings()
        await asyncio.gather(
            *(one_checkout(shop, watcher, GATEWAYS[i % 2], warm) for i in range(8))
        )
        print(f"{sizes.open_checkouts} open checkouts…", flush=True)
        _, created = await open_checkouts(shop, endpoints, sizes.open_checkouts)
        print(f"webhooks at {sizes.webhook_rates}/s…", flush=True)
        steps, _ = await webhook_ingest(endpoints, shop.pool, created, sizes)
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": cores(), "python": platform.python_version(), "os": platform.system(),
                    "load_average_before": [round(x, 2) for x in load]},
        "sizes": sizes.__dict__ | {"webhook_rates": list(sizes.webhook_rates)},
        "targets": {k: v for k, v in TARGETS.items() if k.startswith("webhook")},
        "webhooks": steps,
    }  # fmt: skip
    report["verdicts"] = webhook_verdicts(steps)
    write(RESULTS / "webhooks.json", report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--open", type=int, dest="open_checkouts", help="open checkouts")
    parser.add_argument(
        "--attach", action="store_true",
        help="use a running stack (scripts/dev ports) instead of starting one",
    )  # fmt: skip
    parser.add_argument(
        "--webhooks-only", action="store_true",
        help="only the webhook scenario (after a warm-up and its open checkouts)",
    )  # fmt: skip
    parser.add_argument(
        "--isolation-only", action="store_true",
        help="only the isolation scenario (live checkouts during a deadline storm)",
    )  # fmt: skip
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.concurrency:
        sizes.concurrency = args.concurrency
    if args.open_checkouts:
        sizes.open_checkouts = args.open_checkouts

    if args.isolation_only:
        report: dict[str, Any] = {"isolation": run_isolation(args.data_dir, sizes)}
        report["verdicts"] = isolation_verdicts(report["isolation"])
        write(RESULTS / "isolation.json", report)
        print_isolation(report["isolation"])
        print_verdicts(report["verdicts"])
        return
    stack: Stack | None = None
    if args.attach:
        if not args.database_url:
            parser.error("--attach needs --database-url (or DATABASE_URL)")
        endpoints = Endpoints(
            "http://127.0.0.1:8000", "http://127.0.0.1:8100", "127.0.0.1:7233", args.database_url
        )
        log_dir = ROOT / ".data" / "logs"
    else:
        shutil.rmtree(args.data_dir, ignore_errors=True)
        print(f"starting the stack in {args.data_dir}…", flush=True)
        stack = start_stack(args.data_dir)
        endpoints = Endpoints.of(stack)
        log_dir = args.data_dir / "logs"
    began = time.perf_counter()
    try:
        if args.webhooks_only:
            report = asyncio.run(run_webhooks(endpoints, sizes))
        else:
            report = asyncio.run(run(endpoints, sizes, log_dir))
    finally:
        if stack is not None:
            stack.stop()
    if args.webhooks_only:
        print_webhooks(report["webhooks"])
        print_verdicts(report["verdicts"])
        print(f"\nwritten: {RESULTS / 'webhooks.json'}")
        return
    if not args.attach:  # the isolation scenario needs a stack with a short payment window
        report["isolation"] = run_isolation(args.data_dir, sizes)
    report["run_seconds"] = round(time.perf_counter() - began)
    report["verdicts"] = check(report)
    write(RESULTS / "benchmark.json", report)
    print_report(report, report["verdicts"])
    print(f"\nwritten: {RESULTS / 'benchmark.json'}, {RESULTS / 'benchmark.png'}")
    differences = report["sagas"]["floor_differences"]
    if any(differences.values()):
        raise ShapeMismatch(
            "the floor's Temporal shape differs from a captured checkout's (floor, checkout): "
            f"{differences}: make bench/floor.py match the checkout again"
        )


def run_isolation(data_dir: Path, sizes: Sizes) -> dict[str, Any]:
    storm_dir = data_dir.with_name(data_dir.name + "-isolation")
    shutil.rmtree(storm_dir, ignore_errors=True)
    print(f"starting the isolation stack in {storm_dir}…", flush=True)
    stack = start_stack(storm_dir, STORM_ENV)
    try:
        return asyncio.run(isolation(Endpoints.of(stack), sizes))
    finally:
        stack.stop()


def write(path: Path, report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def print_verdicts(verdicts: dict[str, bool]) -> None:
    for name, ok in verdicts.items():
        print(f"  {'met   ' if ok else 'MISSED'} {name}")


if __name__ == "__main__":
    main()
