"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from api.card_data import CardDataFree
from api.problems import Problem
from domain.checkout import (
    CaptureMode,
    CheckoutState,
    CheckoutStep,
    Gateway,
    PaymentAttempt,
    PaymentStatus,
)
from domain.money import RAZORPAY_CURRENCIES, STRIPE_CURRENCIES, Currency
from domain.splits import ShareKind
from settings import Settings

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=250)]
MAX_METADATA_BYTES = 2048


def _limit_metadata(metadata: dict[str, str]) -> dict[str, str]:
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is limited to {MAX_METADATA_BYTES} bytes")
    return metadata


def check_amount_limit(settings: Settings, amount: int | None) -> None:
    """MAX_AMOUNT_MINOR, refused like any invalid body (422 `validation_error`) before anything is
    written; checked in the handler because the limit is a setting of this process."""
    if amount is not None and amount > settings.max_amount_minor:
        raise Problem(
            422, "validation_error", "the request is not valid",
            errors=[{"loc": ["body", "amount"], "type": "value_error",
                     "msg": f"amount must be at most {settings.max_amount_minor} minor units"}],
        )  # fmt: skip


Amount = Annotated[StrictInt, Field(gt=0, description="minor units (cents, paise)")]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue], Field(max_length=20), AfterValidator(_limit_metadata)
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
IPAddress = Annotated[str, AfterValidator(lambda v: str(ipaddress.ip_address(v)))]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,}$")]


class Body(CardDataFree):
    """A request body: no unknown fields, no card data anywhere in it."""

    model_config = ConfigDict(extra="forbid")


class SellerShareBody(Body):
    seller_id: Identifier
    amount: Amount
    kind: ShareKind = ShareKind.SALE


class SplitsBody(Body):
    """Checked against the amount and the sellers by `api.sellers.check_checkout_splits`."""

    shares: list[SellerShareBody] = Field(min_length=1, max_length=10)
    platform_fee: Annotated[StrictInt, Field(ge=0, description="minor units the platform keeps")]


class CreateCheckout(Body):
    order_id: Identifier
    amount: Amount
    currency: Currency
    gateway: Gateway | Literal["auto"] | None = Field(
        default=None,
        description="`stripe`, `razorpay`, or `auto` (ROUTING_RULES and each gateway's health"
        " pick, and the checkout may fail over); default: DEFAULT_GATEWAY",
    )
    customer_id: Identifier
    customer_email: Email | None = None
    capture_mode: CaptureMode = CaptureMode.AUTOMATIC
    metadata: Metadata = Field(default_factory=dict)
    client_ip: IPAddress | None = Field(
        default=None, description="the shopper's IP address as the shop saw it (risk screening)"
    )
    customer_country: Country | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country of the customer (risk screening)"
    )
    splits: SplitsBody | None = Field(
        default=None, description="a marketplace sale: each seller's share and the platform fee"
    )
    release_at: datetime | None = Field(
        default=None, description="with splits: sellers are paid no earlier (escrow)"
    )

    @model_validator(mode="after")
    def _gateway_supports_currency(self) -> Self:
        if not isinstance(self.gateway, Gateway):
            return self  # chosen by routing, which knows what each gateway settles
        supported = STRIPE_CURRENCIES if self.gateway is Gateway.STRIPE else RAZORPAY_CURRENCIES
        if self.currency not in supported:
            raise ValueError(f"{self.gateway} does not settle {self.currency}")
        return self


class ReviewBody(Body):
    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class CancelBody(Body):
    reason: Annotated[str, StringConstraints(max_length=200)] = "requested_by_customer"


class SwitchGatewayBody(Body):
    gateway: Gateway | None = None
    """The gateway to retry on; none: the next one routing allowed for the checkout."""


class CaptureBody(Body):
    amount: Amount | None = None


class RazorpayConfirmation(Body):
    razorpay_payment_id: Identifier
    razorpay_order_id: Identifier
    razorpay_signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class PaymentDetails(BaseModel):
    """What the client needs to pay on the gateway's own page."""

    stripe_client_secret: str | None = None
    razorpay_order_id: str | None = None
    razorpay_key_id: str | None = None
    next_action: dict[str, Any] | None = Field(
        None, description="Stripe's next_action while the customer must authenticate (3-D Secure)"
    )
    sandbox_checkout_url: str | None = None


class Checkout(BaseModel):
    checkout_id: str
    order_id: str
    customer_id: str
    gateway: Gateway
    capture_mode: CaptureMode
    status: PaymentStatus
    amount: int
    currency: str
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    gateway_payment_id: str | None
    gateway_charge_id: str | None
    payment: PaymentDetails
    authorization_deadline: datetime | None
    attempts: list[PaymentAttempt]
    history: list[CheckoutStep]
    last_error: str | None
    attempt: int = Field(
        1, description="1 for the order's first checkout; n after n - 1 ended without money"
    )
    risk_reason: str | None = Field(
        None, description="why risk screening blocked or rejected it, safe to show the customer"
    )
    review_deadline: datetime | None = Field(
        None, description="while held for a risk review: when its default decision applies"
    )
    routing_reason: str | None = Field(
        None, description="why the checkout is on its gateway: auto routing's choice, a failover"
    )
    abandoned_gateways: list[Gateway] = Field(
        default_factory=list,
        description="gateways it left, unreachable or declined there, their payment released",
    )
    source: str = Field(description="`workflow` while the saga runs, `ledger` once it has closed")

    @classmethod
    def from_state(cls, state: CheckoutState, source: str, sandbox_base: str | None) -> Checkout:
        payment = PaymentDetails(**state.instructions.model_dump())
        if sandbox_base and state.gateway_payment_id and state.status is PaymentStatus.CREATED:
            payment.sandbox_checkout_url = (
                f"{sandbox_base}/checkout/{state.gateway}/{state.gateway_payment_id}"
            )
        return cls(
            **state.model_dump(exclude={"workflow_id", "instructions", "idempotency_key"}),
            payment=payment,
            source=source,
        )
