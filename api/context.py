"""What every request handler needs, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import razorpay
from fastapi import Request
from temporalio.client import Client

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
    webhook_configs: dict[Gateway, WebhookConfig]


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context
