"""The names every process shares to address a saga: workflow types, signals, updates, queries
and workflow ids. Workflows register under these names; the API, the reconciler and the webhook
relay address them by them, so a rename is one edit here (and a replay-safety question)."""

from __future__ import annotations

import hashlib
from typing import Final

# Workflow types
CHECKOUT_WORKFLOW: Final = "CheckoutWorkflow"
REFUND_WORKFLOW: Final = "RefundWorkflow"
DISPUTE_WORKFLOW: Final = "DisputeWorkflow"
RECONCILE_WORKFLOW: Final = "ReconcileWorkflow"
PAYOUT_WORKFLOW: Final = "PayoutWorkflow"

# Signals: gateway facts (and the reconciler's "look again") for the saga that owns the object
PAYMENT_EVENT: Final = "payment_event"
REFUND_EVENT: Final = "refund_event"
DISPUTE_EVENT: Final = "dispute_event"
PAYOUT_NUDGE: Final = "payout_nudge"
"""A refund or a lost dispute moved money: the payout reverses its share of it."""

# Updates
CHECKOUT_READY: Final = "checkout_ready"
CANCEL_CHECKOUT: Final = "cancel"
CAPTURE_CHECKOUT: Final = "capture"
REFUND_RESERVATION: Final = "reservation"
SUBMIT_DISPUTE_EVIDENCE: Final = "submit_evidence"
ACCEPT_DISPUTE: Final = "accept"
REVIEW_CHECKOUT: Final = "review"
"""An operator's decision on a checkout held for risk review."""
SWITCH_GATEWAY: Final = "switch_gateway"
"""A customer whose attempt was declined retries on another gateway routing allows."""
RELEASE_PAYOUT: Final = "release_payout"
"""An operator releases a checkout's payout before its release date (or lifts a hold)."""
HOLD_PAYOUT: Final = "hold_payout"
"""An operator holds a checkout's payout, with a reason, until released."""

# Queries
STATE: Final = "state"
RECONCILE_REPORT: Final = "report"

# Patches (`workflow.patched`): behaviour added while workflows ran, kept off their old histories
DISPUTE_DEADLINE_GUARD: Final = "dispute-deadline-guard"
"""The dispute deadline policy never acts at once on arrival nor concedes an unsafe dispute."""

RECONCILE_SCHEDULE_ID: Final = "reconcile-payments"
RECONCILE_SCHEDULED_RUN_ID: Final = "reconcile"
"""The id of the schedule's runs (Temporal appends the scheduled time)."""


CHECKOUT_ID_PREFIX: Final = "checkout-"
REFUND_ID_PREFIX: Final = "refund-"


def checkout_workflow_id(order_id: str, attempt: int = 1) -> str:
    """The order id is the business key; an order whose checkout ended without money may be paid
    again, each attempt its own workflow (`checkout-<order>`, then `checkout-<order>#2`, ...)."""
    suffix = "" if attempt == 1 else f"#{attempt}"
    return f"{CHECKOUT_ID_PREFIX}{order_id}{suffix}"


def left_payment_key(workflow_id: str, switch: int) -> str:
    """The ledger key (its `workflow_id`; no workflow runs under it) of the gateway payment a
    checkout left on its n-th switch of gateway; `/` appears in no order id, so in no checkout's
    workflow id. Its payment id is `checkout_id_for` of this key."""
    return f"{workflow_id}/left-{switch}"


def checkout_id_for(workflow_id: str) -> str:
    """Our payment id, derived from the workflow id so a reset or replay names the same payment."""
    return "pay_" + _digest(workflow_id)


def own_refund_workflow_id(payment_id: str, caller: str, idempotency_key: str) -> str:
    """A refund asked for through the API: the caller's key, scoped to the caller, so two callers
    (or one caller's key that happens to read `compensation`) never share a refund."""
    return f"{REFUND_ID_PREFIX}{payment_id}-own-{_digest(caller + chr(0) + idempotency_key)}"


def observed_refund_workflow_id(payment_id: str, gateway_refund_id: str) -> str:
    """A refund made elsewhere (a gateway dashboard), recorded from its webhook."""
    return f"{REFUND_ID_PREFIX}{payment_id}-observed-{gateway_refund_id}"


def compensation_refund_workflow_id(payment_id: str) -> str:
    """A checkout undoing its own capture."""
    return f"{REFUND_ID_PREFIX}{payment_id}-compensation"


def late_payment_refund_workflow_id(payment_id: str, gateway_charge_id: str) -> str:
    """Money the gateway took after the checkout had ended without it (a late authorization the
    gateway captured): given back."""
    return f"{REFUND_ID_PREFIX}{payment_id}-late-{gateway_charge_id}"


def dispute_workflow_id(gateway: str, gateway_dispute_id: str) -> str:
    return f"dispute-{gateway}-{gateway_dispute_id}"


def reconcile_workflow_id(payment_id: str, run: str) -> str:
    """A reconciliation of one payment, asked for by an operator."""
    return f"{RECONCILE_SCHEDULED_RUN_ID}-{payment_id}-{run}"


def payout_workflow_id(payment_id: str) -> str:
    """One payout per checkout (a later run of the same id picks up from the ledger)."""
    return f"payout-{payment_id}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]
