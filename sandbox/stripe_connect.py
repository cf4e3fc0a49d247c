"""Stripe Connect in the sandbox: connected accounts with their onboarding state, transfers from
the platform's balance to them (separate charges and transfers) and transfer reversals.

Modelled on Stripe's documentation:
- "Create a transfer" (https://docs.stripe.com/api/transfers/create): `amount`, `currency`,
  `destination` (a connected account), optional `source_transaction` (a charge: the transfer may
  not exceed what the charge has left to transfer) and `transfer_group`; the Transfer object
  carries `amount_reversed`, `reversals` and `reversed`.
- "Create a transfer reversal" (https://docs.stripe.com/api/transfer_reversals/create): `amount`
  defaults to what is left; more than is left is refused.
- "Separate charges and transfers" (https://docs.stripe.com/connect/separate-charges-and-transfers):
  the destination needs the `transfers` capability; refunds do not reverse transfers by
  themselves; a transfer may be created later than its charge.
- Events `transfer.created` and `transfer.reversed` (https://docs.stripe.com/api/events/types).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sandbox.state import JSON, Store, new_id, now
from sandbox.stripe_api import StripeApi, StripeError, _bad_param, _int, _json, _metadata
from sandbox.webhooks import WebhookDispatcher


class StripeConnect:
    def __init__(self, store: Store, webhooks: WebhookDispatcher) -> None:
        self._store = store
        self._webhooks = webhooks
        self._accounts = store.table("stripe_accounts")
        self._transfers = store.table("stripe_transfers")
        self._charges = store.table("stripe_charges")

    # Connected accounts

    def create_account(self, params: JSON) -> JSON:
        """``POST /v1/accounts``: a new account has not finished onboarding, so its `transfers`
        capability is inactive until it has (sandbox control `onboard`)."""
        account_id = new_id("acct", 16)
        account: JSON = {
            "id": account_id,
            "object": "account",
            "type": params.get("type") or "express",
            "country": params.get("country") or "US",
            "email": params.get("email") or None,
            "created": now(),
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "capabilities": {"transfers": "inactive"},
            "metadata": _metadata(params),
        }
        self._accounts[account_id] = account
        return account

    def retrieve_account(self, account_id: str) -> JSON:
        account = self._accounts.get(account_id)
        if account is None:
            raise _missing_account(account_id, "account")
        return account

    def onboard(self, account_id: str, active: bool) -> JSON:
        """Sandbox control: the account finished (or lost) onboarding."""
        account = self.retrieve_account(account_id)
        account.update(
            charges_enabled=active, payouts_enabled=active, details_submitted=True,
            capabilities={"transfers": "active" if active else "inactive"},
        )  # fmt: skip
        self._webhooks.stripe_event(account_id, "account.updated", account)
        self._store.save()
        return account

    # Transfers

    def create_transfer(self, params: JSON) -> JSON:
        amount = _int(params, "amount")
        if amount is None or amount < 1:
            raise _bad_param("Amount must be at least 1", "amount", "amount_too_small")
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise _bad_param("Missing required param: currency.", "currency", "parameter_missing")
        destination = str(params.get("destination") or "")
        account = self._accounts.get(destination)
        if account is None:
            raise _missing_account(destination, "destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeError(
                400, "invalid_request_error",
                "Your destination account needs to have at least one of the following"
                " capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer", param="destination",
            )  # fmt: skip
        source = params.get("source_transaction")
        payment_intent = None
        if source:
            charge = self._charges.get(str(source))
            if charge is None:
                raise _bad_param(f"No such charge: '{source}'", "source_transaction",
                                 "resource_missing")  # fmt: skip
            if charge["currency"] != currency:
                raise _bad_param(
                    "The currency of source_transaction's balance transaction"
                    " must be the same as the transfer currency.",
                    "currency",
                )
            left = charge["amount_captured"] - sum(
                t["amount"] for t in self._transfers.values()
                if t["source_transaction"] == source
            )  # fmt: skip
            if amount > left:
                raise _bad_param(
                    f"Transfer amount ({amount}) exceeds the amount left to transfer from"
                    f" source_transaction ({left})", "amount",
                )  # fmt: skip
            payment_intent = charge["payment_intent"]
        transfer_id = new_id("tr", 24)
        transfer: JSON = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "created": now(),
            "currency": currency,
            "description": params.get("description") or None,
            "destination": destination,
            "destination_payment": new_id("py", 24),
            "livemode": False,
            "metadata": _metadata(params),
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": source or None,
            "source_type": "card",
            "transfer_group": params.get("transfer_group") or None,
        }
        self._transfers[transfer_id] = transfer
        self._store.record_movement(
            "stripe", "transfer", object_id=transfer_id, payment=payment_intent or transfer_id,
            order=None, amount=amount, currency=currency, account=destination,
        )  # fmt: skip
        self._webhooks.stripe_event(transfer_id, "transfer.created", transfer)
        return transfer

    def retrieve_transfer(self, transfer_id: str) -> JSON:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise StripeError(404, "invalid_request_error", f"No such transfer: '{transfer_id}'",
                              code="resource_missing", param="id")  # fmt: skip
        return transfer

    def list_transfers(self, params: JSON) -> JSON:
        found = [
            t for t in reversed(self._transfers.values())
            if params.get("destination") in (None, t["destination"])
            and params.get("transfer_group") in (None, t["transfer_group"])
        ]  # fmt: skip
        return {"object": "list", "data": found, "has_more": False, "url": "/v1/transfers"}

    def create_reversal(self, transfer_id: str, params: JSON) -> JSON:
        transfer = self.retrieve_transfer(transfer_id)
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = _int(params, "amount")
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise _bad_param(
                f"You have attempted to reverse {amount}, but this transfer has only {left}"
                " left that can be reversed.", "amount",
            )  # fmt: skip
        reversal: JSON = {
            "id": new_id("trr", 24),
            "object": "transfer_reversal",
            "amount": amount,
            "created": now(),
            "currency": transfer["currency"],
            "metadata": _metadata(params),
            "transfer": transfer_id,
        }
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        transfer["reversals"]["total_count"] += 1
        charge = self._charges.get(transfer["source_transaction"] or "")
        self._store.record_movement(
            "stripe", "transfer_reversal", object_id=reversal["id"],
            payment=charge["payment_intent"] if charge else transfer_id, order=None,
            amount=amount, currency=transfer["currency"], account=transfer["destination"],
        )  # fmt: skip
        self._webhooks.stripe_event(transfer_id, "transfer.reversed", transfer)
        return reversal


def _missing_account(account_id: str, param: str) -> StripeError:
    return StripeError(
        400 if param == "destination" else 404, "invalid_request_error",
        f"No such destination: '{account_id}'" if param == "destination"
        else f"No such account: '{account_id}'",
        code="resource_missing", param=param,
    )  # fmt: skip


def create_stripe_connect_router(api: StripeApi, connect: StripeConnect) -> APIRouter:
    router = APIRouter()
    base = "/stripe/v1"

    @router.post(f"{base}/accounts")
    async def create_account(request: Request) -> Response:
        return await api.call(request, "accounts.create", connect.create_account)

    @router.get(f"{base}/accounts/{{account_id}}")
    async def retrieve_account(account_id: str, request: Request) -> Response:
        return await api.call(
            request, "accounts.retrieve", lambda _: connect.retrieve_account(account_id)
        )

    @router.post(f"{base}/transfers")
    async def create_transfer(request: Request) -> Response:
        return await api.call(request, "transfers.create", connect.create_transfer, "transfers")

    @router.get(f"{base}/transfers")
    async def list_transfers(request: Request) -> Response:
        return await api.call(request, "transfers.list", connect.list_transfers)

    @router.get(f"{base}/transfers/{{transfer_id}}")
    async def retrieve_transfer(transfer_id: str, request: Request) -> Response:
        return await api.call(
            request, "transfers.retrieve", lambda _: connect.retrieve_transfer(transfer_id)
        )

    @router.post(f"{base}/transfers/{{transfer_id}}/reversals")
    async def create_reversal(transfer_id: str, request: Request) -> Response:
        return await api.call(
            request, "transfers.reversals.create",
            lambda p: connect.create_reversal(transfer_id, p), transfer_id,
        )  # fmt: skip

    @router.post("/sandbox/stripe/accounts/{account_id}/onboard")
    async def onboard(account_id: str, active: bool = True) -> Response:
        try:
            return _json(connect.onboard(account_id, active), 200)
        except StripeError as error:
            return _json(error.body(), error.status)

    return router
