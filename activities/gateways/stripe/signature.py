"""Stripe webhook verification, pure: raw body + headers + configured secrets + the clock →
a verified event or a typed refusal.

Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's secret and sends
`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`; any v1 may match, and the timestamp must be
within the tolerance (Stripe docs, "Verify webhook signatures manually":
https://docs.stripe.com/webhooks#verify-manually). The event id is inside the signed body.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from activities.gateways.payload import ident, json_object
from domain.checkout import Gateway
from domain.webhooks import Refused, VerifiedEvent, WebhookConfig

TOLERANCE_SECONDS = 300
"""Stripe's libraries' default; both directions, so a timestamp from the future is refused too."""
MAX_HEADER_LENGTH = 2048


def verify(
    body: bytes, headers: Mapping[str, str], config: WebhookConfig, now: float
) -> VerifiedEvent | Refused:
    header = headers.get("Stripe-Signature")
    if not header:
        return Refused("invalid_signature", "Stripe-Signature is missing")
    parsed = _parse_header(header)
    if parsed is None:
        return Refused("invalid_signature", "Stripe-Signature is malformed")
    timestamp, signatures = parsed
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return Refused("invalid_signature", "Stripe-Signature's timestamp is outside 300 s")
    signed = f"{timestamp}.".encode() + body
    if not any(
        hmac.compare_digest(_hmac(secret, signed), candidate)
        for secret in config.secrets
        for candidate in signatures
    ):
        return Refused("invalid_signature", "Stripe-Signature does not verify")
    decoded = json_object(body)
    if decoded is None:
        return Refused("malformed_event", "the body is not a JSON object")
    text, payload = decoded
    event_id, event_type = ident(payload.get("id")), ident(payload.get("type"))
    if event_id is None or event_type is None:
        return Refused("malformed_event", "the event has no string id or type")
    return VerifiedEvent(Gateway.STRIPE, event_id, event_type, payload, text)


def _parse_header(header: str) -> tuple[int, list[bytes]] | None:
    """The timestamp and the v1 signatures; None unless the header is ASCII with both."""
    if len(header) > MAX_HEADER_LENGTH or not header.isascii():
        return None
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp is None and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.encode("ascii"))
    return (timestamp, signatures) if timestamp is not None and signatures else None


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode("ascii")
