"""Liveness and readiness: ready means PostgreSQL answers with every migration applied and
Temporal answers; a load balancer sends traffic only to ready replicas. Anyone may ask (the status
code is the answer); which dependency failed, and how, is told only to operators and admins."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel
from temporalio.service import RPCError

from api.auth import Role, bearer, decode_caller
from api.context import AppContext, app_context
from api.problems import Problem
from db.migrate import MigrationError, pending_migrations

router = APIRouter(prefix="/health", tags=["health"])
CHECK_TIMEOUT_SECONDS = 3


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    postgres: str | None = None
    migrations: str | None = None
    temporal: str | None = None
    """Each dependency's state: only for an operator's or admin's bearer token."""


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is not ready"}},
)
async def ready(
    ctx: Annotated[AppContext, Depends(app_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> JSONResponse:
    postgres, migrations = await _postgres(ctx.pool)
    temporal = await _temporal(ctx)
    healthy = postgres == migrations == temporal == "ok"
    body = Readiness(status="ready" if healthy else "not_ready")
    if _is_staff(ctx, credentials):
        body = Readiness(
            status=body.status, postgres=postgres, migrations=migrations, temporal=temporal
        )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if healthy else 503)


def _is_staff(ctx: AppContext, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """A load balancer sends no token and gets the status alone; a bad token is no error here."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    try:
        caller = decode_caller(ctx.settings, credentials.credentials)
    except Problem:
        return False
    return bool(caller.roles & {Role.OPERATOR, Role.ADMIN})


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
