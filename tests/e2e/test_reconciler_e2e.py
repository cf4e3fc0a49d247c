"""The reconciler on the whole stack: its Schedule, a dropped webhook made good, unknown outcomes
at the gateway settled exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import ScheduleIntervalSpec, ScheduleOverlapPolicy
from temporalio.service import RPCError

from devstack.stack import Stack
from domain import names
from settings import SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET, SANDBOX_STRIPE_KEY
from testkit.shop import connect_dev_temporal
from tests.e2e.conftest import (
    TERMINAL,
    checkout_body,
    create_checkout,
    movements,
    pay,
    wait_for_status,
)


async def test_the_worker_creates_the_reconciler_schedule(stack: Stack) -> None:
    client = await connect_dev_temporal(stack.temporal_address)
    for _ in range(100):  # the worker creates it as it starts
        try:
            schedule = (
                await client.get_schedule_handle(names.RECONCILE_SCHEDULE_ID).describe()
            ).schedule
            break
        except RPCError:
            await asyncio.sleep(0.2)
    assert schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=1))]
    assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP


async def test_a_webhook_dropped_on_purpose_is_made_good_by_the_scheduled_reconciler(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    await sandbox.post("/sandbox/webhooks/hold")
    try:
        await pay(sandbox, checkout)  # authorized at Razorpay; the webhook never arrives
        await asyncio.sleep(1.5)  # older than the stack's 1 s threshold
        client = await connect_dev_temporal(stack.temporal_address)
        await client.get_schedule_handle(names.RECONCILE_SCHEDULE_ID).trigger()
        captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)
    finally:
        await sandbox.post("/sandbox/webhooks/release", json={})
    assert captured["status"] == "captured"
    assert any(step["step"] == "reconciled" or step["step"] == "authorized"
               for step in captured["history"])  # fmt: skip
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]
    # The run checks the most urgent first, so the checkout may be captured while the run still
    # looks at the closed payments of earlier tests: its record comes when it has finished.
    for _ in range(300):
        runs = (await api.get("/v1/reconciliation/runs")).json()["runs"]
        if any(r["trigger"] == "schedule" and r["changed"] >= 1 for r in runs):
            break
        await asyncio.sleep(0.2)
    assert any(r["trigger"] == "schedule" and r["changed"] >= 1 for r in runs), runs


async def test_a_refund_whose_answer_is_lost_is_made_exactly_once(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    for gateway, operation in (("stripe", "refunds.create"), ("razorpay", "payments.refund")):
        checkout = await create_checkout(api, checkout_body(gateway))
        await pay(sandbox, checkout)
        await wait_for_status(api, checkout["checkout_id"], TERMINAL)
        fault = {"gateway": gateway, "operation": operation, "kind": "applied_but_lost"}
        assert (await sandbox.post("/sandbox/faults", json=fault)).status_code in (200, 201)
        created = await api.post(
            f"/v1/payments/{checkout['checkout_id']}/refunds",
            json={"amount": 700, "reason": "requested_by_customer"},
            headers={"Idempotency-Key": f"lost-answer-{checkout['checkout_id']}"},
        )
        assert created.status_code == 202, created.text
        refund_id = created.json()["refund_id"]
        for _ in range(150):
            refund = (await api.get(f"/v1/refunds/{refund_id}")).json()
            if refund["status"] == "succeeded":
                break
            await asyncio.sleep(0.2)
        assert refund["status"] == "succeeded", refund
        refunds = [m for m in await movements(sandbox, checkout["gateway_payment_id"])
                   if m == "refund"]  # fmt: skip
        assert refunds == ["refund"]


async def authorized_manual_checkout(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, gateway: str
) -> dict[str, Any]:
    checkout = await create_checkout(api, checkout_body(gateway, capture_mode="manual"))
    proof = await pay(sandbox, checkout)
    if gateway == "razorpay":
        await api.post(f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof)
    for _ in range(100):
        state: dict[str, Any] = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if state["status"] == "authorized":
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"never authorized: {state['history']}")


async def test_a_stripe_authorization_that_expires_is_recorded_voided(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await authorized_manual_checkout(api, sandbox, "stripe")
    expired = await sandbox.post(
        f"/sandbox/stripe/payment_intents/{checkout['gateway_payment_id']}/expire"
    )
    assert expired.status_code == 200, expired.text
    voided = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert voided["status"] == "voided"
    assert voided["last_error"] and "the gateway says canceled" in voided["last_error"]
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "void"]


async def test_a_razorpay_authorization_refunded_by_razorpay_is_found_by_the_reconciler(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await authorized_manual_checkout(api, sandbox, "razorpay")
    refunded = await sandbox.post(
        f"/sandbox/razorpay/payments/{checkout['gateway_charge_id']}/auto_refund"
    )
    assert refunded.status_code == 200, refunded.text
    report = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")
    assert report.status_code == 200 and report.json()["changed"] == 1, report.text
    voided = await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert voided["status"] == "voided"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "void"]


async def refund_at_the_gateway(
    sandbox: httpx.AsyncClient, checkout: dict[str, Any], amount: int
) -> None:
    """What an operator does on the gateway's dashboard: a refund the service did not ask for."""
    if checkout["gateway"] == "stripe":
        response = await sandbox.post(
            "/stripe/v1/refunds",
            data={"payment_intent": checkout["gateway_payment_id"], "amount": str(amount)},
            headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"},
        )
    else:
        response = await sandbox.post(
            f"/razorpay/v1/payments/{checkout['gateway_charge_id']}/refund",
            json={"amount": amount},
            auth=(SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET),
        )
    assert response.status_code == 200, response.text


async def test_a_dashboard_refund_whose_webhooks_were_dropped_is_flagged_by_the_reconciler(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    for gateway in ("stripe", "razorpay"):
        checkout = await create_checkout(api, checkout_body(gateway))
        await pay(sandbox, checkout)
        captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
        assert captured["status"] == "captured", captured["history"]
        await sandbox.post("/sandbox/webhooks/hold")
        try:
            await refund_at_the_gateway(sandbox, captured, 700)
        finally:  # the gateway gave up on its webhooks
            await sandbox.post("/sandbox/webhooks/release", json={"drop": True})

        report = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")

        assert report.status_code == 200, report.text
        assert report.json()["flagged"] == 1, report.json()
        flags = (await api.get("/v1/reconciliation/runs")).json()["open_flags"]
        flag = next(f for f in flags if f["object_id"] == checkout["checkout_id"])
        assert "refunded 700" in flag["detail"], flag
        state = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        assert (state["status"], state["amount_refunded"]) == ("captured", 0)
