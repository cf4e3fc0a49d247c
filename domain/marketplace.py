"""Marketplace payouts: the PayoutWorkflow's contract (its parts, transfers and clawbacks) and
the arithmetic that splits money between them without creating or losing a minor unit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from domain.checkout import Gateway, Model


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` in proportion to `weights` (largest remainder: every part gets the floor of
    its exact share, the units left over go to the largest remainders, ties to the earlier part).
    The parts add up to `amount` exactly, and when `amount <= sum(weights)` no part exceeds its
    weight, so reversing a refund this way never takes more from a part than it holds."""
    if amount < 0 or any(w < 0 for w in weights):
        raise ValueError("allocate takes non-negative amounts and weights")
    total = sum(weights)
    if total == 0:
        if amount:
            raise ValueError(f"cannot allocate {amount} over nothing")
        return [0 for _ in weights]
    parts = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    left = amount - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return parts


class TransferStatus(StrEnum):
    HELD = "held"
    """In escrow: the platform holds it (Stripe), or the gateway holds the transfer (Razorpay)."""
    RELEASED = "released"
    """Paid to the seller's connected / linked account."""
    REVERSED = "reversed"
    """Wholly reversed (a full refund or a lost dispute): nothing left for the seller."""


class PayoutState(StrEnum):
    HOLDING = "holding"
    ON_HOLD = "on_hold"
    """An operator holds it: no release until an operator releases it."""
    RELEASED = "released"


class PayoutTransfer(Model):
    """One seller's part of one checkout, held then released, reversed in part or whole."""

    transfer_id: str
    """Ours, derived from the checkout and the share; the gateway's idempotency keys start here."""
    seller_id: str
    gateway_account_id: str
    amount: int
    """What the split gave this seller of the captured amount."""
    reversed: int = 0
    status: TransferStatus = TransferStatus.HELD
    gateway_transfer_id: str | None = None

    @property
    def remaining(self) -> int:
        return self.amount - self.reversed


class Payout(Model):
    """A checkout's payout as the ledger holds it: what the PayoutWorkflow starts each run from."""

    payment_id: str
    gateway: Gateway
    currency: str
    gateway_payment_id: str
    gateway_charge_id: str | None = None
    release_at: datetime | None = None
    platform_fee: int
    fee_reversed: int = 0
    transfers: list[PayoutTransfer]
    state: PayoutState = PayoutState.HOLDING
    hold_reason: str | None = None
    clawed_back: int = 0
    """Customer money taken back (refunds, lost disputes) already reversed from the parts."""

    @property
    def released(self) -> bool:
        return self.state is PayoutState.RELEASED


class Clawback(Model):
    """Customer money taken back from one payment so far: settled refunds plus lost disputes."""

    total: int


class ReversalLine(Model):
    transfer_id: str
    amount: int


class ReversePayout(Model):
    """Take `amount` of customer money back from the parts, in proportion to what each holds."""

    payment_id: str
    key: str
    """Unique per clawback (the cumulative total it brings us to): retries reverse once."""
    lines: list[ReversalLine]
    fee_amount: int
    clawed_back_to: int


class ReleasePayout(Model):
    payment_id: str
    caller: str


class HoldPayout(Model):
    reason: str = Field(min_length=1, max_length=500)
    caller: str = ""


class ReleasePayoutEarly(Model):
    caller: str = ""


class PayoutNudge(Model):
    """A refund or dispute moved money on the payment: the payout looks at its clawback again."""

    reason: str


def reversal_for(payout: Payout, clawback: int) -> ReversePayout | None:
    """What to reverse so that the parts give back `clawback` in all: the new part of it,
    spread over what each part still holds (the platform's fee included), never more than the
    parts hold. None when there is nothing new to reverse."""
    new = min(clawback, payout.clawed_back + _holding(payout)) - payout.clawed_back
    if new <= 0:
        return None
    weights = [t.remaining for t in payout.transfers] + [payout.platform_fee - payout.fee_reversed]
    parts = allocate(new, weights)
    target = payout.clawed_back + new
    return ReversePayout(
        payment_id=payout.payment_id,
        key=f"{payout.payment_id}:clawback:{target}",
        lines=[
            ReversalLine(transfer_id=t.transfer_id, amount=a)
            for t, a in zip(payout.transfers, parts, strict=False)
            if a > 0
        ],
        fee_amount=parts[-1],
        clawed_back_to=target,
    )


def _holding(payout: Payout) -> int:
    return sum(t.remaining for t in payout.transfers) + payout.platform_fee - payout.fee_reversed


# Gateway-neutral transfer contracts (the adapters translate them)


class CreateTransfer(Model):
    transfer_id: str
    gateway: Gateway
    gateway_account_id: str
    amount: int
    currency: str
    gateway_payment_id: str
    gateway_charge_id: str | None = None
    transfer_group: str
    """The checkout's payment id: every transfer of one checkout shares it."""
    idempotency_key: str


class GatewayTransfer(Model):
    gateway_transfer_id: str
    amount: int
    amount_reversed: int = 0
    currency: str | None = None
    destination: str | None = None
    """The seller's account the transfer paid (Stripe `destination`, Razorpay `recipient`)."""
    on_hold: bool | None = None
    """Whether the gateway holds the transfer's settlement (Razorpay); None where none can."""


class ReverseTransfer(Model):
    gateway: Gateway
    gateway_transfer_id: str
    amount: int
    idempotency_key: str
    """Also written on the reversal (metadata), so a retry finds the one an earlier try made."""


class GatewayReversal(Model):
    gateway_reversal_id: str
    amount: int
