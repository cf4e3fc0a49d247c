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
from pydantic import BaseModel

from api.problems import Problem
from db import idempotency as idempotency_records
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


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def request_hash(request: BaseModel) -> str:
    """The fingerprint of a request body. Fields left at None are not part of it, so a release
    that adds an optional field does not turn a client's retry across the deploy into a 422."""
    payload = request.model_dump(mode="json", exclude_none=True)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def once(
    pool: asyncpg.Pool,
    scope: str,
    key: str,
    request: BaseModel,
    produce: Callable[[], Awaitable[StoredResponse]],
) -> StoredResponse:
    """Run `produce` once per (scope, key); replay its answer to every retry with that key."""
    fingerprint = request_hash(request)
    record = await idempotency_records.claim(pool, scope, key, fingerprint)
    if record is not None:
        return _replay(record, fingerprint)
    try:
        stored = await produce()
    except BaseException:
        await idempotency_records.abandon(pool, scope, key)
        raise
    await idempotency_records.complete(pool, scope, key, stored.status, stored.body)
    return stored


def _replay(record: idempotency_records.Record, fingerprint: str) -> StoredResponse:
    if record.request_hash != fingerprint:
        raise Problem(
            422, "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )  # fmt: skip
    if record.status is None or record.body is None:
        raise Problem(
            409, "request_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    return StoredResponse(record.status, record.body)


async def run_purge(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> None:
    """Forget answers older than the retention (at least the gateways' own 24 h), hourly."""
    while not stop.is_set():
        try:
            await idempotency_records.purge(pool, settings.idempotency_retention_hours)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("idempotency purge: %s", type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), 3600)
        except TimeoutError:
            pass
