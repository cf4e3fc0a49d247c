"""What operators watch, read from the ledger as it is now: open payments and refunds and how long
the oldest has waited, refunds and disputes by status, the nearest undecided dispute deadline,
the webhook inbox backlog, open reconciliation flags, the reconciler's last run, gateways with
an announced downtime, and risk assessments by decision and rule with the review queue.
Read-only; the API turns it into Prometheus gauges at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from db.inbox import backlog

# Payments whose saga has not reached a closed status (disputed payments have their own gauges).
OPEN_PAYMENT_STATUSES = (
    "created",
    "requires_action",
    "processing",
    "authorized",
    "unknown",
    "needs_review",
)
OPEN_REFUND_STATUSES = ("pending", "requires_action")


@dataclass(frozen=True)
class Waiting:
    """How many objects of a gateway sit in a status, and the age of the oldest since its last
    change."""

    gateway: str
    status: str
    count: int
    oldest_seconds: float


@dataclass(frozen=True)
class Snapshot:
    open_payments: list[Waiting] = field(default_factory=list)
    open_refunds: list[Waiting] = field(default_factory=list)
    refunds: dict[tuple[str, str], int] = field(default_factory=dict)
    """(gateway, status): every refund in the ledger."""
    disputes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(gateway, status): every dispute in the ledger."""
    dispute_deadline_seconds: dict[str, float] = field(default_factory=dict)
    """gateway: seconds until the nearest evidence deadline of an open dispute nobody decided
    (negative once passed)."""
    inbox_backlog: dict[str, int] = field(default_factory=dict)
    """state: webhook inbox rows waiting for delivery (`pending`) and dead letters (`dead`)."""
    inbox_oldest_pending_seconds: float = 0.0
    open_flags: dict[str, int] = field(default_factory=dict)
    """object kind: reconciliation flags nobody resolved."""
    last_reconciliation_finished: float | None = None
    """Unix time the reconciler's last run finished; None before the first."""
    unhealthy_gateways: frozenset[str] = frozenset()
    risk_assessments: dict[tuple[str, str], int] = field(default_factory=dict)
    """(stage, decision): every risk assessment in the ledger."""
    risk_rule_hits: dict[tuple[str, str], int] = field(default_factory=dict)
    """(stage, rule): every rule hit of those assessments."""
    breakers: dict[str, tuple[str, str]] = field(default_factory=dict)
    """gateway: its stored breaker state (closed, open, half_open) and the operator's override."""
    pending_reviews: int = 0
    oldest_pending_review_seconds: float = 0.0


async def snapshot(pool: asyncpg.Pool) -> Snapshot:
    async with pool.acquire() as db:
        payments = await db.fetch(
            """
            SELECT gateway, status, count(*) AS n,
                   extract(epoch FROM now() - min(updated_at))::float8 AS oldest
            FROM payments WHERE status = ANY($1::text[]) GROUP BY gateway, status
            """,
            list(OPEN_PAYMENT_STATUSES),
        )
        refunds = await db.fetch(
            """
            SELECT gateway, status, count(*) AS n,
                   extract(epoch FROM now() - min(updated_at))::float8 AS oldest
            FROM refunds GROUP BY gateway, status
            """
        )
        disputes = await db.fetch(
            "SELECT gateway, status, count(*) AS n FROM disputes GROUP BY gateway, status"
        )
        deadlines = await db.fetch(
            """
            SELECT gateway, extract(epoch FROM min(due_by) - now())::float8 AS seconds_left
            FROM disputes WHERE status = 'open' AND due_by IS NOT NULL GROUP BY gateway
            """
        )
        inbox = await db.fetchrow(
            """
            SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0)::float8 AS oldest
            FROM webhook_inbox WHERE state = 'pending'
            """
        )
        flags = await db.fetch(
            """
            SELECT object_kind, count(*) AS n FROM reconciliation_flags
            WHERE resolved_at IS NULL GROUP BY object_kind
            """
        )
        last_run = await db.fetchval(
            "SELECT extract(epoch FROM max(finished_at))::float8 FROM reconciliation_runs"
        )
        unhealthy = await db.fetch(
            "SELECT DISTINCT gateway FROM gateway_downtimes WHERE status <> 'resolved'"
        )
        breakers = await db.fetch("SELECT gateway, state, override FROM gateway_health")
        assessments = await db.fetch(
            "SELECT stage, decision, count(*) AS n FROM risk_assessments GROUP BY stage, decision"
        )
        hits = await db.fetch(
            """
            SELECT stage, hit->>'rule' AS rule, count(*) AS n
            FROM risk_assessments, jsonb_array_elements(hits) AS hit GROUP BY stage, rule
            """
        )
        reviews = await db.fetchrow(
            """
            SELECT count(*) AS n,
                   coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
            FROM risk_assessments WHERE review_status = 'pending'
            """
        )
    assert inbox is not None and reviews is not None
    return Snapshot(
        open_payments=[Waiting(r["gateway"], r["status"], r["n"], r["oldest"]) for r in payments],
        open_refunds=[
            Waiting(r["gateway"], r["status"], r["n"], r["oldest"])
            for r in refunds
            if r["status"] in OPEN_REFUND_STATUSES
        ],
        refunds={(r["gateway"], r["status"]): r["n"] for r in refunds},
        disputes={(r["gateway"], r["status"]): r["n"] for r in disputes},
        dispute_deadline_seconds={r["gateway"]: r["seconds_left"] for r in deadlines},
        inbox_backlog=await backlog(pool),
        inbox_oldest_pending_seconds=inbox["oldest"],
        open_flags={r["object_kind"]: r["n"] for r in flags},
        last_reconciliation_finished=last_run,
        unhealthy_gateways=frozenset(r["gateway"] for r in unhealthy),
        risk_assessments={(r["stage"], r["decision"]): r["n"] for r in assessments},
        risk_rule_hits={(r["stage"], r["rule"]): r["n"] for r in hits},
        breakers={r["gateway"]: (r["state"], r["override"]) for r in breakers},
        pending_reviews=reviews["n"],
        oldest_pending_review_seconds=reviews["oldest"],
    )
