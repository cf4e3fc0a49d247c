"""Idempotency records: one stored answer per (caller scope, key), with the request's hash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

# A claim whose request died without an answer may be taken over after this long.
STALE_CLAIM_SECONDS = 60


@dataclass(frozen=True)
class Record:
    request_hash: str
    status: int | None
    """None while the first request with the key is still being answered."""
    body: dict[str, Any] | None


async def claim(pool: asyncpg.Pool, scope: str, key: str, request_hash: str) -> Record | None:
    """Claim the key for this request (None), or the record an earlier request left."""
    claimed = await pool.fetchval(
        """
        INSERT INTO idempotency_records (scope, key, request_hash) VALUES ($1, $2, $3)
        ON CONFLICT (scope, key) DO UPDATE SET created_at = now()
            WHERE idempotency_records.response_status IS NULL
              AND idempotency_records.request_hash = EXCLUDED.request_hash
              AND idempotency_records.created_at < now() - make_interval(secs => $4)
        RETURNING true
        """,
        scope, key, request_hash, STALE_CLAIM_SECONDS,
    )  # fmt: skip
    if claimed:
        return None
    row = await pool.fetchrow(
        "SELECT request_hash, response_status, response_body FROM idempotency_records"
        " WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    assert row is not None
    body = json.loads(row["response_body"]) if row["response_body"] is not None else None
    return Record(row["request_hash"], row["response_status"], body)


async def complete(
    pool: asyncpg.Pool, scope: str, key: str, status: int, body: dict[str, Any]
) -> None:
    await pool.execute(
        "UPDATE idempotency_records SET response_status = $3, response_body = $4::jsonb"
        " WHERE scope = $1 AND key = $2",
        scope, key, status, json.dumps(body),
    )  # fmt: skip


async def abandon(pool: asyncpg.Pool, scope: str, key: str) -> None:
    """Forget an unanswered claim, so that a retry after a transient failure can go through."""
    await pool.execute(
        "DELETE FROM idempotency_records WHERE scope = $1 AND key = $2 AND response_status IS NULL",
        scope,
        key,
    )


async def purge(pool: asyncpg.Pool, retention_hours: int) -> None:
    await pool.execute(
        "DELETE FROM idempotency_records WHERE created_at < now() - make_interval(hours => $1)",
        retention_hours,
    )
