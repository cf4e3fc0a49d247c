"""Finance reports from the ledger's postings: the daily rollup (`ledger_daily`, kept by a trigger
on every posting in slots, migration 031) read and summed for a range of days."""

from __future__ import annotations

from datetime import date

import asyncpg

from domain.checkout import Gateway
from domain.history import DailyTotals


async def daily_totals(
    pool: asyncpg.Pool,
    first: date,
    last: date,
    currency: str | None = None,
    gateway: Gateway | None = None,
) -> list[DailyTotals]:
    """Per UTC day (first..last, both included), gateway and currency: what the merchant's
    accounts received, by day, then gateway, then currency. Days without postings are absent."""
    rows = await pool.fetch(
        """
        SELECT day, gateway, currency, sum(captured)::bigint AS captured,
               sum(captures)::bigint AS captures, sum(refunded)::bigint AS refunded,
               sum(refunds)::bigint AS refunds, sum(withdrawn)::bigint AS withdrawn,
               sum(withdrawals)::bigint AS withdrawals, sum(reinstated)::bigint AS reinstated,
               sum(reinstatements)::bigint AS reinstatements
        FROM ledger_daily
        WHERE day BETWEEN $1 AND $2
          AND ($3::text IS NULL OR currency = $3) AND ($4::text IS NULL OR gateway = $4)
        GROUP BY day, gateway, currency
        ORDER BY day, gateway, currency
        """,
        first, last, currency, gateway,
    )  # fmt: skip
    return [
        DailyTotals(
            day=r["day"],
            gateway=Gateway(r["gateway"]),
            currency=r["currency"],
            captured=r["captured"],
            captures=r["captures"],
            refunded=r["refunded"],
            refunds=r["refunds"],
            disputed_withdrawn=r["withdrawn"],
            dispute_withdrawals=r["withdrawals"],
            disputed_reinstated=r["reinstated"],
            dispute_reinstatements=r["reinstatements"],
            net=r["captured"] - r["refunded"] - r["withdrawn"] + r["reinstated"],
        )
        for r in rows
    ]
