"""Razorpay Route in the sandbox: linked accounts, transfers from captured payments with a
settlement hold, releasing the hold, and transfer reversals.

Modelled on Razorpay's documentation:
- "Create Transfers from Payments" (https://razorpay.com/docs/api/payments/route/
  create-transfers-payments): `POST /v1/payments/:id/transfers` with `transfers[]` of `account`,
  `amount`, `currency`, `notes`, `on_hold`, `on_hold_until`; the payment must be captured and the
  transfers may not exceed it; answers a collection of transfer entities.
- "Transfers Entity" (https://razorpay.com/docs/api/payments/route/transfers-entity): `status`,
  `settlement_status` (`on_hold`, `pending`, `settled`), `amount_reversed`, `recipient`.
- "Modify Settlement Hold for Transfers" (https://razorpay.com/docs/api/payments/route/transfers/
  modify-settlement-hold): `PATCH /v1/transfers/:id` with `on_hold` (false releases).
- "Reverse Transfers from all Linked Accounts" (https://razorpay.com/docs/api/payments/route/
  reverse-transfers): `POST /v1/transfers/:id/reversals` with `amount` (default: what is left).
- Webhooks `transfer.processed` and, on release, `settlement.processed` for the linked account
  (https://razorpay.com/docs/webhooks/payments, "Route").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sandbox.razorpay_api import RazorpayApi, RazorpayError, _amount, _bad, _json
from sandbox.state import JSON, Store, new_id, now
from sandbox.webhooks import WebhookDispatcher


class RazorpayRoute:
    def __init__(self, store: Store, webhooks: WebhookDispatcher) -> None:
        self._store = store
        self._webhooks = webhooks
        self._accounts = store.table("razorpay_accounts")
        self._transfers = store.table("razorpay_transfers")
        self._payments = store.table("razorpay_payments")

    def create_account(self, params: JSON) -> JSON:
        """``POST /v2/accounts`` (type `route`): a linked account must be activated (its KYC
        done; sandbox control `activate`) before transfers reach it."""
        account_id = new_id("acc", 14)
        account: JSON = {
            "id": account_id,
            "type": "route",
            "status": "created",
            "email": params.get("email"),
            "legal_business_name": params.get("legal_business_name") or "",
            "created_at": now(),
        }
        self._accounts[account_id] = account
        return account

    def activate(self, account_id: str) -> JSON:
        account = self._accounts.get(account_id)
        if account is None:
            raise RazorpayError(404, "The id provided does not exist")
        account["status"] = "activated"
        self._store.save()
        return account

    def transfer(self, payment_id: str, params: JSON) -> JSON:
        payment = self._payments.get(payment_id)
        if payment is None:
            raise RazorpayError(400, "The id provided does not exist", field="id")
        if payment["status"] != "captured":
            raise _bad("Transfer cannot be made on a payment that is not captured")
        requested = params.get("transfers")
        if not isinstance(requested, list) or not requested:
            raise _bad("The transfers field is required.", "transfers")
        already = sum(t["amount"] for t in self._transfers.values() if t["source"] == payment_id)
        made = []
        for item in requested:
            amount = _amount(item)
            account = self._accounts.get(str(item.get("account")))
            if amount is None or amount < 1:
                raise _bad("The amount field is required.", "amount")
            if account is None:
                raise _bad("The account id provided does not exist", "account")
            if account["status"] != "activated":
                raise _bad("Linked account is not activated", "account")
            already += amount
            if already > payment["amount"] - payment.get("amount_refunded", 0):
                raise _bad("The sum of amount requested for transfer is greater than the"
                           " captured amount", "amount")  # fmt: skip
            on_hold = bool(item.get("on_hold"))
            transfer: JSON = {
                "id": new_id("trf", 14),
                "entity": "transfer",
                "status": "processed",
                "source": payment_id,
                "recipient": account["id"],
                "amount": amount,
                "currency": item.get("currency") or payment["currency"],
                "amount_reversed": 0,
                "notes": item.get("notes") or {},
                "on_hold": on_hold,
                "on_hold_until": item.get("on_hold_until"),
                "settlement_status": "on_hold" if on_hold else "pending",
                "recipient_settlement_id": None,
                "created_at": now(),
                "processed_at": now(),
                "reversals": [],
            }
            self._transfers[transfer["id"]] = transfer
            self._store.record_movement(
                "razorpay", "transfer", object_id=transfer["id"], payment=payment_id,
                order=payment["order_id"], amount=amount, currency=transfer["currency"],
                account=account["id"],
            )  # fmt: skip
            self._webhooks.razorpay_event(
                transfer["id"], "transfer.processed", {"transfer": _shown(transfer)}
            )
            made.append(_shown(transfer))
        return {"entity": "collection", "count": len(made), "items": made}

    def payment_transfers(self, payment_id: str) -> JSON:
        found = [_shown(t) for t in self._transfers.values() if t["source"] == payment_id]
        return {"entity": "collection", "count": len(found), "items": found}

    def fetch(self, transfer_id: str) -> JSON:
        return _shown(self._transfer(transfer_id))

    def edit(self, transfer_id: str, params: JSON) -> JSON:
        transfer = self._transfer(transfer_id)
        if "on_hold" not in params:
            raise _bad("The on hold field is required.", "on_hold")
        on_hold = params["on_hold"] in (True, 1, "1", "true")
        transfer["on_hold"] = on_hold
        transfer["on_hold_until"] = params.get("on_hold_until") if on_hold else None
        if on_hold:
            transfer["settlement_status"] = "on_hold"
        elif transfer["settlement_status"] == "on_hold":
            transfer["settlement_status"] = "settled"
            transfer["recipient_settlement_id"] = new_id("setl", 14)
            self._webhooks.razorpay_event(
                transfer_id, "settlement.processed",
                {"settlement": {"id": transfer["recipient_settlement_id"],
                                "entity": "settlement", "status": "processed",
                                "amount": transfer["amount"] - transfer["amount_reversed"],
                                "created_at": now()}},
            )  # fmt: skip
        return _shown(transfer)

    def reverse(self, transfer_id: str, params: JSON) -> JSON:
        transfer = self._transfer(transfer_id)
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = _amount(params)
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise _bad("The reversal amount is greater than the amount left to reverse", "amount")
        reversal: JSON = {
            "id": new_id("rvrsl", 14),
            "entity": "reversal",
            "transfer_id": transfer_id,
            "amount": amount,
            "currency": transfer["currency"],
            "notes": params.get("notes") or {},
            "created_at": now(),
        }
        transfer["amount_reversed"] += amount
        transfer["status"] = (
            "reversed"
            if transfer["amount_reversed"] == transfer["amount"]
            else ("partially_reversed")
        )
        transfer["reversals"].insert(0, reversal)
        payment = self._payments[transfer["source"]]
        self._store.record_movement(
            "razorpay", "transfer_reversal", object_id=reversal["id"], payment=payment["id"],
            order=payment["order_id"], amount=amount, currency=transfer["currency"],
            account=transfer["recipient"],
        )  # fmt: skip
        self._webhooks.razorpay_event(
            transfer_id, "transfer.reversed", {"transfer": _shown(transfer)}
        )
        return reversal

    def reversals(self, transfer_id: str) -> JSON:
        found = self._transfer(transfer_id)["reversals"]
        return {"entity": "collection", "count": len(found), "items": found}

    def _transfer(self, transfer_id: str) -> JSON:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise RazorpayError(400, "The id provided does not exist", field="id")
        return transfer


def _shown(transfer: JSON) -> JSON:
    return {k: v for k, v in transfer.items() if k != "reversals"}


def create_razorpay_route_router(api: RazorpayApi, route: RazorpayRoute) -> APIRouter:
    router = APIRouter()
    base = "/razorpay/v1"

    @router.post("/razorpay/v2/accounts")
    async def create_account(request: Request) -> Response:
        return await api.call(request, "accounts.create", route.create_account)

    @router.post(f"{base}/payments/{{payment_id}}/transfers")
    async def transfer(payment_id: str, request: Request) -> Response:
        return await api.call(
            request, "payments.transfer", lambda p: route.transfer(payment_id, p), None,
            payment_id,
        )  # fmt: skip

    @router.get(f"{base}/payments/{{payment_id}}/transfers")
    async def payment_transfers(payment_id: str, request: Request) -> Response:
        return await api.call(
            request, "payments.transfers", lambda _: route.payment_transfers(payment_id)
        )

    @router.get(f"{base}/transfers/{{transfer_id}}")
    async def fetch(transfer_id: str, request: Request) -> Response:
        return await api.call(request, "transfers.fetch", lambda _: route.fetch(transfer_id))

    @router.patch(f"{base}/transfers/{{transfer_id}}")
    async def edit(transfer_id: str, request: Request) -> Response:
        return await api.call(
            request, "transfers.edit", lambda p: route.edit(transfer_id, p), None, transfer_id
        )

    @router.post(f"{base}/transfers/{{transfer_id}}/reversals")
    async def reverse(transfer_id: str, request: Request) -> Response:
        return await api.call(
            request, "transfers.reverse", lambda p: route.reverse(transfer_id, p), None,
            transfer_id,
        )  # fmt: skip

    @router.get(f"{base}/transfers/{{transfer_id}}/reversals")
    async def reversals(transfer_id: str, request: Request) -> Response:
        return await api.call(
            request, "transfers.reversals", lambda _: route.reversals(transfer_id)
        )

    @router.post("/sandbox/razorpay/accounts/{account_id}/activate")
    async def activate(account_id: str) -> Response:
        try:
            return _json(route.activate(account_id), 200)
        except RazorpayError as error:
            return _json(error.body(), error.status)

    return router
