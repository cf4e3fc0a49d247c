"""The caller audit (migration 020): who asked for each money-moving or decision call, appended
once per call and read by admins; forgotten only after AUDIT_RETENTION_DAYS."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class AuditEntry:
    action: str
    subject: str
    roles: list[str]
    request_id: str | None
    target_kind: str | None
    target_id: str | None
    idempotency_key: str | None
    status: int


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    entry: AuditEntry


async def append(pool: asyncpg.Pool, entry: AuditEntry) -> None:
    await pool.execute(
        """
        INSERT INTO caller_audit
            (action, subject, roles, request_id, target_kind, target_id, idempotency_key, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        entry.action, entry.subject, entry.roles, entry.request_id, entry.target_kind,
        entry.target_id, entry.idempotency_key, entry.status,
    )  # fmt: skip


async def read(
    pool: asyncpg.Pool,
    *,
    subject: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    rows = await pool.fetch(
        """
        SELECT * FROM caller_audit
        WHERE ($1::text IS NULL OR subject = $1)
          AND ($2::text IS NULL OR action = $2)
          AND ($3::text IS NULL OR target_id = $3)
          AND ($4::timestamptz IS NULL OR at >= $4)
          AND ($5::timestamptz IS NULL OR at < $5)
          AND ($6::bigint IS NULL OR id < $6)
        ORDER BY id DESC
        LIMIT $7
        """,
        subject, action, target_id, since, until, before_id, limit,
    )  # fmt: skip
    return [
        AuditRow(
            id=r["id"],
            at=r["at"],
            entry=AuditEntry(
                action=r["action"],
                subject=r["subject"],
                roles=list(r["roles"]),
                request_id=r["request_id"],
                target_kind=r["target_kind"],
                target_id=r["target_id"],
                idempotency_key=r["idempotency_key"],
                status=r["status"],
            ),
        )
        for r in rows
    ]


async def purge(pool: asyncpg.Pool, retention_days: int) -> int:
    """Forget rows older than the retention: the one DELETE the table's trigger lets through."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL payments.audit_purge = 'on'")
        result: str = await conn.execute(
            "DELETE FROM caller_audit WHERE at < now() - make_interval(days => $1)",
            retention_days,
        )
    return int(result.split()[-1])
