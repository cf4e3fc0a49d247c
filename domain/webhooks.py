"""Gateway webhooks as the rest of the service sees them: an event whose signature verified (or
the reason it was refused), and the typed fact a gateway's pure parser reads from its payload.

Every parser returns one of `GatewayEvent`, whatever the payload holds: a payment, refund,
dispute or downtime fact, or `NoAction` with the reason nothing needs doing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from domain.checkout import Gateway, PaymentEvent, PaymentEventKind, PaymentSnapshot
from domain.dispute import DisputeEvent
from domain.refund import RefundEvent


@dataclass(frozen=True)
class WebhookConfig:
    """What verifying a gateway's webhooks needs from the configuration."""

    secrets: tuple[str, ...]
    """Several secrets may be valid at once while one is rotated."""
    max_age_seconds: int
    """For gateways that sign no timestamp: an unseen event created longer ago is a replay."""


@dataclass(frozen=True)
class VerifiedEvent:
    """A webhook whose signature verified, with the envelope fields every gateway has."""

    gateway: Gateway
    event_id: str
    event_type: str
    payload: dict[str, Any]
    body: str
    """The signed body as received (JSON text)."""
    body_sha256: str | None = None
    """Set where the gateway does not sign the event id: the same signed body is one event."""
    stale: bool = False
    """Created before the replay window: acceptable only as a duplicate of an event we hold."""


@dataclass(frozen=True)
class Refused:
    """Why a webhook is answered 400: it does not verify, or it is not an event at all."""

    code: Literal["invalid_signature", "malformed_event"]
    detail: str


class Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway: Gateway
    """Each fact's `subject` names the gateway object it is about: events of one subject are
    delivered in the order they were received."""


class PaymentFact(Fact):
    event_id: str
    kind: PaymentEventKind
    gateway_payment_id: str
    """The object a checkout created and the ledger holds: a Stripe PaymentIntent, a Razorpay
    order."""
    gateway_charge_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    snapshot: PaymentSnapshot | None = None
    """The payment as the signed event shows it (an authorization or a capture)."""

    @property
    def subject(self) -> str:
        return f"payment:{self.gateway_payment_id}"

    @property
    def fact_key(self) -> str | None:
        """One authorization of one gateway payment is delivered once, however many messages
        tell it (Razorpay's webhook and the client's signed confirmation)."""
        if self.kind is PaymentEventKind.AUTHORIZED and self.gateway_charge_id:
            return f"authorized:{self.gateway_charge_id}"
        return None

    def signal(self) -> PaymentEvent:
        return PaymentEvent(
            event_id=self.event_id,
            kind=self.kind,
            gateway_payment_id=self.gateway_payment_id,
            gateway_charge_id=self.gateway_charge_id,
            error_code=self.error_code,
            error_message=self.error_message,
            snapshot=self.snapshot,
        )


class RefundFact(Fact):
    event_id: str
    event_type: str
    gateway_refund_id: str
    gateway_status: str
    gateway_payment_id: str | None = None
    """Stripe: the refund's PaymentIntent (the ledger's `gateway_payment_id`)."""
    gateway_charge_id: str | None = None
    """Razorpay: the refund's payment (the ledger's `gateway_charge_id`)."""
    our_refund_id: str | None = None
    """The refund id we sent with the refund (Stripe metadata, Razorpay receipt), if any: only a
    hint until the ledger confirms it is a refund of that payment."""
    reason: str | None = None

    @property
    def subject(self) -> str:
        return f"refund:{self.gateway_refund_id}"

    def signal(self) -> RefundEvent:
        return RefundEvent(
            event_id=self.event_id,
            event_type=self.event_type,
            gateway_refund_id=self.gateway_refund_id,
            gateway_status=self.gateway_status,
        )


class DisputeFact(Fact):
    event_id: str
    event_type: str
    gateway_dispute_id: str

    @property
    def subject(self) -> str:
        return f"dispute:{self.gateway_dispute_id}"

    def signal(self) -> DisputeEvent:
        return DisputeEvent(
            event_id=self.event_id,
            event_type=self.event_type,
            gateway_dispute_id=self.gateway_dispute_id,
        )


class DowntimeFact(Fact):
    """A gateway's announcement that a payment method is degraded (or recovered)."""

    downtime_id: str
    method: str
    status: str
    severity: str
    began_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def subject(self) -> str:
        return f"downtime:{self.downtime_id}"


OnboardingState = Literal["pending", "active", "restricted"]
"""A seller's account at its gateway (the `sellers.onboarding_state` column)."""


class SellerAccountFact(Fact):
    """A seller's gateway account changed its onboarding (Stripe `account.updated`): a ledger
    write on the seller, no workflow."""

    event_id: str
    gateway_account_id: str
    onboarding_state: OnboardingState
    """`active`: the account can receive transfers; `restricted`: it could not any more (or
    its details were submitted but not accepted); `pending`: onboarding not finished."""

    @property
    def subject(self) -> str:
        return f"account:{self.gateway_account_id}"


class NoAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str


GatewayEvent = PaymentFact | RefundFact | DisputeFact | DowntimeFact | SellerAccountFact | NoAction
