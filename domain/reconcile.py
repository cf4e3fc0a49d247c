"""Reconciliation contract: what the reconciler checks against the gateways, and what it found."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from domain.checkout import Gateway, GatewayPaymentRef, Model


class ObjectKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    TRANSFER = "transfer"
    """A seller's transfer (marketplace payouts): its owning payout is never signalled, a
    disagreement is always an operator's flag."""


class Finding(StrEnum):
    AGREES = "agrees"
    """The gateway says what the ledger says."""
    SIGNALED = "signaled"
    """They differ and the owning workflow runs: it was asked to look again."""
    FLAGGED = "flagged"
    """They differ and the owning workflow has closed: an operator must decide."""
    UNREACHABLE = "unreachable"
    """The gateway did not answer; the next run tries again."""
    GIVEN_BACK = "given_back"
    """The gateway took money for a checkout that had ended without it: a refund gives it
    back (and records the capture first)."""


class ReconcileRequest(Model):
    """Which objects to check: the stale ones (the schedule) or one payment and its refunds."""

    payment_id: str | None = None
    trigger: str = "schedule"
    max_concurrency: int = 8


class Candidate(Model):
    kind: ObjectKind
    object_id: str
    """Our payment id or refund id."""
    payment_id: str
    workflow_id: str
    gateway: Gateway
    ledger_status: str
    amount: int
    currency: str
    amount_captured: int = 0
    amount_refunded: int = 0
    amount_refund_pending: int = 0
    """Reserved for refunds the gateway may or may not have made yet."""
    payment_ref: GatewayPaymentRef | None = None
    gateway_refund_id: str | None = None
    gateway_transfer_id: str | None = None
    destination: str | None = None
    """A transfer's seller account at the gateway (Stripe connected / Razorpay linked)."""
    amount_reversed: int = 0
    """What the ledger says the gateway reversed of a transfer (`amount`: what it transferred)."""
    on_hold: bool | None = None
    """Whether a transfer is still held (compared where the gateway holds transfers)."""
    closed: bool = False
    """Whether the ledger's status is final (the owning workflow should have closed)."""


class CheckResult(Model):
    candidate: Candidate
    gateway_status: str | None
    disagreement: str | None = None
    """Why the ledger and the gateway disagree, or None when they agree."""
    late_payment: GatewayPaymentRef | None = None
    """Money the gateway took for a checkout that had ended without it: to be given back."""


class Flag(Model):
    run_id: str
    candidate: Candidate
    gateway_status: str | None
    detail: str


class ReconcileReport(Model):
    run_id: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    checked: int = 0
    changed: int = 0
    flagged: int = 0
    unreachable: int = 0
    findings: dict[str, str] = Field(default_factory=dict)
    """object id -> finding, for the objects that did not simply agree."""
