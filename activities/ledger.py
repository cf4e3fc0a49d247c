"""Ledger activities: the sagas' only way to write the ledger. Each is one idempotent PostgreSQL
transaction (a unique record key per change), so a retried activity applies its change once; the
SQL lives in the `db` package."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.marketplace import PayoutStarter
from db import disputes, payments, refunds
from domain.checkout import CheckoutRecord, PaymentStatus
from domain.dispute import (
    DisputedPayment,
    DisputeOpened,
    DisputeOpening,
    DisputeRecord,
    DisputeRecorded,
    DisputeStatus,
    UnverifiedDispute,
)
from domain.refund import RefundEffect, RefundRecord, RefundReservation, ReservationOutcome


class LedgerActivities:
    def __init__(self, pool: asyncpg.Pool, payouts: PayoutStarter | None = None) -> None:
        self._pool = pool
        self._payouts = payouts
        """Told of captures, settled refunds and lost disputes (checkouts with splits)."""

    @activity.defn
    async def record_checkout_steps(self, records: list[CheckoutRecord]) -> None:
        await payments.record_checkout_steps(self._pool, records)
        if self._payouts is not None and any(r.status is PaymentStatus.CAPTURED for r in records):
            await self._payouts.captured(records[0].checkout_id)

    @activity.defn
    async def reserve_refund(self, reservation: RefundReservation) -> ReservationOutcome:
        return await refunds.reserve_refund(self._pool, reservation)

    @activity.defn
    async def record_refund_step(self, record: RefundRecord) -> PaymentStatus:
        status = await refunds.record_refund_step(self._pool, record)
        if self._payouts is not None and record.effect is RefundEffect.SETTLE:
            await self._payouts.money_taken_back(record.payment_id, f"refund {record.refund_id}")
        return status

    @activity.defn
    async def open_dispute(self, opening: DisputeOpening) -> DisputeOpened:
        return await disputes.open_dispute(self._pool, opening)

    @activity.defn
    async def record_dispute_step(self, record: DisputeRecord) -> DisputeRecorded:
        recorded = await disputes.record_dispute_step(self._pool, record)
        if self._payouts is not None and record.status is DisputeStatus.LOST:
            await self._payouts.dispute_lost(record.dispute_id)
        return recorded

    @activity.defn
    async def read_disputed_payment(self, dispute_id: str) -> DisputedPayment | None:
        return await disputes.disputed_payment(self._pool, dispute_id)

    @activity.defn
    async def flag_unverified_dispute(self, unverified: UnverifiedDispute) -> None:
        await disputes.flag_unverified_dispute(self._pool, unverified)
