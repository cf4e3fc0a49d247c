"""Liveness and readiness: ready means PostgreSQL answers with every migration applied and
Temporal answers; a load balancer sends traffic only to ready replicas."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError

from api.context import AppContext, app_context
from db.migrate import MigrationError, pending_migrations

router = APIRouter(prefix="/health", tags=["health"])
CHECK_TIMEOUT_SECONDS = 3


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    postgres: str
    migrations: str
    temporal: str


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is not ready"}},
)
async def ready(ctx: Annotated[AppContext, Depends(app_context)]) -> JSONResponse:
    postgres, migrations = await _postgres(ctx.pool)
    temporal = await _temporal(ctx)
    healthy = postgres == migrations == temporal == "ok"
    body = Readiness(
        status="ready" if healthy else "not_ready",
        postgres=postgres,
        migrations=migrations,
        temporal=temporal,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


async def _postgres(pool: asyncpg.Pool) -> tuple[str, str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await pool.fetchval("SELECT 1")
            pending = await pending_migrations(pool)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return f"unreachable: {type(error).__name__}", "unknown"
    except MigrationError as error:
        return "ok", f"refused: {error}"
    return "ok", "ok" if not pending else f"pending: {', '.join(pending)}"


async def _temporal(ctx: AppContext) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await ctx.temporal.service_client.check_health()
    except (RPCError, RuntimeError, TimeoutError) as error:
        return f"unreachable: {type(error).__name__}"
    return "ok"
