"""The fault campaign's machinery and the money invariants: concurrent checkouts (and refunds and
disputes of them) driven over HTTP while one kind of fault at a time is injected, then checked
against the sandbox's money-movement log and our ledger. `python -m bench.faults` runs it large,
the end-to-end suite small."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from devstack.stack import Stack
from testkit.shop import TERMINAL, Shop, StatusWatcher, new_order_id

RESULTS = Path(__file__).resolve().parent / "results"
AMOUNT = 2_500
SETTLE_WITHIN = 240.0


@dataclass
class Saga:
    """One order: paid or left waiting for the customer, then refunds of what was captured."""

    gateway: str
    pay: bool = True
    refunds: list[int | None] = field(default_factory=list)  # None = all that is left
    race_last_refund: bool = False  # two requests for the rest at once: exactly one may win
    dispute: str | None = None  # the issuer's decision on a chargeback: "won" or "lost"
    order_id: str = field(default_factory=lambda: new_order_id("fault"))
    checkout: dict[str, Any] | None = None
    final_status: str | None = None
    error: str | None = None


def plan(rng: random.Random, count: int, *, refunds: bool) -> list[Saga]:
    sagas = []
    for i in range(count):
        saga = Saga("stripe" if i % 2 == 0 else "razorpay")
        roll = rng.random()
        if roll < 0.05:
            saga.pay = False  # rightly still waiting for authorization at the end
        elif refunds and roll < 0.35:
            saga.refunds = [1_000, None]
            saga.race_last_refund = roll < 0.2
        elif refunds and roll < 0.5:
            saga.refunds = [None]
        elif refunds and roll < 0.65:
            saga.dispute = "won" if roll < 0.57 else "lost"
        sagas.append(saga)
    return sagas


async def drive(shop: Shop, watcher: StatusWatcher, saga: Saga) -> None:
    """What the merchant and the customer do, retrying through outages as real ones would."""
    try:
        saga.checkout = checkout = await shop.create_checkout(
            saga.gateway, saga.order_id, amount=AMOUNT, retry=True
        )
        if not saga.pay:
            return
        proof = await shop.pay(checkout, retry=True)
        if saga.gateway == "razorpay":
            await shop.confirm_razorpay(checkout, proof, retry=True)
        status, _ = await watcher.wait(checkout["checkout_id"], TERMINAL, SETTLE_WITHIN)
        saga.final_status = status
        if status != "captured":
            return
        for n, amount in enumerate(saga.refunds):
            key = f"{saga.order_id}-refund-{n}"
            asks = [shop.refund(checkout["checkout_id"], key, amount, retry=True)]
            if saga.race_last_refund and amount is None:
                asks.append(shop.refund(checkout["checkout_id"], f"{key}-b", None, retry=True))
            asks.append(shop.refund(checkout["checkout_id"], key, amount, retry=True))  # a retry
            await asyncio.gather(*asks)
            await wait_for_refunds(shop, checkout["checkout_id"])
        if saga.dispute:
            await dispute(shop, saga, checkout["checkout_id"])
    except Exception as error:  # the invariants say what it cost; the campaign goes on
        saga.error = f"{type(error).__name__}: {error}"[:300]


async def dispute(shop: Shop, saga: Saga, payment_id: str) -> None:
    """The customer's bank opens a chargeback at the gateway, then decides it."""
    gateway_payment = await shop.pool.fetchval(
        "SELECT CASE WHEN gateway = 'stripe' THEN gateway_payment_id ELSE gateway_charge_id END"
        " FROM payments WHERE payment_id = $1",
        payment_id,
    )
    opened = await shop.sandbox.post(
        "/sandbox/disputes",
        json={"gateway": saga.gateway, "payment": gateway_payment, "reason": "fraudulent"},
    )
    opened.raise_for_status()
    await wait_for_dispute(shop, payment_id, ("open",))
    decided = await shop.sandbox.post(
        f"/sandbox/disputes/{opened.json()['id']}/resolve", json={"outcome": saga.dispute}
    )
    decided.raise_for_status()
    await wait_for_dispute(shop, payment_id, ("won", "lost"))


async def wait_for_dispute(
    shop: Shop, payment_id: str, statuses: tuple[str, ...], within: float = SETTLE_WITHIN
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            status = await shop.pool.fetchval(
                "SELECT status FROM disputes WHERE payment_id = $1", payment_id
            )
            if status in statuses:
                return
        except Exception:  # the database may be down during the fault; keep waiting
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the dispute of {payment_id} never reached {statuses}")


async def wait_for_refunds(shop: Shop, payment_id: str, within: float = SETTLE_WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            pending = await shop.pool.fetchval(
                "SELECT count(*) FROM refunds WHERE payment_id = $1"
                " AND status IN ('pending', 'requires_action')",
                payment_id,
            )
            if pending == 0:
                return
        except Exception:  # the database may be down during the fault; keep waiting
            pass
        await asyncio.sleep(0.5)


# Faults: each takes the stack while the load runs and gives it back whole.

Injector = Callable[["Campaign"], Awaitable[str]]


async def worker_sigkill(c: Campaign) -> str:
    worker = c.stack.children["worker"]
    kills = 0
    for _ in range(3):
        await asyncio.sleep(c.rng.uniform(1, 5))
        await asyncio.to_thread(worker.kill)
        kills += 1
        await asyncio.sleep(c.rng.uniform(0.5, 3))
        await asyncio.to_thread(worker.start)
    return f"worker SIGKILLed {kills} times at random moments, restarted each time"


async def temporal_restart(c: Campaign) -> str:
    temporal = c.stack.children["temporal"]
    await asyncio.sleep(c.rng.uniform(2, 5))
    await asyncio.to_thread(temporal.stop)
    down = c.rng.uniform(5, 10)
    await asyncio.sleep(down)
    await asyncio.to_thread(temporal.start)
    return f"Temporal dev server (file-backed) stopped for {down:.1f}s mid-load, then restarted"


async def postgres_outage(c: Campaign) -> str:
    await asyncio.sleep(c.rng.uniform(2, 5))
    await asyncio.to_thread(c.stack.stop_postgres)
    down = c.rng.uniform(5, 10)
    await asyncio.sleep(down)
    await asyncio.to_thread(c.stack.start_postgres)
    return f"PostgreSQL stopped for {down:.1f}s mid-load, then restarted"


GATEWAY_FAULTS = [
    ("stripe", "payment_intents.create", "error_500"),
    ("stripe", "payment_intents.retrieve", "timeout"),
    ("stripe", "payment_intents.capture", "applied_but_lost"),
    ("stripe", "payment_intents.capture", "timeout"),
    ("stripe", "payment_intents.capture", "applied_then_500"),
    ("stripe", "refunds.create", "applied_but_lost"),
    ("stripe", "refunds.create", "error_500"),
    ("stripe", "refunds.create", "applied_then_500"),
    ("razorpay", "orders.create", "applied_but_lost"),
    ("razorpay", "payments.fetch", "error_500"),
    ("razorpay", "payments.capture", "applied_but_lost"),
    ("razorpay", "payments.capture", "timeout"),
    ("razorpay", "payments.capture", "slow_commit"),
    ("razorpay", "payments.refund", "applied_but_lost"),
    ("razorpay", "payments.refund", "timeout"),
]


async def gateway_faults(c: Campaign, times: int = 4) -> str:
    """Timeouts (longer than GATEWAY_TIMEOUT_SECONDS), 5xx and "applied but the answer was
    lost", armed on the money-moving and lookup calls of both gateways."""
    for gateway, operation, kind in GATEWAY_FAULTS:
        fault = {"gateway": gateway, "operation": operation, "kind": kind, "times": times,
                 "delay_seconds": 4}  # fmt: skip
        response = await c.shop.sandbox.post("/sandbox/faults", json=fault)
        response.raise_for_status()
    return f"{len(GATEWAY_FAULTS)} gateway faults armed {times} times each: " + ", ".join(
        f"{g} {o} {k}" for g, o, k in GATEWAY_FAULTS
    )


# The gateway applied the call and the client heard otherwise: the answer lost (a 502 page), a
# 500 (which Stripe replays to the key), or a commit after the client gave up.
ANSWERS_LOST = [
    ("stripe", "payment_intents.create", "applied_then_500"),
    ("stripe", "payment_intents.capture", "applied_but_lost"),
    ("stripe", "payment_intents.capture", "applied_then_500"),
    ("razorpay", "orders.create", "applied_but_lost"),
    ("razorpay", "orders.create", "applied_then_500"),
    ("razorpay", "payments.capture", "applied_but_lost"),
    ("razorpay", "payments.capture", "slow_commit"),
]


async def answers_lost(c: Campaign) -> str:
    """Calls applied whose answers say otherwise, on creating and capturing payments."""
    for gateway, operation, kind in ANSWERS_LOST:
        fault = {"gateway": gateway, "operation": operation, "kind": kind, "times": 3}
        (await c.shop.sandbox.post("/sandbox/faults", json=fault)).raise_for_status()
    await asyncio.sleep(1)
    return "armed 3 times each: " + ", ".join(f"{g} {o} {k}" for g, o, k in ANSWERS_LOST)


async def webhook_chaos(c: Campaign) -> str:
    """Webhooks held back (late), then sent newest first and each twice; then a share of all
    delivered events is redelivered once more, as a gateway's retry would."""
    (await c.shop.sandbox.post("/sandbox/webhooks/hold")).raise_for_status()
    await asyncio.sleep(c.rng.uniform(5, 8))
    released = await c.shop.sandbox.post(
        "/sandbox/webhooks/release", json={"reverse": True, "duplicate": True}
    )
    held = len(released.json()["sending"]) // 2
    await asyncio.sleep(5)
    deliveries = (await c.shop.sandbox.get("/sandbox/webhooks/deliveries")).json()
    ids = sorted({d["event_id"] for d in deliveries})
    again = c.rng.sample(ids, min(len(ids), 60))
    for event_id in again:
        await c.shop.sandbox.post(f"/sandbox/webhooks/{event_id}/redeliver")
    return (
        f"{held} webhooks held then released reversed and duplicated; "
        f"{len(again)} delivered events redelivered"
    )


async def webhooks_while_temporal_down(c: Campaign) -> str:
    """Temporal stops while customers pay: webhook deliveries meet it down."""
    temporal = c.stack.children["temporal"]
    await asyncio.sleep(c.rng.uniform(1, 3))
    await asyncio.to_thread(temporal.stop)
    await asyncio.sleep(10)
    await asyncio.to_thread(temporal.start)
    return "Temporal stopped for 10s while customers paid (webhooks acknowledged, then delivered)"


FAULTS: dict[str, Injector] = {
    "worker_sigkill": worker_sigkill,
    "temporal_restart": temporal_restart,
    "postgres_outage": postgres_outage,
    "gateway_faults": gateway_faults,
    "answers_lost": answers_lost,
    "webhook_chaos": webhook_chaos,
    "webhooks_while_temporal_down": webhooks_while_temporal_down,
}


@dataclass
class Invariants:
    checkouts: int = 0
    captured: int = 0
    refunded_payments: int = 0
    refunds_succeeded: int = 0
    disputes_decided: int = 0
    dispute_outcomes_wrong: list[str] = field(default_factory=list)
    rightly_waiting: int = 0
    not_terminal: list[str] = field(default_factory=list)
    stray_running_workflows: list[str] = field(default_factory=list)
    double_captures: int = 0
    double_refunds: int = 0
    refunds_over_capture: int = 0
    unbalanced_payments: int = 0
    ledger_sandbox_mismatches: list[str] = field(default_factory=list)
    webhooks_accepted: int = 0
    webhooks_lost: int = 0
    driver_errors: list[str] = field(default_factory=list)

    @property
    def money_lost_or_doubled(self) -> int:
        return (
            self.double_captures
            + self.double_refunds
            + self.refunds_over_capture
            + self.unbalanced_payments
            + len(self.ledger_sandbox_mismatches)
        )

    def violations(self) -> list[str]:
        found = []
        if self.not_terminal:
            found.append(f"not terminal: {self.not_terminal[:10]}")
        if self.stray_running_workflows:
            found.append(f"still running: {self.stray_running_workflows[:10]}")
        for name in ("double_captures", "double_refunds", "refunds_over_capture",
                     "unbalanced_payments", "webhooks_lost"):  # fmt: skip
            if getattr(self, name):
                found.append(f"{name}: {getattr(self, name)}")
        if self.dispute_outcomes_wrong:
            found.append(f"dispute outcomes: {self.dispute_outcomes_wrong[:10]}")
        if self.ledger_sandbox_mismatches:
            found.append(f"ledger ≠ sandbox: {self.ledger_sandbox_mismatches[:10]}")
        return found


async def _closes(temporal: Client, workflow_id: str, within: float = 15) -> bool:
    """A saga whose last ledger write is final still has a moment of work before it closes."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        description = await temporal.get_workflow_handle(workflow_id).describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return True
        await asyncio.sleep(0.25)
    return False


async def check_invariants(
    shop: Shop, temporal: Client, sagas: list[Saga], since: datetime
) -> Invariants:
    """Compare what we asked for, what the sandbox moved and what our ledger says."""
    inv = Invariants(driver_errors=[f"{s.order_id}: {s.error}" for s in sagas if s.error])
    ours = {s.checkout["checkout_id"]: s for s in sagas if s.checkout}
    inv.checkouts = len(ours)
    rows = await shop.pool.fetch(
        "SELECT payment_id, workflow_id, gateway, gateway_payment_id, status, amount_captured,"
        " amount_refunded FROM payments WHERE payment_id = ANY($1)",
        list(ours),
    )
    payments = {r["payment_id"]: r for r in rows}
    ledger: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await shop.pool.fetch(
        "SELECT payment_id, account, sum(amount) AS total FROM ledger_entries"
        " WHERE payment_id = ANY($1) GROUP BY payment_id, account",
        list(ours),
    ):
        ledger[r["payment_id"]][r["account"]] = int(r["total"])
    refunds: dict[str, list[Any]] = defaultdict(list)
    for r in await shop.pool.fetch(
        "SELECT payment_id, gateway_refund_id, status, amount FROM refunds"
        " WHERE payment_id = ANY($1)",
        list(ours),
    ):
        refunds[r["payment_id"]].append(r)
    decided = {
        r["payment_id"]: r["status"]
        for r in await shop.pool.fetch(
            "SELECT payment_id, status FROM disputes WHERE payment_id = ANY($1)", list(ours)
        )
    }
    for payment_id, saga in ours.items():
        if saga.dispute and decided.get(payment_id) == saga.dispute:
            inv.disputes_decided += 1
        elif saga.dispute:
            inv.dispute_outcomes_wrong.append(
                f"{payment_id}: the bank decided {saga.dispute}, we say {decided.get(payment_id)}"
            )
    moved: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in (await shop.sandbox.get("/sandbox/movements")).json():
        moved[m["order"] or m["payment"]].append(m)

    waiting_ids = set()
    for payment_id, saga in ours.items():
        row = payments.get(payment_id)
        status = row["status"] if row else "missing"
        if not saga.pay and status == "created":
            inv.rightly_waiting += 1
            waiting_ids.add(row["workflow_id"] if row else "")
        elif status not in TERMINAL:
            inv.not_terminal.append(f"{payment_id}={status}")
        if row is None:
            continue
        gateway_moves = moved.get(row["gateway_payment_id"] or "", [])
        kinds = Counter(m["kind"] for m in gateway_moves)
        captured = sum(m["amount"] for m in gateway_moves if m["kind"] == "capture")
        refunded_moves = [m for m in gateway_moves if m["kind"] == "refund"]
        refunded = sum(m["amount"] for m in refunded_moves)
        inv.captured += kinds["capture"] > 0
        inv.refunded_payments += bool(refunded_moves)
        inv.double_captures += max(0, kinds["capture"] - 1)
        ours_succeeded = {
            r["gateway_refund_id"] for r in refunds[payment_id] if r["status"] == "succeeded"
        }
        inv.refunds_succeeded += len(ours_succeeded)
        # a gateway refund our ledger does not hold as its own succeeded refund is a double
        inv.double_refunds += sum(1 for m in refunded_moves if m["object_id"] not in ours_succeeded)
        inv.refunds_over_capture += refunded > captured
        withdrawn = sum(m["amount"] for m in gateway_moves if m["kind"] == "dispute_withdrawal")
        withdrawn -= sum(m["amount"] for m in gateway_moves if m["kind"] == "dispute_reinstatement")
        balances = ledger.get(payment_id, {})
        inv.unbalanced_payments += sum(balances.values()) != 0
        ledger_gateway = balances.get(f"gateway:{row['gateway']}", 0)
        ledger_disputed = balances.get("merchant:disputes", 0)
        if (ledger_gateway, ledger_disputed, row["amount_captured"], row["amount_refunded"]) != (
            captured - refunded - withdrawn,
            withdrawn,
            captured,
            refunded,
        ):
            inv.ledger_sandbox_mismatches.append(
                f"{payment_id}: ledger gateway {ledger_gateway}, disputed {ledger_disputed},"
                f" captured {row['amount_captured']}, refunded {row['amount_refunded']}; sandbox"
                f" captured {captured}, refunded {refunded}, withdrawn {withdrawn}"
            )
    our_workflows = {r["workflow_id"] for r in rows}
    async for wf in temporal.list_workflows('ExecutionStatus="Running"'):
        concerns_ours = wf.id in our_workflows or any(p in wf.id for p in ours)
        if concerns_ours and wf.id not in waiting_ids and not await _closes(temporal, wf.id):
            inv.stray_running_workflows.append(wf.id)
    deliveries = (await shop.sandbox.get("/sandbox/webhooks/deliveries")).json()
    accepted = {
        (d["gateway"], d["event_id"])
        for d in deliveries
        if d["status"] is not None
        and 200 <= d["status"] < 300
        and datetime.fromisoformat(d["at"]) >= since
    }
    inv.webhooks_accepted = len(accepted)
    delivered = {
        (r["gateway"], r["event_id"])
        for r in await shop.pool.fetch(
            "SELECT gateway, event_id FROM webhook_inbox WHERE delivered_at IS NOT NULL"
        )
    }
    inv.webhooks_lost = len(accepted - delivered)
    return inv


class Campaign:
    def __init__(self, stack: Stack, shop: Shop, temporal: Client, seed: int) -> None:
        self.stack = stack
        self.shop = shop
        self.temporal = temporal
        self.rng = random.Random(seed)

    async def round(self, watcher: StatusWatcher, fault: str, sagas: list[Saga]) -> dict[str, Any]:
        """Drive `sagas` concurrently while `fault` is injected; the stack is whole afterwards."""
        began = time.perf_counter()
        load = asyncio.gather(*(drive(self.shop, watcher, s) for s in sagas))
        try:
            injected = await FAULTS[fault](self)
            await load
        finally:
            await self.restore()
            await asyncio.gather(load, return_exceptions=True)
        return {
            "fault": fault,
            "injected": injected,
            "sagas": len(sagas),
            "seconds": round(time.perf_counter() - began, 1),
            "statuses": dict(Counter(s.final_status or "unpaid" for s in sagas)),
            "driver_errors": sum(1 for s in sagas if s.error),
        }

    async def restore(self) -> None:
        """Every process up, no fault armed, no webhook held: how other tests expect the stack."""
        if self.stack._postgres is not None:
            await asyncio.to_thread(self.stack.start_postgres)
        for name in ("temporal", "worker"):
            child = self.stack.children[name]
            if child.process is None or child.process.poll() is not None:
                await asyncio.to_thread(child.start)
        await self.shop.sandbox.delete("/sandbox/faults")
        await self.shop.sandbox.post("/sandbox/webhooks/release", json={})
