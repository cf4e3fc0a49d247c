"""The Temporal worker: runs the saga workflows and their activities against real clients."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.gateways.base import PaymentGateway
from activities.gateways.razorpay_gateway import RazorpayGateway
from activities.gateways.stripe_gateway import StripeGateway
from activities.ledger import LedgerActivities
from activities.merchant import MerchantActivities
from activities.payments import GatewayActivities
from activities.refund_ledger import RefundLedgerActivities
from db.pool import apply_migrations, create_pool, ensure_database
from domain.checkout import Gateway
from settings import Settings, get_settings
from workflows.checkout import CheckoutWorkflow
from workflows.refund import RefundWorkflow

WORKFLOWS: Sequence[type] = [CheckoutWorkflow, RefundWorkflow]


async def connect_temporal(settings: Settings, *, lazy: bool = False) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )


def build_gateways(settings: Settings) -> dict[Gateway, PaymentGateway]:
    timeout = settings.gateway_timeout_seconds
    return {
        Gateway.STRIPE: StripeGateway(
            settings.stripe_secret_key.get_secret_value(), settings.stripe_api_base, timeout
        ),
        Gateway.RAZORPAY: RazorpayGateway(
            settings.razorpay_key_id,
            settings.razorpay_key_secret.get_secret_value(),
            settings.razorpay_api_base,
            timeout,
        ),
    }


def activities_for(settings: Settings, pool: Any, http: httpx.AsyncClient) -> list[Any]:
    ledger = LedgerActivities(pool)
    refund_ledger = RefundLedgerActivities(pool)
    gateways = GatewayActivities(build_gateways(settings))
    merchant = MerchantActivities(
        http,
        settings.merchant_confirmation_url,
        settings.merchant_callback_secret.get_secret_value(),
    )
    return [
        ledger.record_new_checkout,
        ledger.record_checkout_step,
        refund_ledger.reserve_refund,
        refund_ledger.record_refund_step,
        gateways.create_gateway_payment,
        gateways.fetch_gateway_payment,
        gateways.capture_gateway_payment,
        gateways.release_gateway_payment,
        gateways.refund_gateway_payment,
        gateways.fetch_gateway_refund,
        merchant.confirm_order_with_merchant,
    ]


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    await ensure_database(settings.database_url)
    pool = await create_pool(settings.database_url, settings.database_pool_size)
    await apply_migrations(pool)
    client = await connect_temporal(settings)
    async with httpx.AsyncClient(timeout=10.0) as http:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=activities_for(settings, pool, http),
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        async with worker:
            logging.info("worker polling task queue %r", settings.task_queue)
            await stop.wait()
    await pool.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    settings = get_settings()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
