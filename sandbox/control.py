"""Test controls and the customer's checkout pages (no auth).

``/sandbox/faults`` arms failures, ``/sandbox/outages`` takes a gateway down (and announces it as
the gateway would) until it is brought back, ``/sandbox/reset-behaviour`` restores every default,
``/sandbox/razorpay/account`` sets the Razorpay account's capture settings,
``/sandbox/movements`` lists the money the sandbox
moved, ``/sandbox/refunds/mode`` switches new refunds between instant and pending,
``/sandbox/refunds/{id}/settle`` finishes pending refunds, ``/sandbox/disputes`` opens a
dispute on a captured payment and ``/sandbox/disputes/{id}/resolve`` decides it,
``/sandbox/webhooks/deliveries`` lists webhook attempts, ``/sandbox/webhooks/hold``,
``/release`` and ``/{id}/redeliver`` send them late, reordered or twice, and
``/checkout/...`` serves a tiny page that pays through the customer-side endpoints.
"""

import json
from dataclasses import asdict
from importlib import resources
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, model_validator

from sandbox.behaviour import (
    WRITE_ONLY_FAULTS,
    Behaviour,
    Fault,
    FaultKind,
    RazorpayAccount,
    RefundMode,
)
from sandbox.razorpay_api import RazorpayApi, RazorpayError
from sandbox.state import JSON, OPERATIONS, WRITES, Gateway, Store, new_id, now
from sandbox.stripe_api import StripeApi, StripeError
from sandbox.webhooks import WebhookDispatcher


class FaultRequest(BaseModel):
    """A fault to arm for the next ``times`` calls of one gateway operation."""

    gateway: Gateway
    operation: str
    kind: FaultKind
    times: int = Field(default=1, ge=1)
    delay_seconds: float = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _known_operation(self) -> "FaultRequest":
        if self.operation not in OPERATIONS[self.gateway]:
            known = ", ".join(sorted(OPERATIONS[self.gateway]))
            raise ValueError(f"unknown {self.gateway} operation {self.operation!r}; one of {known}")
        if self.kind in WRITE_ONLY_FAULTS and self.operation not in WRITES[self.gateway]:
            writes = ", ".join(sorted(WRITES[self.gateway]))
            raise ValueError(f"{self.kind} applies a write; one of {writes}")
        return self


class OutageRequest(BaseModel):
    """Take a gateway down: every call to it fails (`error_500`, as in a maintenance or an
    incident), answers too late (`timeout`; a write may still land) or is throttled."""

    gateway: Gateway
    kind: Literal["error_500", "timeout", "rate_limited"] = "error_500"
    delay_seconds: float = Field(default=15, ge=0)
    announce: bool = True
    """Razorpay: send `payment.downtime.started` for cards, and `resolved` when it is back."""


class ReleaseRequest(BaseModel):
    """How to send the held webhooks: reordered (newest first) and/or each twice; or not at all
    (`drop`), as when a gateway gives up delivering them."""

    reverse: bool = False
    duplicate: bool = False
    drop: bool = False


class RefundModeRequest(BaseModel):
    """How refunds created from now on behave: settled at once, or pending until settled."""

    mode: RefundMode


class SettleRequest(BaseModel):
    """How a pending refund ends."""

    outcome: Literal["succeeded", "failed"]


class DisputeRequest(BaseModel):
    """A cardholder disputes a captured payment: a Stripe PaymentIntent or a Razorpay payment."""

    gateway: Gateway
    payment: str
    reason: str = "fraudulent"
    amount: int | None = Field(default=None, ge=1, description="default: all captured")
    respond_within_seconds: int = Field(default=7 * 24 * 3600, ge=0)


class ResolveRequest(BaseModel):
    """The issuer's decision on a dispute."""

    outcome: Literal["won", "lost"]


def _checkout_page(title: str, config: JSON) -> HTMLResponse:
    template = resources.files("sandbox").joinpath("templates/checkout.html").read_text()
    payload = json.dumps(config).replace("<", "\\u003c")
    return HTMLResponse(template.replace("__TITLE__", title).replace("__CONFIG__", payload))


def create_control_router(
    store: Store,
    behaviour: Behaviour,
    webhooks: WebhookDispatcher,
    stripe: StripeApi,
    razorpay: RazorpayApi,
) -> APIRouter:
    """The ``/sandbox`` control routes and the ``/checkout`` pages."""
    router = APIRouter()

    @router.post("/sandbox/faults")
    async def add_fault(request: FaultRequest) -> JSON:
        behaviour.faults.add(Fault(**request.model_dump()))
        return request.model_dump()

    @router.get("/sandbox/faults")
    async def armed_faults() -> list[JSON]:
        return [asdict(fault) for fault in behaviour.faults.armed]

    @router.delete("/sandbox/faults")
    async def clear_faults() -> JSON:
        behaviour.faults.clear()
        return {"cleared": True}

    # Razorpay announces downtimes of a payment method as `payment.downtime.started` and
    # `payment.downtime.resolved` webhooks carrying the downtime entity (id, method, begin, end,
    # status, scheduled, severity, instrument: https://razorpay.com/docs/api/payments/downtime/
    # and https://razorpay.com/docs/webhooks/payments/). Stripe sends no webhook for its own
    # incidents (they are published on status.stripe.com), so a Stripe outage is silent.
    announced: dict[Gateway, JSON] = {}

    def announce(gateway: Gateway, status: str) -> None:
        downtime = announced.get(gateway)
        if gateway != "razorpay" or downtime is None:
            return
        downtime.update(status=status, updated_at=now())
        if status == "resolved":
            downtime["end"] = now()
            del announced[gateway]
        webhooks.razorpay_event(
            downtime["id"], f"payment.downtime.{status}", {"payment.downtime": dict(downtime)}
        )

    @router.post("/sandbox/outages")
    async def start_outage(request: OutageRequest) -> JSON:
        behaviour.faults.outages[request.gateway] = Fault(
            gateway=request.gateway, operation="*", kind=request.kind, times=1,
            delay_seconds=request.delay_seconds,
        )  # fmt: skip
        if request.announce and request.gateway == "razorpay" and "razorpay" not in announced:
            announced["razorpay"] = {
                "id": new_id("down", 14), "entity": "payment.downtime", "method": "card",
                "begin": now(), "end": None, "status": "started", "scheduled": False,
                "severity": "high", "instrument": {"network": "ALL"}, "created_at": now(),
            }  # fmt: skip
            announce("razorpay", "started")
        return request.model_dump()

    @router.delete("/sandbox/outages/{gateway}")
    async def end_outage(gateway: Gateway) -> JSON:
        behaviour.faults.outages.pop(gateway, None)
        announce(gateway, "resolved")
        return {"gateway": gateway, "down": False}

    @router.post("/sandbox/reset-behaviour")
    async def reset_behaviour() -> JSON:
        """Faults disarmed, outages over (and announced so), settings back to the gateways'
        defaults, held webhooks sent."""
        behaviour.reset()
        for gateway in list(announced):
            announce(gateway, "resolved")
        if webhooks.holding:
            webhooks.release(reverse=False, duplicate=False)
        return {"reset": True}

    @router.get("/sandbox/razorpay/account")
    async def razorpay_account() -> RazorpayAccount:
        return behaviour.razorpay_account

    @router.post("/sandbox/razorpay/account")
    async def set_razorpay_account(request: RazorpayAccount) -> RazorpayAccount:
        """Replace the account's settings; fields left out take their default."""
        behaviour.razorpay_account = request
        return behaviour.razorpay_account

    @router.get("/sandbox/movements")
    async def movements(gateway: str | None = None, payment: str | None = None) -> list[JSON]:
        return store.movements(gateway, payment)

    @router.get("/sandbox/webhooks/deliveries")
    async def deliveries() -> list[JSON]:
        return webhooks.deliveries

    @router.post("/sandbox/webhooks/hold")
    async def hold_webhooks() -> JSON:
        webhooks.hold()
        return {"holding": True}

    @router.post("/sandbox/webhooks/release")
    async def release_webhooks(request: ReleaseRequest) -> JSON:
        return {"sending": webhooks.release(request.reverse, request.duplicate, request.drop)}

    @router.post("/sandbox/webhooks/{event_id}/redeliver")
    async def redeliver_webhook(event_id: str) -> JSON:
        if not webhooks.redeliver(event_id):
            raise HTTPException(404, f"no webhook {event_id} was sent")
        return {"redelivering": event_id}

    @router.get("/sandbox/refunds/mode")
    async def refund_mode() -> JSON:
        return {"mode": behaviour.refund_mode}

    @router.post("/sandbox/refunds/mode")
    async def set_refund_mode(request: RefundModeRequest) -> JSON:
        behaviour.refund_mode = request.mode
        return {"mode": behaviour.refund_mode}

    @router.post("/sandbox/refunds/{refund_id}/settle")
    async def settle(refund_id: str, request: SettleRequest) -> JSON:
        succeeded = request.outcome == "succeeded"
        for gateway in (stripe, razorpay):
            if gateway.owns_refund(refund_id):
                try:
                    return gateway.settle_refund(refund_id, succeeded)
                except ValueError as exc:
                    raise HTTPException(409, str(exc)) from exc
        raise HTTPException(404, f"no such refund: {refund_id}")

    @router.post("/sandbox/disputes")
    async def open_dispute(request: DisputeRequest) -> JSON:
        api = stripe if request.gateway == "stripe" else razorpay
        try:
            return api.open_dispute(
                request.payment, request.reason, request.amount, request.respond_within_seconds
            )
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        except (StripeError, RazorpayError) as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.post("/sandbox/disputes/{dispute_id}/resolve")
    async def resolve_dispute(dispute_id: str, request: ResolveRequest) -> JSON:
        for gateway in (stripe, razorpay):
            if gateway.owns_dispute(dispute_id):
                try:
                    return gateway.resolve_dispute(dispute_id, request.outcome == "won")
                except ValueError as exc:
                    raise HTTPException(409, str(exc)) from exc
        raise HTTPException(404, f"no such dispute: {dispute_id}")

    @router.get("/checkout/stripe/{intent_id}", response_class=HTMLResponse)
    async def stripe_checkout(intent_id: str) -> HTMLResponse:
        intent = store.table("stripe_payment_intents").get(intent_id)
        if intent is None:
            raise HTTPException(404, f"no such PaymentIntent: {intent_id}")
        secret = intent["client_secret"]
        return _checkout_page(
            "Stripe checkout",
            {
                "gateway": "stripe",
                "id": intent_id,
                "amount": intent["amount"],
                "currency": intent["currency"].upper(),
                "status": intent["status"],
                "payUrl": f"/sandbox/stripe/payment_intents/{intent_id}/pay",
                "buttons": [
                    {
                        "label": "Pay (success)",
                        "body": {"client_secret": secret, "payment_method": "pm_card_visa"},
                    },
                    {
                        "label": "Pay (decline)",
                        "body": {
                            "client_secret": secret,
                            "payment_method": "pm_card_chargeDeclined",
                        },
                    },
                    {
                        "label": "Pay (insufficient funds)",
                        "body": {
                            "client_secret": secret,
                            "payment_method": "pm_card_chargeDeclinedInsufficientFunds",
                        },
                    },
                    {
                        "label": "Pay (3-D Secure)",
                        "body": {
                            "client_secret": secret,
                            "payment_method": "pm_card_authenticationRequired",
                        },
                    },
                ],
            },
        )

    @router.get("/checkout/stripe/{intent_id}/authenticate", response_class=HTMLResponse)
    async def stripe_challenge(intent_id: str) -> HTMLResponse:
        """The issuer's 3-D Secure challenge, as Stripe's test page offers it: complete or fail."""
        intent = store.table("stripe_payment_intents").get(intent_id)
        if intent is None:
            raise HTTPException(404, f"no such PaymentIntent: {intent_id}")
        return _checkout_page(
            "3-D Secure challenge",
            {
                "gateway": "stripe",
                "id": intent_id,
                "amount": intent["amount"],
                "currency": intent["currency"].upper(),
                "status": intent["status"],
                "payUrl": f"/sandbox/stripe/payment_intents/{intent_id}/authenticate",
                "buttons": [
                    {"label": "Complete authentication", "body": {"outcome": "complete"}},
                    {"label": "Fail authentication", "body": {"outcome": "fail"}},
                ],
            },
        )

    @router.get("/checkout/razorpay/{order_id}", response_class=HTMLResponse)
    async def razorpay_checkout(order_id: str) -> HTMLResponse:
        order = store.table("razorpay_orders").get(order_id)
        if order is None:
            raise HTTPException(404, f"no such order: {order_id}")
        return _checkout_page(
            "Razorpay checkout",
            {
                "gateway": "razorpay",
                "id": order_id,
                "amount": order["amount"],
                "currency": order["currency"],
                "status": order["status"],
                "payUrl": f"/sandbox/razorpay/orders/{order_id}/pay",
                "buttons": [
                    {"label": "Pay (success)", "body": {"outcome": "success", "method": "card"}},
                    {"label": "Pay (decline)", "body": {"outcome": "failure", "method": "card"}},
                    {
                        "label": "Pay (3-D Secure)",
                        "body": {"outcome": "authenticate", "method": "card"},
                    },
                ],
            },
        )

    @router.get(
        "/checkout/razorpay/payments/{payment_id}/authenticate", response_class=HTMLResponse
    )
    async def razorpay_challenge(payment_id: str) -> HTMLResponse:
        """The bank's authentication page Razorpay Checkout shows: complete or fail."""
        payment = store.table("razorpay_payments").get(payment_id)
        if payment is None:
            raise HTTPException(404, f"no such payment: {payment_id}")
        return _checkout_page(
            "3-D Secure challenge",
            {
                "gateway": "razorpay",
                "id": payment_id,
                "amount": payment["amount"],
                "currency": payment["currency"],
                "status": payment["status"],
                "payUrl": f"/sandbox/razorpay/payments/{payment_id}/authenticate",
                "buttons": [
                    {"label": "Complete authentication", "body": {"outcome": "complete"}},
                    {"label": "Fail authentication", "body": {"outcome": "fail"}},
                ],
            },
        )

    return router
