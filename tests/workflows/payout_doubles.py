"""Test doubles for the payout's activities: one checkout's payout, its ledger and its gateway
transfers, in memory."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.checkout import Gateway
from domain.marketplace import (
    Clawback,
    Payout,
    PayoutState,
    PayoutTransfer,
    ReleasePayout,
    ReversePayout,
    TransferStatus,
)

PAYMENT = "pay_split"


class FakePayouts:
    """Shares of 7000 and 2000 with a fee of 1000 (USD): tests set what customers got back and
    read what the saga transferred and reversed."""

    def __init__(self, release_at: datetime | None = None) -> None:
        self.payout = Payout(
            payment_id=PAYMENT,
            gateway=Gateway.STRIPE,
            currency="USD",
            gateway_payment_id="pi_1",
            release_at=release_at,
            platform_fee=1_000,
            transfers=[
                PayoutTransfer(
                    transfer_id=f"tr_{PAYMENT}_{i}",
                    seller_id=seller,
                    gateway_account_id=f"acct_{seller}",
                    amount=amount,
                )
                for i, (seller, amount) in enumerate([("venue", 7_000), ("artist", 2_000)])
            ],
        )
        self.clawback = 0
        self.transferred: dict[str, int] = {}
        """At the gateway: what each transfer paid its seller."""
        self.reversed_at_gateway: list[tuple[str, int]] = []
        self.released_by: list[str] = []
        self.holds: list[tuple[str, str]] = []
        self.held = asyncio.Event()
        self.refuse_transfers = False
        """The gateway refuses every transfer for good (an account not onboarded)."""

    def activities(self) -> list[Any]:
        @activity.defn(name="open_payout")
        async def open_payout(payment_id: str) -> Payout:
            return self.payout

        @activity.defn(name="read_clawback")
        async def read_clawback(payment_id: str) -> Clawback:
            return Clawback(total=self.clawback)

        @activity.defn(name="release_payout")
        async def release_payout(request: ReleasePayout) -> Payout:
            if self.refuse_transfers:
                raise ApplicationError(
                    "stripe: destination lacks the transfers capability",
                    type="invalid_request", non_retryable=True,
                )  # fmt: skip
            transfers = []
            for t in self.payout.transfers:
                if t.status is TransferStatus.HELD and t.remaining > 0:
                    self.transferred[t.transfer_id] = t.remaining
                    t = t.model_copy(
                        update={"status": TransferStatus.RELEASED, "gateway_transfer_id": "tr_g"}
                    )
                transfers.append(t)
            self.released_by.append(request.caller)
            self.payout = self.payout.model_copy(
                update={"transfers": transfers, "state": PayoutState.RELEASED}
            )
            return self.payout

        @activity.defn(name="reverse_payout")
        async def reverse_payout(request: ReversePayout) -> Payout:
            amounts = {line.transfer_id: line.amount for line in request.lines}
            transfers = []
            for t in self.payout.transfers:
                amount = amounts.get(t.transfer_id, 0)
                if amount and t.status is TransferStatus.RELEASED:
                    self.reversed_at_gateway.append((t.transfer_id, amount))
                transfers.append(t.model_copy(update={"reversed": t.reversed + amount}))
            self.payout = self.payout.model_copy(
                update={
                    "transfers": transfers,
                    "fee_reversed": self.payout.fee_reversed + request.fee_amount,
                    "clawed_back": request.clawed_back_to,
                }
            )
            return self.payout

        @activity.defn(name="hold_payout")
        async def hold_payout(request: tuple[str, str, str]) -> None:
            self.holds.append((request[1], request[2]))
            self.held.set()

        return [open_payout, read_clawback, release_payout, reverse_payout, hold_payout]
