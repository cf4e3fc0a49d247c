"""Marketplace money end to end on Stripe Connect: sellers' connected accounts in the sandbox, a
split checkout held in escrow and released on its date, a resale's royalty, partial refunds before
and after the release, a lost dispute — and at every step the ledger's money per seller equals
what the sandbox moved to and from each connected account."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from settings import SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET, SANDBOX_STRIPE_KEY
from tests.e2e.conftest import (
    TERMINAL,
    checkout_body,
    create_checkout,
    new_key,
    pay,
    wait_for_status,
)

STRIPE_AUTH = {"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"}


async def onboarded_seller(api: httpx.AsyncClient, sandbox: httpx.AsyncClient) -> tuple[str, str]:
    """A connected account created and onboarded at the sandbox, registered as a seller."""
    created = await sandbox.post(
        "/stripe/v1/accounts", data={"type": "express"}, headers=STRIPE_AUTH
    )
    assert created.status_code == 200, created.text
    account = created.json()["id"]
    assert (await sandbox.post(f"/sandbox/stripe/accounts/{account}/onboard")).status_code == 200
    seller_id = f"seller-{uuid.uuid4().hex[:10]}"
    registered = await api.post(
        "/v1/sellers",
        json={"seller_id": seller_id, "gateway": "stripe", "gateway_account_id": account},
    )
    assert registered.status_code == 201, registered.text
    return seller_id, account


async def split_checkout(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    shares: list[dict[str, Any]],
    fee: int,
    release_at: datetime | None,
) -> str:
    body = checkout_body(
        "stripe",
        amount=sum(s["amount"] for s in shares) + fee,
        splits={"shares": shares, "platform_fee": fee},
        **({"release_at": release_at.isoformat()} if release_at else {}),
    )
    checkout = await create_checkout(api, body)
    await pay(sandbox, checkout)
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured", captured["history"]
    return str(captured["checkout_id"])


async def wait_for_payout(
    api: httpx.AsyncClient, payment_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    payout: dict[str, Any] = {}
    for _ in range(200):
        response = await api.get(f"/v1/payouts/{payment_id}")
        if response.status_code == 200:
            payout = response.json()
            if until(payout):
                return payout
        await asyncio.sleep(0.2)
    raise AssertionError(f"payout not as expected: {payout}")


async def refund(api: httpx.AsyncClient, payment_id: str, amount: int) -> None:
    response = await api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"reason": "requested_by_customer", "amount": amount},
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code in (200, 201, 202), response.text


async def paid_at_gateway(sandbox: httpx.AsyncClient, account: str, gateway: str = "stripe") -> int:
    """Transfers to the connected (linked) account less their reversals, from the sandbox's
    log."""
    moved = (await sandbox.get("/sandbox/movements", params={"gateway": gateway})).json()
    return sum(
        m["amount"] if m["kind"] == "transfer" else -m["amount"]
        for m in moved
        if m.get("account") == account and m["kind"] in ("transfer", "transfer_reversal")
    )


async def ledger(db: asyncpg.Connection, account: str) -> int:
    total = await db.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM ledger_entries WHERE account = $1", account
    )
    return -int(total)


async def payment_balanced(db: asyncpg.Connection, payment_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT account, sum(amount) AS total FROM ledger_entries WHERE payment_id = $1"
        " GROUP BY account",
        payment_id,
    )
    balances = {r["account"]: int(r["total"]) for r in rows}
    assert sum(balances.values()) == 0
    return balances


async def test_escrow_is_released_on_its_date_and_a_later_refund_reverses_in_proportion(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (reseller, reseller_account), (venue, venue_account) = (
        await onboarded_seller(api, sandbox),
        await onboarded_seller(api, sandbox),
    )
    shares = [
        {"seller_id": reseller, "amount": 7_000},
        {"seller_id": venue, "amount": 2_000, "kind": "royalty"},  # a resale's royalty
    ]
    release_at = datetime.now(UTC) + timedelta(seconds=8)
    payment_id = await split_checkout(api, sandbox, shares, 1_000, release_at)

    held = await wait_for_payout(api, payment_id, lambda p: len(p["transfers"]) == 2)
    if held["state"] == "holding":  # the release date has not come yet
        assert {t["status"] for t in held["transfers"]} == {"held"}
    released = await wait_for_payout(api, payment_id, lambda p: p["state"] == "released")
    assert [t["status"] for t in released["transfers"]] == ["released", "released"]
    assert await paid_at_gateway(sandbox, reseller_account) == 7_000
    assert await paid_at_gateway(sandbox, venue_account) == 2_000
    assert await ledger(db, f"seller:{reseller}") == 7_000
    assert await ledger(db, f"seller:{venue}") == 2_000
    assert await ledger(db, f"escrow:{reseller}") == 0

    await refund(api, payment_id, 2_500)
    reversed_ = await wait_for_payout(api, payment_id, lambda p: p["clawed_back"] == 2_500)
    assert [t["reversed"] for t in reversed_["transfers"]] == [1_750, 500]
    assert reversed_["fee_reversed"] == 250
    assert await paid_at_gateway(sandbox, reseller_account) == 5_250
    assert await paid_at_gateway(sandbox, venue_account) == 1_500
    assert await ledger(db, f"seller:{reseller}") == 5_250
    assert await ledger(db, f"seller:{venue}") == 1_500
    balances = await payment_balanced(db, payment_id)
    assert balances["platform:fees"] == -750

    balance = (await api.get(f"/v1/sellers/{reseller}/balance")).json()
    assert balance["balances"] == [{"currency": "USD", "held": 0, "paid": 5_250}]
    history = (await api.get(f"/v1/sellers/{venue}/payouts")).json()["payouts"]
    assert [(p["payment_id"], p["amount_released"], p["amount_reversed"]) for p in history] == [
        (payment_id, 2_000, 500)
    ]


async def test_a_refund_before_release_comes_out_of_escrow_and_an_operator_releases_early(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    seller, account = await onboarded_seller(api, sandbox)
    release_at = datetime.now(UTC) + timedelta(days=60)
    payment_id = await split_checkout(
        api, sandbox, [{"seller_id": seller, "amount": 9_000}], 1_000, release_at
    )
    await wait_for_payout(api, payment_id, lambda p: p["state"] == "holding")
    assert await ledger(db, f"escrow:{seller}") == 9_000

    await refund(api, payment_id, 1_000)
    after = await wait_for_payout(api, payment_id, lambda p: p["clawed_back"] == 1_000)
    assert after["transfers"][0]["reversed"] == 900 and after["fee_reversed"] == 100
    assert await ledger(db, f"escrow:{seller}") == 8_100
    assert await paid_at_gateway(sandbox, account) == 0  # nothing moved at the gateway

    held = await api.post(f"/v1/payouts/{payment_id}/hold", json={"reason": "venue checks"})
    assert held.status_code == 200, held.text
    assert held.json()["state"] == "on_hold"
    released = await api.post(f"/v1/payouts/{payment_id}/release")
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "released"
    assert await paid_at_gateway(sandbox, account) == 8_100
    assert await ledger(db, f"seller:{seller}") == 8_100
    again = await api.post(f"/v1/payouts/{payment_id}/release")
    assert again.status_code == 409, again.text
    decisions = await db.fetch(
        "SELECT decision, caller FROM payout_decisions WHERE payment_id = $1 ORDER BY id",
        payment_id,
    )
    assert [d["decision"] for d in decisions] == ["hold", "release"]
    assert all(d["caller"] == "e2e-admin" for d in decisions)


async def test_a_lost_dispute_after_release_takes_back_what_the_sellers_still_hold(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    seller, account = await onboarded_seller(api, sandbox)
    payment_id = await split_checkout(
        api, sandbox, [{"seller_id": seller, "amount": 2_000}], 500, None
    )
    await wait_for_payout(api, payment_id, lambda p: p["state"] == "released")
    intent = (await api.get(f"/v1/checkouts/{payment_id}")).json()["gateway_payment_id"]
    opened = await sandbox.post(
        "/sandbox/disputes", json={"gateway": "stripe", "payment": intent, "reason": "fraudulent"}
    )
    assert opened.status_code == 200, opened.text
    for _ in range(100):  # the dispute saga has recorded it
        listed = await api.get("/v1/disputes", params={"payment_id": payment_id})
        found = listed.json()["items"]
        if found and found[0]["amount_withdrawn"] == 2_500:
            break
        await asyncio.sleep(0.2)
    lost = await sandbox.post(
        f"/sandbox/disputes/{opened.json()['id']}/resolve", json={"outcome": "lost"}
    )
    assert lost.status_code == 200, lost.text

    taken = await wait_for_payout(api, payment_id, lambda p: p["clawed_back"] == 2_500)
    assert taken["transfers"][0]["status"] == "reversed"
    assert taken["fee_reversed"] == 500
    assert await paid_at_gateway(sandbox, account) == 0
    assert await ledger(db, f"seller:{seller}") == 0


async def test_splits_that_do_not_add_up_or_name_unknown_sellers_are_refused(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = checkout_body(
        "stripe", amount=10_000,
        splits={"shares": [{"seller_id": "nobody", "amount": 9_000}], "platform_fee": 999},
    )  # fmt: skip
    response = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "splits_do_not_add_up"

    body["splits"]["platform_fee"] = 1_000
    response = await api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": new_key()})
    assert (response.status_code, response.json()["code"]) == (422, "unknown_seller")
    assert (
        await db.fetchval("SELECT count(*) FROM payments WHERE order_id = $1", body["order_id"])
        == 0
    )


RAZORPAY_AUTH = (SANDBOX_RAZORPAY_KEY_ID, SANDBOX_RAZORPAY_KEY_SECRET)


async def linked_account_seller(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> tuple[str, str]:
    """A Route linked account created and activated at the sandbox, registered as a seller."""
    created = await sandbox.post(
        "/razorpay/v2/accounts", json={"email": "venue@example.com", "type": "route"},
        auth=RAZORPAY_AUTH,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    account = created.json()["id"]
    activated = await sandbox.post(f"/sandbox/razorpay/accounts/{account}/activate")
    assert activated.status_code == 200, activated.text
    seller_id = f"seller-{uuid.uuid4().hex[:10]}"
    registered = await api.post(
        "/v1/sellers",
        json={"seller_id": seller_id, "gateway": "razorpay", "gateway_account_id": account},
    )
    assert registered.status_code == 201, registered.text
    return seller_id, account


async def razorpay_transfers(sandbox: httpx.AsyncClient, payment: str) -> list[dict[str, Any]]:
    response = await sandbox.get(f"/razorpay/v1/payments/{payment}/transfers", auth=RAZORPAY_AUTH)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_razorpay_route_holds_transfers_at_the_gateway_until_the_release(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (seller, account), (venue, venue_account) = (
        await linked_account_seller(api, sandbox),
        await linked_account_seller(api, sandbox),
    )
    body = checkout_body(
        "razorpay", amount=10_000,
        splits={"shares": [{"seller_id": seller, "amount": 8_000},
                           {"seller_id": venue, "amount": 1_000, "kind": "royalty"}],
                "platform_fee": 1_000},
        release_at=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
    )  # fmt: skip
    checkout = await create_checkout(api, body)
    proof = await pay(sandbox, checkout)
    confirm = await api.post(
        f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof
    )
    assert confirm.status_code == 202, confirm.text
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured", captured["history"]
    payment_id, razorpay_payment = captured["checkout_id"], captured["gateway_charge_id"]

    held = await wait_for_payout(
        api, payment_id, lambda p: all(t["gateway_transfer_id"] for t in p["transfers"])
    )
    assert held["state"] == "holding"
    at_razorpay = await razorpay_transfers(sandbox, razorpay_payment)
    assert [(t["amount"], t["on_hold"], t["settlement_status"]) for t in at_razorpay] == [
        (8_000, True, "on_hold"), (1_000, True, "on_hold"),
    ]  # fmt: skip
    assert (
        await paid_at_gateway(sandbox, account, "razorpay") == 8_000
    )  # at the linked account, on hold
    assert await ledger(db, f"escrow:{seller}") == 8_000

    await refund(api, payment_id, 2_000)  # before the release: reversed at Razorpay
    after = await wait_for_payout(api, payment_id, lambda p: p["clawed_back"] == 2_000)
    assert [t["reversed"] for t in after["transfers"]] == [1_600, 200]
    assert await paid_at_gateway(sandbox, account, "razorpay") == 6_400
    assert await paid_at_gateway(sandbox, venue_account, "razorpay") == 800
    assert await ledger(db, f"escrow:{seller}") == 6_400

    released = await api.post(f"/v1/payouts/{payment_id}/release")
    assert released.status_code == 200, released.text
    at_razorpay = await razorpay_transfers(sandbox, razorpay_payment)
    assert [(t["on_hold"], t["settlement_status"]) for t in at_razorpay] == [
        (False, "settled"), (False, "settled"),
    ]  # fmt: skip
    assert await ledger(db, f"seller:{seller}") == 6_400
    assert await ledger(db, f"seller:{venue}") == 800
    assert await ledger(db, f"escrow:{seller}") == 0
    assert (await payment_balanced(db, payment_id))["platform:fees"] == -800


async def reconcile(api: httpx.AsyncClient, payment_id: str) -> dict[str, Any]:
    """A reconciliation run of one payment, its refunds and its sellers' transfers."""
    report = await api.post(f"/v1/payments/{payment_id}/reconcile")
    assert report.status_code == 200, report.text
    found: dict[str, Any] = report.json()
    return found


async def open_transfer_flag(api: httpx.AsyncClient, transfer_id: str) -> dict[str, Any]:
    flags = (await api.get("/v1/reconciliation/runs")).json()["open_flags"]
    flag: dict[str, Any] = next(f for f in flags if f["object_id"] == transfer_id)
    return flag


async def test_a_stripe_transfer_reversed_behind_our_back_is_flagged_and_no_money_moves(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (reseller, _), (venue, _) = (
        await onboarded_seller(api, sandbox),
        await onboarded_seller(api, sandbox),
    )
    shares = [{"seller_id": reseller, "amount": 7_000}, {"seller_id": venue, "amount": 2_000}]
    payment_id = await split_checkout(api, sandbox, shares, 1_000, None)
    released = await wait_for_payout(api, payment_id, lambda p: p["state"] == "released")
    reseller_transfer, venue_transfer = released["transfers"]
    assert (await reconcile(api, payment_id))["flagged"] == 0  # both agree with the ledger

    # Someone reverses part of the reseller's transfer on Stripe's dashboard.
    reversal = await sandbox.post(
        f"/stripe/v1/transfers/{reseller_transfer['gateway_transfer_id']}/reversals",
        data={"amount": "500"}, headers=STRIPE_AUTH,
    )  # fmt: skip
    assert reversal.status_code == 200, reversal.text
    report = await reconcile(api, payment_id)

    assert report["flagged"] == 1, report
    assert report["findings"] == {reseller_transfer["transfer_id"]: "flagged"}
    flag = await open_transfer_flag(api, reseller_transfer["transfer_id"])
    assert (flag["object_kind"], flag["payment_id"], flag["ledger_status"]) == (
        "transfer", payment_id, "released"
    )  # fmt: skip
    assert "gateway reversed 500, the ledger 0" in flag["detail"], flag
    assert not any(
        f["object_id"] == venue_transfer["transfer_id"]
        for f in (await api.get("/v1/reconciliation/runs")).json()["open_flags"]
    )
    assert await ledger(db, f"seller:{reseller}") == 7_000  # flagged, never changed
    audit = await db.fetch(
        "SELECT detail FROM audit_log WHERE payment_id = $1 AND step = 'reconciliation_flagged'",
        payment_id,
    )
    assert [a["detail"] for a in audit] == [flag["detail"]]


async def test_a_razorpay_hold_lifted_behind_our_back_is_flagged(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (seller, _), (venue, _) = (
        await linked_account_seller(api, sandbox),
        await linked_account_seller(api, sandbox),
    )
    body = checkout_body(
        "razorpay", amount=10_000,
        splits={"shares": [{"seller_id": seller, "amount": 8_000},
                           {"seller_id": venue, "amount": 1_000}],
                "platform_fee": 1_000},
        release_at=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
    )  # fmt: skip
    checkout = await create_checkout(api, body)
    proof = await pay(sandbox, checkout)
    confirm = await api.post(
        f"/v1/checkouts/{checkout['checkout_id']}/razorpay/confirm", json=proof
    )
    assert confirm.status_code == 202, confirm.text
    captured = await wait_for_status(api, checkout["checkout_id"], TERMINAL)
    assert captured["status"] == "captured", captured["history"]
    payment_id = captured["checkout_id"]
    held = await wait_for_payout(
        api, payment_id, lambda p: all(t["gateway_transfer_id"] for t in p["transfers"])
    )
    seller_transfer, venue_transfer = held["transfers"]
    assert (await reconcile(api, payment_id))["flagged"] == 0

    # Someone releases the seller's settlement on Razorpay's dashboard before the event.
    lifted = await sandbox.patch(
        f"/razorpay/v1/transfers/{seller_transfer['gateway_transfer_id']}",
        json={"on_hold": False}, auth=RAZORPAY_AUTH,
    )  # fmt: skip
    assert lifted.status_code == 200, lifted.text
    report = await reconcile(api, payment_id)

    assert report["findings"] == {seller_transfer["transfer_id"]: "flagged"}, report
    flag = await open_transfer_flag(api, seller_transfer["transfer_id"])
    assert flag["ledger_status"] == "held"
    assert "the ledger says held, the gateway on_hold=False" in flag["detail"], flag
    assert await ledger(db, f"escrow:{seller}") == 8_000  # flagged, never changed
    after = (await api.get(f"/v1/payouts/{payment_id}")).json()
    assert after["state"] == "holding"
    assert venue_transfer["status"] == "held"


async def test_a_sellers_onboarding_follows_stripe_account_updated(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await sandbox.post(
        "/stripe/v1/accounts", data={"type": "express"}, headers=STRIPE_AUTH
    )
    account = created.json()["id"]
    seller_id = f"seller-{uuid.uuid4().hex[:10]}"
    registered = await api.post(
        "/v1/sellers",
        json={"seller_id": seller_id, "gateway": "stripe", "gateway_account_id": account},
    )
    assert registered.json()["onboarding_state"] == "pending"

    async def onboarding_becomes(state: str) -> None:
        seller: dict[str, Any] = {}
        for _ in range(150):
            seller = (await api.get(f"/v1/sellers/{seller_id}")).json()
            if seller["onboarding_state"] == state:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"onboarding never {state}: {seller}")

    onboarded = await sandbox.post(f"/sandbox/stripe/accounts/{account}/onboard")
    assert onboarded.status_code == 200, onboarded.text
    await onboarding_becomes("active")  # account.updated: charges, payouts, transfers active
    lost = await sandbox.post(f"/sandbox/stripe/accounts/{account}/onboard?active=false")
    assert lost.status_code == 200, lost.text
    await onboarding_becomes("restricted")
    outcomes = await db.fetch(
        "SELECT outcome, detail FROM webhook_inbox WHERE gateway = 'stripe'"
        " AND event_type = 'account.updated' AND subject = $1 ORDER BY seq",
        f"account:{account}",
    )
    assert [(o["outcome"], o["detail"]) for o in outcomes] == [
        ("seller_onboarding", f"seller {seller_id} onboarding active"),
        ("seller_onboarding", f"seller {seller_id} onboarding restricted"),
    ]
