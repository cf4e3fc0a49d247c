"""Gateway activities: route each call to the adapter of the checkout's gateway."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.gateways.base import PaymentGateway
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    ReleaseGatewayPayment,
)
from domain.refund import CreateGatewayRefund, GatewayRefund, GatewayRefundRef


class GatewayActivities:
    def __init__(self, gateways: Mapping[Gateway, PaymentGateway]) -> None:
        self._gateways = gateways

    @activity.defn
    async def create_gateway_payment(self, request: CreateGatewayPayment) -> GatewayPayment:
        return await self._gateways[request.gateway].create_payment(request)

    @activity.defn
    async def fetch_gateway_payment(self, ref: GatewayPaymentRef) -> GatewayPayment:
        return await self._gateways[ref.gateway].fetch_payment(ref)

    @activity.defn
    async def capture_gateway_payment(self, request: CaptureGatewayPayment) -> GatewayPayment:
        return await self._gateways[request.ref.gateway].capture(request)

    @activity.defn
    async def release_gateway_payment(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        return await self._gateways[request.ref.gateway].release(request)

    @activity.defn
    async def refund_gateway_payment(self, request: CreateGatewayRefund) -> GatewayRefund:
        return await self._gateways[request.ref.gateway].refund(request)

    @activity.defn
    async def fetch_gateway_refund(self, ref: GatewayRefundRef) -> GatewayRefund:
        return await self._gateways[ref.gateway].fetch_refund(ref)
