"""The registration point: each `Gateway` and its folder's parts (adapter, webhook verification,
event parser). A new gateway is its own folder plus one entry here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from activities.gateways.base import PaymentGateway, TransferGateway
from activities.gateways.razorpay import events as razorpay_events
from activities.gateways.razorpay import signature as razorpay_signature
from activities.gateways.razorpay.adapter import RazorpayGateway
from activities.gateways.razorpay.route import RazorpayRouteGateway
from activities.gateways.stripe import events as stripe_events
from activities.gateways.stripe import signature as stripe_signature
from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.connect import StripeConnectGateway
from domain.checkout import Gateway
from domain.webhooks import GatewayEvent, Refused, VerifiedEvent, WebhookConfig
from settings import Settings

Verifier = Callable[[bytes, Mapping[str, str], WebhookConfig, float], VerifiedEvent | Refused]
Parser = Callable[[VerifiedEvent], GatewayEvent]


@dataclass(frozen=True)
class GatewayKit:
    adapter: Callable[[Settings], PaymentGateway]
    webhook_config: Callable[[Settings], WebhookConfig]
    verify: Verifier
    """Pure: raw body, headers, configuration and the clock → verified event or refusal."""
    parse: Parser
    """Pure and total: a verified event → a typed fact, or no action with its reason."""
    event_types: frozenset[str]
    """The event types the parser reads (metrics label others `other`)."""


def _secrets(configured: str) -> tuple[str, ...]:
    """Comma-separated: several secrets may be valid at once while one is rotated."""
    return tuple(s.strip() for s in configured.split(",") if s.strip())


KITS: dict[Gateway, GatewayKit] = {
    Gateway.STRIPE: GatewayKit(
        adapter=lambda s: StripeGateway(
            s.stripe_secret_key.get_secret_value(), s.stripe_api_base, s.gateway_timeout_seconds
        ),
        webhook_config=lambda s: WebhookConfig(
            _secrets(s.stripe_webhook_secret.get_secret_value()),
            stripe_signature.TOLERANCE_SECONDS,
        ),
        verify=stripe_signature.verify,
        parse=stripe_events.parse,
        event_types=stripe_events.EVENT_TYPES,
    ),
    Gateway.RAZORPAY: GatewayKit(
        adapter=lambda s: RazorpayGateway(
            s.razorpay_key_id,
            s.razorpay_key_secret.get_secret_value(),
            s.razorpay_api_base,
            s.gateway_timeout_seconds,
        ),
        webhook_config=lambda s: WebhookConfig(
            _secrets(s.razorpay_webhook_secret.get_secret_value()),
            s.razorpay_webhook_max_age_seconds,
        ),
        verify=razorpay_signature.verify,
        parse=razorpay_events.parse,
        event_types=razorpay_events.EVENT_TYPES,
    ),
}


def build_adapters(settings: Settings) -> dict[Gateway, PaymentGateway]:
    return {gateway: kit.adapter(settings) for gateway, kit in KITS.items()}


def build_transfer_gateways(settings: Settings) -> dict[Gateway, TransferGateway]:
    """Marketplace payouts: Stripe Connect and Razorpay Route."""
    return {
        Gateway.STRIPE: StripeConnectGateway(
            settings.stripe_secret_key.get_secret_value(),
            settings.stripe_api_base,
            settings.gateway_timeout_seconds,
        ),
        Gateway.RAZORPAY: RazorpayRouteGateway(
            settings.razorpay_key_id,
            settings.razorpay_key_secret.get_secret_value(),
            settings.razorpay_api_base,
            settings.gateway_timeout_seconds,
        ),
    }
