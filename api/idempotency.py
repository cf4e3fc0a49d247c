"""Idempotency records: one answer per (scope, key), refused for another body under the same key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Header

from api.problems import Problem
from settings import Settings

log = logging.getLogger("api.idempotency")

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per intended operation; a retry with the same key and body gets the"
        " same answer, the same key with another body a 422.",
    ),
]

# A claim whose request died without an answer may be taken over after this long.
STALE_CLAIM_SECONDS = 60


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def claim(
    pool: asyncpg.Pool, scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Claim the key for this request; returns the stored answer when it was already given."""
    claimed = await pool.fetchval(
        """
        INSERT INTO idempotency_records (scope, key, request_hash) VALUES ($1, $2, $3)
        ON CONFLICT (scope, key) DO UPDATE SET created_at = now()
            WHERE idempotency_records.response_status IS NULL
              AND idempotency_records.request_hash = EXCLUDED.request_hash
              AND idempotency_records.created_at < now() - make_interval(secs => $4)
        RETURNING true
        """,
        scope, key, fingerprint, STALE_CLAIM_SECONDS,
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
    if row["request_hash"] != fingerprint:
        raise Problem(
            422, "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )  # fmt: skip
    if row["response_status"] is None:
        raise Problem(
            409, "request_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    return StoredResponse(row["response_status"], json.loads(row["response_body"]))


async def complete(pool: asyncpg.Pool, scope: str, key: str, response: StoredResponse) -> None:
    await pool.execute(
        "UPDATE idempotency_records SET response_status = $3, response_body = $4::jsonb"
        " WHERE scope = $1 AND key = $2",
        scope, key, response.status, json.dumps(response.body),
    )  # fmt: skip


async def once(
    pool: asyncpg.Pool,
    scope: str,
    key: str,
    payload: Any,
    produce: Callable[[], Awaitable[StoredResponse]],
) -> StoredResponse:
    """Run `produce` once per (scope, key); replay its answer to every retry with that key."""
    stored = await claim(pool, scope, key, request_hash(payload))
    if stored is not None:
        return stored
    try:
        stored = await produce()
    except BaseException:
        await abandon(pool, scope, key)
        raise
    await complete(pool, scope, key, stored)
    return stored


async def abandon(pool: asyncpg.Pool, scope: str, key: str) -> None:
    """Forget an unanswered claim, so that a retry after a transient failure can go through."""
    await pool.execute(
        "DELETE FROM idempotency_records WHERE scope = $1 AND key = $2 AND response_status IS NULL",
        scope,
        key,
    )


async def run_purge(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> None:
    """Forget answers older than the retention (at least the gateways' own 24 h), hourly."""
    while not stop.is_set():
        try:
            await pool.execute(
                "DELETE FROM idempotency_records"
                " WHERE created_at < now() - make_interval(hours => $1)",
                settings.idempotency_retention_hours,
            )
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("idempotency purge: %s", type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), 3600)
        except TimeoutError:
            pass
