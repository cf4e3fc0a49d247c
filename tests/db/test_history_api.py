"""Payment history over the API (in process, on a migrated database, no Temporal needed): the
lists' filters and cursors, customer scoping, and the daily report against the payments."""

from __future__ import annotations

import base64
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.auth import Role, mint_token
from settings import Settings, development_settings
from testkit import history
from tests.db.conftest import name_of, new_database

NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
FAR_CURSOR = base64.urlsafe_b64encode(
    b'["checkouts","0001-01-01T00:00:00+14:00","pay_000000000000000000000000"]'
).decode()
COUNT = 600
CUSTOMERS = 40


@pytest.fixture(scope="session")  # once per process, however xdist deals the tests
async def seeded_template(postgres_server: str, migrated_template: str) -> AsyncIterator[str]:
    """The name of a migrated database with the generated history written, made once."""
    async with new_database(postgres_server, migrated_template) as url:
        writing = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            await history.write(
                writing, history.generate(COUNT, customers=CUSTOMERS, days=20, until=NOW)
            )
        finally:
            await writing.close()
        yield name_of(url)


@pytest.fixture
async def database_url(postgres_server: str, seeded_template: str) -> AsyncIterator[str]:
    """Each test's database: a copy of the seeded template (the history is deterministic)."""
    async with new_database(postgres_server, seeded_template) as url:
        yield url


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test's database, migrated and holding the generated history."""
    return pool


@pytest.fixture
async def api(database_url: str, seeded: asyncpg.Pool) -> AsyncIterator[Client]:
    settings = development_settings(
        database_url=database_url,
        webhook_relay_in_api=False,
        api_metrics_address="",
        rate_limit_read="100000/minute",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield Client(http, settings)


class Client:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def get(
        self, path: str, role: Role = Role.MERCHANT, customer_id: str | None = None, **kw: Any
    ) -> httpx.Response:
        token = mint_token(self.settings, f"test-{role}", [role], customer_id=customer_id)
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return await self.http.get(path, headers=headers, **kw)

    async def all_pages(
        self, path: str, params: dict[str, Any], role: Role = Role.MERCHANT, **kw: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            response = await self.get(
                path, role, params={**params, **({"cursor": cursor} if cursor else {})}, **kw
            )
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


async def test_checkouts_are_listed_newest_first_across_pages(
    api: Client, seeded: asyncpg.Pool
) -> None:
    listed = await api.all_pages("/v1/checkouts", {"limit": 37})
    expected = await seeded.fetch(
        "SELECT payment_id FROM payments ORDER BY created_at DESC, payment_id DESC"
    )
    assert [c["checkout_id"] for c in listed] == [r["payment_id"] for r in expected]


async def test_pages_stay_whole_while_new_payments_arrive(
    api: Client, seeded: asyncpg.Pool
) -> None:
    before = {r["payment_id"] for r in await seeded.fetch("SELECT payment_id FROM payments")}
    seen: list[str] = []
    cursor = None
    arrivals = 0
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/checkouts", params=params)).json()
        seen += [c["checkout_id"] for c in page["items"]]
        # new payments arrive between pages, some of them newer than every listed one
        await history.write(
            seeded, history.generate(5, start=COUNT + arrivals, days=1, until=NOW + timedelta(1))
        )
        arrivals += 5
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a payment was listed twice"
    assert set(seen) == before, "a payment that existed before the first page was skipped"


async def test_checkout_filters_narrow_the_list(api: Client, seeded: asyncpg.Pool) -> None:
    since, until = NOW - timedelta(days=5), NOW - timedelta(days=2)
    cases: list[tuple[dict[str, Any], str, list[Any]]] = [
        ({"customer_id": "c_7"}, "customer_id = $1", ["c_7"]),
        ({"order_id": "order-00000042"}, "order_id = $1", ["order-00000042"]),
        ({"status": ["refunded", "dispute_lost"]}, "status = ANY($1)",
         [["refunded", "dispute_lost"]]),
        ({"gateway": "razorpay"}, "gateway = $1", ["razorpay"]),
        ({"currency": "EUR", "gateway": "stripe"}, "currency = $1 AND gateway = $2",
         ["EUR", "stripe"]),
        ({"amount_min": 1000, "amount_max": 20000}, "amount BETWEEN $1 AND $2", [1000, 20000]),
        (
            {"created_from": since.isoformat(), "created_to": until.isoformat()},
            "created_at >= $1 AND created_at < $2", [since, until],
        ),
        (
            {"updated_from": since.isoformat(), "updated_to": until.isoformat()},
            "updated_at >= $1 AND updated_at < $2", [since, until],
        ),
        ({"q": "order-0000012"}, "order_id LIKE 'order-0000012%'", []),
        ({"q": "ch_0000000000000000004"}, "gateway_charge_id LIKE $1",
         ["ch_0000000000000000004%"]),
        ({"q": "pi_00000000000000000010"}, "gateway_payment_id LIKE $1",
         ["pi_00000000000000000010%"]),
    ]  # fmt: skip
    for params, condition, args in cases:
        listed = await api.all_pages("/v1/checkouts", {**params, "limit": 200})
        expected = await seeded.fetch(
            f"SELECT payment_id FROM payments WHERE {condition}"
            " ORDER BY created_at DESC, payment_id DESC",
            *args,
        )
        assert expected, f"the generated data has no case for {params}"
        assert [c["checkout_id"] for c in listed] == [r["payment_id"] for r in expected], params


async def test_a_customer_sees_only_its_own_payments_whatever_it_asks(api: Client) -> None:
    own = await api.all_pages("/v1/checkouts", {"limit": 200}, Role.CUSTOMER, customer_id="c_3")
    assert own and {c["customer_id"] for c in own} == {"c_3"}
    other_order = "order-00000004"  # customer c_4's
    for params in (
        {"customer_id": "c_4"},
        {"order_id": other_order},
        {"q": other_order},
        {"status": ["captured", "refunded", "failed", "expired", "created"]},
        {"gateway": "stripe"},
        {"customer_id": "c_3", "order_id": other_order},
    ):
        listed = await api.all_pages(
            "/v1/checkouts", {**params, "limit": 200}, Role.CUSTOMER, customer_id="c_3"
        )
        assert all(c["customer_id"] == "c_3" for c in listed), params
    refunds = await api.all_pages("/v1/refunds", {"limit": 200}, Role.CUSTOMER, customer_id="c_3")
    stranger = await api.all_pages(
        "/v1/refunds", {"customer_id": "c_4"}, Role.CUSTOMER, customer_id="c_3"
    )
    assert stranger == []
    own_ids = {c["checkout_id"] for c in own}
    assert all(r["payment_id"] in own_ids for r in refunds)
    nobody = await api.get("/v1/checkouts", Role.CUSTOMER)  # a customer token without a customer
    assert nobody.status_code == 403


async def test_refunds_are_listed_with_their_filters(api: Client, seeded: asyncpg.Pool) -> None:
    everything = await api.all_pages("/v1/refunds", {"limit": 23})
    expected = await seeded.fetch(
        "SELECT refund_id FROM refunds ORDER BY created_at DESC, refund_id DESC"
    )
    assert [r["refund_id"] for r in everything] == [r["refund_id"] for r in expected]
    on_razorpay = await api.all_pages("/v1/refunds", {"gateway": "razorpay", "status": "succeeded"})
    assert on_razorpay and all(r["gateway"] == "razorpay" for r in on_razorpay)
    one = everything[0]["payment_id"]
    of_payment = await api.all_pages("/v1/refunds", {"payment_id": one})
    assert [r["payment_id"] for r in of_payment] == [one]
    by_customer = await api.all_pages("/v1/refunds", {"customer_id": "c_5"})
    owners = await seeded.fetch(
        "SELECT DISTINCT customer_id FROM payments WHERE payment_id = ANY($1)",
        [r["payment_id"] for r in by_customer],
    )
    assert [o["customer_id"] for o in owners] in ([], ["c_5"])


async def test_disputes_are_paged_newest_first(api: Client, seeded: asyncpg.Pool) -> None:
    listed = await api.all_pages("/v1/disputes", {"limit": 3}, Role.OPERATOR)
    expected = await seeded.fetch(
        "SELECT dispute_id FROM disputes ORDER BY created_at DESC, dispute_id DESC"
    )
    assert expected and [d["dispute_id"] for d in listed] == [r["dispute_id"] for r in expected]
    lost = await api.all_pages("/v1/disputes", {"status": "lost"}, Role.OPERATOR)
    assert {d["status"] for d in lost} <= {"lost"}
    assert (await api.get("/v1/disputes", Role.MERCHANT)).status_code == 403


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/checkouts", {"cursor": "garbage!"}),
        ("/v1/checkouts", {"cursor": "WyJjaGVja291dHMiXQ"}),  # ["checkouts"]: no position
        ("/v1/checkouts", {"limit": 1000}),
        ("/v1/checkouts", {"status": "paid"}),
        ("/v1/checkouts", {"amount_min": 500, "amount_max": 100}),
        ("/v1/checkouts", {"created_from": "2026-11-02T00:00:00Z",
                           "created_to": "2026-11-01T00:00:00Z"}),
        ("/v1/checkouts", {"created_from": "2026-11-02T00:00:00"}),  # no UTC offset
        ("/v1/checkouts", {"currency": "usd"}),
        ("/v1/checkouts", {"q": "ab"}),
        ("/v1/checkouts", {"q": "order\x00-1"}),
        ("/v1/checkouts", {"customer_id": "c_1\x00"}),
        ("/v1/checkouts", {"amount_max": 2**63}),
        ("/v1/checkouts", {"updated_to": "0001-01-01T00:00:00+14:00"}),
        ("/v1/checkouts", {"cursor": FAR_CURSOR}),  # a time UTC cannot hold
        ("/v1/refunds", {"payment_id": "nope"}),
        ("/v1/disputes", {"stage": "appeal"}),
        ("/v1/reviews", {"customer_id": "c_1\x00"}),
        ("/v1/reviews", {"created_after": "0001-01-01T00:00:00+14:00"}),
        ("/v1/webhooks/events", {"type": "payment.\x00"}),
        ("/v1/audit", {"subject": "e2e\x00"}),
        ("/v1/audit", {"action": "checkout.\x00"}),
        ("/v1/audit", {"target_id": "pay_\x00"}),
    ],
)  # fmt: skip
async def test_bad_filters_and_cursors_are_422(
    api: Client, path: str, params: dict[str, Any]
) -> None:
    response = await api.get(path, Role.ADMIN, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_nul_in_a_dead_letters_id_is_422(api: Client) -> None:
    token = mint_token(api.settings, "test-admin", [Role.ADMIN])
    response = await api.http.post(
        "/v1/webhooks/dead-letters/stripe/evt_%00/replay",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422, response.text


async def test_a_cursor_of_one_list_is_refused_by_another(api: Client) -> None:
    page = (await api.get("/v1/refunds", Role.ADMIN, params={"limit": 1})).json()
    assert page["next_cursor"]
    response = await api.get("/v1/checkouts", Role.ADMIN, params={"cursor": page["next_cursor"]})
    assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"


async def test_daily_report_totals_agree_with_the_payments(
    api: Client, seeded: asyncpg.Pool
) -> None:
    first, last = (NOW - timedelta(days=40)).date(), NOW.date()
    response = await api.get(
        "/v1/reports/daily", Role.OPERATOR, params={"from": str(first), "to": str(last)}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    payments = await seeded.fetch(
        """
        SELECT p.currency, sum(p.amount_captured) AS captured, sum(p.amount_refunded) AS refunded,
               count(*) FILTER (WHERE p.amount_captured > 0) AS captures,
               coalesce(sum(d.amount_withdrawn), 0) AS disputed_net
        FROM payments p LEFT JOIN disputes d USING (payment_id)
        GROUP BY p.currency HAVING sum(p.amount_captured) > 0 ORDER BY p.currency
        """
    )
    totals = {t["currency"]: t for t in report["totals"]}
    assert sorted(totals) == [p["currency"] for p in payments]
    for p in payments:
        t = totals[p["currency"]]
        assert (t["captured"], t["captures"], t["refunded"]) == (
            p["captured"], p["captures"], p["refunded"],
        )  # fmt: skip
        assert t["disputed_withdrawn"] - t["disputed_reinstated"] == p["disputed_net"]
        assert t["net"] == p["captured"] - p["refunded"] - p["disputed_net"]
    assert sum(t["refunds"] for t in totals.values()) == await seeded.fetchval(
        "SELECT count(*) FROM refunds"
    )
    assert sum(t["dispute_withdrawals"] for t in totals.values()) == await seeded.fetchval(
        "SELECT count(*) FROM disputes"
    )
    # each day, gateway and currency as the postings themselves add up (UTC days)
    by_day = await seeded.fetch(
        """
        SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day, p.gateway, e.currency,
               -sum(e.amount) FILTER (WHERE e.account = 'merchant:sales') AS captured
        FROM ledger_entries e JOIN payments p USING (payment_id)
        WHERE e.account = 'merchant:sales' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """
    )
    assert [(d["day"], d["gateway"], d["currency"], d["captured"]) for d in report["days"]] == [
        (str(r["day"]), r["gateway"], r["currency"], r["captured"]) for r in by_day
    ]


async def test_daily_report_filters_and_csv(api: Client) -> None:
    params = {"from": str(NOW.date() - timedelta(days=6)), "to": str(NOW.date()),
              "currency": "INR", "gateway": "razorpay"}  # fmt: skip
    as_json = (await api.get("/v1/reports/daily", Role.ADMIN, params=params)).json()
    assert as_json["days"] and {(d["gateway"], d["currency"]) for d in as_json["days"]} == {
        ("razorpay", "INR")
    }
    assert all(params["from"] <= d["day"] <= params["to"] for d in as_json["days"])
    response = await api.get(
        "/v1/reports/daily", Role.ADMIN, params=params, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["day"], int(r["captured"]), int(r["net"])) for r in rows] == [
        (d["day"], d["captured"], d["net"]) for d in as_json["days"]
    ]


async def test_daily_report_is_for_operators_and_checks_its_range(api: Client) -> None:
    today = str(NOW.date())
    for role in (Role.MERCHANT, Role.CUSTOMER):
        response = await api.get(
            "/v1/reports/daily", role, customer_id="c_1", params={"from": today, "to": today}
        )
        assert response.status_code == 403
    for params in (
        {"from": today, "to": str(date(2026, 1, 1))},
        {"from": "2024-01-01", "to": today},
        {"from": "yesterday", "to": today},
        {"to": today},
    ):
        response = await api.get("/v1/reports/daily", Role.ADMIN, params=params)
        assert response.status_code == 422, params


def test_generated_history_has_every_case() -> None:
    generated = history.generate(COUNT, customers=CUSTOMERS, days=20, until=NOW)
    statuses = Counter(p[9] for p in generated.payments)
    assert {"captured", "refunded", "partially_refunded", "dispute_lost", "failed"} <= set(statuses)
