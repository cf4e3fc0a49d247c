"""Dispute activities at the gateway (look up, submit evidence, accept) and the signed
`dispute.opened` / `dispute.closed` notice to the merchant."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from temporalio import activity

from activities.gateways.base import PaymentGateway
from activities.merchant import post_to_merchant
from domain.checkout import Gateway
from domain.dispute import (
    GatewayDispute,
    GatewayDisputeAcceptance,
    GatewayDisputeRef,
    GatewayEvidence,
    MerchantDisputeNotice,
)


class DisputeActivities:
    def __init__(
        self,
        gateways: Mapping[Gateway, PaymentGateway],
        http: httpx.AsyncClient,
        merchant_url: str | None,
        merchant_secret: str,
    ) -> None:
        self._gateways = gateways
        self._http = http
        self._url = merchant_url
        self._secret = merchant_secret

    @activity.defn
    async def fetch_gateway_dispute(self, ref: GatewayDisputeRef) -> GatewayDispute:
        return await self._gateways[ref.gateway].fetch_dispute(ref)

    @activity.defn
    async def submit_gateway_dispute_evidence(self, request: GatewayEvidence) -> GatewayDispute:
        return await self._gateways[request.ref.gateway].submit_dispute_evidence(request)

    @activity.defn
    async def accept_gateway_dispute(self, request: GatewayDisputeAcceptance) -> GatewayDispute:
        return await self._gateways[request.ref.gateway].accept_dispute(request)

    @activity.defn
    async def notify_merchant_of_dispute(self, notice: MerchantDisputeNotice) -> None:
        """The same signed callback as the checkout's confirmation; the merchant answers 2xx."""
        if self._url is None:
            return
        body = notice.model_dump_json().encode()
        await post_to_merchant(
            self._http, self._url, self._secret, body, f"{notice.workflow_id}-{notice.type}"
        )
