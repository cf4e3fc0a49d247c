"""The merchant's confirmation callback: a signed HTTP call asking whether to capture an order."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.checkout import CheckoutState, MerchantDecision

SIGNATURE_HEADER = "X-Payments-Signature"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, the same scheme Stripe uses for webhooks."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(body: bytes, header: str, secret: str, tolerance_seconds: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp), f"t={timestamp},v1={parts.get('v1')}")


async def post_to_merchant(
    http: httpx.AsyncClient, url: str, secret: str, body: bytes, idempotency_key: str
) -> httpx.Response:
    """POST a signed event to the merchant; the one place that classifies its answers."""
    try:
        response = await http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, secret, int(time.time())),
                "Idempotency-Key": idempotency_key,
            },
        )
    except httpx.HTTPError as error:
        raise ApplicationError(
            f"merchant unreachable: {type(error).__name__}", type="merchant_unreachable"
        ) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ApplicationError(
            f"merchant answered {response.status_code}", type="merchant_unavailable"
        )
    if response.status_code >= 400:
        raise ApplicationError(
            f"merchant rejected the call: {response.status_code}",
            type="merchant_misconfigured", non_retryable=True,
        )  # fmt: skip
    return response


class MerchantActivities:
    def __init__(self, http: httpx.AsyncClient, url: str | None, secret: str) -> None:
        self._http = http
        self._url = url
        self._secret = secret

    @activity.defn
    async def confirm_order_with_merchant(self, checkout: CheckoutState) -> MerchantDecision:
        if self._url is None:
            return MerchantDecision(accepted=True, reason="no merchant confirmation configured")
        body = json.dumps(
            {
                "type": "checkout.authorized",
                "checkout_id": checkout.checkout_id,
                "order_id": checkout.order_id,
                "customer_id": checkout.customer_id,
                "amount": checkout.amount,
                "currency": checkout.currency,
                "gateway": checkout.gateway.value,
            }
        ).encode()
        response = await post_to_merchant(
            self._http, self._url, self._secret, body, f"{checkout.workflow_id}-confirm"
        )
        try:
            return MerchantDecision.model_validate_json(response.content)
        except ValueError:
            raise ApplicationError(
                "merchant answered with an unreadable decision",
                type="merchant_misconfigured", non_retryable=True,
            ) from None  # fmt: skip
