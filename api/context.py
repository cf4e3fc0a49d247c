"""What every request handler needs, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import razorpay
from fastapi import Request
from temporalio.client import Client

from activities.gateways.base import PaymentGateway
from domain.checkout import Gateway
from domain.webhooks import WebhookConfig
from settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    temporal: Client
    razorpay_verifier: razorpay.Client
    """Only its signature utilities are used; it holds the key secret they need."""
    razorpay: PaymentGateway
    """Reads a payment a client confirms, as Razorpay asks after the signature check."""
    webhook_configs: dict[Gateway, WebhookConfig]


async def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context
