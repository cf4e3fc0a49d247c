"""The FastAPI application: routers, error format and the lifespan that opens its clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import razorpay
from fastapi import FastAPI

from api import checkouts, webhooks
from api.context import AppContext
from api.problems import install_problem_handlers
from db.pool import apply_migrations, create_pool, ensure_database
from settings import Settings, get_settings
from worker import connect_temporal


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_database(settings.database_url)
        pool = await create_pool(settings.database_url, settings.database_pool_size)
        try:
            await apply_migrations(pool)
            context = AppContext(
                settings=settings,
                pool=pool,
                temporal=await connect_temporal(settings, lazy=True),
                razorpay_verifier=razorpay.Client(
                    auth=(settings.razorpay_key_id, settings.razorpay_key_secret)
                ),
            )
            app.state.context = context
            stop_relay = asyncio.Event()
            relay = asyncio.create_task(webhooks.run_relay(context, stop_relay))
            try:
                yield
            finally:
                stop_relay.set()
                await relay
        finally:
            await pool.close()

    app = FastAPI(
        title="Payment sagas",
        version="0.1.0",
        description="Checkouts, refunds and disputes on Stripe and Razorpay as Temporal sagas.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(checkouts.router)
    app.include_router(webhooks.router)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app
