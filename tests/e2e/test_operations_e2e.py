"""Operators find and steer payments; the service is observable, drains on SIGTERM, scales out."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from api.auth import Role
from devstack.stack import Child, Stack, free_port
from domain import names
from settings import SANDBOX_JWT_SECRET, SANDBOX_STRIPE_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET
from testkit.shop import connect_dev_temporal
from tests.e2e.conftest import (
    TERMINAL,
    bearer,
    checkout_body,
    create_checkout,
    movements,
    pay,
    wait_for_status,
)


async def temporal(stack: Stack) -> Client:
    return await connect_dev_temporal(stack.temporal_address)


async def test_operators_find_payments_by_search_attributes(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    body = checkout_body("stripe", customer_id="c_search")
    checkout = await create_checkout(api, body)
    await pay(sandbox, checkout)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    client = await temporal(stack)

    query = f'PaymentStatus = "captured" AND Gateway = "stripe" AND OrderId = "{body["order_id"]}"'
    for _ in range(50):  # the visibility store is eventually consistent
        found = [w async for w in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    assert [w.id for w in found] == [names.checkout_workflow_id(body["order_id"])]
    by_customer = [w.id async for w in client.list_workflows('CustomerId = "c_search"')]
    assert names.checkout_workflow_id(body["order_id"]) in by_customer
    refund = await api.post(
        f"/v1/payments/{checkout['checkout_id']}/refunds",
        json={"amount": 500, "reason": "requested_by_customer"},
        headers={"Idempotency-Key": "search-refund-1"},
    )
    assert refund.status_code == 202, refund.text
    next_to_it = f'PaymentId = "{checkout["checkout_id"]}"'
    for _ in range(50):
        types = sorted([w.workflow_type async for w in client.list_workflows(next_to_it)])
        if len(types) == 2:
            break
        await asyncio.sleep(0.2)
    assert types == [names.CHECKOUT_WORKFLOW, names.REFUND_WORKFLOW]
    described = await client.get_workflow_handle(found[0].id).describe()
    summary = await described.static_summary()
    assert summary and "25.00 USD via stripe" in summary
    assert await described.memo_value("captured") == "25.00 USD"


async def test_reconcile_finds_a_payment_whose_webhooks_never_came(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await sandbox.post("/sandbox/webhooks/hold")
    try:
        await pay(sandbox, checkout)
        answer = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")
        assert answer.status_code == 200, answer.text
        assert answer.json()["changed"] == 1  # sent back to its saga, which captures
        captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    finally:
        await sandbox.post("/sandbox/webhooks/release", json={})
    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]
    again = await api.post(f"/v1/payments/{checkout['checkout_id']}/reconcile")
    assert again.status_code == 200
    assert (again.json()["checked"], again.json()["changed"], again.json()["flagged"]) == (1, 0, 0)


async def test_retry_runs_a_step_in_backoff_now(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    fault = {"gateway": "stripe", "operation": "payment_intents.capture", "kind": "error_500"}
    await sandbox.post("/sandbox/faults", json={**fault, "times": 3})
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay(sandbox, checkout)
    handle = (await temporal(stack)).get_workflow_handle(
        names.checkout_workflow_id(checkout["order_id"])
    )
    try:
        for _ in range(100):
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].attempt >= 2:
                break
            await asyncio.sleep(0.1)
        await sandbox.delete("/sandbox/faults")
        report = await api.post(f"/v1/payments/{checkout['checkout_id']}/retry")
    finally:
        await sandbox.delete("/sandbox/faults")
    assert report.status_code == 200, report.text
    assert [s["activity"] for s in report.json()["retried"]] == ["capture_gateway_payment"]
    assert report.json()["retried"][0]["attempt"] >= 2
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_readiness_follows_its_dependencies(stack: Stack, api: httpx.AsyncClient) -> None:
    ready = await api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "postgres": "ok",
        "migrations": "ok",
        "temporal": "ok",
    }
    # Without an operator's token: the status code and nothing about the dependencies.
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anonymous:
        bare = await anonymous.get("/health/ready")
        merchant = await anonymous.get("/health/ready", headers=bearer(Role.MERCHANT))
    assert bare.status_code == merchant.status_code == 200
    assert bare.json() == merchant.json() == {"status": "ready"}
    stack.children["temporal"].stop()
    try:
        down = await api.get("/health/ready")
    finally:
        stack.children["temporal"].start()
    assert down.status_code == 503
    assert down.json()["temporal"].startswith("unreachable")
    assert (await api.get("/health/live")).status_code == 200


async def test_metrics_from_the_api_and_the_worker(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("razorpay"))
    await pay(sandbox, checkout)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)

    assert (await api.get("/metrics")).status_code == 404  # not on the public app
    async with httpx.AsyncClient() as http:
        api_metrics = (await http.get(f"http://127.0.0.1:{stack.ports.api_metrics}/metrics")).text
        worker_metrics = (
            await http.get(f"http://127.0.0.1:{stack.ports.worker_metrics}/metrics")
        ).text
        relay_metrics = (
            await http.get(f"http://127.0.0.1:{stack.ports.relay_metrics}/metrics")
        ).text
    assert 'route="/v1/checkouts/{checkout_id}"' in api_metrics
    assert "payments_api_request_seconds_bucket" in api_metrics
    assert (
        'payments_webhooks_total{gateway="razorpay",result="accepted",type="payment.authorized"}'
        in api_metrics
    )
    # The dev stack runs the relay as its own process, with its own metrics.
    assert (
        'payments_webhook_deliveries_total{gateway="razorpay",outcome="delivered"}' in relay_metrics
    )
    assert "payments_webhook_delivery_lag_seconds_bucket" in relay_metrics
    assert 'payments_webhook_inbox_backlog{state="dead"}' in api_metrics
    assert 'payments_checkouts_started_total{gateway="razorpay",result="201"}' in api_metrics
    assert "payments_ledger_metrics_up 1.0" in api_metrics  # the ledger gauges too
    assert "temporal_activity_execution_latency" in worker_metrics  # the SDK's own
    assert "payments_checkouts_finished" in worker_metrics  # the saga's outcome counter


def log_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    lines = (stack.data_dir / "logs" / f"{name}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_logs_are_json_with_ids_and_without_secrets(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    checkout = await create_checkout(api, checkout_body("stripe"))
    await pay(sandbox, checkout)
    await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    await asyncio.sleep(0.5)

    steps = [
        line
        for line in log_lines(stack, "worker")
        if line.get("payment_id") == checkout["checkout_id"]
    ]
    assert {"step done"} <= {line["event"] for line in steps}
    for line in steps:
        assert line["workflow_id"] == names.checkout_workflow_id(checkout["order_id"])
        assert line["gateway"] == "stripe" and line["component"] == "worker"
    webhooks = [line for line in log_lines(stack, "api") if line["event"] == "webhook"]
    assert webhooks and all(line.get("correlation_id") for line in webhooks)
    everything = "".join(
        (stack.data_dir / "logs" / f"{name}.log").read_text() for name in ("api", "worker")
    )
    for secret in (SANDBOX_STRIPE_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET, SANDBOX_JWT_SECRET,
                   checkout["payment"]["stripe_client_secret"], "4242424242424242"):  # fmt: skip
        assert secret not in everything


async def test_worker_drains_on_sigterm_and_the_checkout_completes_once(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    slow = {"gateway": "stripe", "operation": "payment_intents.capture", "kind": "timeout",
            "delay_seconds": 2, "times": 1}  # fmt: skip
    await sandbox.post("/sandbox/faults", json=slow)
    checkout = await create_checkout(api, checkout_body("stripe"))
    worker = stack.children["worker"]
    try:
        await pay(sandbox, checkout)
        for _ in range(100):  # until the capture call is in flight
            if "capture" not in await movements(sandbox, checkout["gateway_payment_id"]):
                log = (stack.data_dir / "logs" / "worker.log").read_text()
                if checkout["checkout_id"] in log and "merchant" in log:
                    break
            await asyncio.sleep(0.05)
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(worker.process.wait, 30)
    finally:
        await sandbox.delete("/sandbox/faults")
        worker.stop()
        worker.start()
    assert exit_code == 0
    assert any(line["event"] == "worker stopped" for line in log_lines(stack, "worker"))
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL, within=60)
    assert captured["status"] == "captured"
    assert await movements(sandbox, checkout["gateway_payment_id"]) == ["authorization", "capture"]


async def test_two_workers_and_two_api_replicas_share_the_work(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    worker, first_api = stack.children["worker"], stack.children["api"]
    second_worker = replace(
        worker,
        name="worker-2",
        env={**worker.env, "WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
        log_path=stack.data_dir / "logs" / "worker-2.log",
        process=None,
    )
    port = free_port()
    second_api = replace(
        first_api,
        name="api-2",
        command=[*first_api.command[:-4], "--port", str(port), "--log-level", "warning"],
        # This replica relays webhooks in its own process (the default outside the dev stack),
        # beside the stack's relay process: the two share the inbox.
        env={
            **first_api.env,
            "API_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "WEBHOOK_RELAY_IN_API": "true",
        },
        log_path=stack.data_dir / "logs" / "api-2.log",
        ready_url=f"http://127.0.0.1:{port}/health/live",
        process=None,
    )
    replicas: list[Child] = [second_worker, second_api]
    try:
        for child in replicas:
            child.start()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=dict(api.headers), timeout=30
        ) as other_api:
            checkouts = [
                await create_checkout(client, checkout_body("stripe"))
                for client in (api, other_api) * 4
            ]
            for checkout in checkouts:
                await pay(sandbox, checkout)
            for checkout in checkouts:
                done = await wait_for_status(other_api, checkout["checkout_id"], TERMINAL)
                assert done["status"] == "captured"
        client = await temporal(stack)
        identities = set()
        for checkout in checkouts:
            history = await client.get_workflow_handle(
                names.checkout_workflow_id(checkout["order_id"])
            ).fetch_history()
            identities |= {
                e.activity_task_started_event_attributes.identity
                for e in history.events
                if e.HasField("activity_task_started_event_attributes")
            }
        assert len(identities) >= 2, identities  # both workers took activities
    finally:
        for child in replicas:
            child.stop()
    for checkout in checkouts:
        assert await movements(sandbox, checkout["gateway_payment_id"]) == [
            "authorization",
            "capture",
        ]


def test_log_files_exist(stack: Stack) -> None:
    assert Path(stack.data_dir / "logs" / "worker.log").exists()
