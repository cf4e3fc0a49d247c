"""Razorpay Route over the official SDK: each seller's share is transferred to the seller's
linked account as soon as the payout opens, with its settlement on hold (Razorpay holds the
escrow); the release lifts the hold, and reversals give part of a transfer back
(https://razorpay.com/docs/api/payments/route/). Razorpay takes no idempotency key on these
calls: each looks for what an earlier attempt made first (our ids in the notes)."""

from __future__ import annotations

from typing import Any

from activities.gateways.base import refused
from activities.gateways.razorpay.adapter import RazorpayGateway
from domain.marketplace import CreateTransfer, GatewayReversal, GatewayTransfer, ReverseTransfer


class RazorpayRouteGateway(RazorpayGateway):
    holds_transfers = True
    """Transfers are made when the payout opens, held by Razorpay until released."""

    async def transfer(self, request: CreateTransfer) -> GatewayTransfer:
        payment_id = request.gateway_charge_id
        if payment_id is None:
            raise refused("no_payment_id", f"{request.transfer_id}: no Razorpay payment id")
        made = await self._call(self._client.payment.transfers, payment_id)
        for existing in made.get("items", []):
            if (existing.get("notes") or {}).get("transfer_id") == request.transfer_id:
                return _transfer(existing)
        created = await self._call(
            self._client.payment.transfer,
            payment_id,
            {
                "transfers": [
                    {
                        "account": request.gateway_account_id,
                        "amount": request.amount,
                        "currency": request.currency,
                        "notes": {"transfer_id": request.transfer_id},
                        "on_hold": True,
                    }
                ]
            },
        )
        return _transfer(created["items"][0])

    async def release_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        released = await self._call(
            self._client.transfer.edit, gateway_transfer_id, {"on_hold": False}
        )
        return _transfer(released)

    async def reverse_transfer(self, request: ReverseTransfer) -> GatewayReversal:
        existing = await self._call(self._client.transfer.reversals, request.gateway_transfer_id)
        for reversal in existing.get("items", []):
            if (reversal.get("notes") or {}).get("reversal_key") == request.idempotency_key:
                return GatewayReversal(
                    gateway_reversal_id=reversal["id"], amount=reversal["amount"]
                )
        made = await self._call(
            self._client.transfer.reverse,
            request.gateway_transfer_id,
            {"amount": request.amount, "notes": {"reversal_key": request.idempotency_key}},
        )
        return GatewayReversal(gateway_reversal_id=made["id"], amount=made["amount"])

    async def fetch_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        """`GET /v1/transfers/:id` (https://razorpay.com/docs/api/payments/route/fetch-transfer):
        its amount, `amount_reversed`, `recipient` and `on_hold`."""
        return _transfer(await self._call(self._client.transfer.fetch, gateway_transfer_id))


def _transfer(transfer: dict[str, Any]) -> GatewayTransfer:
    return GatewayTransfer(
        gateway_transfer_id=transfer["id"],
        amount=transfer["amount"],
        amount_reversed=transfer.get("amount_reversed", 0),
        currency=transfer.get("currency"),
        destination=transfer.get("recipient"),
        on_hold=transfer.get("on_hold"),
    )
