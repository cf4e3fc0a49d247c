"""Stripe Connect over the official SDK: separate charges and transfers. The platform charges
the customer (the checkout), keeps its fee, and transfers each seller's share to the seller's
connected account when the payout is released, tied to the charge (`source_transaction`,
https://docs.stripe.com/connect/separate-charges-and-transfers); reversals give part of a
transfer back (https://docs.stripe.com/api/transfer_reversals/create)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe

from activities.gateways.base import refused
from activities.gateways.stripe.adapter import stripe_call, stripe_client
from domain.marketplace import CreateTransfer, GatewayReversal, GatewayTransfer, ReverseTransfer

T = TypeVar("T")


class StripeConnectGateway:
    holds_transfers = False
    """Stripe transfers cannot be held: the platform's balance is the escrow."""

    def __init__(self, api_key: str, api_base: str, timeout_seconds: float) -> None:
        self._client = stripe_client(api_key, api_base, timeout_seconds)

    async def _call(self, call: Awaitable[T]) -> T:
        return await stripe_call(call)

    async def transfer(self, request: CreateTransfer) -> GatewayTransfer:
        """Look first: a transfer an earlier attempt made (its answer lost, or its key older than
        Stripe keeps keys) carries our transfer id in its metadata."""
        found = await self._call(
            self._client.v1.transfers.list_async(
                {"transfer_group": request.transfer_group, "limit": 100}
            )
        )
        for existing in found.data:
            if _metadata(existing).get("transfer_id") == request.transfer_id:
                return _transfer(existing)
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "destination": request.gateway_account_id,
            "transfer_group": request.transfer_group,
            "metadata": {"transfer_id": request.transfer_id},
        }
        charge = request.gateway_charge_id or await self._charge_of(request.gateway_payment_id)
        if charge:
            params["source_transaction"] = charge
        created = await self._call(
            self._client.v1.transfers.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": request.idempotency_key},
            )
        )
        return _transfer(created)

    async def _charge_of(self, payment_intent_id: str) -> str | None:
        intent = await self._call(self._client.v1.payment_intents.retrieve_async(payment_intent_id))
        charge = intent.latest_charge
        return charge if isinstance(charge, str) else (charge.id if charge else None)

    async def release_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        raise refused("not_held", f"stripe: transfer {gateway_transfer_id} was never held")

    async def reverse_transfer(self, request: ReverseTransfer) -> GatewayReversal:
        transfer = await self._call(
            self._client.v1.transfers.retrieve_async(request.gateway_transfer_id)
        )
        for existing in transfer.reversals.data:
            if _metadata(existing).get("reversal_key") == request.idempotency_key:
                return GatewayReversal(gateway_reversal_id=existing.id, amount=existing.amount)
        reversal = await self._call(
            self._client.v1.transfers.reversals.create_async(
                request.gateway_transfer_id,
                {"amount": request.amount, "metadata": {"reversal_key": request.idempotency_key}},
                {"idempotency_key": request.idempotency_key},
            )
        )
        return GatewayReversal(gateway_reversal_id=reversal.id, amount=reversal.amount)

    async def fetch_transfer(self, gateway_transfer_id: str) -> GatewayTransfer:
        """`GET /v1/transfers/{id}` (https://docs.stripe.com/api/transfers/retrieve): its amount,
        `amount_reversed` and `destination`."""
        return _transfer(
            await self._call(self._client.v1.transfers.retrieve_async(gateway_transfer_id))
        )


def _transfer(transfer: stripe.Transfer) -> GatewayTransfer:
    destination = transfer.destination
    return GatewayTransfer(
        gateway_transfer_id=transfer.id,
        amount=transfer.amount,
        amount_reversed=transfer.amount_reversed,
        currency=transfer.currency.upper(),
        destination=destination if isinstance(destination, str | None) else destination.id,
    )


def _metadata(obj: Any) -> dict[str, str]:
    metadata = getattr(obj, "metadata", None)
    return dict(metadata.to_dict()) if metadata else {}
