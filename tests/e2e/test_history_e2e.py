"""Payment history on the whole stack: a checkout the saga captured and partly refunded is found
by its order id, listed for its own customer only, and counted in the day's report as the ledger
posted it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from api.auth import Role
from tests.e2e.conftest import (
    TERMINAL,
    bearer,
    checkout_body,
    create_checkout,
    pay,
    wait_for_status,
)
from tests.e2e.test_refunds_e2e import ask_refund, wait_for_refund


async def report_line(
    api: httpx.AsyncClient, day: str, gateway: str, currency: str
) -> dict[str, Any]:
    response = await api.get(
        "/v1/reports/daily",
        params={"from": day, "to": day, "gateway": gateway, "currency": currency},
        headers=bearer(Role.OPERATOR),
    )
    assert response.status_code == 200, response.text
    [line] = response.json()["days"]
    return dict(line)


async def test_a_captured_and_refunded_checkout_is_listed_and_reported(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    customer = f"c_{uuid.uuid4().hex[:8]}"
    checkout = await create_checkout(api, checkout_body("stripe", customer_id=customer))
    payment_id = checkout["checkout_id"]
    await pay(sandbox, checkout)
    assert (await wait_for_status(api, payment_id, TERMINAL))["status"] == "captured"
    asked = await ask_refund(api, payment_id, amount=700)
    assert asked.status_code == 202, asked.text
    assert (await wait_for_refund(api, asked.json()["refund_id"]))["status"] == "succeeded"

    found = await api.get("/v1/checkouts", params={"q": checkout["order_id"]})
    listed = [
        (c["checkout_id"], c["status"], c["amount_captured"], c["amount_refunded"])
        for c in found.json()["items"]
    ]
    assert listed == [(payment_id, "partially_refunded", 2_500, 700)]
    own = await api.get("/v1/checkouts", headers=bearer(Role.CUSTOMER, customer_id=customer))
    assert [c["checkout_id"] for c in own.json()["items"]] == [payment_id]
    stranger = await api.get(
        "/v1/checkouts", params={"q": checkout["order_id"]},
        headers=bearer(Role.CUSTOMER, customer_id="c_someone_else"),
    )  # fmt: skip
    assert stranger.status_code == 200 and stranger.json()["items"] == []
    refunds = await api.get("/v1/refunds", params={"payment_id": payment_id})
    assert [(r["amount"], r["status"]) for r in refunds.json()["items"]] == [(700, "succeeded")]

    today = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    posted = await db.fetchrow(
        """
        SELECT -sum(e.amount) FILTER (WHERE e.account = 'merchant:sales') AS captured,
               sum(e.amount) FILTER (WHERE e.account = 'merchant:refunds') AS refunded
        FROM ledger_entries e JOIN payments p USING (payment_id)
        WHERE p.gateway = 'stripe' AND e.currency = 'USD'
          AND (e.created_at AT TIME ZONE 'UTC')::date = $1
        """,
        today,
    )
    line = await report_line(api, str(today), "stripe", "USD")
    assert (line["captured"], line["refunded"]) == (posted["captured"], posted["refunded"])
    assert line["captured"] >= 2_500 and line["refunded"] >= 700
