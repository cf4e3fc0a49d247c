"""The webhook inbox: what intake stores, what the relay claims, settles, retries and parks as a
dead letter, what operators list and replay, and the retention purge. Every function takes a pool
(or a connection inside a caller's transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.webhooks import DowntimeFact

CHANNEL = "webhook_inbox"
"""Notified (by a trigger, migration 006) whenever a row becomes pending."""

DEAD = "dead"
PENDING = "pending"


@dataclass(frozen=True)
class NewEvent:
    gateway: str
    event_id: str
    event_type: str
    body: str
    body_sha256: str | None
    subject: str | None
    no_action: str | None
    """Set when the event needs nothing from any workflow: stored as settled, with this reason."""
    fact_key: str | None = None
    """The fact it tells, where several messages tell one (a duplicate of it is not kept)."""


_RECEIVE = """
WITH told AS (
    SELECT EXISTS (SELECT 1 FROM webhook_inbox WHERE gateway = $1 AND fact_key = $8) AS before)
INSERT INTO webhook_inbox (gateway, event_id, event_type, payload, body_sha256, subject,
                           state, outcome, detail, delivered_at, fact_key)
SELECT $1, $2, $3, $4::jsonb, $5, $6,
       CASE WHEN $7::text IS NULL AND NOT told.before THEN 'pending' ELSE 'delivered' END,
       CASE WHEN $7::text IS NOT NULL THEN 'no_action'
            WHEN told.before THEN 'duplicate' ELSE 'received' END,
       coalesce($7::text, CASE WHEN told.before
           THEN 'the same fact came in another message' ELSE '' END),
       CASE WHEN $7::text IS NULL AND NOT told.before THEN NULL ELSE now() END,
       CASE WHEN told.before THEN NULL ELSE $8 END
FROM told
ON CONFLICT DO NOTHING
RETURNING outcome
"""


async def receive(pool: asyncpg.Pool, event: NewEvent) -> bool:
    """Store the event (committed before the caller answers); False when it is a duplicate: the
    same (gateway, event id) or the same signed body where it is hashed (not stored again), or a
    fact another message told already (stored settled, for the record).

    Two messages telling one fact at once both find it untold; the unique fact index makes the
    later one wait for the earlier and then store nothing. It is stored again, now as the
    duplicate it is, so no event we answer 2xx is missing from the inbox."""
    arguments = (
        event.gateway, event.event_id, event.event_type, event.body, event.body_sha256,
        event.subject, event.no_action, event.fact_key,
    )  # fmt: skip
    outcome = await pool.fetchval(_RECEIVE, *arguments)
    if outcome is None and event.fact_key is not None:
        outcome = await pool.fetchval(_RECEIVE, *arguments)
    return outcome is not None and outcome != "duplicate"


async def seen(pool: asyncpg.Pool, gateway: str, event_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM webhook_inbox WHERE gateway = $1 AND event_id = $2", gateway, event_id
    )
    return bool(found)


@dataclass(frozen=True)
class Claimed:
    seq: int
    gateway: str
    event_id: str
    event_type: str
    body: str
    subject: str | None
    failures: int


async def claim(pool: asyncpg.Pool, limit: int, lease_seconds: float) -> list[Claimed]:
    """Up to `limit` due rows, oldest first. Rows another relay is claiming are skipped, not
    waited for; a claim lapses after the lease (a relay that crashed). The query stops at
    `limit` rows, so its cost does not grow with the backlog."""
    rows = await pool.fetch(
        """
        WITH due AS (
            SELECT seq FROM webhook_inbox
            WHERE state = 'pending' AND next_attempt_at <= now()
              AND (claimed_until IS NULL OR claimed_until < now())
            ORDER BY seq
            LIMIT $1
            FOR UPDATE SKIP LOCKED)
        UPDATE webhook_inbox w
        SET claimed_until = now() + make_interval(secs => $2),
            delivery_attempts = delivery_attempts + 1, last_attempt_at = now()
        FROM due WHERE w.seq = due.seq
        RETURNING w.seq, w.gateway, w.event_id, w.event_type, w.payload::text AS body,
                  w.subject, w.failures
        """,
        limit,
        lease_seconds,
    )
    return sorted((Claimed(**dict(r)) for r in rows), key=lambda c: c.seq)


async def settle(
    conn: asyncpg.Pool | asyncpg.Connection,
    seq: int,
    outcome: str,
    workflow_id: str | None,
    detail: str,
) -> float | None:
    """Mark the row delivered; its delivery lag in seconds (None if another relay settled it)."""
    lag: float | None = await conn.fetchval(
        """
        UPDATE webhook_inbox
        SET state = 'delivered', outcome = $2, workflow_id = $3, detail = $4,
            delivered_at = now(), claimed_until = NULL, last_error = NULL
        WHERE seq = $1 AND state = 'pending'
        RETURNING extract(epoch FROM delivered_at - received_at)::float8
        """,
        seq, outcome, workflow_id, detail,
    )  # fmt: skip
    return lag


async def retry_later(pool: asyncpg.Pool, seq: int, delay_seconds: float, error: str) -> None:
    """Give the row back untouched in its failure count (Temporal was unreachable)."""
    await pool.execute(
        """
        UPDATE webhook_inbox
        SET claimed_until = NULL, next_attempt_at = now() + make_interval(secs => $2),
            last_error = $3
        WHERE seq = $1 AND state = 'pending'
        """,
        seq, delay_seconds, error,
    )  # fmt: skip


async def record_failure(
    pool: asyncpg.Pool,
    seq: int,
    error: str,
    *,
    max_failures: int,
    retry_base_seconds: float,
    retry_cap_seconds: float,
) -> str | None:
    """Count a failure: retried after base·2^(failures-1) seconds (capped), or parked as a dead
    letter at `max_failures`. The row's state afterwards."""
    state: str | None = await pool.fetchval(
        """
        UPDATE webhook_inbox
        SET failures = failures + 1, claimed_until = NULL, last_error = $2,
            state = CASE WHEN failures + 1 >= $3 THEN 'dead' ELSE 'pending' END,
            dead_lettered_at = CASE WHEN failures + 1 >= $3 THEN now() END,
            next_attempt_at = now() + make_interval(secs => least($4 * 2 ^ failures, $5))
        WHERE seq = $1 AND state = 'pending'
        RETURNING state
        """,
        seq, error, max_failures, retry_base_seconds, retry_cap_seconds,
    )  # fmt: skip
    return state


async def record_downtime(conn: asyncpg.Connection, downtime: DowntimeFact) -> None:
    await conn.execute(
        """
        INSERT INTO gateway_downtimes
            (gateway, downtime_id, method, status, severity, began_at, ends_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (gateway, downtime_id) DO UPDATE SET method = EXCLUDED.method,
            status = EXCLUDED.status, severity = EXCLUDED.severity, began_at = EXCLUDED.began_at,
            ends_at = EXCLUDED.ends_at, updated_at = now()
        """,
        downtime.gateway.value, downtime.downtime_id, downtime.method, downtime.status,
        downtime.severity, downtime.began_at, downtime.ends_at,
    )  # fmt: skip


async def dead_letters(pool: asyncpg.Pool, gateway: str | None, limit: int) -> list[Any]:
    return list(
        await pool.fetch(
            """
            SELECT * FROM webhook_inbox
            WHERE state = 'dead' AND ($1::text IS NULL OR gateway = $1)
            ORDER BY dead_lettered_at DESC LIMIT $2
            """,
            gateway,
            limit,
        )
    )


async def replay(pool: asyncpg.Pool, gateway: str, event_id: str) -> bool:
    """Put a dead letter back in the queue with a clean failure count; False if there is none."""
    seq = await pool.fetchval(
        """
        UPDATE webhook_inbox
        SET state = 'pending', failures = 0, next_attempt_at = now(), claimed_until = NULL,
            dead_lettered_at = NULL
        WHERE gateway = $1 AND event_id = $2 AND state = 'dead'
        RETURNING seq
        """,
        gateway,
        event_id,
    )
    return seq is not None


async def backlog(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows waiting for delivery and dead letters."""
    rows = await pool.fetch(
        "SELECT state, count(*) AS n FROM webhook_inbox WHERE state <> 'delivered' GROUP BY state"
    )
    counts = {PENDING: 0, DEAD: 0}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


async def purge_delivered(pool: asyncpg.Pool, retention_days: int) -> int:
    """Forget delivered events older than the retention; dead letters stay until replayed."""
    deleted = await pool.fetchval(
        """
        WITH gone AS (
            DELETE FROM webhook_inbox
            WHERE state = 'delivered' AND delivered_at < now() - make_interval(days => $1)
            RETURNING 1)
        SELECT count(*) FROM gone
        """,
        retention_days,
    )
    return int(deleted)


_FILTER = """($1::text IS NULL OR gateway = $1) AND ($2::text IS NULL OR event_type = $2)"""


async def events(
    pool: asyncpg.Pool,
    gateway: str | None,
    event_type: str | None,
    delivered: bool | None,
    limit: int,
) -> list[Any]:
    """The inbox, newest first."""
    rows = await pool.fetch(
        f"""
        SELECT * FROM webhook_inbox WHERE {_FILTER}
          AND ($3::boolean IS NULL OR (state = 'delivered') = $3)
        ORDER BY seq DESC LIMIT $4
        """,
        gateway, event_type, delivered, limit,
    )  # fmt: skip
    return list(rows)


async def counts_by_type(
    pool: asyncpg.Pool, gateway: str | None, event_type: str | None
) -> list[Any]:
    return list(
        await pool.fetch(
            f"""
            SELECT gateway, event_type, count(*) AS received,
                   count(*) FILTER (WHERE state = 'delivered') AS delivered,
                   count(*) FILTER (WHERE state = 'pending') AS pending,
                   count(*) FILTER (WHERE state = 'dead') AS dead_letters
            FROM webhook_inbox WHERE {_FILTER}
            GROUP BY gateway, event_type ORDER BY gateway, event_type
            """,
            gateway,
            event_type,
        )
    )


async def open_downtimes(pool: asyncpg.Pool) -> list[Any]:
    """Downtimes the gateways announced and did not yet resolve."""
    return list(
        await pool.fetch(
            "SELECT * FROM gateway_downtimes WHERE status <> 'resolved' ORDER BY began_at"
        )
    )
