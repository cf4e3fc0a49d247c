"""Checkout contract: the request, the state a query returns, the signals and updates it accepts,
and the gateway-neutral payment model the adapters translate to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.money import Currency, format_amount
from domain.splits import Splits


class Gateway(StrEnum):
    STRIPE = "stripe"
    RAZORPAY = "razorpay"


# Razorpay refunds an authorized payment nobody captured in time by itself: "payments that are
# not captured within this time period will be refunded automatically to customers", at most
# 5 days (`manual_expiry_period` up to 7200 minutes) counted from the payment's creation
# ("Configure Payment Capture Settings using Orders API",
# https://razorpay.com/docs/payments/payments/capture-settings/api). Our orders ask for it.
RAZORPAY_MANUAL_CAPTURE_MINUTES = 7200
_CAPTURE_MARGIN_SECONDS = 60 * 60
"""Time left for the capture itself (its retries included) before the gateway gives up on it."""


def manual_capture_window(
    gateway: Gateway, configured_seconds: int, authorization_window_seconds: int
) -> int:
    """How long a manual-capture checkout waits for its capture call (or an operator's review):
    the configured window, closed in time for Razorpay. Razorpay's period counts from the
    payment's creation, which may come as early as the checkout's start, while this window
    counts from the authorization the checkout takes as late as its authorization deadline."""
    if gateway is not Gateway.RAZORPAY:
        return configured_seconds
    limit = (
        RAZORPAY_MANUAL_CAPTURE_MINUTES * 60
        - authorization_window_seconds
        - _CAPTURE_MARGIN_SECONDS
    )
    return max(0, min(configured_seconds, limit))


class CaptureMode(StrEnum):
    """`automatic`: capture as soon as the merchant confirms; `manual`: wait for a capture call."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


class PaymentStatus(StrEnum):
    CREATED = "created"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"
    CANCELED = "canceled"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"
    """A gateway call's outcome could not be observed; the reconciler or a webhook settles it."""
    NEEDS_REVIEW = "needs_review"
    """The gateway's payment does not match ours (amount, currency): never captured, an operator
    decides."""
    DISPUTED = "disputed"
    DISPUTE_LOST = "dispute_lost"


CLOSED_STATUSES = frozenset(
    {
        PaymentStatus.CAPTURED,
        PaymentStatus.VOIDED,
        PaymentStatus.EXPIRED,
        PaymentStatus.CANCELED,
        PaymentStatus.FAILED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    }
)


ENDED_WITHOUT_MONEY = frozenset(
    {PaymentStatus.FAILED, PaymentStatus.EXPIRED, PaymentStatus.CANCELED, PaymentStatus.VOIDED}
)
"""A checkout that ended so took nothing: its order may be paid again, and money the gateway
takes for it afterwards (a late payment) is given back."""


class Model(BaseModel):
    """What crosses Temporal (inputs, states, events, activity arguments). Unknown fields are
    ignored, so that removing a field never breaks the histories of in-flight workflows; HTTP
    bodies (`api/models.py`) refuse them."""

    model_config = ConfigDict(extra="ignore")


class Routing(Model):
    """How auto routing chose the checkout's gateway (domain/routing.py), and where the saga may
    move the payment when that gateway cannot be reached to create it."""

    reason: str
    fallbacks: list[Gateway] = Field(default_factory=list)
    declined_retry: bool = False
    """The merchant lets a customer whose attempt was declined retry on a fallback gateway
    (`DECLINED_RETRY_ON_OTHER_GATEWAY`)."""


class CheckoutRequest(Model):
    """What the merchant asked for; the workflow's input."""

    order_id: str
    amount: int
    currency: Currency
    gateway: Gateway
    customer_id: str
    customer_email: str | None = None
    capture_mode: CaptureMode = CaptureMode.AUTOMATIC
    metadata: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str
    """The merchant's key for the request that started this checkout."""
    authorization_window_seconds: int
    manual_capture_window_seconds: int
    attempt: int = 1
    """1 for the order's first checkout; n for its n-th, after n - 1 ended without money."""
    client_ip: str | None = None
    """The shopper's IP address as the merchant saw it, for risk screening."""
    customer_country: str | None = None
    """ISO 3166-1 alpha-2 country of the customer (e.g. billing address), for risk screening."""
    routing: Routing | None = None
    """Set when the gateway was chosen by auto routing; None for a gateway the merchant named."""
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""
    splits: Splits | None = None
    """A marketplace sale: who is paid what of the amount, after capture (docs/marketplace.md)."""
    release_at: datetime | None = None
    """With splits: the sellers are paid no earlier than this (escrow until after the event)."""


class PaymentInstructions(Model):
    """What the client needs to pay on the gateway's own page."""

    stripe_client_secret: str | None = None
    razorpay_order_id: str | None = None
    razorpay_key_id: str | None = None
    next_action: dict[str, Any] | None = None
    """Stripe's `next_action` while the customer's bank asks for 3-D Secure (`requires_action`):
    what the client follows (Stripe.js `handleNextAction` with the client secret, or the
    redirect) to authenticate."""


class CheckoutStep(Model):
    at: datetime
    step: str
    status: PaymentStatus
    detail: str = ""


class PaymentAttempt(Model):
    at: datetime
    gateway_attempt_id: str | None
    outcome: str
    error_code: str | None = None
    error_message: str | None = None


class CheckoutState(Model):
    """The full live state of one checkout, as the `state` query returns it."""

    checkout_id: str
    workflow_id: str
    order_id: str
    customer_id: str
    gateway: Gateway
    capture_mode: CaptureMode
    amount: int
    currency: str
    status: PaymentStatus
    idempotency_key: str
    amount_authorized: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    gateway_payment_id: str | None = None
    gateway_charge_id: str | None = None
    instructions: PaymentInstructions = Field(default_factory=PaymentInstructions)
    authorization_deadline: datetime | None = None
    attempts: list[PaymentAttempt] = Field(default_factory=list)
    history: list[CheckoutStep] = Field(default_factory=list)
    last_error: str | None = None
    attempt: int = 1
    awaiting_gateway: bool = False
    """The gateway could not be reached to create the payment; the saga keeps trying until the
    authorization deadline (the API answers 503 meanwhile)."""
    risk_reason: str | None = None
    """Why risk screening blocked or rejected the checkout, in words safe to show the customer."""
    review_deadline: datetime | None = None
    """While a risk review waits for an operator: when its configured default applies."""
    routing_reason: str | None = None
    """Why the checkout is on its gateway: auto routing's choice, or a failover."""
    abandoned_gateways: list[Gateway] = Field(default_factory=list)
    """Gateways the checkout left, in order: they could not be reached (their payment released),
    or the customer, declined there, retried on another gateway."""


class PaymentEventKind(StrEnum):
    AUTHORIZED = "authorized"
    FAILED = "failed"
    CAPTURED = "captured"
    CANCELED = "canceled"
    REQUIRES_ACTION = "requires_action"
    """The customer's bank asks for authentication (3-D Secure) before it authorizes."""
    RECONCILE = "reconcile"
    """Not a gateway fact: an operator or the reconciler asks the saga to look at the gateway."""


class PaymentSnapshot(Model):
    """The payment as a gateway-signed webhook showed it when the event was sent."""

    status: PaymentStatus
    amount: int
    currency: str
    amount_capturable: int = 0
    amount_captured: int = 0
    next_action: dict[str, Any] | None = None
    """What the client must do to authenticate, when the status is `requires_action`."""


class PaymentEvent(Model):
    """A gateway fact about a checkout's payment, from a verified webhook or client confirmation.

    Events are hints. An authorization the gateway signed (its snapshot) is taken as it is: it
    may be stale only by a later change, which the capture itself finds (a gateway captures only
    what it still holds). Without a snapshot (a client's confirmation, the reconciler's nudge) the
    workflow looks the payment up first."""

    event_id: str
    kind: PaymentEventKind
    gateway_payment_id: str
    gateway_charge_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    snapshot: PaymentSnapshot | None = None


class CancelCheckout(Model):
    reason: str = "requested_by_customer"
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""


class SwitchGateway(Model):
    """A customer whose attempt was declined retries on another gateway (None: the next one
    routing allows). The payment at the gateway left is released first."""

    gateway: Gateway | None = None
    requested_by: str | None = None


class CaptureCheckout(Model):
    amount: int | None = None
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""


# Gateway-neutral activity contracts


class CreateGatewayPayment(Model):
    gateway: Gateway
    checkout_id: str
    order_id: str
    workflow_id: str
    amount: int
    currency: str
    customer_email: str | None
    metadata: dict[str, str]
    idempotency_key: str


class GatewayPaymentRef(Model):
    gateway: Gateway
    gateway_payment_id: str
    """Stripe PaymentIntent id or Razorpay order id."""
    gateway_charge_id: str | None = None
    """Razorpay payment id (the authorized attempt); unused for Stripe."""


class CardSignals(Model):
    """What the gateway knows of the card that paid, and its own risk verdict, when it says."""

    fingerprint: str | None = None
    country: str | None = None
    risk_level: str | None = None
    risk_score: int | None = None


class GatewayPayment(Model):
    ref: GatewayPaymentRef
    status: PaymentStatus
    amount: int
    currency: str
    amount_capturable: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    """Refunded at the gateway so far, pending refunds included, whoever asked for them (the
    reconciler compares it with the ledger's)."""
    instructions: PaymentInstructions = Field(default_factory=PaymentInstructions)
    error_code: str | None = None
    error_message: str | None = None
    card: CardSignals | None = None
    """Known when the gateway's answer carries the charge (a look-up), for risk screening."""


class CaptureGatewayPayment(Model):
    ref: GatewayPaymentRef
    amount: int
    currency: str
    idempotency_key: str


class ReleaseGatewayPayment(Model):
    """Void an authorization, or cancel a payment nobody paid yet."""

    ref: GatewayPaymentRef
    reason: str
    idempotency_key: str


class AbandonGatewayPayment(Model):
    """Leave a gateway a checkout could not create its payment at: whatever an attempt may have
    created there (found by the checkout's id) is released before another gateway is asked."""

    gateway: Gateway
    checkout_id: str
    reason: str
    idempotency_key: str


# Ledger activity contracts


class LedgerLine(Model):
    account: str
    amount: int


class LeftGatewayPayment(Model):
    """A gateway payment a checkout left for another gateway. The ledger gives it a row of its own
    (`key`, its payment id `checkout_id_for(key)`), ended without money, so what the gateway
    takes on it afterwards is a late payment of that row, given back (api.event_routing)."""

    key: str
    gateway: Gateway
    gateway_payment_id: str
    moved_to: Gateway


class CheckoutRecord(Model):
    """One state change of a checkout, written to the ledger in one transaction."""

    record_key: str
    """Unique per change, so a retried activity writes it once."""
    checkout_id: str
    status: PaymentStatus
    step: str
    detail: str = ""
    gateway_payment_id: str | None = None
    gateway_charge_id: str | None = None
    amount_captured: int | None = None
    amount_refunded: int | None = None
    last_error: str | None = None
    attempt: PaymentAttempt | None = None
    postings: list[LedgerLine] = Field(default_factory=list)
    left: LeftGatewayPayment | None = None
    """The checkout leaves this gateway payment for another gateway, in the same write."""


class NewCheckout(Model):
    checkout_id: str
    workflow_id: str
    request: CheckoutRequest


class MerchantDecision(Model):
    accepted: bool
    reason: str = ""


class OpenCheckoutPayment(Model):
    """Create the gateway payment of a checkout, with its ledger row: the row is written (once)
    before the gateway is asked, the gateway's ids as soon as it answers, before any client can
    pay."""

    payment: CreateGatewayPayment
    checkout: NewCheckout
    switch: int = 0
    """The n-th gateway a declined customer moved the checkout to; 0 before any such move."""


class CaptureCheckoutPayment(Model):
    """Capture a checkout's payment and write the capture to the ledger, with the steps the saga
    had not written yet, in one activity."""

    capture: CaptureGatewayPayment
    checkout_id: str
    records: list[CheckoutRecord] = Field(default_factory=list)


def capture_record(
    checkout_id: str, gateway: Gateway, charge_id: str | None, amount: int, currency: str
) -> CheckoutRecord:
    """The capture as the ledger records it, once per checkout (its key is the checkout's): the
    amount posted from the gateway's account to the merchant's sales."""
    return CheckoutRecord(
        record_key=f"{checkout_id}:captured",
        checkout_id=checkout_id,
        status=PaymentStatus.CAPTURED,
        step="captured",
        detail=format_amount(amount, currency),
        gateway_charge_id=charge_id,
        amount_captured=amount,
        postings=[
            LedgerLine(account=f"gateway:{gateway}", amount=amount),
            LedgerLine(account="merchant:sales", amount=-amount),
        ],
    )
