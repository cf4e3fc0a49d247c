"""Security end to end. Every money-moving or decision call has an author: the caller audit holds
who asked, with which roles and request id, readable by admins only; the workflows carry the
author too; two operators reusing one Idempotency-Key on one payment get a refund each. Workflow
histories hold sealed payloads, which operators open through the codec server."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

from api.auth import Role
from devstack.stack import Stack
from domain import names
from testkit.shop import connect_dev_temporal
from tests.e2e.conftest import (
    TERMINAL,
    bearer,
    checkout_body,
    new_key,
    pay,
    wait_for_status,
)


async def post(
    stack: Stack, path: str, headers: dict[str, str], key: str | None = None, **body: Any
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        return await client.post(
            path, json=body, headers={**headers, "Idempotency-Key": key or new_key()}
        )


async def test_money_calls_are_audited_with_their_author(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    shop = bearer(Role.MERCHANT, subject="shop-backend")
    body = checkout_body("stripe")
    created = await post(stack, "/v1/checkouts", shop, **body)
    assert created.status_code == 201, created.text
    checkout = created.json()
    payment_id = checkout["checkout_id"]
    await pay(sandbox, checkout)
    assert (await wait_for_status(api, payment_id, TERMINAL))["status"] == "captured"

    # Two operators, one key, one payment: a refund each, never each other's.
    key = new_key()
    refunds = []
    for operator in ("ops-a", "ops-b"):
        answer = await post(
            stack, f"/v1/payments/{payment_id}/refunds", bearer(Role.OPERATOR, subject=operator),
            key, reason="requested_by_customer", amount=500,
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        refunds.append(answer.json()["refund_id"])
    assert refunds[0] != refunds[1]
    refused = await post(
        stack, f"/v1/payments/{payment_id}/refunds", shop, reason="requested_by_customer"
    )
    assert refused.status_code == 403

    trail = await api.get("/v1/audit", params={"target_id": payment_id})
    assert trail.status_code == 200, trail.text
    rows = [(e["action"], e["subject"], e["roles"], e["status"]) for e in trail.json()["entries"]]
    assert rows == [
        ("refund.create", "shop-backend", ["merchant"], 403),
        ("refund.create", "ops-b", ["operator"], 202),
        ("refund.create", "ops-a", ["operator"], 202),
        ("checkout.create", "shop-backend", ["merchant"], 201),
    ]
    assert all(e["request_id"] for e in trail.json()["entries"])
    assert trail.json()["entries"][1]["idempotency_key"] == key
    page = await api.get("/v1/audit", params={"target_id": payment_id, "limit": 3})
    older = await api.get(
        "/v1/audit",
        params={"target_id": payment_id, "cursor": page.json()["next_cursor"]},
    )
    assert [e["action"] for e in older.json()["entries"]] == ["checkout.create"]

    # Only admins read it.
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        for role in (Role.OPERATOR, Role.MERCHANT):
            assert (await client.get("/v1/audit", headers=bearer(role))).status_code == 403

    # The workflows name their author.
    temporal = await connect_dev_temporal(stack.temporal_address)
    checkout_run = await temporal.get_workflow_handle(
        names.checkout_workflow_id(body["order_id"])
    ).describe()
    assert await checkout_run.memo_value("requested_by") == "shop-backend"
    refund_run = await temporal.get_workflow_handle(
        names.own_refund_workflow_id(payment_id, "ops-b", key)
    ).describe()
    assert await refund_run.memo_value("requested_by") == "ops-b"


async def test_histories_hold_sealed_payloads_that_operators_open_through_the_codec(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    body = checkout_body("stripe", customer_email="secret.shopper@example.com")
    created = await post(stack, "/v1/checkouts", bearer(Role.MERCHANT), **body)
    assert created.status_code == 201, created.text
    temporal = await connect_dev_temporal(stack.temporal_address)
    # The raw history, as Temporal stores it (the service call decodes nothing).
    raw = await temporal.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=temporal.namespace,
            execution=WorkflowExecution(workflow_id=names.checkout_workflow_id(body["order_id"])),
        )
    )
    stored = raw.SerializeToString()
    # (The order id is the workflow id and a search attribute: it stays readable, by design.)
    for plain in (b"secret.shopper@example.com", b"3 items"):
        assert plain not in stored
    started = raw.history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"

    opened = await api.post("/codec/decode", json=MessageToDict(started.input))
    assert opened.status_code == 200, opened.text
    [payload] = opened.json()["payloads"]
    assert b"secret.shopper@example.com" in base64.b64decode(payload["data"])
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as merchant:
        refused = await merchant.post(
            "/codec/decode", json=MessageToDict(started.input), headers=bearer(Role.MERCHANT)
        )
    assert refused.status_code == 403
