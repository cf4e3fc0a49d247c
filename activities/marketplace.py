"""Payout activities: open a checkout's payout in the ledger, release its transfers to the
sellers' gateway accounts, reverse them in part; and the starter that the capture, refund and
dispute activities use to start or nudge a checkout's PayoutWorkflow, so those sagas spend no
step (Temporal action) of their own on payouts."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.gateways.base import TransferGateway, refused
from db import marketplace
from domain import names
from domain.checkout import Gateway
from domain.marketplace import (
    Clawback,
    CreateTransfer,
    Payout,
    PayoutNudge,
    PayoutState,
    PayoutTransfer,
    ReleasePayout,
    ReversePayout,
    ReverseTransfer,
    TransferStatus,
)

log = structlog.get_logger("payouts")


class PayoutActivities:
    def __init__(self, pool: asyncpg.Pool, gateways: Mapping[Gateway, TransferGateway]) -> None:
        self._pool = pool
        self._gateways = gateways

    @activity.defn
    async def open_payout(self, payment_id: str) -> Payout:
        """The payout in the ledger, and where the gateway holds escrow (Razorpay Route) each
        share's transfer made, on hold."""
        payout = await marketplace.open_payout(self._pool, payment_id)
        return await self._held_at_gateway(payout)

    async def _held_at_gateway(self, payout: Payout) -> Payout:
        gateway = self._gateway(payout.gateway)
        if not gateway.holds_transfers:
            return payout
        made = False
        for t in payout.transfers:
            if t.status is TransferStatus.HELD and t.gateway_transfer_id is None and t.remaining:
                transfer = await gateway.transfer(self._transfer_of(payout, t))
                await marketplace.record_held_transfer(
                    self._pool, t.transfer_id, transfer.gateway_transfer_id
                )
                made = True
        return await marketplace.open_payout(self._pool, payout.payment_id) if made else payout

    def _transfer_of(self, payout: Payout, t: PayoutTransfer) -> CreateTransfer:
        return CreateTransfer(
            transfer_id=t.transfer_id,
            gateway=payout.gateway,
            gateway_account_id=t.gateway_account_id,
            amount=t.remaining,
            currency=payout.currency,
            gateway_payment_id=payout.gateway_payment_id,
            gateway_charge_id=payout.gateway_charge_id,
            transfer_group=payout.payment_id,
            idempotency_key=f"{t.transfer_id}:transfer",
        )

    @activity.defn
    async def read_clawback(self, payment_id: str) -> Clawback:
        return Clawback(total=await marketplace.clawback_total(self._pool, payment_id))

    @activity.defn
    async def release_payout(self, request: ReleasePayout) -> Payout:
        """Transfer what each held share still holds to its seller; each transfer once (our
        transfer id is its idempotency key, and the adapter looks for it first)."""
        payout = await self._held_at_gateway(
            await marketplace.open_payout(self._pool, request.payment_id)
        )
        gateway = self._gateway(payout.gateway)
        for t in payout.transfers:
            if t.status is not TransferStatus.HELD or t.remaining <= 0:
                continue
            if t.gateway_transfer_id is not None:  # held by the gateway: lift the hold
                made = await gateway.release_transfer(t.gateway_transfer_id)
                amount = made.amount - made.amount_reversed
            else:
                made = await gateway.transfer(self._transfer_of(payout, t))
                amount = made.amount
            await marketplace.record_release(
                self._pool, t.transfer_id, made.gateway_transfer_id, amount
            )
        await marketplace.decide_payout(
            self._pool, request.payment_id, PayoutState.RELEASED, "", request.caller
        )
        return await marketplace.open_payout(self._pool, request.payment_id)

    @activity.defn
    async def reverse_payout(self, request: ReversePayout) -> Payout:
        """Each line from a share the platform holds (the ledger only) or a transfer the gateway
        has (a reversal there first: released, or held by Razorpay), then the platform fee's
        share; each once, by its key."""
        payout = await marketplace.open_payout(self._pool, request.payment_id)
        by_id = {t.transfer_id: t for t in payout.transfers}
        for line in request.lines:
            key = f"{request.key}:{line.transfer_id}"
            transfer = by_id[line.transfer_id]
            reversal_id = None
            if transfer.gateway_transfer_id is not None:  # released, or held by the gateway
                made = await self._gateway(payout.gateway).reverse_transfer(
                    ReverseTransfer(
                        gateway=payout.gateway,
                        gateway_transfer_id=transfer.gateway_transfer_id,
                        amount=line.amount,
                        idempotency_key=key,
                    )
                )
                reversal_id = made.gateway_reversal_id
            await marketplace.record_reversal(
                self._pool, key, line.transfer_id, line.amount, reversal_id
            )
        await marketplace.record_clawback(
            self._pool, request.payment_id, request.key, request.fee_amount,
            request.clawed_back_to,
        )  # fmt: skip
        return await marketplace.open_payout(self._pool, request.payment_id)

    @activity.defn
    async def hold_payout(self, request: tuple[str, str, str]) -> None:
        """An operator's hold (payment id, reason, caller), recorded with who asked."""
        payment_id, reason, caller = request
        await marketplace.decide_payout(self._pool, payment_id, PayoutState.ON_HOLD, reason, caller)

    def _gateway(self, gateway: Gateway) -> TransferGateway:
        found = self._gateways.get(gateway)
        if found is None:
            raise refused("payouts_unsupported", f"{gateway}: payouts are not supported yet")
        return found


class PayoutStarter:
    """Starts a checkout's PayoutWorkflow after its capture, and tells it of refunds and lost
    disputes (signal-with-start: a payout that had finished starts again from the ledger). A
    checkout without splits has no payout, and nothing is started."""

    def __init__(self, pool: asyncpg.Pool, task_queue: str) -> None:
        self._pool = pool
        self._task_queue = task_queue

    async def captured(self, payment_id: str) -> None:
        await self._start(payment_id, None)

    async def money_taken_back(self, payment_id: str, reason: str) -> None:
        await self._start(payment_id, PayoutNudge(reason=reason))

    async def dispute_lost(self, dispute_id: str) -> None:
        payment_id = await marketplace.payment_of_dispute(self._pool, dispute_id)
        if payment_id is not None:
            await self._start(payment_id, PayoutNudge(reason=f"dispute {dispute_id} lost"))

    async def _start(self, payment_id: str, nudge: PayoutNudge | None) -> None:
        if not await marketplace.has_payout(self._pool, payment_id):
            return
        client: Client = activity.client()
        await client.start_workflow(
            names.PAYOUT_WORKFLOW,
            payment_id,
            id=names.payout_workflow_id(payment_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=names.PAYOUT_NUDGE if nudge else None,
            start_signal_args=[nudge] if nudge else [],
            static_summary=f"Payout of {payment_id}",
        )
        log.info("payout told", payment_id=payment_id, reason=nudge.reason if nudge else "captured")
