"""Risk activities: assess a checkout (before its gateway payment is created, and at authorization
with what the gateway knows of the card), and record how a review ended. The rules are read from
the ledger on every call, so a change there applies to the next checkout without a deploy."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
from temporalio import activity

from activities.gateways.base import PaymentGateway
from db import payments, risk
from domain.checkout import CardSignals, Gateway, GatewayPaymentRef
from domain.risk import AssessCheckout, RecordReview, RiskVerdict


class RiskActivities:
    def __init__(self, gateways: Mapping[Gateway, PaymentGateway], pool: asyncpg.Pool) -> None:
        self._gateways = gateways
        self._pool = pool

    @activity.defn
    async def assess_checkout_risk(self, request: AssessCheckout) -> RiskVerdict:
        """At creation the checkout's payment row is written first (a blocked checkout is in the
        ledger too); at authorization the gateway is asked for the card's signals."""
        if request.new_checkout is not None:
            await payments.record_new_checkout(self._pool, request.new_checkout)
        return await risk.assess_checkout(self._pool, request, await self._card(request))

    @activity.defn
    async def record_risk_review(self, review: RecordReview) -> None:
        await risk.record_review(
            self._pool, review.assessment_id, review.status, review.reviewer, review.note
        )

    async def _card(self, request: AssessCheckout) -> CardSignals | None:
        if request.gateway_payment_id is None:
            return None
        gateway = Gateway(request.gateway)
        payment = await self._gateways[gateway].fetch_payment(
            GatewayPaymentRef(
                gateway=gateway,
                gateway_payment_id=request.gateway_payment_id,
                gateway_charge_id=request.gateway_charge_id,
            )
        )
        return payment.card
