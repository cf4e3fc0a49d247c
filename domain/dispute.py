"""Dispute contract: the workflow's input, the state a query returns, the gateway events and the
operator's updates it accepts, and the gateway-neutral dispute model the adapters translate to."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from domain.checkout import Gateway, Model, PaymentStatus

DEFAULT_DEADLINE_MARGIN_SECONDS = 2 * 24 * 60 * 60
DEFAULT_POLL_INTERVAL_SECONDS = 6 * 60 * 60


class DisputeStage(StrEnum):
    """How far the card network's process has gone. An inquiry (Stripe `warning_*`, Razorpay
    `retrieval`/`fraud`) asks questions and moves no money yet."""

    INQUIRY = "inquiry"
    CHARGEBACK = "chargeback"
    PRE_ARBITRATION = "pre_arbitration"
    ARBITRATION = "arbitration"


STAGE_ORDER = list(DisputeStage)


class DisputeStatus(StrEnum):
    OPEN = "open"
    """Waiting for our response (evidence or acceptance)."""
    CHALLENGED = "challenged"
    """Evidence submitted; the issuer reviews it."""
    WON = "won"
    LOST = "lost"
    CLOSED = "closed"
    """An inquiry that ended without a chargeback (Stripe `warning_closed`, Razorpay `closed`)."""
    PREVENTED = "prevented"
    UNVERIFIED = "unverified"
    """The gateway would not show the dispute an event named (it does not know it): nothing was
    recorded, and a reconciliation flag asks an operator to look."""


FINAL_DISPUTE_STATUSES = frozenset(
    {
        DisputeStatus.WON,
        DisputeStatus.LOST,
        DisputeStatus.CLOSED,
        DisputeStatus.PREVENTED,
        DisputeStatus.UNVERIFIED,
    }
)


def status_rank(status: DisputeStatus) -> int:
    """Transitions only move forward: open → challenged → a final status."""
    if status in FINAL_DISPUTE_STATUSES:
        return 2
    return 1 if status is DisputeStatus.CHALLENGED else 0


class DeadlinePolicy(StrEnum):
    """What the saga does when no operator decided in time: the draft evidence is submitted
    when there is one; otherwise it leaves the dispute to an operator until `due_by` (then to
    the issuer), or concedes it. It acts at `due_by - margin`, or halfway between its arrival
    and `due_by` for a dispute that arrives with less than the margin left, never at once.

    It concedes only a dispute operators have known for at least the margin, that is not
    flagged, and whose payment has nothing refunded or pending (conceding could pay the
    customer twice); any other is left, with the reason in its history."""

    SUBMIT_DRAFT_ELSE_ACCEPT = "submit_draft_else_accept"
    SUBMIT_DRAFT_ELSE_LEAVE = "submit_draft_else_leave"


def dispute_id_for(workflow_id: str) -> str:
    """Our dispute id, derived from the workflow id so every run names the same dispute."""
    return "dsp_" + hashlib.sha256(workflow_id.encode()).hexdigest()[:24]


# Evidence. Documents are referenced (a gateway file/document id or an https URL), never uploaded.

DocumentRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}|https://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]{1,400})$"
    ),
]
Documents = Annotated[list[DocumentRef], Field(max_length=10)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class DisputeEvidence(Model):
    """What the operator puts forward. Stripe takes one file per kind (the first; the others are
    named in the uncategorised text); Razorpay takes lists of document ids and a summary."""

    product_description: LongText | None = None
    customer_communication: Documents = Field(default_factory=list)
    receipt: Documents = Field(default_factory=list)
    shipping_carrier: ShortText | None = None
    shipping_tracking_number: ShortText | None = None
    shipping_documentation: Documents = Field(default_factory=list)
    refund_policy: Documents = Field(default_factory=list)
    refund_policy_disclosure: LongText | None = None
    uncategorized_text: LongText | None = None
    uncategorized_documents: Documents = Field(default_factory=list)

    def documents(self) -> list[str]:
        return [
            *self.customer_communication, *self.receipt, *self.shipping_documentation,
            *self.refund_policy, *self.uncategorized_documents,
        ]  # fmt: skip

    def is_empty(self) -> bool:
        return self == DisputeEvidence()


class SubmitEvidence(Model):
    """The `submit_evidence` update: save the evidence as a draft, or submit it for good."""

    evidence: DisputeEvidence
    submit: bool = False
    note: str | None = None
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""


class AcceptDispute(Model):
    """The `accept` update: concede the dispute."""

    note: str | None = None
    requested_by: str | None = None
    """The API caller (token subject) who asked for this; None for what no caller asked."""


class DisputeRequest(Model):
    """The dispute workflow's input; the first webhook starts it (signal-with-start)."""

    gateway: Gateway
    gateway_dispute_id: str
    deadline_margin_seconds: int = DEFAULT_DEADLINE_MARGIN_SECONDS
    deadline_policy: DeadlinePolicy = DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE
    poll_interval_seconds: int = DEFAULT_POLL_INTERVAL_SECONDS
    carried: DisputeState | None = None
    """Set on continue-as-new: the state so far."""


class DisputeStep(Model):
    at: datetime
    step: str
    status: DisputeStatus
    detail: str = ""


class DisputeState(Model):
    """The full live state of one dispute, as the `state` query returns it."""

    dispute_id: str
    workflow_id: str
    gateway: Gateway
    gateway_dispute_id: str
    status: DisputeStatus = DisputeStatus.OPEN
    stage: DisputeStage = DisputeStage.CHARGEBACK
    payment_id: str | None = None
    gateway_payment_id: str | None = None
    amount: int = 0
    currency: str | None = None
    reason: str | None = None
    due_by: datetime | None = None
    evidence: DisputeEvidence | None = None
    """The latest evidence saved (draft) or submitted."""
    submitted: bool = False
    accepted: bool = False
    deadline_action: str | None = None
    """What the deadline timer did, if it fired: `submitted_draft`, `accepted`, `left`."""
    deadline_reason: str | None = None
    """Why the deadline policy left the dispute (to an operator, then the issuer)."""
    amount_withdrawn: int = 0
    """Net funds the ledger shows withdrawn for this dispute (withdrawals - reinstatements)."""
    flagged: str | None = None
    """Why an operator should look (the payment was refunded, or is not ours)."""
    payment_status: PaymentStatus | None = None
    last_error: str | None = None
    history: list[DisputeStep] = Field(default_factory=list)
    seen_events: list[str] = Field(default_factory=list)
    polls: int = 0


class DisputeEvent(Model):
    """A gateway fact about a dispute, from a verified webhook. A hint: the workflow fetches the
    dispute from the gateway before it records anything."""

    event_id: str
    event_type: str
    gateway_dispute_id: str

    @property
    def asks_for_resubmission(self) -> bool:
        return self.event_type == "payment.dispute.action_required"


# Gateway-neutral activity contracts


class GatewayDisputeRef(Model):
    gateway: Gateway
    gateway_dispute_id: str


class GatewayDispute(Model):
    gateway: Gateway
    gateway_dispute_id: str
    gateway_payment_id: str | None
    """Stripe PaymentIntent id, or Razorpay payment id (our `gateway_charge_id`)."""
    gateway_charge_id: str | None = None
    """Stripe charge id; unused for Razorpay."""
    status: DisputeStatus
    gateway_status: str
    stage: DisputeStage
    amount: int
    currency: str
    reason: str | None = None
    due_by: datetime | None = None
    amount_withdrawn: int = 0
    """What the gateway has taken from our balance for it (Stripe balance transactions,
    Razorpay `amount_deducted`)."""
    amount_reinstated: int = 0


class GatewayEvidence(Model):
    ref: GatewayDisputeRef
    evidence: DisputeEvidence
    submit: bool
    idempotency_key: str


class GatewayDisputeAcceptance(Model):
    ref: GatewayDisputeRef
    idempotency_key: str


class MerchantDisputeNotice(Model):
    """`dispute.opened` / `dispute.closed`, posted signed to the merchant's callback URL."""

    type: str
    dispute_id: str
    workflow_id: str
    payment_id: str | None
    gateway: Gateway
    status: DisputeStatus
    stage: DisputeStage
    amount: int
    currency: str
    reason: str | None
    due_by: datetime | None


# Ledger activity contracts


class DisputeOpening(Model):
    """Record the dispute (once) and mark its payment disputed."""

    dispute_id: str
    workflow_id: str
    dispute: GatewayDispute


class DisputeOpened(Model):
    payment_id: str | None
    payment_status: PaymentStatus | None
    flagged: str | None
    status: DisputeStatus
    """The status the ledger holds: final when a closed dispute's late webhook started a new run."""
    submitted: bool
    amount_withdrawn: int


class DisputeRecord(Model):
    """One step of a dispute, written to the ledger in one transaction, once."""

    record_key: str
    dispute_id: str
    step: str
    status: DisputeStatus
    stage: DisputeStage
    detail: str = ""
    due_by: datetime | None = None
    evidence: DisputeEvidence | None = None
    submitted: bool = False
    deadline_action: str | None = None
    withdrawn_target: int | None = None
    """The net amount the ledger should show withdrawn after this step; the difference to what
    it shows is posted (a withdrawal or a reinstatement). None: no money moves."""


class DisputeRecorded(Model):
    payment_status: PaymentStatus | None
    amount_withdrawn: int


class DisputedPayment(Model):
    """The disputed payment's refunds, as the ledger holds them when the deadline policy acts."""

    payment_id: str
    currency: str
    amount_refunded: int
    amount_refund_pending: int


class UnverifiedDispute(Model):
    """A dispute event the gateway would not confirm, left to an operator (once per answer)."""

    dispute_id: str
    workflow_id: str
    gateway: Gateway
    gateway_dispute_id: str
    gateway_answer: str
    """The gateway's error type, e.g. `invalid_request:resource_missing`."""
    detail: str


DisputeRequest.model_rebuild()
