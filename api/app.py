"""The FastAPI application: routers, error format and the lifespan that opens its clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import razorpay
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from activities.gateways.registry import KITS
from api import (
    audit,
    checkouts,
    codec,
    disputes,
    gateways,
    health,
    idempotency,
    operations,
    refunds,
    relay,
    reports,
    reviews,
    sellers,
    webhooks,
)
from api.auth import RateLimits
from api.context import AppContext
from api.docs import install_docs, openapi_url
from api.metrics import RequestMetrics, serve_metrics
from api.middleware import BodySizeLimit, RefuseUnknownMethods, SecurityHeaders
from api.problems import install_problem_handlers
from db.pool import create_pool
from domain.checkout import Gateway
from observability import configure_logging
from settings import Settings, get_settings
from temporal_client import connect_temporal


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("api", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, settings.database_pool_size)
        try:
            relay_pool = (
                await create_pool(settings.database_url, relay.POOL_SIZE)
                if settings.webhook_relay_in_api
                else None
            )
            context = AppContext(
                settings=settings,
                pool=pool,
                temporal=await connect_temporal(settings, lazy=True),
                razorpay_verifier=razorpay.Client(
                    auth=(settings.razorpay_key_id, settings.razorpay_key_secret.get_secret_value())
                ),
                razorpay=KITS[Gateway.RAZORPAY].adapter(settings),
                webhook_configs={g: kit.webhook_config(settings) for g, kit in KITS.items()},
            )
            app.state.context = context
            stop_metrics = (
                serve_metrics(settings.api_metrics_address, pool)
                if settings.api_metrics_address
                else None
            )
            stop = asyncio.Event()
            background = [
                asyncio.create_task(
                    relay.run_retention(pool, settings.webhook_inbox_retention_days, stop)
                ),
                asyncio.create_task(idempotency.run_purge(context.pool, settings, stop)),
                asyncio.create_task(
                    audit.run_retention(context.pool, settings.audit_retention_days, stop)
                ),
            ]
            if relay_pool is not None:
                background.append(
                    asyncio.create_task(
                        relay.Relay(relay_pool, context.temporal, settings).run(stop)
                    )
                )
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*background)
                if stop_metrics is not None:
                    await asyncio.to_thread(stop_metrics)
                if relay_pool is not None:
                    await relay_pool.close()
        finally:
            await pool.close()

    app = FastAPI(
        title="Payment sagas",
        version="0.1.0",
        description="Checkouts, refunds and disputes on Stripe and Razorpay as Temporal sagas.",
        lifespan=lifespan,
        openapi_url=openapi_url(settings),
        docs_url=None,
        redoc_url=None,
    )
    app.state.rate_limits = RateLimits(settings)
    install_problem_handlers(app)
    # The last added runs first: unknown methods refused, request ids, metrics, CORS, then the
    # size limit and headers.
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list + [o for o in [settings.temporal_ui_origin] if o],
        allow_methods=["GET", "POST"],
        # X-Namespace: the Temporal UI's codec calls name their namespace (api/codec.py)
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Namespace"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(audit.CallerAudit)
    app.add_middleware(RequestMetrics)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.add_middleware(RefuseUnknownMethods)
    app.include_router(health.router)
    app.include_router(checkouts.router)
    app.include_router(refunds.router)
    app.include_router(disputes.router)
    app.include_router(webhooks.router)
    app.include_router(gateways.router)
    app.include_router(operations.router)
    app.include_router(reviews.router)
    app.include_router(reports.router)
    app.include_router(audit.router)
    app.include_router(codec.router)
    app.include_router(sellers.router)
    install_docs(app, settings)

    return app
