"""The names every process shares to address a saga: workflow types, signals, updates, queries
and workflow ids. Workflows register under these names; the API, the reconciler and the webhook
relay address them by them, so a rename is one edit here (and a replay-safety question)."""

from __future__ import annotations

from typing import Final

# Workflow types
CHECKOUT_WORKFLOW: Final = "CheckoutWorkflow"
REFUND_WORKFLOW: Final = "RefundWorkflow"
DISPUTE_WORKFLOW: Final = "DisputeWorkflow"
RECONCILE_WORKFLOW: Final = "ReconcileWorkflow"

# Signals: gateway facts (and the reconciler's "look again") for the saga that owns the object
PAYMENT_EVENT: Final = "payment_event"
REFUND_EVENT: Final = "refund_event"
DISPUTE_EVENT: Final = "dispute_event"

# Updates
CHECKOUT_READY: Final = "checkout_ready"
CANCEL_CHECKOUT: Final = "cancel"
CAPTURE_CHECKOUT: Final = "capture"
REFUND_RESERVATION: Final = "reservation"
SUBMIT_DISPUTE_EVIDENCE: Final = "submit_evidence"
ACCEPT_DISPUTE: Final = "accept"

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


def checkout_workflow_id(order_id: str) -> str:
    """One checkout per order: the order id is the business key."""
    return f"{CHECKOUT_ID_PREFIX}{order_id}"


def refund_workflow_id(payment_id: str, key: str) -> str:
    """`refund-<payment_id>-<key>`: the merchant's Idempotency-Key, a gateway refund id for an
    observed refund, or `compensation` for a checkout's own."""
    return f"{REFUND_ID_PREFIX}{payment_id}-{key}"


def dispute_workflow_id(gateway: str, gateway_dispute_id: str) -> str:
    return f"dispute-{gateway}-{gateway_dispute_id}"


def reconcile_workflow_id(payment_id: str, run: str) -> str:
    """A reconciliation of one payment, asked for by an operator."""
    return f"{RECONCILE_SCHEDULED_RUN_ID}-{payment_id}-{run}"
