"""Razorpay webhook verification, pure: raw body + headers + configured secrets + the clock →
a verified event or a typed refusal.

`X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body under the webhook secret (Razorpay
docs, "Validate and Test Webhooks": https://razorpay.com/docs/webhooks/validate-test/).
`X-Razorpay-Event-Id` names the event for deduplication but is **not signed**, and Razorpay signs
no timestamp: so the inbox also deduplicates on the signed body's hash, and an event whose
(signed) `created_at` is older than the replay window is acceptable only as a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from activities.gateways.payload import ident, json_object
from domain.checkout import Gateway
from domain.webhooks import Refused, VerifiedEvent, WebhookConfig

MAX_SIGNATURE_LENGTH = 256
MAX_EVENT_ID_LENGTH = 100


def verify(
    body: bytes, headers: Mapping[str, str], config: WebhookConfig, now: float
) -> VerifiedEvent | Refused:
    signature = headers.get("X-Razorpay-Signature")
    if not signature:
        return Refused("invalid_signature", "X-Razorpay-Signature is missing")
    if len(signature) > MAX_SIGNATURE_LENGTH or not signature.isascii():
        return Refused("invalid_signature", "X-Razorpay-Signature is malformed")
    given = signature.encode("ascii")
    if not any(hmac.compare_digest(_hmac(secret, body), given) for secret in config.secrets):
        return Refused("invalid_signature", "X-Razorpay-Signature does not verify")
    event_id = headers.get("X-Razorpay-Event-Id") or ""
    if not (
        0 < len(event_id) <= MAX_EVENT_ID_LENGTH and event_id.isascii() and event_id.isprintable()
    ):
        return Refused("malformed_event", "X-Razorpay-Event-Id is missing or malformed")
    decoded = json_object(body)
    if decoded is None:
        return Refused("malformed_event", "the body is not a JSON object")
    text, payload = decoded
    event_type = ident(payload.get("event"))
    created_at = payload.get("created_at", 0)
    if event_type is None or not isinstance(created_at, int) or isinstance(created_at, bool):
        return Refused("malformed_event", "the event has no string event or integer created_at")
    return VerifiedEvent(
        Gateway.RAZORPAY,
        event_id,
        event_type,
        payload,
        text,
        body_sha256=hashlib.sha256(body).hexdigest(),
        stale=now - created_at > config.max_age_seconds,
    )


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode("ascii")
