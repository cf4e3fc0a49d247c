"""The interface every gateway adapter implements, and the error classification they share."""

from __future__ import annotations

from typing import Protocol

from temporalio.exceptions import ApplicationError

from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    GatewayPayment,
    GatewayPaymentRef,
    ReleaseGatewayPayment,
)
from domain.dispute import (
    GatewayDispute,
    GatewayDisputeAcceptance,
    GatewayDisputeRef,
    GatewayEvidence,
)
from domain.marketplace import CreateTransfer, GatewayReversal, GatewayTransfer, ReverseTransfer
from domain.refund import CreateGatewayRefund, GatewayRefund, GatewayRefundRef


class PaymentGateway(Protocol):
    async def create_payment(self, request: CreateGatewayPayment) -> GatewayPayment: ...

    async def fetch_payment(self, ref: GatewayPaymentRef) -> GatewayPayment: ...

    async def find_payment(self, checkout_id: str) -> GatewayPayment | None:
        """The payment a checkout created here, if any attempt did (its answer may be lost)."""
        ...

    async def capture(self, request: CaptureGatewayPayment) -> GatewayPayment: ...

    async def release(self, request: ReleaseGatewayPayment) -> GatewayPayment: ...

    async def refund(self, request: CreateGatewayRefund) -> GatewayRefund:
        """Create the refund, or return the one an earlier attempt created (same refund id)."""
        ...

    async def fetch_refund(self, ref: GatewayRefundRef) -> GatewayRefund: ...

    async def fetch_dispute(self, ref: GatewayDisputeRef) -> GatewayDispute: ...

    async def submit_dispute_evidence(self, request: GatewayEvidence) -> GatewayDispute:
        """Save the evidence at the gateway, as a draft or submitted for review."""
        ...

    async def accept_dispute(self, request: GatewayDisputeAcceptance) -> GatewayDispute:
        """Concede: the gateway closes the dispute as lost."""
        ...


# The kinds `unavailable` errors of the gateway itself carry: the checkout saga retries or fails
# over on them, and the gateway's breaker counts them (a refusal says the gateway is up).
UNAVAILABLE_KINDS = frozenset({"gateway_unreachable", "gateway_error", "gateway_rate_limited"})


def refused(kind: str, message: str) -> ApplicationError:
    """The gateway said no for good (declined, invalid, wrong state): retrying cannot help."""
    return ApplicationError(message, type=kind, non_retryable=True)


def unavailable(kind: str, message: str) -> ApplicationError:
    """Network, 5xx, rate limit or a lost response: retry with the same idempotency key."""
    return ApplicationError(message, type=kind)


class TransferGateway(Protocol):
    """Marketplace payouts: pay a seller's gateway account, and take part of it back."""

    holds_transfers: bool
    """True: transfers are made when the payout opens and the gateway holds them until
    `release_transfer` (Razorpay Route); False: the platform holds the money and transfers it
    at the release (Stripe Connect)."""

    async def transfer(self, request: CreateTransfer) -> GatewayTransfer:
        """Create the transfer, or return the one an earlier attempt created (same transfer id)."""
        ...

    async def release_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        """Lift the gateway's hold on a transfer (only where `holds_transfers`)."""
        ...

    async def reverse_transfer(self, request: ReverseTransfer) -> GatewayReversal:
        """Reverse part of a transfer, once per idempotency key."""
        ...

    async def fetch_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        """The transfer as the gateway has it (the reconciler's question; never changes it)."""
        ...
