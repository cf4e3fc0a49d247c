"""A dispute event the gateway does not confirm is left to operators as a reconciliation flag of
kind `dispute`, once, beside the reconciler's own flags."""

from __future__ import annotations

import asyncpg

from db import disputes, reconciliation
from db.migrate import apply_migrations
from domain.checkout import Gateway
from domain.dispute import UnverifiedDispute

UNVERIFIED = UnverifiedDispute(
    dispute_id="dsp_" + "1" * 24,
    workflow_id="dispute-stripe-dp_unknown",
    gateway=Gateway.STRIPE,
    gateway_dispute_id="dp_unknown",
    gateway_answer="invalid_request:resource_missing",
    detail="stripe does not show dispute dp_unknown: No such dispute",
)


async def test_an_unverified_dispute_is_flagged_once_for_operators(pool: asyncpg.Pool) -> None:
    await apply_migrations(pool)

    await disputes.flag_unverified_dispute(pool, UNVERIFIED)
    await disputes.flag_unverified_dispute(pool, UNVERIFIED)  # a retry, or a redelivered event

    flags = [dict(f) for f in await reconciliation.open_flags(pool)]
    assert [
        {k: f[k] for k in ("object_kind", "object_id", "payment_id", "gateway_status", "detail")}
        for f in flags
    ] == [
        {
            "object_kind": "dispute",
            "object_id": UNVERIFIED.dispute_id,
            "payment_id": None,
            "gateway_status": "invalid_request:resource_missing",
            "detail": UNVERIFIED.detail,
        }
    ]
    assert flags[0]["run_id"] == UNVERIFIED.workflow_id
    assert await pool.fetchval("SELECT count(*) FROM disputes") == 0
