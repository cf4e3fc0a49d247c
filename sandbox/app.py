"""The sandbox FastAPI application: both gateway emulators plus the test controls."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sandbox.behaviour import Behaviour
from sandbox.config import SandboxConfig
from sandbox.control import create_control_router
from sandbox.razorpay_api import RazorpayApi, create_razorpay_router
from sandbox.razorpay_route import RazorpayRoute, create_razorpay_route_router
from sandbox.state import Store
from sandbox.stripe_api import StripeApi, create_stripe_router
from sandbox.stripe_connect import StripeConnect, create_stripe_connect_router
from sandbox.webhooks import WebhookDispatcher


def create_app(config: SandboxConfig) -> FastAPI:
    """Build the app; state is loaded from ``config.state_file`` when it exists."""
    store = Store(config.state_file)
    behaviour = Behaviour(config.refund_mode)
    webhooks = WebhookDispatcher(config)
    stripe = StripeApi(config, store, behaviour, webhooks)
    razorpay = RazorpayApi(config, store, behaviour, webhooks)
    connect = StripeConnect(store, webhooks)
    route = RazorpayRoute(store, webhooks)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await webhooks.start()
        try:
            yield
        finally:
            await behaviour.writes.close()
            await webhooks.close()

    app = FastAPI(title="Payment gateway sandbox", lifespan=lifespan)
    app.include_router(create_stripe_router(stripe))
    app.include_router(create_stripe_connect_router(stripe, connect))
    app.include_router(create_razorpay_route_router(razorpay, route))
    app.include_router(create_razorpay_router(razorpay))
    app.include_router(create_control_router(store, behaviour, webhooks, stripe, razorpay))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
