"""Records the histories that tests/test_replay.py replays: every workflow's main paths, driven
over HTTP against a fresh local stack with real activities.

    .venv/bin/python -m tests.histories.record [scenario ...]

Run it after a workflow change (all scenarios, or the ones named). A refund's or a dispute's
(auto-upgrade) is guarded by `workflow.patched`: rename the old files first, so they stay and keep
replaying. A checkout's or a reconciliation's (pinned) replaces its files."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api.auth import Role
from devstack.stack import Ports, Stack
from domain import names
from domain.checkout import Gateway
from settings import SANDBOX_STRIPE_KEY
from testkit.shop import connect_dev_temporal
from tests.e2e.conftest import (
    TERMINAL,
    bearer,
    checkout_body,
    create_checkout,
    new_key,
    pay,
    wait_for_status,
)
from tests.e2e.test_marketplace_e2e import onboarded_seller, split_checkout, wait_for_payout
from tests.e2e.test_marketplace_e2e import refund as marketplace_refund

HERE = Path(__file__).parent
Scenario = Callable[[httpx.AsyncClient, httpx.AsyncClient], Awaitable[list[str]]]


async def captured(api: httpx.AsyncClient, sandbox: httpx.AsyncClient, gateway: str) -> Any:
    checkout = await create_checkout(api, checkout_body(gateway))
    proof = await pay(sandbox, checkout)
    if gateway == "razorpay":
        await api.post(f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof)
    return await wait_for_status(api, checkout["checkout_id"], TERMINAL)


async def checkout_stripe_captured(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    return [names.checkout_workflow_id((await captured(api, sb, "stripe"))["order_id"])]


async def checkout_razorpay_captured(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    return [names.checkout_workflow_id((await captured(api, sb, "razorpay"))["order_id"])]


async def checkout_declined_then_paid(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay(sb, checkout, succeed=False)
    await asyncio.sleep(1)
    await pay(sb, checkout)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    return [names.checkout_workflow_id(checkout["order_id"])]


async def checkout_declined_switched_gateway(
    api: httpx.AsyncClient, sb: httpx.AsyncClient
) -> list[str]:
    """Auto-routed INR: declined on Stripe, the customer retries on Razorpay and pays there."""
    checkout = await create_checkout(api, checkout_body("auto", currency="INR"))
    assert checkout["gateway"] == "stripe", checkout
    await pay(sb, checkout, succeed=False)
    for _ in range(100):
        seen = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if seen["attempts"]:
            break
        await asyncio.sleep(0.1)
    moved = await api.post(f"/v1/checkouts/{checkout['checkout_id']}/switch-gateway", json={})
    assert moved.status_code == 200, moved.text
    proof = await pay(sb, moved.json())
    await api.post(f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    return [names.checkout_workflow_id(checkout["order_id"])]


async def checkout_merchant_refused(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await create_checkout(api, checkout_body("stripe", order_id="refuse-replay"))
    await pay(sb, checkout)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    return [names.checkout_workflow_id(checkout["order_id"])]


async def checkout_canceled(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    await api.post(f"/v1/checkouts/{checkout['checkout_id']}/cancel", json={})
    return [names.checkout_workflow_id(checkout["order_id"])]


async def checkout_expired(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)
    return [names.checkout_workflow_id(checkout["order_id"])]


async def checkout_manual_capture(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await create_checkout(api, checkout_body("stripe", capture_mode="manual"))
    await pay(sb, checkout)
    for _ in range(100):
        state = (await api.get(f"/v1/checkouts/{checkout['checkout_id']}")).json()
        if state["status"] == "authorized":
            break
        await asyncio.sleep(0.1)
    await api.post(
        f"/v1/checkouts/{checkout['checkout_id']}/capture",
        json={"amount": 2000},
        headers={"Idempotency-Key": new_key()},
    )
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    return [names.checkout_workflow_id(checkout["order_id"])]


async def refunds(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await captured(api, sb, "stripe")
    key = new_key()
    own = await api.post(
        f"/v1/payments/{checkout['checkout_id']}/refunds",
        json={"amount": 1000, "reason": "requested_by_customer"},
        headers={"Idempotency-Key": key},
    )
    dashboard = await sb.post(
        "/stripe/v1/refunds",
        data={"payment_intent": checkout["gateway_payment_id"], "amount": "500"},
        headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"},
    )
    await asyncio.sleep(3)
    assert own.status_code == 202, own.text
    return [
        own.json()["workflow_id"],
        names.observed_refund_workflow_id(checkout["checkout_id"], dashboard.json()["id"]),
    ]


async def reconciliation(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await captured(api, sb, "razorpay")
    report = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")
    return [report.json()["run_id"]]


async def dispute_won(api: httpx.AsyncClient, sb: httpx.AsyncClient, gateway: str) -> list[str]:
    checkout = await captured(api, sb, gateway)
    payment = checkout["gateway_payment_id" if gateway == "stripe" else "gateway_charge_id"]
    opened = (await sb.post("/sandbox/disputes", json={"gateway": gateway, "payment": payment,
                                                       "reason": "fraudulent"})).json()  # fmt: skip
    workflow_id = names.dispute_workflow_id(Gateway(gateway), opened["id"])
    for _ in range(100):
        found = (
            await api.get("/v1/disputes", params={"payment_id": checkout["checkout_id"]})
        ).json()["items"]
        if found:
            break
        await asyncio.sleep(0.2)
    evidence = {"product_description": "Blue scarf", "receipt": ["file_receipt_1"],
                "uncategorized_text": "delivered on the 3rd", "submit": True}  # fmt: skip
    await api.post(
        f"/v1/disputes/{found[0]['dispute_id']}/evidence",
        json=evidence,
        headers={"Idempotency-Key": new_key()},
    )
    await sb.post(f"/sandbox/disputes/{opened['id']}/resolve", json={"outcome": "won"})
    return [workflow_id]


async def dispute_stripe_won(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    return await dispute_won(api, sb, "stripe")


async def dispute_razorpay_accepted(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    checkout = await captured(api, sb, "razorpay")
    opened = (await sb.post("/sandbox/disputes", json={"gateway": "razorpay",
                                                       "payment": checkout["gateway_charge_id"],
                                                       "reason": "fraudulent"})).json()  # fmt: skip
    for _ in range(100):
        found = (
            await api.get("/v1/disputes", params={"payment_id": checkout["checkout_id"]})
        ).json()["items"]
        if found:
            break
        await asyncio.sleep(0.2)
    await api.post(
        f"/v1/disputes/{found[0]['dispute_id']}/accept",
        json={"note": "the customer never received it"},
        headers={"Idempotency-Key": new_key()},
    )
    await sb.post(f"/sandbox/disputes/{opened['id']}/resolve", json={"outcome": "lost"})
    return [names.dispute_workflow_id(Gateway.RAZORPAY, opened["id"])]


async def payout_refunded_then_released(api: httpx.AsyncClient, sb: httpx.AsyncClient) -> list[str]:
    """Escrow for two sellers; a refund before the release date reverses in proportion; the
    release date releases what is left (one run: open, clawback, reversal, timer, release)."""
    (reseller, _), (venue, _) = await onboarded_seller(api, sb), await onboarded_seller(api, sb)
    shares = [{"seller_id": reseller, "amount": 7_000}, {"seller_id": venue, "amount": 2_000}]
    release_at = datetime.now(UTC) + timedelta(seconds=10)
    payment_id = await split_checkout(api, sb, shares, 1_000, release_at)
    await wait_for_payout(api, payment_id, lambda p: len(p["transfers"]) == 2)
    await marketplace_refund(api, payment_id, 2_500)
    await wait_for_payout(api, payment_id, lambda p: p["state"] == "released")
    return [names.payout_workflow_id(payment_id)]


SCENARIOS: list[Scenario] = [
    checkout_stripe_captured,
    checkout_razorpay_captured,
    checkout_declined_then_paid,
    checkout_declined_switched_gateway,
    checkout_merchant_refused,
    checkout_canceled,
    checkout_expired,
    checkout_manual_capture,
    refunds,
    reconciliation,
    dispute_stripe_won,
    dispute_razorpay_accepted,
    payout_refunded_then_released,
]


async def record(out: Path, scenarios: list[Scenario]) -> None:
    with tempfile.TemporaryDirectory() as data:
        stack = Stack(
            Path(data),
            Ports.free(),
            with_ui=False,
            extra_env={
                "AUTHORIZATION_WINDOW_SECONDS": "8",
                "REFUND_POLL_INTERVAL_SECONDS": "2",
                "DECLINED_RETRY_ON_OTHER_GATEWAY": "true",
            },
        )
        stack.start()
        try:
            client = await connect_dev_temporal(stack.temporal_address)
            async with (
                httpx.AsyncClient(
                    base_url=stack.api_url, headers=bearer(Role.ADMIN), timeout=30
                ) as api,
                httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30) as sandbox,
            ):
                for scenario in scenarios:
                    for index, workflow_id in enumerate(await scenario(api, sandbox)):
                        handle = client.get_workflow_handle(workflow_id)
                        for _ in range(100):
                            if (await handle.describe()).close_time is not None:
                                break
                            await asyncio.sleep(0.2)
                        history = await handle.fetch_history()
                        name = f"{scenario.__name__}{f'_{index}' if index else ''}.json"
                        (out / name).write_text(json.dumps(json.loads(history.to_json()), indent=1))
                        print("recorded", name)
        finally:
            stack.stop()


if __name__ == "__main__":
    named = set(sys.argv[1:])
    unknown = named - {s.__name__ for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"no scenario {', '.join(sorted(unknown))}")
    asyncio.run(record(HERE, [s for s in SCENARIOS if not named or s.__name__ in named]))
